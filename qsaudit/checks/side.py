"""Left/right checks: a lateral structure on the wrong side of the body, or a swapped pair.

In canonical RAS orientation world x grows towards the patient's right, so a left structure has a
smaller x than the body midline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

SIDE_MARGIN_MM = 5.0  # centroids closer to the midline than this are not judged


def side_offset_mm(centroid_x: float, midline_x: float, spacing_x: float) -> float:
    """Signed distance (mm) of a centroid from the body midline; positive = patient's right."""
    return (float(centroid_x) - float(midline_x)) * float(spacing_x)


def flag_side(offset_mm: float, side: str | None, *, margin_mm: float = SIDE_MARGIN_MM) -> bool:
    """True when a left (right) structure lies more than ``margin_mm`` right (left) of the midline.

    ``side``: "left", "right" or None (not lateral: never flagged); NaN offsets are never flagged.
    """
    if side not in ("left", "right") or math.isnan(offset_mm):
        return False
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
