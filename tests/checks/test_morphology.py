"""The shifted-view morphology gives exactly what scipy.ndimage gives, borders included."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from qsaudit.checks.morphology import CROSS_3D, CROSS_IN_PLANE, dilate, erode, opening

CROSS = ndimage.generate_binary_structure(3, 1)
FLAT = np.zeros((3, 3, 3), dtype=bool)
FLAT[:, :, 1] = ndimage.generate_binary_structure(2, 1)


@pytest.mark.parametrize("seed", range(12))
def test_equal_to_scipy_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(1, 10, size=3))
    mask = rng.random(shape) < rng.uniform(0.2, 0.95)
    np.testing.assert_array_equal(erode(mask), ndimage.binary_erosion(mask, CROSS))
    np.testing.assert_array_equal(erode(mask, border_value=True),
                                  ndimage.binary_erosion(mask, CROSS, border_value=1))
    np.testing.assert_array_equal(dilate(mask), ndimage.binary_dilation(mask, CROSS))
    np.testing.assert_array_equal(erode(mask, CROSS_IN_PLANE),
                                  ndimage.binary_erosion(mask, FLAT))
    np.testing.assert_array_equal(opening(mask, CROSS_IN_PLANE),
                                  ndimage.binary_opening(mask, FLAT))
    np.testing.assert_array_equal(opening(mask, CROSS_3D), ndimage.binary_opening(mask, CROSS))


def test_a_cube_loses_its_skin_and_gains_a_face_layer():
    cube = np.zeros((7, 7, 7), dtype=bool)
    cube[2:5, 2:5, 2:5] = True
    assert np.count_nonzero(erode(cube)) == 1          # only the centre has all 6 neighbours
    assert np.count_nonzero(dilate(cube)) == 27 + 6 * 9  # one layer on each face, no edges
    full = np.ones((3, 3, 3), dtype=bool)
    assert np.count_nonzero(erode(full)) == 1            # outside is empty by default
    assert erode(full, border_value=True).all()


def test_rejects_non_3d_input():
    with pytest.raises(ValueError, match="3D"):
        erode(np.ones((3, 3), dtype=bool))


def test_fortran_ordered_masks_give_the_same_result():
    rng = np.random.default_rng(9)
    mask = rng.random((9, 8, 7)) < 0.6
    fortran = np.asfortranarray(mask)
    np.testing.assert_array_equal(erode(fortran), erode(mask))
    np.testing.assert_array_equal(erode(fortran, CROSS_IN_PLANE, border_value=True),
                                  ndimage.binary_erosion(mask, FLAT, border_value=1))
    np.testing.assert_array_equal(opening(fortran, CROSS_IN_PLANE), opening(mask, CROSS_IN_PLANE))
    np.testing.assert_array_equal(dilate(fortran), dilate(mask))
