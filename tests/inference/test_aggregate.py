"""Aggregation of slice scores into one predicted Dice and its interval."""

import math

import numpy as np
import pytest

from qsaudit.inference import aggregate


def test_methods_by_hand():
    s = np.array([0.2, 0.6, 0.9])
    w = np.array([1.0, 1.0, 2.0])
    assert aggregate(s, method="mean").dsc == pytest.approx(1.7 / 3)
    assert aggregate(s, method="median").dsc == 0.6
    assert aggregate(s, w, method="area_weighted").dsc == pytest.approx((0.2 + 0.6 + 1.8) / 4)
    assert aggregate(s, np.zeros(3), method="area_weighted").dsc == pytest.approx(1.7 / 3)
    assert aggregate(s).std == pytest.approx(s.std())


def test_area_weighted_equals_3d_dice_when_slices_have_equal_sizes():
    rng = np.random.default_rng(0)
    a = rng.random((12, 12, 6)) > 0.5
    b = a.copy()
    for z in range(6):  # move some voxels within each slice: same area, lower overlap
        flat = b[:, :, z].ravel()
        on, off = np.flatnonzero(flat), np.flatnonzero(~flat)
        k = z * 3
        flat[on[:k]], flat[off[:k]] = False, True
        b[:, :, z] = flat.reshape(12, 12)
    inter = (a & b).sum(axis=(0, 1))
    slice_dice = 2 * inter / (a.sum(axis=(0, 1)) + b.sum(axis=(0, 1)))
    dice_3d = 2 * (a & b).sum() / (a.sum() + b.sum())
    result = aggregate(slice_dice, b.sum(axis=(0, 1)), method="area_weighted")
    assert result.dsc == pytest.approx(dice_3d)


def test_interval():
    s = np.array([0.5, 0.7, 0.6, 0.8, 0.4])
    r = aggregate(s, method="mean", population=40)
    assert 0 <= r.low < r.dsc < r.high <= 1
    wider = aggregate(np.array([0.1, 0.9, 0.3, 0.8, 0.5]), method="mean", population=40)
    assert wider.high - wider.low > r.high - r.low
    full = aggregate(s, method="mean", population=5)   # every slice scored
    assert full.low == pytest.approx(full.dsc) and full.high == pytest.approx(full.dsc)
    one = aggregate(np.array([0.7]))
    assert one.dsc == 0.7 and math.isnan(one.low) and math.isnan(one.high)
    assert math.isnan(aggregate(np.array([])).dsc)


def test_bad_arguments():
    with pytest.raises(ValueError, match="aggregation"):
        aggregate(np.ones(3), method="max")
    with pytest.raises(ValueError, match="shape"):
        aggregate(np.ones(3), np.ones(2))
