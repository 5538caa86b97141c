"""Dataset-level volume check: a label far from the dataset's own volumes for its structure."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Z_THRESHOLD = 3.5
MIN_CASES = 8  # a robust z over fewer labels is mostly noise
MAD_SCALE = 1.4826  # makes the MAD a consistent estimate of the standard deviation for normal data


def robust_z(values: np.ndarray) -> np.ndarray:
    """Robust z-scores ``(v - median) / (1.4826 * MAD)`` of a 1D array (NaNs ignored, kept NaN).

    When the MAD is zero the mean absolute deviation (scaled by 1.2533) is used; when that is zero
    too every score is 0.
    """
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    z = np.full(values.shape, np.nan)
    if not finite.any():
        return z
    v = values[finite]
    med = np.median(v)
    scale = MAD_SCALE * np.median(np.abs(v - med))
    if scale == 0:
        scale = 1.2533 * np.mean(np.abs(v - med))
    z[finite] = 0.0 if scale == 0 else (v - med) / scale
    return z


def flag_volume(volumes_ml: Sequence[float], body_area_mm2: Sequence[float],
                structures: Sequence[str], *, threshold: float = Z_THRESHOLD,
                min_cases: int = MIN_CASES) -> np.ndarray:
    """Flag volumes far from the dataset's distribution for the same structure.

    Inputs are aligned sequences over labels (one per case and label). Volumes are normalised by
    body size: ``log(volume) - 1.5 * log(body cross-section area)`` (dimensionless, so a large
    patient's large liver is not flagged), then robust-z scored per structure; |z| > ``threshold``
    is flagged. Structures with fewer than ``min_cases`` usable labels (volume > 0, finite area)
    are never flagged. Returns a bool array (N,).
    """
    vol = np.asarray(volumes_ml, dtype=np.float64)
    area = np.asarray(body_area_mm2, dtype=np.float64)
    names = np.asarray(structures, dtype=object)
    if not (vol.shape == area.shape == names.shape):
        raise ValueError("volumes, body areas and structures must have the same length")
    usable = np.isfinite(vol) & (vol > 0) & np.isfinite(area) & (area > 0)
    size = np.full(vol.shape, np.nan)
    size[usable] = np.log(vol[usable]) - 1.5 * np.log(area[usable])
    flags = np.zeros(vol.shape, dtype=bool)
    for name in set(names[usable].tolist()):
        rows = np.flatnonzero(usable & (names == name))
        if rows.size < min_cases:
            continue
        flags[rows] = np.abs(robust_z(size[rows])) > threshold
    return flags
