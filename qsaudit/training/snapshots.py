"""Candidate masks with real model errors: snapshots of a small segmentation network.

As the Quality Sentinel paper does, a small 2D U-Net is trained on a group of trusted cases
(axial slices downsampled to ``size`` x ``size``, one sigmoid channel per structure) and
snapshotted after an increasing number of steps. Early snapshots give coarse, blobby, leaky
masks; later ones give masks close to the labels with boundary and small-structure errors, the
kind a real model makes. It runs once per group of cases, not per label, to stay cheap on CPU.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qsaudit.training.cases import TrustedCase

SNAPSHOT_PREFIX = "snapshot-"


class TinyUNet(nn.Module):
    """Two-level 2D U-Net: (B, 2, H, W) CT windows -> (B, C, H, W) logits; H, W divisible by 4."""

    def __init__(self, channels: int, width: int = 16) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(4, cout),
                                 nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, padding=1),
                                 nn.GroupNorm(4, cout), nn.ReLU(inplace=True))

        self.enc1 = block(2, width)
        self.enc2 = block(width, 2 * width)
        self.mid = block(2 * width, 4 * width)
        self.up2 = nn.ConvTranspose2d(4 * width, 2 * width, 2, stride=2)
        self.dec2 = block(4 * width, 2 * width)
        self.up1 = nn.ConvTranspose2d(2 * width, width, 2, stride=2)
        self.dec1 = block(2 * width, width)
        self.head = nn.Conv2d(width, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        m = self.mid(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.head(d1)


def _ct_channels(ct: np.ndarray) -> np.ndarray:
    """HU (X, Y, Z) -> (Z, 2, X, Y) float32: a wide and a soft-tissue window, both in [0, 1]."""
    wide = (np.clip(ct, -1000, 1000) + 1000) / 2000
    soft = (np.clip(ct, -160, 240) + 160) / 400
    return np.stack([wide, soft], 0).transpose(3, 0, 1, 2).astype(np.float32)


def _resize(x: torch.Tensor, size: tuple[int, int], *, mode: str) -> torch.Tensor:
    if mode == "area":
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def snapshot_candidates(cases: list[TrustedCase], *, steps: tuple[int, ...] = (5, 30, 100, 300),
                        size: int = 64, seed: int = 0, batch_size: int = 16, lr: float = 5e-3,
                        width: int = 8, device: str = "cpu"
                        ) -> list[dict[str, list[tuple[str, np.ndarray]]]]:
    """Train a :class:`TinyUNet` on ``cases`` and predict every label at each snapshot.

    Returns, per case, ``{structure: [(source, mask), ...]}`` with ``source`` =
    ``"snapshot-<steps>"`` and ``mask`` bool (X, Y, Z) at the case's resolution. Empty
    predictions are left out (the scan cannot score an empty mask). ``device`` is a torch
    device (``"cpu"``, ``"cuda"``); on the CPU it is deterministic for a given ``seed``.
    """
    steps = tuple(sorted(int(s) for s in steps if int(s) > 0))
    names = sorted({n for c in cases for n in c.masks})
    if not names or not steps:
        return [{} for _ in cases]
    index = {n: i for i, n in enumerate(names)}
    size = max(8, int(size) // 4 * 4)
    gen = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))

    images, targets, present, boxes = [], [], [], []
    for case in cases:
        box = _label_box(case)
        boxes.append(box)
        ct = case.ct[box]
        x = torch.from_numpy(_ct_channels(ct))
        images.append(_resize(x, (size, size), mode="bilinear"))
        # one structure at a time: a full-resolution float stack of a hundred structures
        # would take gigabytes; the area resize is per channel, so the result is the same
        small = torch.zeros((ct.shape[2], len(names), size, size), dtype=torch.float32)
        has = np.zeros(len(names), dtype=np.float32)
        for name, mask in case.masks.items():
            m = torch.from_numpy(np.ascontiguousarray(mask[box], dtype=np.float32))
            small[:, index[name]] = _resize(m.permute(2, 0, 1)[:, None], (size, size),
                                            mode="area")[:, 0]
            has[index[name]] = 1.0
        targets.append(small)
        present.append(torch.from_numpy(has).expand(case.ct.shape[2], -1))
    x_all = torch.cat(images)
    y_all = torch.cat(targets)
    has_all = torch.cat(present)[:, :, None, None]
    # Slices with some label are drawn three times as often as empty ones.
    weights = 1.0 + 2.0 * (y_all.flatten(1).amax(1) > 0).float()

    chosen = [_chosen_structures(case, len(steps), seed + i) for i, case in enumerate(cases)]
    dev = torch.device(device)
    net = TinyUNet(len(names), width=width).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    pos_weight = torch.full((len(names), 1, 1), 5.0, device=dev)
    results: list[dict[str, list[tuple[str, np.ndarray]]]] = [{} for _ in cases]
    done = 0
    for target_steps in steps:
        net.train()
        while done < target_steps:
            idx = torch.multinomial(weights, batch_size, replacement=True, generator=gen)
            logits = net(x_all[idx].to(dev))
            loss = _loss(logits, y_all[idx].to(dev), has_all[idx].to(dev), pos_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
        _predict_into(net, cases, images, boxes, names, f"{SNAPSHOT_PREFIX}{target_steps}",
                      results, chosen)
    return results


MASK_BUDGET = 500_000_000  # bytes of snapshot masks kept per case (all snapshots together)


def _chosen_structures(case: TrustedCase, n_snapshots: int, seed: int) -> list[str]:
    """The structures whose snapshot predictions are kept: all of them, unless their masks
    would exceed :data:`MASK_BUDGET` (a trunk phantom has ~90 structures on millions of
    voxels); then a seeded random subset that fits."""
    names = sorted(case.masks)
    fits = max(1, MASK_BUDGET // max(1, case.ct.size * max(1, n_snapshots)))
    if len(names) <= fits:
        return list(case.masks)
    rng = np.random.default_rng([int(seed), 6607, len(names)])
    return sorted(rng.choice(names, size=int(fits), replace=False).tolist())


def _label_box(case: TrustedCase, *, margin: float = 0.15) -> tuple[slice, slice, slice]:
    """In-plane box around all labels of ``case`` (plus ``margin`` of its size), all slices:
    the network works at a higher effective resolution there than on the whole slice."""
    union = np.zeros(case.ct.shape[:2], dtype=bool)
    for mask in case.masks.values():
        union |= mask.any(axis=2)
    out = []
    for axis in (0, 1):
        idx = np.flatnonzero(union.any(axis=1 - axis))
        n = case.ct.shape[axis]
        if idx.size == 0:
            out.append(slice(0, n))
            continue
        pad = int(margin * (idx[-1] - idx[0] + 1)) + 4
        out.append(slice(max(0, int(idx[0]) - pad), min(n, int(idx[-1]) + pad + 1)))
    return out[0], out[1], slice(None)


def _loss(logits: torch.Tensor, target: torch.Tensor, present: torch.Tensor,
          pos_weight: torch.Tensor) -> torch.Tensor:
    """BCE plus soft Dice, both only over the structures a case has (``present`` 0/1)."""
    bce = F.binary_cross_entropy_with_logits(logits, target, weight=present,
                                             pos_weight=pos_weight)
    prob = torch.sigmoid(logits) * present
    inter = (prob * target).sum((0, 2, 3))
    total = prob.sum((0, 2, 3)) + target.sum((0, 2, 3))
    has = target.sum((0, 2, 3)) > 0
    soft_dice = (2 * inter + 1) / (total + 1)
    dice_loss = (1 - soft_dice[has]).mean() if has.any() else logits.sum() * 0
    return bce + dice_loss


@torch.no_grad()
def _predict_into(net: nn.Module, cases: list[TrustedCase], images: list[torch.Tensor],
                  boxes: list[tuple[slice, slice, slice]], names: list[str], source: str,
                  results: list[dict[str, list[tuple[str, np.ndarray]]]],
                  chosen: list[list[str]]) -> None:
    net.eval()
    for case, x, box, out, keep in zip(cases, images, boxes, results, chosen, strict=True):
        dev = next(net.parameters()).device
        logits = torch.cat([net(chunk.to(dev)).cpu() for chunk in x.split(64)])
        sx, sy, _ = case.ct[box].shape
        for name in keep:  # one structure at a time (bilinear resizing is per channel)
            c = names.index(name)
            prob = _resize(logits[:, c:c + 1], (sx, sy), mode="bilinear")[:, 0]  # logits
            mask = np.zeros(case.ct.shape, dtype=bool)
            mask[box] = (prob > 0).permute(1, 2, 0).numpy()
            if mask.any():
                out.setdefault(name, []).append((source, np.ascontiguousarray(mask)))
