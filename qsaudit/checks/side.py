"""Left/right checks: a lateral structure on the wrong side of the body, or a swapped pair.

In canonical RAS orientation world x grows towards the patient's right, so a left structure has a
smaller x than the body midline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

SIDE_MARGIN_MM = 5.0  # voxels/centroids closer to the midline than this are not judged
# A lateral organ with more than this share of its voxels across the midline is flagged: a mask
# mirrored over only part of its slices keeps its centroid on the right side but not its voxels.
# On a 30-case demo: 0 % of perfect lateral labels, 90 % of lr_swap labels; 0 % on OpenKBP.
WRONG_SIDE_SHARE = 0.15


def side_offset_mm(centroid_x: float, midline_x: float, spacing_x: float) -> float:
    """Signed distance (mm) of a centroid from the body midline; positive = patient's right."""
    return (float(centroid_x) - float(midline_x)) * float(spacing_x)


def wrong_side_share(voxels_per_x: np.ndarray, midline_x: float, spacing_x: float,
                     side: str | None, *, margin_mm: float = SIDE_MARGIN_MM) -> float:
    """Share (0-1) of a lateral mask's voxels more than ``margin_mm`` on the wrong side.

    ``voxels_per_x``: mask voxel counts per x column (mask summed over y and z), shape (X,);
    ``midline_x``: body midline in voxels. 0 for a non-lateral ``side``, an empty mask or a NaN
    midline.
    """
    counts = np.asarray(voxels_per_x, dtype=np.float64)
    total = counts.sum()
    if side not in ("left", "right") or total == 0 or math.isnan(midline_x):
        return 0.0
    offset = (np.arange(counts.size) - float(midline_x)) * float(spacing_x)
    wrong = offset > margin_mm if side == "left" else offset < -margin_mm
    return float(counts[wrong].sum() / total)


def flag_side(offset_mm: float, side: str | None, *, margin_mm: float = SIDE_MARGIN_MM,
              wrong_share: float = 0.0, max_wrong_share: float = WRONG_SIDE_SHARE) -> bool:
    """True when a left (right) structure lies on the patient's right (left).

    Flagged when the centroid is more than ``margin_mm`` across the midline (``offset_mm``, from
    :func:`side_offset_mm`) or when more than ``max_wrong_share`` of the voxels are
    (``wrong_share``, from :func:`wrong_side_share`). ``side``: "left", "right" or None (not
    lateral: never flagged); NaN offsets are never flagged.
    """
    if side not in ("left", "right") or math.isnan(offset_mm):
        return False
    if wrong_share > max_wrong_share:
        return True
    if side == "left":
        return offset_mm > margin_mm
    return offset_mm < -margin_mm


def swapped_pairs(centroids_x: Mapping[str, float], sides: Mapping[str, str | None],
                  pairs: Mapping[str, str | None]) -> set[str]:
    """Keys of lateral structures whose pair partner lies on their side of them (sides swapped).

    ``centroids_x``: structure key → centroid x (voxels or mm, any consistent unit) for the labels
    of one case; ``sides``/``pairs``: key → registry side and contralateral key. Both members of a
    pair where the left one is right of the right one are returned.
    """
    flagged: set[str] = set()
    for key, x in centroids_x.items():
        partner = pairs.get(key)
        if sides.get(key) != "left" or partner not in centroids_x:
            continue
        px = centroids_x[partner]
        if not (math.isnan(x) or math.isnan(px)) and x > px:
            flagged.update((key, partner))
    return flagged
