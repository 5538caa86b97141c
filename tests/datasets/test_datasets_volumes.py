"""Reading images and masks: canonical RAS, grid checks, dtypes, corrupt files, read-only trees."""

from __future__ import annotations

import gzip
import os
import pickle
import stat
from pathlib import Path

import numpy as np
import pytest

from qsaudit.datasets import (
    Case,
    LabelProblem,
    LabelRef,
    list_cases,
    read_case,
    read_image,
    read_mask,
)
from qsaudit.errors import DatasetError

AFFINE = np.array([[1.5, 0, 0, -6.0], [0, 1.2, 0, 4.0], [0, 0, 2.5, 10.0], [0, 0, 0, 1]])


def _case(image: Path | None, *labels: LabelRef) -> Case:
    return Case(case_id="c", image=image, labels=labels, layout="single")


def _flip_lps(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same physical volume stored left-posterior (x and y axes reversed)."""
    flipped = affine.copy()
    for axis in (0, 1):
        flipped[:3, 3] += affine[:3, axis] * (data.shape[axis] - 1)
        flipped[:3, axis] = -affine[:3, axis]
    return data[::-1, ::-1, :].copy(), flipped


def _swap_xz(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same physical volume stored with the first and last array axes swapped."""
    swapped = affine.copy()
    swapped[:, [0, 2]] = affine[:, [2, 0]]
    return np.ascontiguousarray(data.transpose(2, 1, 0)), swapped


def test_image_is_float32_hu_with_scaling(tmp_path: Path, write_nifti, ct_data):
    raw = (ct_data // 2 + 600).astype(np.int16)
    path = write_nifti(tmp_path / "ct.nii.gz", raw, slope=2.0, inter=-1200.0)
    volume = read_image(_case(path))
    assert volume.array.dtype == np.float32 and volume.array.shape == ct_data.shape
    np.testing.assert_allclose(volume.array, raw.astype(np.float32) * 2 - 1200)
    assert volume.spacing == pytest.approx((1.5, 1.2, 2.5))
    np.testing.assert_allclose(volume.affine, AFFINE)
    assert volume.path == path


@pytest.mark.parametrize("reorient", [_flip_lps, _swap_xz])
def test_reoriented_files_give_identical_canonical_arrays(tmp_path: Path, write_nifti, ct_data,
                                                          label_map, reorient):
    ras_ct = write_nifti(tmp_path / "ras" / "ct.nii.gz", ct_data)
    ras_mask = write_nifti(tmp_path / "ras" / "m.nii.gz", label_map)
    other_ct_data, other_affine = reorient(ct_data, AFFINE)
    other_ct = write_nifti(tmp_path / "other" / "ct.nii.gz", other_ct_data, other_affine)
    other_mask = write_nifti(tmp_path / "other" / "m.nii.gz",
                             reorient(label_map, AFFINE)[0], other_affine)
    assert not np.array_equal(other_ct_data, ct_data)
    ras, other = read_image(_case(ras_ct)), read_image(_case(other_ct))
    np.testing.assert_array_equal(other.array, ras.array)
    np.testing.assert_allclose(other.affine, ras.affine, atol=1e-6)
    assert other.spacing == pytest.approx(ras.spacing)
    for value in (1, 2, 3):
        got = read_mask(LabelRef("x", other_mask, value), other)
        np.testing.assert_array_equal(got, read_mask(LabelRef("x", ras_mask, value), ras))
        np.testing.assert_array_equal(got, label_map == value)


def test_mask_orientation_differs_from_image_but_same_grid(tmp_path: Path, write_nifti, ct_data,
                                                           label_map):
    image = read_image(_case(write_nifti(tmp_path / "ct.nii", ct_data)))
    flipped, affine = _flip_lps(label_map, AFFINE)
    mask = read_mask(LabelRef("m", write_nifti(tmp_path / "m.nii", flipped, affine), 2), image)
    np.testing.assert_array_equal(mask, label_map == 2)


def test_shape_and_affine_mismatch(tmp_path: Path, write_nifti, ct_data, label_map):
    image = read_image(_case(write_nifti(tmp_path / "ct.nii.gz", ct_data)))
    small = write_nifti(tmp_path / "small.nii.gz", label_map[:, :, :4])
    with pytest.raises(LabelProblem, match="shape") as info:
        read_mask(LabelRef("m", small, None), image)
    assert info.value.status == "shape_mismatch" and str(small) in str(info.value)
    moved = AFFINE.copy()
    moved[0, 3] += 0.01
    shifted = write_nifti(tmp_path / "shifted.nii.gz", label_map, moved)
    with pytest.raises(LabelProblem, match="affine") as info:
        read_mask(LabelRef("m", shifted, None), image)
    assert info.value.status == "affine_mismatch"
    noise = AFFINE.copy()
    noise[0, 3] += 1e-5
    close = write_nifti(tmp_path / "close.nii.gz", (label_map == 1).astype(np.uint8), noise)
    assert read_mask(LabelRef("m", close, None), image).sum() == (label_map == 1).sum()


def test_float_masks_and_float64_label_maps(tmp_path: Path, write_nifti, ct_data, label_map):
    image = read_image(_case(write_nifti(tmp_path / "ct.nii.gz", ct_data)))
    noisy = label_map.astype(np.float64) + 0.2 * (np.arange(label_map.size).reshape(
        label_map.shape) % 2 - 0.5)
    path = write_nifti(tmp_path / "map.nii.gz", noisy)
    for value in (1, 2, 3):
        mask = read_mask(LabelRef("m", path, value), image)
        assert mask.dtype == np.bool_
        np.testing.assert_array_equal(mask, label_map == value)
    soft = write_nifti(tmp_path / "soft.nii.gz", (label_map == 2) * 0.9 + 0.3)
    np.testing.assert_array_equal(read_mask(LabelRef("s", soft, None), image), label_map == 2)
    as_int32 = write_nifti(tmp_path / "i32.nii", label_map.astype(np.int32))
    np.testing.assert_array_equal(read_mask(LabelRef("i", as_int32, 3), image), label_map == 3)


def test_empty_masks_are_returned(tmp_path: Path, write_nifti, ct_data, label_map):
    image = read_image(_case(write_nifti(tmp_path / "ct.nii.gz", ct_data)))
    empty = write_nifti(tmp_path / "empty.nii.gz", np.zeros(ct_data.shape, np.uint8))
    assert not read_mask(LabelRef("e", empty, None), image).any()
    labels = write_nifti(tmp_path / "map.nii.gz", label_map)
    assert not read_mask(LabelRef("absent value", labels, 7), image).any()


def test_label_map_is_decoded_once_per_cache(tmp_path: Path, write_nifti, ct_data, label_map,
                                             monkeypatch: pytest.MonkeyPatch):
    from qsaudit.datasets import volumes

    image = read_image(_case(write_nifti(tmp_path / "ct.nii.gz", ct_data)))
    path = write_nifti(tmp_path / "map.nii.gz", label_map)
    calls = []
    real_load = volumes.load_nifti
    monkeypatch.setattr(volumes, "load_nifti", lambda *a, **k: calls.append(a) or real_load(*a, **k))
    cache: dict = {}
    masks = [read_mask(LabelRef(str(v), path, v), image, label_maps=cache) for v in (1, 2, 3)]
    assert len(calls) == 1
    assert sum(int(m.sum()) for m in masks) == int((label_map > 0).sum())


def _gz_bytes(path: Path) -> bytes:
    return path.read_bytes()


def test_corrupt_and_truncated_files(tmp_path: Path, write_nifti, ct_data, label_map):
    good = write_nifti(tmp_path / "ct.nii.gz", ct_data)
    image = read_image(_case(good))
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(_gz_bytes(good)[: len(_gz_bytes(good)) // 2])
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(b"this is not gzip at all" * 20)
    garbled = tmp_path / "garbled.nii.gz"
    garbled.write_bytes(gzip.compress(b"\x00" * 40))
    cut_end = tmp_path / "cut_end.nii.gz"
    cut_end.write_bytes(_gz_bytes(good)[:-30])
    truncated_nii = tmp_path / "short.nii"
    truncated_nii.write_bytes(write_nifti(tmp_path / "full.nii", ct_data).read_bytes()[:400])
    for bad in (truncated, cut_end, corrupt, garbled, truncated_nii):
        with pytest.raises(DatasetError, match="cannot read NIfTI") as info:
            read_image(_case(bad))
        assert str(bad) in str(info.value) and "\n" not in str(info.value)
        with pytest.raises(LabelProblem) as info:
            read_mask(LabelRef("m", bad, None), image)
        assert info.value.status == "unreadable" and str(bad) in str(info.value)
    for bad in (truncated, cut_end, truncated_nii):
        with pytest.raises(DatasetError, match="truncated file"):
            read_image(_case(bad))
    with pytest.raises(DatasetError, match="not a gzip stream"):
        read_image(_case(corrupt))


def test_missing_ct_and_missing_label(tmp_path: Path, write_nifti, ct_data):
    with pytest.raises(DatasetError, match='case "c": no CT image'):
        read_image(_case(None))
    with pytest.raises(DatasetError, match="not found"):
        read_image(_case(tmp_path / "gone.nii.gz"))
    image = read_image(_case(write_nifti(tmp_path / "ct.nii.gz", ct_data)))
    with pytest.raises(LabelProblem) as info:
        read_mask(LabelRef("m", tmp_path / "gone.nii.gz", 1), image)
    assert info.value.status == "missing"


def test_label_problem_survives_pickling():
    problem = pickle.loads(pickle.dumps(LabelProblem('"m.nii": gone', status="missing")))
    assert isinstance(problem, DatasetError)
    assert problem.status == "missing" and str(problem) == '"m.nii": gone'
    with pytest.raises(ValueError):
        LabelProblem("x", status="odd")


def test_4d_with_one_volume_is_accepted(tmp_path: Path, write_nifti, ct_data):
    volume = read_image(_case(write_nifti(tmp_path / "ct.nii.gz", ct_data[..., None])))
    assert volume.array.shape == ct_data.shape
    two = write_nifti(tmp_path / "two.nii.gz", np.stack([ct_data, ct_data], axis=-1))
    with pytest.raises(DatasetError, match="expected a 3D volume"):
        read_image(_case(two))


def test_read_case_collects_problems_per_label(per_structure_dataset: Path, ext: str,
                                               write_nifti, label_map):
    case_dir = per_structure_dataset / "case_1"
    write_nifti(case_dir / "segmentations" / f"liver{ext}", label_map[:4])
    (case_dir / "segmentations" / f"spleen{ext}").write_bytes(b"junk")
    case = list_cases(per_structure_dataset)[0]
    volume, masks = read_case(case)
    assert volume.array.shape == label_map.shape
    assert masks["liver"].status == "shape_mismatch"
    assert masks["spleen"].status == "unreadable"
    np.testing.assert_array_equal(masks["kidney_left"], label_map == 3)


def test_read_only_dataset_is_listed_and_read_without_writes(nnunet_dataset: Path, snapshot):
    before = snapshot(nnunet_dataset)
    modes = {}
    for path in [nnunet_dataset, *nnunet_dataset.rglob("*")]:
        modes[path] = path.stat().st_mode
        os.chmod(path, modes[path] & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        cases = list_cases(nnunet_dataset)
        for case in cases:
            volume, masks = read_case(case)
            assert all(isinstance(m, np.ndarray) for m in masks.values())
            assert volume.array.shape == (8, 8, 6)
    finally:
        for path, mode in sorted(modes.items(), key=lambda item: len(item[0].parts)):
            os.chmod(path, mode)
    assert snapshot(nnunet_dataset) == before


@pytest.mark.parametrize("kind", ["nifti2", "big-endian", "scaled"])
def test_gzipped_files_read_as_nibabel_reads_them(tmp_path: Path, ct_data, kind):
    """The in-memory ISA-L path gives nibabel's own array and affine for every NIfTI flavour."""
    import nibabel as nib

    from qsaudit.datasets.volumes import load_nifti

    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    if kind == "nifti2":
        image = nib.Nifti2Image(ct_data.astype(np.int16), affine)
    else:
        header = nib.Nifti1Header(endianness=">" if kind == "big-endian" else "<")
        image = nib.Nifti1Image(ct_data.astype(np.int16), affine, header=header)
        if kind == "scaled":
            image.header.set_slope_inter(0.5, -100.0)
    path = tmp_path / f"{kind}.nii.gz"
    nib.save(image, path)
    ours, theirs = load_nifti(path), nib.load(str(path))
    assert type(ours) is type(theirs)
    np.testing.assert_array_equal(ours.get_fdata(), theirs.get_fdata())
    np.testing.assert_array_equal(ours.affine, theirs.affine)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
def test_per_structure_masks_are_values_above_one_half(tmp_path: Path, write_nifti, ct_data,
                                                       dtype):
    image = read_image(_case(write_nifti(tmp_path / "ct.nii.gz", ct_data)))
    rng = np.random.default_rng(3)
    values = rng.integers(-2 if dtype == np.int16 else 0, 3, size=ct_data.shape)
    data = values.astype(np.float32) + (0.4 if dtype == np.float32 else 0.0)
    path = write_nifti(tmp_path / "m.nii.gz", data.astype(dtype))
    mask = read_mask(LabelRef("m", path, None), image)
    assert mask.dtype == np.bool_
    np.testing.assert_array_equal(mask, data.astype(dtype) > 0.5)
