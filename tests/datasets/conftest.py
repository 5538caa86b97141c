"""Tiny seeded NIfTI datasets written to tmp_path, one builder per layout."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

SHAPE = (8, 8, 6)
AFFINE = np.array([[1.5, 0, 0, -6.0], [0, 1.2, 0, 4.0], [0, 0, 2.5, 10.0], [0, 0, 0, 1]])
ORGANS = {1: "spleen", 2: "liver", 3: "kidney_left"}


def _write(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE,
           slope: float | None = None, inter: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(data, affine)
    if slope is not None:
        image.header.set_slope_inter(slope, inter or 0.0)
    nib.save(image, str(path))
    return path


def _ct(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1000, 1000, SHAPE).astype(np.int16)


def _label_map() -> np.ndarray:
    """Values 1..3 in three boxes; value 3 touches slice z=5 only."""
    data = np.zeros(SHAPE, dtype=np.uint8)
    data[1:4, 1:4, 1:3] = 1
    data[4:7, 2:6, 2:5] = 2
    data[0:2, 6:8, 5] = 3
    return data


@pytest.fixture
def write_nifti() -> Callable[..., Path]:
    """``write_nifti(path, data, affine=AFFINE, slope=None, inter=None)`` -> path."""
    return _write


@pytest.fixture
def ct_data() -> np.ndarray:
    return _ct()


@pytest.fixture
def label_map() -> np.ndarray:
    return _label_map()


def _per_structure_case(folder: Path, ext: str, seed: int) -> None:
    _write(folder / f"ct{ext}", _ct(seed))
    for value, name in ORGANS.items():
        _write(folder / "segmentations" / f"{name}{ext}", (_label_map() == value).astype(np.uint8))


@pytest.fixture(params=[".nii.gz", ".nii"])
def ext(request) -> str:
    return request.param


@pytest.fixture
def per_structure_dataset(tmp_path: Path, ext: str) -> Path:
    """Three case folders (case_2, case_10, case_1) with ct + segmentations/<organ>."""
    root = tmp_path / "atlas"
    for seed, case in enumerate(("case_2", "case_10", "case_1")):
        _per_structure_case(root / case, ext, seed)
    (root / "notes").mkdir()  # a folder that is not a case
    (root / ".hidden").mkdir()
    return root


@pytest.fixture
def single_case(tmp_path: Path, ext: str) -> Path:
    folder = tmp_path / "BDMAP_00000001"
    _per_structure_case(folder, ext, 3)
    return folder


@pytest.fixture
def nnunet_dataset(tmp_path: Path, ext: str) -> Path:
    root = tmp_path / "Dataset001_Abdomen"
    labels = {"background": 0, **{name: value for value, name in ORGANS.items()},
              "whole": [1, 2, 3]}
    (root).mkdir()
    (root / "dataset.json").write_text(json.dumps(
        {"channel_names": {"0": "CT"}, "labels": labels, "numTraining": 2, "file_ending": ext}))
    for seed, case in enumerate(("abd_001", "abd_002")):
        _write(root / "imagesTr" / f"{case}_0000{ext}", _ct(seed))
        _write(root / "labelsTr" / f"{case}{ext}", _label_map())
    _write(root / "imagesTs" / f"abd_101_0000{ext}", _ct(5))
    _write(root / "labelsTs" / f"abd_101{ext}", _label_map())
    return root


@pytest.fixture
def msd_dataset(tmp_path: Path, ext: str) -> Path:
    root = tmp_path / "Task03_Liver"
    root.mkdir()
    training = []
    for seed, case in enumerate(("liver_0", "liver_1")):
        _write(root / "imagesTr" / f"{case}{ext}", _ct(seed))
        _write(root / "labelsTr" / f"{case}{ext}", _label_map())
        training.append({"image": f"./imagesTr/{case}{ext}", "label": f"./labelsTr/{case}{ext}"})
    (root / "dataset.json").write_text(json.dumps(
        {"name": "Liver", "labels": {"0": "background", **{str(k): v for k, v in ORGANS.items()}},
         "training": training, "test": [f"./imagesTs/liver_9{ext}"]}))
    return root


@pytest.fixture
def paired_dataset(tmp_path: Path, ext: str) -> Path:
    root = tmp_path / "btcv"
    for seed, number in enumerate(("0001", "0002", "0003")):
        _write(root / "img" / f"img{number}{ext}", _ct(seed))
        _write(root / "label" / f"label{number}{ext}", _label_map())
    return root


@pytest.fixture
def labels_csv(tmp_path: Path) -> Path:
    path = tmp_path / "names.csv"
    path.write_text("value,name\n" + "".join(f"{k},{v}\n" for k, v in ORGANS.items()))
    return path


def tree_snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime_ns) of every file and folder under ``root``."""
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else 0,
                                       p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def snapshot() -> Callable[[Path], dict[str, tuple[int, int]]]:
    return tree_snapshot
