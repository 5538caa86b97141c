"""Degradation library: make realistic wrong masks from correct ones, with known Dice.

>>> out = degrade(mask, "erosion", 0.5, np.random.default_rng(0), spacing=(1.5, 1.5, 3.0))
>>> out.dsc   # exact 3D Dice of out.mask against mask, in [0, 1]

Severity is in [0, 1] (0 = nearly perfect, 1 = very bad); sizes are in mm, so a severity means
the same at any voxel spacing. Used by ``qsaudit demo`` and by training-data generation.
"""

from qsaudit.degrade.api import ERRORS, Degraded, degrade, random_degradation
from qsaudit.degrade.metrics import dice, slice_dice

__all__ = ["ERRORS", "Degraded", "degrade", "dice", "random_degradation", "slice_dice"]
