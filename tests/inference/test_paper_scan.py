"""`qsaudit scan --model paper.pt` gives the released Quality Sentinel inference script's numbers.

The test restates that script independently: read each NIfTI without reorientation (SimpleITK's
(Z, Y, X) array of the file's own voxel order), keep the slices with mask, pick
``valid[int(n / 10 * i)]``, crop box + margin 20 clipped to the image and widened towards a
square, window -200..200 HU, torchvision's 8-bit PIL path with a 256 x 256 bilinear resize and
the paper's normalisations, one forward pass through a randomly initialised model built here in
the paper's state-dict format (ResNet-18 trunk for speed), and the mean of the slice outputs.
The dataset is written in TotalSegmentator v1 layout with non-RAS affines (LPS, as DICOM-derived
files are, and a permuted, z-flipped one), so a scan that reoriented to RAS would differ.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from torch import nn
from torchvision import transforms
from typer.testing import CliRunner

from qsaudit.cli import app
from qsaudit.inference import ScanSettings
from qsaudit.inference.prepare import FileOrder
from qsaudit.inference.sampling import model_sampling, settings_for_model
from qsaudit.model.config import PRESETS

DAP_IDS = {"liver": 13, "kidney_left": 15, "spleen": 26}  # DAP Atlas class ids
SHAPE = (52, 44, 22)
SPREAD = 20.0  # scales the head so that slice outputs differ by ~0.1 (see _random_model)  # file voxel order (i, j, k)
# 27 crops in all keep the test fast; s0002's flipped slice axis changes which 10 of its 17
# spleen slices the paper's pick takes, so a scan in RAS order would score other slices
LABELS = {"s0001": ("liver", "kidney_left"), "s0002": ("spleen",)}
AFFINES = {
    # LPS: x and y run towards the patient's left and back, as in DICOM-derived files
    "s0001": np.array([[-1.5, 0, 0, 40.0], [0, -1.5, 0, 30.0], [0, 0, 3.0, -50.0], [0, 0, 0, 1]]),
    # in-plane axes swapped and slices running downwards (PLI-like)
    "s0002": np.array([[0, -1.2, 0, 20.0], [-1.4, 0, 0, 25.0], [0, 0, -2.5, 40.0], [0, 0, 0, 1]]),
}


class PaperFormatNet(nn.Module):
    """The released checkpoint's module names and forward pass, on a torchvision ResNet-18."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torchvision.models.resnet18(weights=None)
        self.conv1 = nn.Conv2d(2, 64, kernel_size=7, stride=2, padding=3)
        self.bn1 = nn.BatchNorm2d(64)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.fc1 = nn.Linear(512, 50)
        self.fc2 = nn.Linear(50, 1)
        self.attention1 = nn.Linear(512 + 512, 512)
        self.attention2 = nn.Linear(512 + 512, 50)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.bn1(self.conv1(image))))
        x = self.net.layer4(self.net.layer3(self.net.layer2(self.net.layer1(x))))
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        joint = torch.cat([x, text], dim=1)
        return self.fc2(self.attention2(joint) * self.fc1(self.attention1(joint) * x))


def _random_model() -> PaperFormatNet:
    """Random weights whose output clearly depends on the image (a flipped crop scores apart)."""
    torch.manual_seed(3)
    model = PaperFormatNet()
    gen = torch.Generator().manual_seed(4)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):  # eval-mode batch norm that is not the identity
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=gen) * 0.5 + 0.5)
            module.bias.data.copy_(torch.rand(n, generator=gen) * 0.1)
    with torch.no_grad():  # outputs spread around 0.5, mostly inside [0, 1]
        model.fc2.weight.mul_(SPREAD)
        model.fc2.bias.fill_(0.5)
    return model.eval()


