"""The real CT series of shared/data/ts_example_dicom (JPEG 2000 compressed, anonymised UIDs):
a SEG and an RTSTRUCT are made from its NIfTI labels here, and the DICOM scan is compared with
the NIfTI scan (skipped when the data is absent)."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
from dicom_builders import Grid, Study, mask_contours, write_rtstruct, write_seg

from qsaudit.datasets import detect_layout, list_cases, read_case, read_image
from qsaudit.inference import ScanSettings, scan_dataset
from qsaudit.progress import set_quiet

EXAMPLE = Path(__file__).resolve().parents[4] / "shared" / "data" / "ts_example_dicom"

pytestmark = pytest.mark.skipif(not (EXAMPLE / "dicom").is_dir(), reason=f"{EXAMPLE} not present")
set_quiet(True)


def _series():
    """The slices, ascending in z. The anonymiser blanked their UIDs, which highdicom needs:
    the copies in memory get the file meta's SOP UIDs and made-up study/series UIDs, so the
    SEG and RTSTRUCT reference the files only through their SOP instances."""
    datasets = [pydicom.dcmread(path) for path in sorted((EXAMPLE / "dicom").iterdir())]
    for ds in datasets:
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = "2.25.1601", "2.25.1602"
    return sorted(datasets, key=lambda ds: float(ds.ImagePositionPatient[2]))


def _file_order_masks(series):
    """Every NIfTI label resampled (nearest voxel, through both affines) onto the DICOM slices:
    name -> bool (columns, rows, slices), slices ascending in z."""
    folder = EXAMPLE / "nifti" / "example_dicom" / "segmentations"
    first = nib.load(next(folder.glob("*.nii.gz")))
    to_index = np.linalg.inv(first.affine)
    rows, columns = series[0].Rows, series[0].Columns
    r, c = np.meshgrid(np.arange(rows), np.arange(columns), indexing="xy")  # (columns, rows)
    index = []
    for ds in series:
        row_dir = np.array(ds.ImageOrientationPatient[:3], dtype=float)
        col_dir = np.array(ds.ImageOrientationPatient[3:], dtype=float)
        dr, dc = (float(v) for v in ds.PixelSpacing)
        lps = (np.array(ds.ImagePositionPatient, dtype=float) + c[..., None] * dc * row_dir
               + r[..., None] * dr * col_dir)
        ras = lps * np.array([-1.0, -1.0, 1.0])
        index.append(np.rint(ras @ to_index[:3, :3].T + to_index[:3, 3]).astype(int))
    index = np.stack(index, axis=2)  # (columns, rows, slices, 3)
    masks = {}
    for path in sorted(folder.glob("*.nii.gz")):
        data = np.asanyarray(nib.load(path).dataobj) > 0
        masks[path.name.removesuffix(".nii.gz")] = data[index[..., 0], index[..., 1],
                                                        index[..., 2]]
    return masks


def _grid(series):
    ds = series[0]
    dr, dc = (float(v) for v in ds.PixelSpacing)
    step = float(series[1].ImagePositionPatient[2]) - float(ds.ImagePositionPatient[2])
    return Grid(shape=(ds.Columns, ds.Rows, len(series)), spacing=(dc, dr, step),
                origin=tuple(float(v) for v in ds.ImagePositionPatient),
                orientation=tuple(float(v) for v in ds.ImageOrientationPatient))


@pytest.fixture(scope="module")
def clinic(tmp_path_factory):
    """The real CT files, a SEG and an RTSTRUCT of its 31 labels, in three folders."""
    root = tmp_path_factory.mktemp("real") / "export"
    shutil.copytree(EXAMPLE / "dicom", root / "CT")
    series = _series()
    masks = _file_order_masks(series)
    write_seg(root / "SEG" / "totalseg.dcm", series, masks)
    write_rtstruct(root / "RT" / "rtstruct.dcm", series,
                   {name: mask_contours(mask, _grid(series)) for name, mask in masks.items()},
                   Study(patient_id="", study_uid=series[0].StudyInstanceUID,
                         frame_uid=series[0].FrameOfReferenceUID))
    return root


def test_real_series_reads_like_its_nifti():
    assert detect_layout(EXAMPLE / "dicom") == "dicom"
    (case,) = list_cases(EXAMPLE / "dicom")
    assert case.case_id == "20221208_CT-Body-3.0" and case.problem is None
    volume = read_image(case)  # JPEG 2000 lossless, decoded by pylibjpeg-openjpeg
    (nifti,) = list_cases(EXAMPLE / "nifti")
    reference = read_image(nifti)
    np.testing.assert_array_equal(volume.array, reference.array)
    np.testing.assert_allclose(volume.affine, reference.affine, atol=1e-4)


def test_seg_and_rtstruct_labels_match_the_nifti_masks(clinic):
    (case,) = list_cases(clinic)
    assert len(case.labels) == 62
    _, masks = read_case(case)
    (nifti,) = list_cases(EXAMPLE / "nifti")
    _, truth = read_case(nifti)
    for name, expected in truth.items():
        np.testing.assert_array_equal(masks[f"{name} (2)"], expected)  # SEG: exact
        contour = masks[name]  # RTSTRUCT: contours at the mask's edge, filled again
        dice = 2 * (contour & expected).sum() / (contour.sum() + expected.sum())
        assert dice > 0.99, name


@pytest.mark.slow
def test_real_series_scans_like_its_nifti(clinic, tmp_path):
    settings = ScanSettings(workers=0, device="cpu", batch_size=32)
    scan_dataset(clinic, tmp_path / "dicom", settings=settings)
    scan_dataset(EXAMPLE / "nifti", tmp_path / "nifti", settings=settings)
    dicom = pd.read_csv(tmp_path / "dicom" / "results.csv").set_index("label")
    nifti = pd.read_csv(tmp_path / "nifti" / "results.csv").set_index("label")
    assert len(nifti) == 31 and (dicom["status"] == "ok").all()
    seg = dicom.loc[[f"{name} (2)" for name in nifti.index], "predicted_dsc"].to_numpy()
    rtstruct = dicom.loc[nifti.index, "predicted_dsc"].to_numpy()
    reference = nifti["predicted_dsc"].to_numpy()
    assert np.abs(seg - reference).max() < 1e-5
    assert np.abs(rtstruct - reference).mean() <= 0.02
    assert dicom.loc["liver", "structure"] == "liver"
