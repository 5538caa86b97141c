"""Shape features: each planted error moves the descriptor meant to see it."""

import numpy as np
import pytest

from qsaudit.checks.shape import SHAPE_FEATURES, shape_features
from qsaudit.registry import lookup

I = {n: k for k, n in enumerate(SHAPE_FEATURES)}


def _ball(shape=(48, 48, 40), center=(24, 24, 20), radius=(12, 12, 12)):
    grid = np.indices(shape, dtype=np.float64)
    d = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radius, strict=True))
    return d <= 1.0


def _ct(mask, inside=60.0, outside=-80.0, seed=0):
    rng = np.random.default_rng(seed)
    return np.where(mask, inside, outside).astype(np.float32) + rng.normal(0, 5, mask.shape)


@pytest.fixture
def organ():
    mask = _ball()
    return mask, _ct(mask)


def test_a_clean_ball(organ):
    mask, ct = organ
    f = shape_features(mask, ct, structure=lookup("liver"))
    assert f.shape == (len(SHAPE_FEATURES),)
    assert f[I["largest_share"]] == 1.0
    assert f[I["opening_loss"]] < 0.05 and f[I["closing_gain"]] < 0.01
    assert f[I["end_area"]] < 0.1  # a ball tapers at both ends
    assert f[I["hu_outside"]] == 0.0  # 60 HU is a plausible liver
    assert f[I["edge_contrast"]] > 1.0  # its boundary sits on a 140 HU step


def test_planted_errors_move_their_features(organ):
    mask, ct = organ
    clean = shape_features(mask, ct, structure=lookup("liver"))

    blob = mask.copy()
    blob[2:8, 2:8, 2:8] = True
    share = mask.sum() / blob.sum()  # the blob is a second piece of 216 voxels
    assert shape_features(blob, ct)[I["largest_share"]] == pytest.approx(share)

    cut = mask.copy()
    cut[:, :, 20:] = False  # truncated flat at its widest slice
    assert shape_features(cut, ct)[I["end_area"]] > 0.4

    gap = mask.copy()
    gap[:, :, 18] = False  # a slice missing inside
    assert shape_features(gap, ct)[I["area_jump"]] > 0.95
    assert clean[I["area_jump"]] < 0.3

    rng = np.random.default_rng(1)
    noisy = mask ^ ((rng.random(mask.shape) < 0.3) & (_ball(radius=(14, 14, 14)) ^ _ball(
        radius=(10, 10, 10))))
    rough = shape_features(noisy, ct)
    assert rough[I["opening_loss"]] > clean[I["opening_loss"]] + 0.05
    assert rough[I["closing_gain"]] > clean[I["closing_gain"]] + 0.02
    assert rough[I["surface_ratio"]] > clean[I["surface_ratio"]]

    shifted = np.roll(mask, 6, axis=0)
    assert shape_features(shifted, ct)[I["edge_contrast"]] < 0.6 * clean[I["edge_contrast"]]

    air = np.where(mask & (np.indices(mask.shape)[0] < 24), -800.0, ct)
    assert shape_features(mask, air, structure=lookup("liver"))[I["hu_outside"]] > 0.4
    assert shape_features(mask, air)[I["hu_outside"]] == 0.0  # unknown structure: no range
    # no contents widen a liver's range: air in it is as implausible to both readings
    liver_air = shape_features(mask, air, structure=lookup("liver"))
    assert liver_air[I["hu_implausible"]] == pytest.approx(liver_air[I["hu_outside"]])


def test_what_a_correct_mask_may_hold_is_not_implausible():
    """Gas in a bowel's lumen and fatty marrow inside a bone are what real CT shows; a label
    spilling beyond the structure's tissue still counts."""
    mask = _ball()
    inner = _ball(radius=(11, 11, 11))  # gas up to the wall: a colon's wall is under 3 mm
    gas = np.where(inner, -1000.0, _ct(mask, inside=30.0))
    colon = shape_features(mask, gas, structure=lookup("colon"))
    assert colon[I["hu_outside"]] > 0.2  # the mean range read voxel by voxel calls it wrong
    assert colon[I["hu_implausible"]] == 0.0

    marrow = np.where(_ball(radius=(8, 8, 8)), -90.0, _ct(mask, inside=900.0))  # cortex, fat
    femur = shape_features(mask, marrow, structure=lookup("femur_left"))
    assert femur[I["hu_outside"]] > 0.1
    assert femur[I["hu_implausible"]] == 0.0

    spill = _ball(radius=(15, 15, 15))  # the same bone label swollen 3 voxels into fat
    swollen = shape_features(spill, marrow, structure=lookup("femur_left"))
    assert swollen[I["hu_implausible"]] > 0.1  # its outer layer lies in fat
    # the same spill in a structure that may hold no marrow or gas counts alike
    liver = shape_features(spill, _ct(mask, inside=60.0, outside=-250.0),
                           structure=lookup("liver"))
    assert liver[I["hu_outside"]] > 0.2
    assert liver[I["hu_implausible"]] == pytest.approx(liver[I["hu_outside"]])