def _write_case(folder: Path, affine: np.ndarray, rng: np.random.Generator,
                labels: tuple[str, ...]) -> None:
    """CT (int16 HU) and organ masks ``labels``, drawn in file voxel order (i, j, k)."""
    i, j, k = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    ct = rng.integers(-300, 300, size=SHAPE).astype(np.int16)
    masks = {  # liver runs into the i = 0 edge (clipped crop); kidney has fewer than 10 slices
        "liver": ((i - 8) / 14.0) ** 2 + ((j - 20) / 12.0) ** 2 + ((k - 11) / 9.0) ** 2 <= 1,
        "kidney_left": ((i - 38) / 5.0) ** 2 + ((j - 12) / 4.0) ** 2 + ((k - 8) / 3.5) ** 2 <= 1,
        "spleen": (((i - 34) / 8.0) ** 2 + ((j - 30) / 6.0) ** 2 <= 1) & (k >= 3) & (k <= 19)
        & (i + 0.5 * k < 42),
    }
    masks = {name: masks[name] for name in labels}
    for name, mask in masks.items():
        ct[mask] = rng.integers(20, 180, size=int(mask.sum()))
    (folder / "segmentations").mkdir(parents=True)
    nib.save(nib.Nifti1Image(ct, affine), folder / "ct.nii.gz")
    for name, mask in masks.items():
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine),
                 folder / "segmentations" / f"{name}.nii.gz")


@pytest.fixture(scope="module")
def paper_setup(tmp_path_factory):
    """(dataset folder, imported paper.pt, the script's results by case and label)."""
    root = tmp_path_factory.mktemp("paper")
    rng = np.random.default_rng(21)
    dataset = root / "Totalsegmentator_dataset"
    for case_id, affine in AFFINES.items():
        _write_case(dataset / case_id, affine, rng, LABELS[case_id])
    model = _random_model()
    torch.save(model.state_dict(), root / "best_resnet18_model.pth")
    gen = torch.Generator().manual_seed(5)
    table = {cid: torch.randn(1, 512, generator=gen) for cid in range(145)}
    with open(root / "label_embedding.pkl", "wb") as fh:
        pickle.dump(table, fh)
    result = CliRunner().invoke(app, [
        "import-paper", "--checkpoint", str(root / "best_resnet18_model.pth"),
        "--embeddings", str(root / "label_embedding.pkl"), "--out", str(root / "paper.pt")])
    assert result.exit_code == 0, result.output
    expected = {case_id: _script_predictions(dataset / case_id, model, table)
                for case_id in AFFINES}
    return dataset, root / "paper.pt", expected


