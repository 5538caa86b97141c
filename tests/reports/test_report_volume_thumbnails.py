"""Thumbnails rebuilt from NIfTI files: canonical orientation, label maps, unreadable files."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from qsaudit.reports import render_report_from_folder
from qsaudit.reports.volume_thumbnails import thumbnails_from_volumes


def _write(path, data, affine):
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return str(path)


def test_thumbnails_from_files_in_ras_orientation(tmp_path):
    rng = np.random.default_rng(1)
    ras = rng.normal(0, 50, (24, 20, 12)).astype(np.float32)  # the volume as seen in RAS
    lab = np.zeros((24, 20, 12), dtype=np.uint8)
    lab[5:9, 6:10, :] = 3  # a liver in the label map
    lab[15:18, 4:7, 2:5] = 7
    # Store both flipped in x and y (LPS-like), with an affine that says so.
    lps = np.diag([-0.8, -0.9, 2.0, 1.0])
    ct_path = _write(tmp_path / "ct.nii.gz", ras[::-1, ::-1].copy(), lps)
    map_path = _write(tmp_path / "labels.nii.gz", lab[::-1, ::-1].copy(), lps)
    results = pd.DataFrame({
        "case_id": ["c1", "c1", "c2"], "label": ["liver", "kidney", "spleen"],
        "worst_slice": [4, 3, 1], "label_value": [3, 7, None],
        "image_path": [ct_path, ct_path, str(tmp_path / "missing.nii.gz")],
        "label_path": [map_path, map_path, str(tmp_path / "missing_label.nii.gz")],
    })
    slices = pd.DataFrame({"case_id": ["c1"] * 3, "label": ["liver"] * 3,
                           "slice_index": [2, 6, 9], "slice_dsc": [0.8, 0.3, 0.5]})
    keys = [("c1", "liver"), ("c1", "kidney"), ("c2", "spleen")]
    thumbs = thumbnails_from_volumes(results, slices, keys, k=2)
    assert set(thumbs) == {("c1", "liver"), ("c1", "kidney")}  # c2's files are missing
    liver = thumbs[("c1", "liver")]
    assert liver.slice_indices == [6, 9]  # worst first, from the slice table
    np.testing.assert_allclose(liver.ct_slices[0], ras[:, :, 6])
    np.testing.assert_array_equal(liver.mask_slices[0], lab[:, :, 6] == 3)
    assert liver.spacing == pytest.approx((0.8, 0.9))
    kidney = thumbs[("c1", "kidney")]
    assert kidney.slice_indices == [3]  # no slice rows: the results' worst_slice
    assert kidney.mask_slices[0].sum() == 9
    # the planes through the label, in RAS: coronal (x, z) and sagittal (y, z)
    assert 6 <= liver.coronal.position < 10 and 5 <= liver.sagittal.position < 9
    np.testing.assert_array_equal(liver.coronal.mask, lab[:, liver.coronal.position, :] == 3)
    np.testing.assert_allclose(liver.sagittal.ct, np.rint(ras[liver.sagittal.position, :, :]))
    assert liver.coronal.spacing == pytest.approx((0.8, 2.0)) and liver.reference_slices is None
    # a reference mask (here: the kidney's region as the liver's reference) is cut alike
    ref_path = _write(tmp_path / "ref.nii.gz", (lab[::-1, ::-1] == 7).astype(np.uint8), lps)
    with_ref = thumbnails_from_volumes(results, slices, keys, k=2,
                                       references={("c1", "liver"): (ref_path, None)})
    liver = with_ref[("c1", "liver")]
    np.testing.assert_array_equal(liver.reference_slices[0], lab[:, :, 6] == 7)
    assert liver.coronal.reference is not None
    wrong_grid = _write(tmp_path / "small.nii.gz", np.ones((4, 4, 4), np.uint8), lps)
    assert thumbnails_from_volumes(results, slices, keys, k=2, references={
        ("c1", "liver"): (wrong_grid, None)})[("c1", "liver")].reference_slices is None


def test_render_from_folder_reads_volumes(tmp_path, scan_tables):
    results, slices = scan_tables
    data = np.zeros((30, 30, 14), dtype=np.float32)
    mask = np.zeros((30, 30, 14), dtype=np.uint8)
    mask[10:20, 10:20, :] = 1
    results = results.assign(image_path=_write(tmp_path / "ct.nii.gz", data, np.eye(4)),
                             label_path=_write(tmp_path / "m.nii.gz", mask, np.eye(4)))
    results.to_parquet(tmp_path / "results.parquet")
    slices.to_parquet(tmp_path / "slices.parquet")
    (tmp_path / "scan.json").write_text(json.dumps({"dataset": "d"}))
    page = render_report_from_folder(tmp_path, read_volumes=True, worst_n=5).read_text()
    # five cards, each with its axial, coronal and sagittal view
    assert page.count('<img class="thumb view-img" src="data:image/png;base64,') == 15
    page = render_report_from_folder(tmp_path, worst_n=5).read_text()
    assert '<img class="thumb' not in page
