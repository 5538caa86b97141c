"""Tiny seeded trusted cases for the training tests: a body cylinder with three organs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ORGANS = {  # name: (centre fraction x, y, z), radii in voxels, HU
    "liver": ((0.35, 0.5, 0.5), (7, 6, 6), 60.0),
    "spleen": ((0.68, 0.55, 0.5), (4, 4, 5), 45.0),
    "left kidney": ((0.62, 0.35, 0.45), (3, 3, 4), 30.0),
}


def make_volume(seed: int, shape=(40, 40, 24)) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """CT (HU) and organ masks of a small seeded phantom; organs jitter with the seed."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    ct = np.full(shape, -1000.0, dtype=np.float32)
    body = ((x - shape[0] / 2) / (0.45 * shape[0])) ** 2 + \
        ((y - shape[1] / 2) / (0.4 * shape[1])) ** 2 <= 1
    ct[body] = -80.0
    masks = {}
    for name, (centre, radii, hu) in ORGANS.items():
        c = [f * n + rng.uniform(-1.5, 1.5) for f, n in zip(centre, shape, strict=True)]
        r = [ri * rng.uniform(0.85, 1.15) for ri in radii]
        m = sum(((g - ci) / ri) ** 2 for g, ci, ri in zip((x, y, z), c, r, strict=True)) <= 1
        masks[name] = m & body
        ct[masks[name]] = hu
    ct += rng.normal(0, 8, size=shape).astype(np.float32)
    return ct, masks


def write_dataset(root: Path, seeds: list[int]) -> Path:
    """Write cases in the per-structure layout: ``<case>/ct.nii.gz``, ``segmentations/*``."""
    import nibabel as nib

    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    for seed in seeds:
        ct, masks = make_volume(seed)
        case = root / f"case_{seed:02d}"
        (case / "segmentations").mkdir(parents=True)
        nib.save(nib.Nifti1Image(ct.astype(np.int16), affine), case / "ct.nii.gz")
        for name, m in masks.items():
            fname = name.replace(" ", "_") + ".nii.gz"
            nib.save(nib.Nifti1Image(m.astype(np.uint8), affine), case / "segmentations" / fname)
    return root


@pytest.fixture
def trusted_cases():
    from qsaudit.training.cases import prepare_case

    out = []
    for seed in (1, 2, 3):
        ct, masks = make_volume(seed)
        out.append(prepare_case(f"case_{seed}", ct, masks, (2.0, 2.0, 3.0)))
    return out


@pytest.fixture
def tiny_model_config():
    from qsaudit.model.config import ModelConfig

    return ModelConfig(backbone="resnet10", width=8, input_size=32, margin=4, hidden=16)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One torch thread: on a shared 2-core machine, more threads only fight each other."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
