"""RTSTRUCT contours on the CT grid: even-odd holes and islands, keyholes, empty and outside ROIs."""

from __future__ import annotations

import numpy as np
import pytest
from dicom_builders import Grid, Study, phantom, write_ct, write_rtstruct

from qsaudit.datasets import LabelProblem, list_cases, read_case, read_image, read_mask
from qsaudit.datasets.volumes import to_canonical

GRID = Grid(shape=(24, 20, 4))
SLICE = 1


def _polygon(corners, k=SLICE):
    """Voxel (x, y) corners on slice ``k`` -> (N, 3) LPS mm."""
    xy = np.asarray(corners, dtype=np.float64)
    return GRID.to_patient(xy[:, 0], xy[:, 1], np.full(len(xy), k))


def _square(low, high, k=SLICE):
    return _polygon([(low, low), (high, low), (high, high), (low, high)], k)


def _expected(*boxes):
    """File-order mask: XOR of the pixel boxes [low, high] (inclusive) on SLICE."""
    mask = np.zeros(GRID.shape, dtype=bool)
    for low, high in boxes:
        mask[low:high + 1, low:high + 1, SLICE] ^= True
    return mask


def _read(tmp_path, rois):
    study = Study()
    series = write_ct(tmp_path / "ct", phantom(GRID)[0], GRID, study)
    write_rtstruct(tmp_path / "rs", series, rois, study)
    (case,) = list_cases(tmp_path)
    volume = read_image(case)
    return case, volume, lambda mask: to_canonical(mask, case.geometry.ras_affine)[0]


def test_holes_and_islands_follow_the_even_odd_rule(tmp_path):
    keyhole = _polygon([(1.5, 1.5), (14.5, 1.5), (14.5, 14.5), (1.5, 14.5), (1.5, 8),
                        (4.5, 8), (4.5, 11.5), (11.5, 11.5), (11.5, 4.5), (4.5, 4.5), (4.5, 8),
                        (1.5, 8)])
    rois = {
        "ring_with_island": [_square(1.5, 14.5), _square(4.5, 11.5), _square(6.5, 9.5)],
        "keyhole": [keyhole],
        "two_islands": [_square(1.5, 3.5), _square(10.5, 12.5)],
    }
    case, volume, ras = _read(tmp_path, rois)
    labels = {label.name: label for label in case.labels}
    got = {name: read_mask(label, volume) for name, label in labels.items()}
    np.testing.assert_array_equal(got["ring_with_island"], ras(_expected((2, 14), (5, 11),
                                                                         (7, 9))))
    np.testing.assert_array_equal(got["keyhole"], ras(_expected((2, 14), (5, 11))))
    np.testing.assert_array_equal(got["two_islands"], ras(_expected((2, 3), (11, 12))))


def test_contour_planes_land_on_their_slices_and_partial_outside_is_cut(tmp_path):
    rois = {"low": [_square(0.5, 4.5, k=0)], "edge": [_square(-5.5, 2.5, k=3)]}
    case, volume, ras = _read(tmp_path, rois)
    masks = {label.name: read_mask(label, volume) for label in case.labels}
    low = np.zeros(GRID.shape, dtype=bool)
    low[1:5, 1:5, 0] = True
    edge = np.zeros(GRID.shape, dtype=bool)
    edge[0:3, 0:3, 3] = True
    np.testing.assert_array_equal(masks["low"], ras(low))
    np.testing.assert_array_equal(masks["edge"], ras(edge))


def test_empty_and_outside_rois(tmp_path):
    rois = {
        "Empty": [],
        "Far_Away": [_square(100.5, 110.5)],
        "Above_The_Scan": [_square(2.5, 6.5, k=9)],
        "Liver": [_square(2.5, 6.5)],
    }
    case, _, _ = _read(tmp_path, rois)
    volume, masks = read_case(case)
    assert masks["Empty"].shape == volume.array.shape and not masks["Empty"].any()
    for name in ("Far_Away", "Above_The_Scan"):
        assert isinstance(masks[name], LabelProblem)
        assert masks[name].status == "outside_image"
        assert f'ROI "{name}": all 1 contours lie outside the CT' in str(masks[name])
    assert masks["Liver"].sum() == 16


def test_unreadable_structure_set_fails_its_labels_only(tmp_path):
    case, volume, _ = _read(tmp_path, {"Liver": [_square(2.5, 6.5)]})
    (tmp_path / "rs").write_bytes((tmp_path / "rs").read_bytes()[:400])
    with pytest.raises(LabelProblem, match='rs": cannot read the structure set') as caught:
        read_mask(case.labels[0], volume)
    assert caught.value.status == "unreadable"
