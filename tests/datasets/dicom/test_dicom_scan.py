"""Scanning DICOM: status rows for every kind of bad DICOM, and the same numbers as NIfTI."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from dicom_builders import Grid, Study, mask_contours, phantom, write_ct, write_rtstruct, write_seg
from pydicom.encaps import encapsulate
from pydicom.uid import MPEG2MPML

from qsaudit.datasets import list_cases
from qsaudit.datasets.volumes import to_canonical
from qsaudit.inference import ScanSettings, scan_dataset
from qsaudit.inference.prepare import PrepareSpec, prepare_case
from qsaudit.model.config import ModelConfig
from qsaudit.progress import set_quiet

set_quiet(True)


def _clinic_with_problems(root):
    """One good series and one of each problem, each with a structure set naming "Liver"."""
    grid = Grid()
    ct, masks = phantom(grid)
    liver = mask_contours(masks["Liver"], grid)
    far = [points + np.array([0.0, 0.0, 500.0]) for points in liver]

    def add(name, *, grid=grid, rois=None, **options):
        study = Study(patient_id=name)
        series = write_ct(root / name / "ct", ct, grid, study, **options)
        write_rtstruct(root / name / "rs", series, rois or {"Liver": liver}, study)
        return series

    add("good", rois={"Liver": liver, "Empty": [], "Outside": far})
    add("missing", skip=[4])
    add("tilted", grid=Grid(shear=0.6))
    add("uneven", grid=Grid(jitter={3: 0.9}))
    series = add("mpeg")
    series[2].file_meta.TransferSyntaxUID = MPEG2MPML
    series[2].PixelData = encapsulate([b"\x00" * 64])
    series[2]["PixelData"].VR = "OB"
    series[2].save_as(root / "mpeg" / "ct" / "IM002", enforce_file_format=True)
    orphan = add("orphan")
    for path in (root / "orphan" / "ct").iterdir():
        path.unlink()
    return orphan


def test_bad_dicom_gives_status_rows_and_never_raises(tmp_path):
    _clinic_with_problems(tmp_path)
    spec = PrepareSpec(model_config=ModelConfig(input_size=32), slices=4)
    rows = {}
    for case in list_cases(tmp_path):
        for work in prepare_case(case, spec).labels:
            rows[(case.case_id.split("_")[0], work.label)] = work.row
    status = {key: row["status"] for key, row in rows.items()}
    assert status == {
        ("good", "Liver"): "ok", ("good", "Empty"): "empty", ("good", "Outside"): "outside_image",
        ("missing", "Liver"): "unreadable", ("tilted", "Liver"): "unreadable",
        ("uneven", "Liver"): "unreadable", ("mpeg", "Liver"): "unreadable",
        ("orphan", "Liver"): "missing_image",
    }
    error = {key: row["error"] for key, row in rows.items()}
    assert "missing slice" in error["missing", "Liver"]
    assert "gantry tilt" in error["tilted", "Liver"]
    assert "uneven slice spacing" in error["uneven", "Liver"]
    assert "MPEG2" in error["mpeg", "Liver"] and "IM002" in error["mpeg", "Liver"]
    assert "which is not in the dataset" in error["orphan", "Liver"]
    assert "lie outside the CT" in error["good", "Outside"]
    good = rows["good", "Liver"]
    assert good["structure"] == "liver" and good["label_value"] == 1
    assert good["study_uid"] and good["series_uid"] and good["label_sop_uid"]


def _write_nifti_twin(root, ct, masks, grid):
    """The phantom as a per-structure NIfTI case, in RAS like qsaudit reads DICOM."""
    ras_affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ _lps_affine(grid)
    case = root / "PAT1_20240102_s1"
    (case / "segmentations").mkdir(parents=True)
    data, affine = to_canonical(ct, ras_affine)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(data), affine), case / "ct.nii.gz")
    for name, mask in masks.items():
        nib.save(nib.Nifti1Image(to_canonical(mask.astype(np.uint8), ras_affine)[0], affine),
                 case / "segmentations" / f"{name}.nii.gz")


def _lps_affine(grid):
    affine = np.eye(4)
    affine[:3, 0] = np.array(grid.orientation[:3]) * grid.spacing[0]
    affine[:3, 1] = np.array(grid.orientation[3:]) * grid.spacing[1]
    affine[:3, 2] = grid.normal * grid.spacing[2]
    affine[:3, 3] = grid.origin
    return affine


@pytest.mark.slow
def test_phantom_scans_the_same_as_dicom_and_as_nifti(tmp_path):
    grid = Grid(shape=(64, 56, 16), spacing=(1.2, 1.2, 2.5))
    ct, masks = phantom(grid, seed=3)
    study = Study()
    series = write_ct(tmp_path / "dicom" / "ct", ct, grid, study)
    write_rtstruct(tmp_path / "dicom" / "rs", series,
                   {name: mask_contours(mask, grid) for name, mask in masks.items()}, study)
    write_seg(tmp_path / "dicom" / "seg", series, masks)
    _write_nifti_twin(tmp_path / "nifti", ct, masks, grid)
    settings = ScanSettings(workers=0, device="cpu", batch_size=16, slices=6)
    scan_dataset(tmp_path / "dicom", tmp_path / "out_dicom", settings=settings)
    scan_dataset(tmp_path / "nifti", tmp_path / "out_nifti", settings=settings)
    dicom = pd.read_csv(tmp_path / "out_dicom" / "results.csv").set_index("label")
    nifti = pd.read_csv(tmp_path / "out_nifti" / "results.csv").set_index("label")
    assert (dicom["status"] == "ok").all() and (nifti["status"] == "ok").all()
    for name in masks:
        for label in (name, f"{name} (2)"):  # RTSTRUCT, SEG
            assert dicom.loc[label, "voxels"] == nifti.loc[name, "voxels"]
            assert dicom.loc[label, "predicted_dsc"] == pytest.approx(
                nifti.loc[name, "predicted_dsc"], abs=1e-5)
    assert dicom["series_uid"].eq(series[0].SeriesInstanceUID).all()
    assert nifti["series_uid"].isna().all()


def test_paper_protocol_reads_the_series_in_its_own_voxel_order(tmp_path):
    grid, study = Grid(), Study()
    ct, masks = phantom(grid)
    series = write_ct(tmp_path / "ct", ct, grid, study)
    write_seg(tmp_path / "seg", series, masks)
    (case,) = list_cases(tmp_path)
    spec = PrepareSpec(model_config=ModelConfig(input_size=32), slices=4, sampling="paper")
    works = {work.label: work for work in prepare_case(case, spec).labels}
    liver = works["Liver"]
    assert liver.row["status"] == "ok" and liver.n_slices == 4
    # axial series: the file's slice axis is RAS z, so indices are the liver's RAS slices
    assert set(liver.slice_indices) <= set(range(2, 9))
