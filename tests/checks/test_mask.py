"""Per-label mask checks on planted arrays."""

import numpy as np
import pytest

from qsaudit.checks import count_components, flag_components, flag_hu, mask_stats


def _box(shape=(32, 32, 16), lo=(10, 10, 4), hi=(20, 20, 12)):
    m = np.zeros(shape, dtype=bool)
    m[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = True
    return m


def test_mask_stats_geometry():
    stats = mask_stats(_box())
    assert stats.voxels == 10 * 10 * 8
    assert stats.bbox == ((10, 20), (10, 20), (4, 12))
    assert np.allclose(stats.centroid, (14.5, 14.5, 7.5))
    assert stats.mask_slices == 8
    empty = mask_stats(np.zeros((4, 4, 4), bool))
    assert empty.empty and empty.bbox is None and empty.mask_slices == 0


def test_components_ignore_small_specks():
    m = _box()
    m[25, 25, 14] = True  # one stray voxel: 1/801 of the mask
    assert count_components(m) == (2, 1)
    m[0:8, 0:8, 0:8] = True  # a second large piece
    total, significant = count_components(m)
    assert (total, significant) == (3, 2)
    assert flag_components(significant, expected=1)
    assert not flag_components(significant, expected=2)
    assert not flag_components(significant, expected=None)


def test_components_need_a_minimum_volume_in_ml():
    m = _box()                      # 800 voxels
    m[24:27, 24:27, 13:15] = True   # 18 voxels: 2.2 % of the mask
    assert count_components(m) == (2, 2)                        # voxel size unknown
    assert count_components(m, min_fraction=0.05)[1] == 1
    assert count_components(m, min_fraction=0.01, voxel_ml=0.1)[1] == 2     # 1.8 ml
    assert count_components(m, min_fraction=0.01, voxel_ml=0.01)[1] == 1    # 0.18 ml < 0.5 ml


def test_diagonal_neighbours_are_one_component():
    m = np.zeros((4, 4, 4), bool)
    m[0, 0, 0] = m[1, 1, 1] = True
    assert count_components(m)[0] == 1


def test_flag_hu_median_outside_range_and_air_rule():
    rng = np.random.default_rng(0)
    liver = rng.normal(60, 15, 1000)
    assert not flag_hu(liver, hu_range=(0, 200))
    assert flag_hu(liver - 200, hu_range=(0, 200))
    half_air = np.concatenate([rng.normal(30, 10, 550), np.full(450, -950.0)])
    assert flag_hu(half_air, hu_range=(-300, 150))       # median fine, 45 % air
    assert not flag_hu(half_air[:700], hu_range=(-300, 150))  # ~21 % air
    lung = rng.normal(-850, 30, 1000)
    assert not flag_hu(lung, hu_range=(-1000, -500))     # air rule is for soft tissue only
    assert not flag_hu(liver - 500, hu_range=None)
    assert not flag_hu(liver - 70, hu_range=(0, 200))    # median -10 HU: within the margin
    assert flag_hu(liver - 70, hu_range=(0, 200), margin=0)


@pytest.mark.parametrize("seed", range(6))
def test_component_sizes_equal_scipys_26_connected_labelling(seed):
    from scipy import ndimage

    from qsaudit.checks.mask import component_sizes

    rng = np.random.default_rng(seed)
    shapes = [(9, 11, 7), (9, 1, 7), (1, 13, 1), (12, 1, 1), (1, 1, 1)]  # lines and planes too
    for shape in shapes[1:]:
        line = rng.random(shape) < 0.5
        line.flat[0] = True
        labels, _ = ndimage.label(line, structure=np.ones((3, 3, 3), dtype=bool))
        np.testing.assert_array_equal(np.sort(component_sizes(line)),
                                      np.sort(np.bincount(labels.ravel())[1:]))
    m = rng.random(shapes[0]) < rng.uniform(0.05, 0.4)
    if seed % 2:
        m = np.asfortranarray(m)  # volumes are kept in NIfTI's Fortran order
    labels, _ = ndimage.label(m, structure=np.ones((3, 3, 3), dtype=bool))
    expected = np.sort(np.bincount(labels.ravel())[1:])
    np.testing.assert_array_equal(np.sort(component_sizes(m)), expected)
    assert component_sizes(np.zeros((3, 3, 3), bool)).size == 0
    # a box cut out of a bigger volume (a strided view, as the scan's checks pass it), in
    # either memory order
    volume = np.zeros((20, 22, 16), dtype=bool, order="F" if seed % 2 else "C")
    volume[4:13, 6:17, 3:10] = m
    box = volume[4:13, 6:17, 3:10]
    assert not (box.flags.c_contiguous or box.flags.f_contiguous)
    np.testing.assert_array_equal(np.sort(component_sizes(box)), expected)


@pytest.mark.parametrize("seed", range(4))
def test_mask_stats_equal_a_brute_force_count(seed):
    rng = np.random.default_rng(seed)
    m = np.zeros((30, 25, 20), dtype=bool, order="F" if seed % 2 else "C")
    m[3:22, 5:19, 4:15] = rng.random((19, 14, 11)) < 0.3
    m[:, :, 9] = False  # a gap: the slab has a slice without mask
    stats = mask_stats(m)
    idx = np.argwhere(m)
    assert stats.voxels == len(idx)
    assert stats.bbox == tuple((int(lo), int(hi) + 1) for lo, hi in zip(idx.min(0), idx.max(0)))
    np.testing.assert_allclose(stats.centroid, idx.mean(axis=0), rtol=1e-12)
    assert stats.mask_slices == len(np.unique(idx[:, 2]))


@pytest.mark.parametrize("order", ["C", "F"])
def test_masked_values_are_the_masked_voxels_in_any_layout(order):
    from qsaudit.checks.mask import masked_values

    rng = np.random.default_rng(5)
    values = np.asarray(rng.normal(size=(8, 9, 7)), order=order)
    m = np.asarray(rng.random((8, 9, 7)) < 0.3, order=order)
    window = (slice(1, 7), slice(2, 9), slice(0, 5))  # strided views too
    for arr, mask in ((values, m), (values[window], m[window])):
        got = masked_values(arr, mask)
        np.testing.assert_array_equal(np.sort(got), np.sort(arr[mask]))
