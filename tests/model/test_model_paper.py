"""Importing the paper's checkpoint reproduces its forward pass and preprocessing exactly.

The test writes its own model in the paper's format (ResNet-50 trunk under ``net``, a 2-channel
stem, gated head; random weights), its own embedding pickle, and computes the paper's
preprocessing independently with torchvision transforms on SimpleITK-ordered (z, y, x) arrays.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from torchvision import transforms
from typer.testing import CliRunner

from qsaudit.errors import ModelError
from qsaudit.model.checkpoint import load_checkpoint
from qsaudit.model.paper import import_paper_checkpoint, read_paper_state_dict
from qsaudit.model.preprocess import crop_slice, sample_slices


class PaperFormatNet(nn.Module):
    """A network with the released checkpoint's module names, written for this test."""

    def __init__(self, depth: int = 50, hidden: int = 50) -> None:
        super().__init__()
        self.net = getattr(torchvision.models, f"resnet{depth}")(weights=None)
        feat = 2048 if depth == 50 else 512
        self.conv1 = nn.Conv2d(2, 64, kernel_size=7, stride=2, padding=3)
        self.bn1 = nn.BatchNorm2d(64)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.fc1 = nn.Linear(feat, hidden)
        self.fc2 = nn.Linear(hidden, 1)
        self.attention1 = nn.Linear(feat + 512, feat)
        self.attention2 = nn.Linear(feat + 512, hidden)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        h = self.pool(torch.relu(self.bn1(self.conv1(image))))
        for stage in (self.net.layer1, self.net.layer2, self.net.layer3, self.net.layer4):
            h = stage(h)
        h = h.mean(dim=(2, 3))
        both = torch.cat([h, text], dim=1)
        return self.fc2(self.attention2(both) * self.fc1(self.attention1(both) * h))


def _random_paper_model(depth: int = 50) -> PaperFormatNet:
    torch.manual_seed(7)
    model = PaperFormatNet(depth)
    g = torch.Generator().manual_seed(8)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):  # make eval-mode batch norm non-trivial
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) * 0.5 + 0.5)  # features survive depth
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    with torch.no_grad():  # spread the head so that outputs depend visibly on the image
        model.fc2.weight.mul_(20.0)
        model.fc2.bias.fill_(0.5)
    return model.eval()


def _write_paper_files(tmp_path, depth: int = 50, wrap: bool = False):
    model = _random_paper_model(depth)
    state = model.state_dict()
    if wrap:
        state = {"state_dict": {f"module.{k}": v for k, v in state.items()}}
    ckpt = tmp_path / "best_model.pth"
    torch.save(state, ckpt)
    g = torch.Generator().manual_seed(9)
    table = {cid: torch.randn(1, 512, generator=g) for cid in range(145)}
    emb = tmp_path / "label_embedding.pkl"
    with open(emb, "wb") as fh:
        pickle.dump(table, fh)
    return model, ckpt, emb, table


