"""Cheap model-free checks of a label mask: flags shown beside the predicted Dice.

Every flag is ``True`` when the label looks suspicious. Per-label checks (``flag_empty``,
``flag_edge``, ``flag_components``, ``flag_hu``, ``flag_side``) need only one case and run in the
scan's worker processes (:func:`check_label` runs them all on one mask); ``flag_volume`` compares a label with the rest of the dataset and runs
once all cases are scanned. numpy/scipy only: no torch, no pandas.
"""

from qsaudit.checks.body import BodyProfile, body_profile
from qsaudit.checks.edge import FULLY_COVERED, flag_edge, z_ends_matter
from qsaudit.checks.label import LabelChecks, check_label
from qsaudit.checks.mask import (
    MaskStats,
    count_components,
    flag_components,
    flag_hu,
    mask_stats,
)
from qsaudit.checks.side import flag_side, side_offset_mm, swapped_pairs, wrong_side_share
from qsaudit.checks.volume import flag_volume, robust_z

__all__ = [
    "FULLY_COVERED",
    "BodyProfile",
    "LabelChecks",
    "MaskStats",
    "body_profile",
    "check_label",
    "count_components",
    "flag_components",
    "flag_edge",
    "flag_hu",
    "flag_side",
    "flag_volume",
    "mask_stats",
    "robust_z",
    "side_offset_mm",
    "swapped_pairs",
    "wrong_side_share",
    "z_ends_matter",
]