def _script_crop(image: np.ndarray, mask: np.ndarray, margin: int = 20):
    """Box of the mask + margin, clipped to the image, widened by half the gap towards square."""
    rows, cols = np.where(mask > 0)
    r0, r1 = max(rows.min() - margin, 0), min(rows.max() + margin, image.shape[0])
    c0, c1 = max(cols.min() - margin, 0), min(cols.max() + margin, image.shape[1])
    height, width = r1 - r0, c1 - c0
    if height > width:
        c0, c1 = max(c0 - (height - width) // 2, 0), min(c1 + (height - width) // 2, image.shape[1])
    elif width > height:
        r0, r1 = max(r0 - (width - height) // 2, 0), min(r1 + (width - height) // 2, image.shape[0])
    return image[r0:r1, c0:c1], mask[r0:r1, c0:c1]


def _script_predictions(case: Path, model: nn.Module, table: dict) -> dict[str, tuple]:
    """label -> (mean of the slice outputs, SimpleITK slice indices used)."""
    ct_tf = transforms.Compose([transforms.ToPILImage(), transforms.Resize((256, 256)),
                                transforms.ToTensor(), transforms.Normalize([0.5], [0.25])])
    mask_tf = transforms.Compose([transforms.ToPILImage(), transforms.Resize((256, 256)),
                                  transforms.ToTensor(), transforms.Normalize([0.5], [0.5])])
    ct = np.asarray(nib.load(case / "ct.nii.gz").dataobj).transpose(2, 1, 0)  # (Z, Y, X)
    ct01 = (np.clip(ct, -200, 200) + 200) / 400
    out = {}
    for path in sorted((case / "segmentations").glob("*.nii.gz")):
        name = path.name.removesuffix(".nii.gz")
        mask = np.asarray(nib.load(path).dataobj).transpose(2, 1, 0).astype(np.float32)
        valid = [z for z in range(mask.shape[0]) if mask[z].sum() > 0]
        n = len(valid)
        picks = valid if n <= 10 else [valid[int(n / 10 * i)] for i in range(10)]
        inputs = []
        for z in picks:
            image_crop, mask_crop = _script_crop(ct01[z], mask[z])
            inputs.append(torch.cat([ct_tf(image_crop), mask_tf(mask_crop)], dim=0))
        text = table[DAP_IDS[name]].expand(len(picks), -1)
        with torch.no_grad():
            preds = model(torch.stack(inputs), text).squeeze(1).numpy().astype(np.float64)
        out[name] = (float(preds.mean()), picks)
    return out


@pytest.mark.parametrize("workers", [0, 2])
def test_scan_reproduces_the_paper_script(paper_setup, tmp_path, workers):
    dataset, paper_pt, script = paper_setup
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["scan", str(dataset), "--model", str(paper_pt),
                                      "--out", str(out), "--workers", str(workers),
                                      "--device", "cpu", "--batch-size", "9", "--quiet"])
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(out / "results.parquet")
    slices = pd.read_parquet(out / "slices.parquet")
    assert len(rows) == 3 and set(rows["status"]) == {"ok"}
    for case_id, affine in AFFINES.items():
        for label, (mean, picks) in script[case_id].items():
            row = rows[(rows.case_id == case_id) & (rows.label == label)].iloc[0]
            assert row["raw_score"] == pytest.approx(mean, rel=1e-4, abs=1e-6), (case_id, label)
            assert row["predicted_dsc"] == min(max(row["raw_score"], 0.0), 1.0)
            assert row["n_slices"] == len(picks) == min(10, row["mask_slices"])
            # reported indices are RAS axial: flipped for the file whose slices run downwards
            flipped = affine[2, 2] < 0
            ras = sorted(SHAPE[2] - 1 - z if flipped else z for z in picks)
            got = slices[(slices.case_id == case_id) & (slices.label == label)]["slice_index"]
            assert sorted(got.tolist()) == ras
    assert (rows["n_slices"] < 10).any() and (rows["n_slices"] == 10).any()


def test_settings_follow_the_paper_model():
    paper = type("P", (), {"config": PRESETS["paper"], "meta": {}})()
    ours = type("Q", (), {"config": PRESETS["default"], "meta": {}})()
    assert model_sampling(PRESETS["paper"], None) == ("paper", 10)
    assert model_sampling(PRESETS["default"], {"slice_sampling": {"mode": "paper", "k": 7}}) \
        == ("paper", 7)
    assert model_sampling(PRESETS["default"], {}) is None
    chosen = settings_for_model(ScanSettings(), paper)
    assert (chosen.sampling, chosen.slices, chosen.aggregation) == ("paper", 10, "mean")
    kept = settings_for_model(ScanSettings(slices=5, aggregation="median"), paper)
    assert (kept.sampling, kept.slices, kept.aggregation) == ("paper", 5, "median")
    assert settings_for_model(ScanSettings(), ours) == ScanSettings()


@pytest.mark.parametrize("affine", [*AFFINES.values(), np.diag([2.0, 2.0, 3.0, 1.0]),
                                    np.array([[0, 0, 2.0, 0], [0, -1.0, 0, 0], [1.5, 0, 0, 0],
                                              [0, 0, 0, 1]])])
def test_file_order_undoes_the_reorientation(affine):
    data = np.arange(np.prod(SHAPE), dtype=np.int32).reshape(SHAPE)
    canonical = np.asarray(nib.as_closest_canonical(nib.Nifti1Image(data, affine)).dataobj)
    order = FileOrder.from_affine(affine)
    np.testing.assert_array_equal(order.view(canonical), data)
    np.testing.assert_allclose(order.spacing, np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
    ras = order.ras_slices(np.array([0, 5]), SHAPE[2])
    if order.slice_axis != 2:
        assert ras is None
        return
    for k, z in zip([0, 5], ras, strict=True):  # the same voxels, at the reported RAS index
        np.testing.assert_array_equal(np.sort(data[..., k], axis=None),
                                      np.sort(canonical[..., z], axis=None))
