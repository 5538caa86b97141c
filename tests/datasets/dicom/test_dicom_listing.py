"""The dicom layout: detection, one case per CT series, matching objects to series, ids, UIDs."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from dicom_builders import Grid, Study, mask_contours, phantom, write_ct, write_rtstruct, write_seg

from qsaudit.datasets import detect_layout, list_cases, read_case, read_image
from qsaudit.datasets.dicom import index
from qsaudit.datasets.volumes import to_canonical
from qsaudit.errors import DatasetError


def _contours(masks, grid):
    return {name: mask_contours(mask, grid) for name, mask in masks.items()}


@pytest.fixture
def clinic(tmp_path):
    """A PACS-like export: CT slices without extension two levels deep, the RTSTRUCT and the
    SEG in other folders, plus a non-DICOM file and a DICOMDIR-less hidden folder."""
    grid, study = Grid(), Study()
    ct, masks = phantom(grid)
    series = write_ct(tmp_path / "export" / "PAT1" / "CT", ct, grid, study)
    write_rtstruct(tmp_path / "export" / "RT" / "rs.dcm", series, _contours(masks, grid), study)
    write_seg(tmp_path / "export" / "SEG" / "ai_seg", series, masks)
    (tmp_path / "export" / "notes.txt").write_text("not DICOM")
    return tmp_path / "export", ct, masks, grid, series


def test_detected_at_any_depth_and_one_case_per_series(clinic):
    root, *_, series = clinic
    assert detect_layout(root) == "dicom"
    (case,) = list_cases(root)
    assert case.layout == "dicom" and case.case_id == "PAT1_20240102_s1"
    assert case.image == root / "PAT1" / "CT"
    assert case.study_uid == series[0].StudyInstanceUID
    assert case.series_uid == series[0].SeriesInstanceUID
    kinds = [(label.name, label.kind, label.value) for label in case.labels]
    assert kinds == [("Liver", "rtstruct", 1), ("Kidney_L", "rtstruct", 2),
                     ("Liver (2)", "seg", 1), ("Kidney_L (2)", "seg", 2)]
    assert {label.sop_instance_uid for label in case.labels[:2]} != \
        {label.sop_instance_uid for label in case.labels[2:]}


def test_read_case_gives_the_phantom_in_ras(clinic):
    root, ct, masks, grid, _ = clinic
    (case,) = list_cases(root)
    volume, read = read_case(case)
    ras = case.geometry.ras_affine
    np.testing.assert_array_equal(volume.array, to_canonical(ct.astype(np.float32), ras)[0])
    assert volume.spacing == pytest.approx(grid.spacing)
    for name, mask in masks.items():
        truth = to_canonical(mask, ras)[0]
        np.testing.assert_array_equal(read[name], truth)  # RTSTRUCT, rasterised
        np.testing.assert_array_equal(read[f"{name} (2)"], truth)  # SEG


def test_two_series_in_one_folder_are_two_cases(tmp_path):
    grid, study = Grid(), Study()
    ct, masks = phantom(grid)
    first = write_ct(tmp_path / "mixed", ct, grid, study, series_number=2,
                     names=[f"a{k}" for k in range(ct.shape[2])])
    write_ct(tmp_path / "mixed", ct + 100, grid, study, series_number=3,
             names=[f"b{k}" for k in range(ct.shape[2])])
    write_rtstruct(tmp_path / "mixed" / "rs", first, _contours(masks, grid), study)
    cases = {case.case_id: case for case in list_cases(tmp_path)}
    assert set(cases) == {"PAT1_20240102_s2", "PAT1_20240102_s3"}
    assert [label.name for label in cases["PAT1_20240102_s2"].labels] == ["Liver", "Kidney_L"]
    assert cases["PAT1_20240102_s3"].labels == ()
    high = read_image(cases["PAT1_20240102_s3"]).array
    low = read_image(cases["PAT1_20240102_s2"]).array
    np.testing.assert_array_equal(high - low, 100)


def test_one_series_split_over_folders_is_one_case(tmp_path):
    grid, study = Grid(), Study()
    ct, _ = phantom(grid)
    write_ct(tmp_path / "part1", ct, grid, study, skip=range(6, 12), series_uid="1.2.3.4")
    write_ct(tmp_path / "deep" / "part2", ct, grid, study, skip=range(6), series_uid="1.2.3.4")
    (case,) = list_cases(tmp_path)
    assert case.problem is None and case.image == tmp_path
    assert read_image(case).array.shape == (24, 20, 12)


def test_objects_match_by_instances_or_frame_of_reference_not_folder(tmp_path):
    grid, study = Grid(), Study()
    ct, masks = phantom(grid)
    series = write_ct(tmp_path / "a", ct, grid, study)
    other = Study(patient_id="PAT2")
    write_ct(tmp_path / "b", ct, grid, other)
    # a wrong series UID but the right contour images: matched through the instances
    write_rtstruct(tmp_path / "b" / "rs_instances", series, _contours(masks, grid), study,
                   reference_series="9.9.9")
    # neither series nor instances: matched through the frame of reference
    liver = {"Liver": _contours(masks, grid)["Liver"]}
    write_rtstruct(tmp_path / "b" / "rs_frame", series, liver, study, reference_series="9.9.8",
                   reference_instances=False)
    cases = {case.case_id: case for case in list_cases(tmp_path)}
    labels = [(label.name, label.path.name) for label in cases["PAT1_20240102_s1"].labels]
    assert labels == [("Liver", "rs_frame"), ("Liver (2)", "rs_instances"),
                      ("Kidney_L", "rs_instances")]
    assert cases["PAT2_20240102_s1"].labels == ()


def test_case_ids_are_stable_and_tie_broken_by_series_uid(tmp_path):
    grid, study = Grid(), Study()
    ct, _ = phantom(grid)
    write_ct(tmp_path / "x", ct, grid, study, series_uid="1.2.840.1")
    write_ct(tmp_path / "y", ct, grid, study, series_uid="1.2.840.2")  # same number and date
    ids = sorted(case.case_id for case in list_cases(tmp_path))
    assert len(set(ids)) == 2 and all(i.startswith("PAT1_20240102_s1_") for i in ids)
    shutil.move(tmp_path / "x", tmp_path / "z")  # moving files does not rename a case
    assert sorted(case.case_id for case in list_cases(tmp_path)) == ids


def test_listing_reads_headers_only_and_caches_them(clinic, monkeypatch):
    root, *_ = clinic
    parsed = []
    real = index._parse
    monkeypatch.setattr(index, "_parse", lambda path: parsed.append(path) or real(path))
    index._CACHE.clear()
    assert detect_layout(root) == "dicom" and parsed == []  # detection parses no header
    list_cases(root)
    assert len(parsed) == 12 + 2  # every file once: 12 slices, RTSTRUCT, SEG
    list_cases(root)
    assert len(parsed) == 14  # cached
    # a slice whose pixel data is cut off still lists (its header is intact)
    path = root / "PAT1" / "CT" / "IM003"
    path.write_bytes(path.read_bytes()[:-200])
    (case,) = list_cases(root)
    assert len(parsed) == 15 and case.problem is None
    with pytest.raises(DatasetError, match="IM003"):
        read_image(case)


def test_no_dicom_file_is_no_layout(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "file.bin").write_bytes(b"\0" * 200)
    with pytest.raises(DatasetError, match="no known dataset layout"):
        detect_layout(tmp_path)