def _paper_crop(image: np.ndarray, mask: np.ndarray, margin: int = 20):
    """The paper's inference crop, restated: box + margin, clipped, squared by half the gap."""
    ys, xs = np.nonzero(mask)
    top, bottom = max(ys.min() - margin, 0), min(ys.max() + margin, mask.shape[0])
    left, right = max(xs.min() - margin, 0), min(xs.max() + margin, mask.shape[1])
    gap = (bottom - top) - (right - left)
    if gap > 0:
        left, right = max(left - gap // 2, 0), min(right + gap // 2, mask.shape[1])
    elif gap < 0:
        top, bottom = max(top - (-gap) // 2, 0), min(bottom + (-gap) // 2, mask.shape[0])
    return image[top:bottom, left:right], mask[top:bottom, left:right]


def _volume():
    """A (z, y, x) CT and mask whose boxes touch the image edges on some slices."""
    rng = np.random.default_rng(11)
    z, y, x = 16, 90, 110
    ct = rng.integers(-400, 400, size=(z, y, x)).astype(np.int16)
    mask = np.zeros((z, y, x), dtype=np.uint8)
    for k in range(2, 15):
        cy, cx = 20 + 4 * k, 10 + 6 * k
        mask[k, max(cy - 8 - k, 0):cy + 9, max(cx - 12, 0):cx + 5 + k] = 1
    return ct, mask


def _paper_sampled_slices(mask_zyx):
    valid = np.where(mask_zyx.any(axis=(1, 2)))[0]
    if len(valid) > 10:
        valid = [valid[int(len(valid) / 10 * i)] for i in range(10)]
    return np.array(valid)


def _paper_slice_scores(model, ct_zyx, mask_zyx, slices, embedding):
    to_ct = transforms.Compose([
        lambda a: (np.clip(a.astype(np.float32), -200, 200) + 200) / 400,
        transforms.ToPILImage(), transforms.Resize((256, 256)), transforms.ToTensor(),
        transforms.Normalize(mean=[0.5], std=[0.25])])
    to_mask = transforms.Compose([
        transforms.ToPILImage(), transforms.Resize((256, 256)), transforms.ToTensor(),
        transforms.Normalize(mean=[0.5], std=[0.5])])
    images = []
    for k in slices:
        ct_c, m_c = _paper_crop(ct_zyx[k], mask_zyx[k].astype(np.float32))
        images.append(torch.cat([to_ct(ct_c), to_mask(m_c)], dim=0))
    batch = torch.stack(images)
    with torch.no_grad():
        return model(batch, embedding.expand(len(slices), -1)).squeeze(1).numpy()


@pytest.mark.parametrize("depth", [18, pytest.param(50, marks=pytest.mark.slow)])
def test_import_reproduces_the_paper_forward_pass(tmp_path, depth):
    model, ckpt, emb, table = _write_paper_files(tmp_path, depth=depth)
    out = import_paper_checkpoint(ckpt, emb, tmp_path / "paper.pt")
    pred = load_checkpoint(out, device="cpu")
    cfg = pred.config
    assert (cfg.backbone, cfg.input_size, cfg.embed_dim, cfg.hidden) == (
        f"resnet{depth}", 256, 512, 50)
    assert not cfg.bounded and cfg.preprocessing == "paper"
    assert pred.encoder_spec.startswith("open_clip:ViT-B-32")

    ct_zyx, mask_zyx = _volume()
    ct_xyz, mask_xyz = ct_zyx.transpose(2, 1, 0), mask_zyx.transpose(2, 1, 0)  # RAS-style
    slices = sample_slices(mask_xyz, 10, mode="paper")
    np.testing.assert_array_equal(slices, _paper_sampled_slices(mask_zyx))
    scored = slices[::3]  # 4 of the 10 (incl. edge-touching crops) keep the test fast on CPU
    ref = _paper_slice_scores(model, ct_zyx, mask_zyx, scored, table[15])
    inputs = np.stack([crop_slice(ct_xyz[:, :, k], mask_xyz[:, :, k], config=cfg)
                       for k in scored])
    clipped, raw = pred.predict(inputs, ["kidney_left"] * len(scored), batch_size=3)
    # The comparison only means something if the random model's output depends on the image.
    assert np.ptp(ref) > 1e-3, f"random model ignores its input (scores {ref})"
    np.testing.assert_allclose(raw, ref, rtol=1e-4, atol=1e-6)
    assert raw.mean() == pytest.approx(ref.mean(), rel=1e-4)
    np.testing.assert_array_equal(clipped, np.clip(raw, 0, 1))


def test_vocabulary_follows_the_paper_mapping(tmp_path):
    _, ckpt, emb, table = _write_paper_files(tmp_path, depth=18)
    pred = load_checkpoint(import_paper_checkpoint(ckpt, emb, tmp_path / "p.pt"), device="cpu")
    assert pred.config.backbone == "resnet18"
    for name, cid in [("kidney_left", 15), ("rib_left_1", 67), ("clavicula_right", 94),
                      ("urinary_bladder", 19), ("face", 128), ("vertebrae_L5", 66)]:
        np.testing.assert_allclose(pred.embeddings([name])[0], table[cid][0].numpy(),
                                   err_msg=name)


def test_wrapped_state_dict_and_bad_files(tmp_path):
    _, ckpt, emb, _ = _write_paper_files(tmp_path, depth=18, wrap=True)
    state = read_paper_state_dict(ckpt)
    assert "attention1.weight" in state and not any(k.startswith("module.") for k in state)
    import_paper_checkpoint(ckpt, emb, tmp_path / "ok.pt")

    broken = dict(state)
    del broken["net.layer2.0.conv1.weight"]
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(ModelError, match="net.layer2.0.conv1.weight"):
        import_paper_checkpoint(tmp_path / "broken.pth", emb, tmp_path / "x.pt")

    small = tmp_path / "small.pkl"
    with open(small, "wb") as fh:
        pickle.dump({15: torch.zeros(1, 384)}, fh)
    with pytest.raises(ModelError, match="384-d"):
        import_paper_checkpoint(ckpt, small, tmp_path / "x.pt")
    with pytest.raises(ModelError, match="not found"):
        import_paper_checkpoint(tmp_path / "absent.pth", emb, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_import_paper_command(tmp_path):
    from qsaudit.cli import app

    _, ckpt, emb, _ = _write_paper_files(tmp_path, depth=18)
    runner = CliRunner()
    out = tmp_path / "paper.pt"
    result = runner.invoke(app, ["import-paper", "--checkpoint", str(ckpt),
                                 "--embeddings", str(emb), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Wrote" in result.output and out.is_file()
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"nope")
    result = runner.invoke(app, ["import-paper", "--checkpoint", str(bad),
                                 "--embeddings", str(emb), "--out", str(tmp_path / "b.pt")])
    assert result.exit_code == 2
    assert "Error" in result.output and "bad.pth" in result.output
    help_text = runner.invoke(app, ["import-paper", "--help"]).output
    assert "Example" in help_text
