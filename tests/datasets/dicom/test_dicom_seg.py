"""DICOM-SEG segments as labels: binary and fractional, coded property types, grid mismatch."""

from __future__ import annotations

import numpy as np
from dicom_builders import Grid, Study, phantom, write_ct, write_seg

from qsaudit.datasets import LabelProblem, list_cases, read_case
from qsaudit.datasets.volumes import to_canonical
from qsaudit.registry import canonical_name


def test_binary_and_fractional_segments(tmp_path):
    grid, study = Grid(), Study()
    ct, masks = phantom(grid)
    series = write_ct(tmp_path / "ct", ct, grid, study)
    write_seg(tmp_path / "binary", series, masks)
    soft = {"Liver": masks["Liver"] * 0.9, "Kidney_L": masks["Kidney_L"] * 0.3}
    write_seg(tmp_path / "fractional", series, soft, fractional=True)
    (case,) = list_cases(tmp_path)
    _, read = read_case(case)
    ras = case.geometry.ras_affine
    np.testing.assert_array_equal(read["Liver"], to_canonical(masks["Liver"], ras)[0])
    np.testing.assert_array_equal(read["Kidney_L"], to_canonical(masks["Kidney_L"], ras)[0])
    np.testing.assert_array_equal(read["Liver (2)"], read["Liver"])  # 0.9 of the maximum
    assert not read["Kidney_L (2)"].any()  # 0.3 of the maximum: below one half


def test_segment_labels_and_coded_types_resolve_through_the_registry(tmp_path):
    grid, study = Grid(), Study()
    ct, masks = phantom(grid)
    series = write_ct(tmp_path / "ct", ct, grid, study)
    segments = {"Segment_1": masks["Kidney_L"], "Leber": masks["Liver"],
                "my_tumour": masks["Liver"]}
    codes = {"Segment_1": ("64033007", "Kidney", "Left"), "Leber": ("10200004", "Liver", None),
             "my_tumour": ("108369006", "Neoplasm", None)}
    write_seg(tmp_path / "seg", series, segments, codes=codes)
    (case,) = list_cases(tmp_path)
    names = {label.name: label.structure_name for label in case.labels}
    assert names == {"Segment_1": "Left Kidney", "Leber": "Liver", "my_tumour": "Neoplasm"}
    assert canonical_name(names["Segment_1"]) == "left kidney"
    assert canonical_name(names["Leber"]) == "liver"


def test_segment_off_the_ct_grid_is_refused(tmp_path):
    grid, study = Grid(), Study()
    ct, masks = phantom(grid)
    ct_series = write_ct(tmp_path / "ct", ct, grid, study, series_uid="1.2.3")
    shifted = Grid(origin=(grid.origin[0] + 0.4, *grid.origin[1:]))  # a sub-voxel shift
    other = write_ct(tmp_path / "shifted_src", ct, shifted, study, series_uid="1.2.4")
    write_seg(tmp_path / "seg", other, masks)
    for path in (tmp_path / "shifted_src").iterdir():
        path.unlink()
    for dataset in ct_series[:1]:
        assert dataset.FrameOfReferenceUID == other[0].FrameOfReferenceUID
    (case,) = list_cases(tmp_path)  # matched through the shared frame of reference
    _, read = read_case(case)
    problem = read["Liver"]
    assert isinstance(problem, LabelProblem) and problem.status == "affine_mismatch"
    assert "is not on the CT grid" in str(problem)


def test_segment_on_a_cropped_grid_is_placed_by_highdicom(tmp_path):
    grid, study = Grid(), Study()
    ct, masks = phantom(grid)
    write_ct(tmp_path / "ct", ct, grid, study, series_uid="1.2.3")
    # a SEG made on a crop of the CT (columns 2.., rows 3..): frames of another size
    crop = Grid(shape=(20, 15, 12), origin=(grid.origin[0] + 2 * grid.spacing[0],
                                            grid.origin[1] + 3 * grid.spacing[1], grid.origin[2]))
    source = write_ct(tmp_path / "crop", ct[2:22, 3:18], crop, study, series_uid="1.2.4")
    write_seg(tmp_path / "seg", source, {"Liver": masks["Liver"][2:22, 3:18]})
    for path in (tmp_path / "crop").iterdir():
        path.unlink()
    (case,) = list_cases(tmp_path)
    _, read = read_case(case)
    np.testing.assert_array_equal(read["Liver"],
                                  to_canonical(masks["Liver"], case.geometry.ras_affine)[0])
