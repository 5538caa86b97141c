"""CT series: orientation, compression, and every broken series refused with a clear reason."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from dicom_builders import (
    Grid,
    Study,
    mask_contours,
    phantom,
    sagittal,
    write_ct,
    write_rtstruct,
)
from pydicom.encaps import encapsulate
from pydicom.uid import MPEG2MPML, JPEG2000Lossless, JPEGLSLossless, RLELossless

from qsaudit.datasets import list_cases, read_case, read_image
from qsaudit.datasets.dicom.series import missing_decoder
from qsaudit.errors import DatasetError


def _only_case(root):
    (case,) = list_cases(root)
    return case


def _refused(root, pattern):
    case = _only_case(root)
    assert case.problem is not None
    with pytest.raises(DatasetError, match=pattern):
        read_image(case)
    return str(case.problem)


def test_sagittal_series_reads_like_the_axial_one(tmp_path):
    grid, study = Grid(), Study()
    ct, masks = phantom(grid)
    axial = write_ct(tmp_path / "axial", ct, grid, study, series_number=1)
    write_rtstruct(tmp_path / "axial" / "rs", axial, {"Liver": mask_contours(masks["Liver"], grid)},
                   study)
    sag_ct, sag_grid = sagittal(ct, grid)
    sag_mask, _ = sagittal(masks["Liver"], grid)
    side = write_ct(tmp_path / "sag", sag_ct, sag_grid, study, series_number=2)
    write_rtstruct(tmp_path / "sag" / "rs", side, {"Liver": mask_contours(sag_mask, sag_grid)},
                   study)
    cases = {case.case_id: case for case in list_cases(tmp_path)}
    ax_volume, ax_masks = read_case(cases["PAT1_20240102_s1"])
    sag_volume, sag_masks = read_case(cases["PAT1_20240102_s2"])
    np.testing.assert_array_equal(sag_volume.array, ax_volume.array)
    np.testing.assert_allclose(sag_volume.affine, ax_volume.affine, atol=1e-6)
    np.testing.assert_array_equal(sag_masks["Liver"], ax_masks["Liver"])
    assert ax_masks["Liver"].sum() == masks["Liver"].sum()


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless, JPEGLSLossless])
def test_compressed_series_decode_to_the_same_hu(tmp_path, syntax):
    grid, study = Grid(shape=(64, 48, 3)), Study()  # J2K needs 32+ pixels a side
    ct, _ = phantom(grid)
    write_ct(tmp_path / "raw", ct, grid, study, series_number=1)
    write_ct(tmp_path / "packed", ct, grid, study, series_number=2, syntax=syntax)
    cases = {case.case_id: case for case in list_cases(tmp_path)}
    np.testing.assert_array_equal(read_image(cases["PAT1_20240102_s2"]).array,
                                  read_image(cases["PAT1_20240102_s1"]).array)


def test_undecodable_syntax_says_what_to_do(tmp_path):
    grid, study = Grid(shape=(8, 8, 3)), Study()
    ct, _ = phantom(grid)
    series = write_ct(tmp_path, ct, grid, study)
    ds = series[1]
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.PixelData = encapsulate([b"\x00\x01" * 40])
    ds["PixelData"].VR = "OB"
    ds.save_as(tmp_path / "IM001", enforce_file_format=True)
    with pytest.raises(DatasetError, match=r'IM001": compressed pixel data \(MPEG2.*export the '
                                           "series uncompressed"):
        read_image(_only_case(tmp_path))
    assert "install pylibjpeg pylibjpeg-openjpeg" in missing_decoder(JPEG2000Lossless)
    assert "install pyjpegls" in missing_decoder(JPEGLSLossless)


def test_missing_slice(tmp_path):
    grid, study = Grid(), Study()
    write_ct(tmp_path, phantom(grid)[0], grid, study, skip=[5])
    problem = _refused(tmp_path, "1 missing slice after it")
    assert '"' + str(tmp_path / "IM004") + '"' in problem and "gap of 5.00 mm" in problem


def test_duplicate_slice(tmp_path):
    grid, study = Grid(), Study()
    write_ct(tmp_path, phantom(grid)[0], grid, study)
    shutil.copy(tmp_path / "IM003", tmp_path / "IM003_copy")
    _refused(tmp_path, "duplicate slice: same position")


def test_uneven_spacing(tmp_path):
    grid, study = Grid(jitter={4: 0.6}), Study()
    write_ct(tmp_path, phantom(grid)[0], grid, study)
    problem = _refused(tmp_path, r"uneven slice spacing in the series \(a step of 3.100 mm where "
                                 r"the series steps 2.500 mm; steps from 1.900 to 3.100 mm\)")
    assert problem.startswith(f'"{tmp_path / "IM004"}"')


def test_gantry_tilt_is_refused_with_its_angle(tmp_path):
    grid, study = Grid(shear=0.5), Study()
    write_ct(tmp_path, phantom(grid)[0], grid, study)
    _refused(tmp_path, "gantry tilt of 11.3° .*resample the series")


def test_slices_of_different_size(tmp_path):
    grid, study = Grid(shape=(8, 8, 4)), Study()
    ct, _ = phantom(grid)
    write_ct(tmp_path, ct, grid, study, series_uid="1.2.3")
    small = Grid(shape=(6, 8, 4))
    write_ct(tmp_path / "other", ct[:6], small, study, series_uid="1.2.3", skip=[0, 1, 2],
             names=["", "", "", "IM9"])  # slice 3 again, at the same place but smaller
    _refused(tmp_path, "slice of 8x6 pixels in a series of 8x8")


def test_single_slice_is_not_a_volume(tmp_path):
    grid, study = Grid(shape=(8, 8, 1)), Study()
    write_ct(tmp_path, phantom(grid)[0], grid, study)
    _refused(tmp_path, "single slice")


def test_enhanced_multiframe_ct_is_refused_clearly(tmp_path):
    grid, study = Grid(shape=(8, 8, 2)), Study()
    (ds, _) = write_ct(tmp_path / "tmp", phantom(grid)[0], grid, study, skip=[0, 1])
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"
    ds.NumberOfFrames = 1
    ds.save_as(tmp_path / "enhanced.dcm", enforce_file_format=True)
    _refused(tmp_path, r'enhanced.dcm": enhanced \(multi-frame\) CT is not supported')
