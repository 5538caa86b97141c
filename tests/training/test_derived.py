"""Structures a real CT defines by itself: lungs from HU and connectivity."""

from __future__ import annotations

import numpy as np

from qsaudit.training.derived import derived_structures


def _chest(shape=(80, 64, 30), spacing=(4.0, 4.0, 3.0), bridge=False):
    """A body (soft tissue) with two air-filled lungs, a vessel inside the right one (x high)."""
    x, y, z = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    ct = np.full(shape, -1000.0, np.float32)
    body = ((x - 40) / 36.0) ** 2 + ((y - 32) / 26.0) ** 2 <= 1
    ct[body] = 40.0
    right = (((x - 58) / 12.0) ** 2 + ((y - 32) / 14.0) ** 2 <= 1) & (z < 24)
    left = (((x - 22) / 12.0) ** 2 + ((y - 32) / 14.0) ** 2 <= 1) & (z < 22)
    ct[right | left] = -850.0
    vessel = ((x - 58) ** 2 + (y - 32) ** 2 <= 4)
    ct[vessel & right] = 50.0
    if bridge:  # an airway joining both lungs: no longer one lung per side
        ct[22:58, 30:34, 10:12] = -900.0
    return ct, right, left, spacing


def test_both_lungs_are_found_with_their_vessels_inside():
    ct, right, left, spacing = _chest()
    found = derived_structures(ct, spacing)
    assert set(found) == {"lung_left", "lung_right"}
    # the right lung is at high x (RAS); its vessel is part of it (holes filled per slice)
    assert found["lung_right"][58, 32, 5] and found["lung_right"].sum() >= right.sum()
    inter = (found["lung_right"] & right).sum()
    assert inter / right.sum() > 0.98
    assert (found["lung_left"] & left).sum() / left.sum() > 0.98
    assert not (found["lung_left"] & found["lung_right"]).any()


def test_ambiguous_or_existing_lungs_are_left_out():
    ct, _, _, spacing = _chest(bridge=True)
    assert derived_structures(ct, spacing) == {}
    ct, _, _, spacing = _chest()
    assert set(derived_structures(ct, spacing, existing={"lung_left"})) == {"lung_right"}
    # no body, no air inside it: nothing
    assert derived_structures(np.full((20, 20, 5), -1000.0, np.float32), spacing) == {}
