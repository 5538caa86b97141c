"""Overlap metrics between a label and its reference: the Dice similarity coefficient (DSC).

DSC is in [0, 1]; 1 = identical masks. Two empty masks agree perfectly (1.0); exactly one empty
mask scores 0.0.
"""

from __future__ import annotations

import numpy as np


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks of the same shape, in [0, 1] (both empty -> 1.0)."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"dice: shapes differ {a.shape} vs {b.shape}")
    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    if total == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(a & b)) / total


def slice_dice(a: np.ndarray, b: np.ndarray, *, axis: int = 2) -> np.ndarray:
    """Per-slice Dice along ``axis``: float64 array of length ``a.shape[axis]``.

    Slices where both masks are empty are NaN; slices where exactly one is empty are 0.
    """
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"slice_dice: shapes differ {a.shape} vs {b.shape}")
    other = tuple(i for i in range(a.ndim) if i != axis % a.ndim)
    inter = np.count_nonzero(a & b, axis=other).astype(np.float64)
    total = (np.count_nonzero(a, axis=other) + np.count_nonzero(b, axis=other)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = 2.0 * inter / total
    out[total == 0] = np.nan
    return out
