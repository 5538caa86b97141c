"""Fixtures for scan tests: tiny seeded CT datasets (TotalSegmentator layout) and a tiny model.

Volumes are 32 x 32 x 16 voxels of 2 x 2 x 4 mm in RAS orientation: an elliptic body (40 HU) in
air, a right-sided liver (60 HU), a left spleen (50 HU), two kidneys (150 HU), an aorta (200 HU)
and an esophagus (20 HU), every organ inside the field of view. A ``plant`` puts one known defect
into a case's labels so that a check must find it.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

SHAPE = (32, 32, 16)
SPACING = (2.0, 2.0, 4.0)
LABELS = ("aorta", "esophagus", "kidney_left", "kidney_right", "liver", "spleen")
HU = {"aorta": 200, "esophagus": 20, "kidney_left": 150, "kidney_right": 150, "liver": 60,
      "spleen": 50}
PLANTS = ("components", "side", "hu", "volume", "edge", "empty")


def _ellipsoid(center, radii) -> np.ndarray:
    x, y, z = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    return (((x - center[0]) / radii[0]) ** 2 + ((y - center[1]) / radii[1]) ** 2
            + ((z - center[2]) / radii[2]) ** 2) <= 1.0


def make_case(rng: np.random.Generator, plant: str | None = None
              ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One synthetic case: CT (int16 HU) and masks by label name, with an optional defect.

    RAS: x grows towards the patient's right, so right organs sit at high x.
    """
    j = lambda s: rng.uniform(-s, s)
    ct = np.full(SHAPE, -1000.0)
    body = _ellipsoid((15.5 + j(0.5), 15.5, 7.5), (13 + j(0.5), 11 + j(0.5), 40))
    ct[body] = 40.0
    masks = {
        "liver": _ellipsoid((21 + j(0.5), 16 + j(0.5), 8), (5 + j(0.4), 5 + j(0.4), 4)),
        "spleen": _ellipsoid((9 + j(0.5), 19 + j(0.5), 8), (3 + j(0.3), 3 + j(0.3), 3)),
        "kidney_left": _ellipsoid((10 + j(0.5), 10, 6), (2.5, 2.5, 2.5)),
        "kidney_right": _ellipsoid((22 + j(0.5), 10, 6), (2.5, 2.5, 2.5)),
        "aorta": _ellipsoid((15.5, 11, 7.5), (1.6, 1.6, 5)),
        "esophagus": _ellipsoid((15.5, 14, 8), (1.6, 1.6, 3.2)),
    }
    for name in ("aorta", "esophagus", "liver", "spleen", "kidney_left", "kidney_right"):
        ct[masks[name]] = HU[name]
    if plant == "components":      # a second, large piece of liver far from the first
        extra = _ellipsoid((9, 24, 3), (2.5, 2.5, 1.5))
        masks["liver"] = masks["liver"] | extra
        ct[extra] = 60.0
    elif plant == "side":          # left and right kidney files swapped
        masks["kidney_left"], masks["kidney_right"] = masks["kidney_right"], masks["kidney_left"]
    elif plant == "hu":            # esophagus mostly air
        ct[masks["esophagus"]] = -900.0
    elif plant == "volume":        # spleen label far too large
        masks["spleen"] = _ellipsoid((9, 19, 8), (5, 6, 5))
    elif plant == "edge":          # liver (a compact organ) cut by the end of the scan
        masks["liver"] = _ellipsoid((21, 16, 13), (5, 5, 4))
    elif plant == "empty":
        masks["spleen"] = np.zeros(SHAPE, dtype=bool)
    ct = ct + rng.normal(0.0, 5.0, SHAPE)
    return np.rint(ct).astype(np.int16), masks


def write_dataset(root: Path, *, cases: int = 6, seed: int = 0,
                  plants: dict[str, str] | None = None) -> Path:
    """Write ``cases`` cases ``c000…`` in TotalSegmentator layout under ``root``; returns root.

    ``plants``: case id → defect (see :data:`PLANTS`).
    """
    rng = np.random.default_rng(seed)
    affine = np.diag([*SPACING, 1.0])
    for i in range(cases):
        case_id = f"c{i:03d}"
        ct, masks = make_case(rng, (plants or {}).get(case_id))
        folder = root / case_id / "segmentations"
        folder.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(ct, affine), root / case_id / "ct.nii.gz")
        for name, mask in masks.items():
            nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), folder / f"{name}.nii.gz")
    return root


def write_tiny_model(path: Path, *, seed: int = 0, input_size: int = 32) -> Path:
    """A randomly initialised ResNet-10 (width 8, 32 px) model file knowing :data:`LABELS`."""
    import torch

    from qsaudit.model.checkpoint import save_checkpoint
    from qsaudit.model.config import ModelConfig
    from qsaudit.model.network import QualityNet

    torch.manual_seed(seed)
    config = ModelConfig(backbone="resnet10", width=8, input_size=input_size, embed_dim=16,
                         hidden=16)
    model = QualityNet(config)
    rng = np.random.default_rng(seed)
    vocabulary = {name: rng.normal(size=16).astype(np.float32) for name in LABELS}
    return save_checkpoint(path, model, config, encoder_spec="minilm", vocabulary=vocabulary,
                           meta={"test": True})


def write_calibrated_model(path: Path, weights: dict[str, float], *,
                           names: tuple[str, ...] | None = None, intercept: float = 0.0,
                           info: dict | None = None) -> Path:
    """A tiny model (:func:`write_tiny_model`, written beside ``path``) whose label calibration
    predicts ``intercept`` + the sum of ``weights[feature] x feature`` (clipped to [0, 1]), so
    that a test knows what the scan must report; ``names``: the features the calibration reads
    (default all); ``info``: its info (e.g. an error classifier)."""
    import json

    import torch

    from qsaudit.inference.aggregate import FEATURES, LabelCalibration

    used = FEATURES if names is None else tuple(names)
    coef = np.zeros(len(used))
    for feature, weight in weights.items():
        coef[used.index(feature)] = weight
    f = len(used)
    cal = LabelCalibration(center=np.zeros(f), scale=np.ones(f), coef=coef, intercept=intercept,
                           knots_x=np.array([0.0, 1.0]), knots_y=np.array([0.0, 1.0]),
                           names=used, info=dict(info or {}))
    plain = write_tiny_model(path.with_name(f"{path.stem}-plain.pt"))
    payload = torch.load(plain, weights_only=True)
    payload["meta_json"] = json.dumps({"calibration": cal.to_json()})
    torch.save(payload, path)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """Path of a tiny random-weight model file."""
    return write_tiny_model(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """Six clean cases in TotalSegmentator layout (shared: do not modify)."""
    return write_dataset(tmp_path_factory.mktemp("data") / "dataset", cases=6)


@pytest.fixture(scope="session")
def other_model(tmp_path_factory) -> Path:
    """Another tiny model file (other random weights)."""
    return write_tiny_model(tmp_path_factory.mktemp("model2") / "other.pt", seed=1)


@pytest.fixture(scope="session")
def tiny_predictor(tiny_model):
    """The tiny model loaded on CPU."""
    from qsaudit.model.checkpoint import load_checkpoint

    return load_checkpoint(tiny_model, device="cpu")


@pytest.fixture
def make_dataset(tmp_path):
    """Factory: ``make_dataset(cases=6, seed=0, plants={case_id: defect})`` → dataset folder."""
    def make(name: str = "dataset", **kwargs) -> Path:
        return write_dataset(tmp_path / name, **kwargs)

    return make


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models run fastest on one thread (and a loaded 2-core machine stalls with two)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