def test_a_bone_cut_by_the_scan_shows_its_marrow_without_being_implausible():
    """Where the scan's first or last slice cuts a long bone, its marrow lies on the mask's
    outer layer; that face is the scan's edge, not the label's boundary."""
    grid = np.indices((40, 40, 24))
    r2 = (grid[0] - 20) ** 2 + (grid[1] - 20) ** 2
    shaft = r2 <= 64  # a femur's shaft through every slice
    ct = np.where(r2 <= 25, -90.0, np.where(shaft, 1000.0, 40.0)).astype(np.float32)
    for spacing in (None, (1.0, 1.0, 1.0)):
        f = shape_features(shaft, ct, structure=lookup("femur_left"), spacing=spacing)
        assert f[I["hu_implausible"]] == 0.0, spacing
        assert f[I["hu_outside"]] > 0.1, spacing


def test_large_boxes_are_subsampled_consistently():
    mask = _ball(shape=(200, 200, 30), center=(100, 100, 15), radius=(90, 90, 12))
    ct = _ct(mask)
    f = shape_features(mask, ct)
    assert f[I["largest_share"]] == 1.0 and f[I["opening_loss"]] < 0.05
    assert f[I["edge_contrast"]] > 1.0


def test_bad_input():
    with pytest.raises(ValueError, match="empty"):
        shape_features(np.zeros((4, 4, 4), bool), np.zeros((4, 4, 4)))
    with pytest.raises(ValueError, match="shape"):
        shape_features(np.ones((4, 4, 4), bool), np.zeros((4, 4, 5)))


def test_subsampled_boxes_stay_close_to_full_resolution(monkeypatch):
    from qsaudit.checks import shape

    mask = _ball(shape=(120, 120, 30), center=(60, 60, 15), radius=(50, 50, 12))
    mask[5:9, 5:9, 3:6] = True  # a distant blob
    ct = _ct(mask)
    full = shape_features(mask, ct, structure=lookup("liver"))
    monkeypatch.setattr(shape, "MAX_VOXELS", 60_000)  # forces an in-plane step of 3
    coarse = shape_features(mask, ct, structure=lookup("liver"))
    exact = [I[n] for n in ("end_area", "area_jump")]  # counted at full resolution
    np.testing.assert_allclose(coarse[exact], full[exact])
    close = [I[n] for n in ("largest_share", "opening_loss", "hu_outside", "edge_contrast",
                            "hu_implausible")]
    np.testing.assert_allclose(coarse[close], full[close], atol=0.1, rtol=0.1)


def _ellipsoid_mm(spacing, radius_mm=(30.0, 24.0, 36.0), size_mm=120.0):
    """A smooth organ of fixed size in mm on a grid of ``spacing``, with its CT."""
    n = [round(size_mm / s) for s in spacing]
    axes = [(np.arange(k) - (k - 1) / 2) * s for k, s in zip(n, spacing, strict=True)]
    grid = np.meshgrid(*axes, indexing="ij")
    mask = sum((g / r) ** 2 for g, r in zip(grid, radius_mm, strict=True)) <= 1.0
    return mask, _ct(mask)


def test_descriptors_do_not_depend_on_the_voxel_size_given_the_spacing():
    fine_sp, coarse_sp = (0.8, 0.8, 1.0), (3.2, 3.2, 4.0)
    fine, fine_ct = _ellipsoid_mm(fine_sp)
    coarse, coarse_ct = _ellipsoid_mm(coarse_sp)
    f = shape_features(fine, fine_ct, structure=lookup("liver"), spacing=fine_sp)
    c = shape_features(coarse, coarse_ct, structure=lookup("liver"), spacing=coarse_sp)
    for name in ("surface_ratio", "closing_gain", "opening_loss", "end_area", "area_jump"):
        assert abs(f[I[name]] - c[I[name]]) < 0.12 * max(1.0, abs(c[I[name]])), name
    # the cross-section in mm²: the ellipse's mean area over its slices, 2/3 of pi * 30 * 24
    assert f[I["log_area"]] == pytest.approx(np.log1p(2 / 3 * np.pi * 30 * 24), abs=0.05)
    assert c[I["log_area"]] == pytest.approx(f[I["log_area"]], abs=0.1)
    # voxel by voxel, the fine grid's descriptors are far from the coarse one's
    raw = shape_features(fine, fine_ct, structure=lookup("liver"))
    assert abs(raw[I["area_jump"]] - c[I["area_jump"]]) > abs(f[I["area_jump"]]
                                                             - c[I["area_jump"]])


