"""JPEG 2000 series decoded on threads (imagecodecs) give exactly what pydicom's own decoder
gives, signed or unsigned, and fall back to pydicom where that route cannot promise it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_builders import Grid, Study, phantom, write_ct
from pydicom.pixels import pixel_array
from pydicom.uid import JPEG2000, JPEG2000Lossless

from qsaudit.datasets import list_cases, read_image
from qsaudit.datasets.dicom import j2k

pytest.importorskip("imagecodecs")

EXAMPLE = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "ts_example_dicom"


def _series(tmp_path, *, signed, syntax=JPEG2000Lossless, slices=6):
    grid, study = Grid(shape=(64, 48, slices)), Study()
    ct, _ = phantom(grid)
    ct = np.clip(ct, -1024, 3000)
    write_ct(tmp_path / "packed", ct, grid, study, syntax=syntax, signed=signed)
    (case,) = list_cases(tmp_path / "packed")
    return case, ct


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_threaded_decoding_gives_pydicoms_values_and_the_right_hu(tmp_path, signed,
                                                                   monkeypatch):
    case, ct = _series(tmp_path, signed=signed)
    for path in case.geometry.slices:
        ds = pydicom.dcmread(path)
        fast = j2k.decode_slice(ds)
        assert fast is not None, "a plain lossless CT slice should take the threaded route"
        np.testing.assert_array_equal(fast, pixel_array(ds))
    threaded = read_image(case).array
    monkeypatch.setattr(j2k, "available", lambda: False)
    serial = read_image(case).array
    np.testing.assert_array_equal(threaded, serial)
    assert threaded.min() < -500 and threaded.max() > 100  # HU, sign and intercept applied
    assert float(threaded.mean()) == pytest.approx(float(ct.mean()), abs=1e-3)


def test_only_jpeg2000_takes_the_threaded_route(tmp_path):
    case, _ = _series(tmp_path, signed=False, syntax=JPEG2000Lossless, slices=2)
    ds = pydicom.dcmread(case.geometry.slices[0])
    ds.decompress()  # now Explicit VR Little Endian
    assert j2k.decode_slice(ds) is None
    assert j2k.threads_for(str(ds.file_meta.TransferSyntaxUID)) == 1
    assert j2k.threads_for(JPEG2000Lossless) >= 1


def test_a_lossy_signed_series_matches_pydicom_too(tmp_path):
    case, _ = _series(tmp_path, signed=True, syntax=JPEG2000Lossless, slices=2)
    for path in case.geometry.slices:
        ds = pydicom.dcmread(path)
        ds.decompress()
        ds.compress(JPEG2000, j2k_cr=[8])
        fast = j2k.decode_slice(ds)
        assert fast is not None
        np.testing.assert_array_equal(fast, pixel_array(ds))


@pytest.mark.skipif(not (EXAMPLE / "dicom").is_dir(), reason="needs shared/data/ts_example_dicom")
def test_the_real_scanner_series_reads_the_same_threaded_and_serial(monkeypatch):
    (case,) = [c for c in list_cases(EXAMPLE / "dicom")]
    threaded = read_image(case).array
    monkeypatch.setattr(j2k, "available", lambda: False)
    np.testing.assert_array_equal(threaded, read_image(case).array)


def test_label_files_parse_while_a_jpeg2000_ct_decodes_and_read_the_same(tmp_path, monkeypatch):
    from dicom_builders import mask_contours, write_rtstruct, write_seg

    from qsaudit.datasets import read_case
    from qsaudit.datasets.volumes import parse_labels_early

    grid, study = Grid(shape=(64, 48, 6)), Study()
    ct, masks = phantom(grid)
    series = write_ct(tmp_path / "ct", ct, grid, study, syntax=JPEG2000Lossless)
    write_seg(tmp_path / "ct" / "seg.dcm", series, {"Liver": masks["Liver"]})
    write_rtstruct(tmp_path / "ct" / "rs.dcm", series,
                   {"Kidney_L": mask_contours(masks["Kidney_L"], grid)}, study)
    (case,) = list_cases(tmp_path)
    cache: dict = {}
    parse_labels_early(case, cache)()
    assert len(cache) == 2  # the SEG and the structure set, parsed before any mask was asked
    _, early = read_case(case)
    monkeypatch.setattr(j2k, "available", lambda: False)  # no threads: nothing parses early
    cache = {}
    parse_labels_early(case, cache)()
    assert cache == {}
    _, serial = read_case(case)
    assert set(early) == set(serial) == {"Liver", "Kidney_L"}
    for name in early:
        np.testing.assert_array_equal(early[name], serial[name])
    assert early["Liver"].sum() == masks["Liver"].sum()
