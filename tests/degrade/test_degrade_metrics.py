"""Dice and per-slice Dice."""

from __future__ import annotations

import numpy as np
import pytest

from qsaudit.degrade import dice, slice_dice


def test_dice_conventions_and_value():
    a = np.zeros((4, 4, 3), bool)
    assert dice(a, a) == 1.0
    b = a.copy()
    b[0, 0, 0] = True
    assert dice(a, b) == 0.0
    a[:2, :, 0] = True  # 8 voxels
    b[:, :, 0] = False
    b[1:3, :, 0] = True  # 8 voxels, 4 shared
    assert dice(a, b) == pytest.approx(0.5)


def test_slice_dice_per_slice_with_nan_for_empty():
    a = np.zeros((3, 3, 3), bool)
    b = np.zeros_like(a)
    a[:, :, 0] = True
    b[:, :, 0] = True
    a[0, 0, 1] = True
    out = slice_dice(a, b)
    assert out.shape == (3,)
    assert out[0] == 1.0 and out[1] == 0.0 and np.isnan(out[2])
    assert slice_dice(a, b, axis=0).shape == (3,)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shapes differ"):
        dice(np.zeros((2, 2, 2), bool), np.zeros((2, 2, 3), bool))