def test_missing_slices_still_show_on_a_fine_grid():
    sp = (0.8, 0.8, 0.8)
    mask, ct = _ellipsoid_mm(sp)
    gap = mask.copy()
    z = np.flatnonzero(mask.any(axis=(0, 1)))
    mid = z[len(z) // 2]
    gap[:, :, mid - 6:mid + 6] = False  # ~10 mm of slices missing
    clean = shape_features(mask, ct, spacing=sp)[I["area_jump"]]
    assert shape_features(gap, ct, spacing=sp)[I["area_jump"]] > clean + 0.5


def test_a_coarse_label_and_its_finer_copy_describe_one_shape():
    # a 4 mm label and its copy resampled 2x finer in-plane (the 0.5 level of its interpolation,
    # as a finer scan of the same anatomy would draw it): reading the coarse blocks' staircase
    # onto the 3 mm grid would make the coarse one look rougher (12-14% more boundary)
    from qsaudit.training.resample import zoom_volume

    for radius in ((30.0, 24.0, 36.0), (18.0, 26.0, 30.0), (22.0, 30.0, 26.0)):
        sp = (4.0, 4.0, 3.0)
        mask, ct = _ellipsoid_mm(sp, radius_mm=radius)
        fine = zoom_volume(mask, (2.0, 2.0, 1.0), mask=True)
        fine_ct = zoom_volume(ct, (2.0, 2.0, 1.0), mask=False)
        c = shape_features(mask, ct, structure=lookup("liver"), spacing=sp)
        f = shape_features(fine, fine_ct, structure=lookup("liver"), spacing=(2.0, 2.0, 3.0))
        assert abs(f[I["surface_ratio"]] - c[I["surface_ratio"]]) < 0.06 * c[I["surface_ratio"]]


def test_the_grid_takes_the_nearest_voxel_on_fine_axes_and_interpolates_on_coarse_ones():
    from qsaudit.checks.shape import _grid_axis

    # 0.8 mm voxels, 3 mm grid: whole voxels (weight 0), one every 3.75 voxels
    used, lower, upper, weight = _grid_axis(20, 40, 80, 0.8, 3.0)
    assert np.all(weight == 0) and np.array_equal(lower, upper)
    assert np.allclose(np.diff(used[lower]), 3.75, atol=1)
    # 4 mm voxels: points between two voxels, weighted by their distance
    used, lower, upper, weight = _grid_axis(10, 20, 40, 4.0, 3.0)
    pos = used[lower] + weight
    assert np.allclose(np.diff(pos), 0.75)  # a point every 3 mm
    assert np.any((weight > 0) & (weight < 1)) and np.all(used[upper] - used[lower] <= 1)


def test_a_corrupt_spacing_is_described_voxel_by_voxel():
    mask = np.zeros((30, 30, 20), bool)
    mask[10:20, 10:20, 5:15] = True
    ct = _ct(mask)
    plain = shape_features(mask, ct)
    for bad in ((1.0, 1.0, float("inf")), (1.0, float("nan"), 1.0), (1.0, 1.0, 1000.0),
                (0.0, 1.0, 1.0)):
        assert np.array_equal(shape_features(mask, ct, spacing=bad), plain, equal_nan=True)
    assert np.isnan(plain[I["log_area"]])  # without a voxel size there is no area in mm²
    assert np.all(np.isfinite(np.delete(plain, I["log_area"])))


def test_a_small_structure_has_a_smaller_area_than_a_large_one():
    sp = (0.8, 0.8, 2.0)
    small, small_ct = _ellipsoid_mm(sp, radius_mm=(6.0, 8.0, 30.0))  # a vein's cross-section
    large, large_ct = _ellipsoid_mm(sp, radius_mm=(40.0, 50.0, 30.0))  # a liver's
    a = shape_features(small, small_ct, spacing=sp)[I["log_area"]]
    b = shape_features(large, large_ct, spacing=sp)[I["log_area"]]
    assert b - a == pytest.approx(np.log((40 * 50) / (6 * 8)), abs=0.15)


def test_a_thin_structure_on_a_fine_grid_is_described():
    # a rib-like rod 2 voxels (1.6 mm) across: read on the 3 mm grid it must not vanish
    sp = (0.8, 0.8, 0.8)
    mask = np.zeros((80, 80, 60), bool)
    mask[39:41, 10:70, 20:40] = True
    ct = _ct(mask)
    f = shape_features(mask, ct, spacing=sp)
    assert np.all(np.isfinite(f))
    assert f[I["log_area"]] == pytest.approx(np.log1p(2 * 60 * 0.64))  # 2 x 60 voxels a slice
    assert f[I["end_area"]] > 0.5  # a rod is flat-ended, and every grid slice has its samples
