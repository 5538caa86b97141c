"""Network snapshots give candidates whose Dice improves with training steps."""

from __future__ import annotations

import numpy as np
import torch

from qsaudit.degrade import dice as volume_dice
from qsaudit.training.snapshots import TinyUNet, snapshot_candidates


def test_tiny_unet_shapes():
    net = TinyUNet(channels=3, width=8)
    assert net(torch.zeros(2, 2, 32, 32)).shape == (2, 3, 32, 32)


def test_snapshot_dice_increases_with_steps(trusted_cases):
    out = snapshot_candidates(trusted_cases, steps=(2, 120), size=40, seed=0, batch_size=8)
    by_step: dict[str, list[float]] = {"snapshot-2": [], "snapshot-120": []}
    for case, found in zip(trusted_cases, out, strict=True):
        for name, items in found.items():
            for source, mask in items:
                assert mask.shape == case.masks[name].shape and mask.dtype == bool
                by_step[source].append(volume_dice(mask, case.masks[name]))
    late = by_step["snapshot-120"]
    # labels an early snapshot misses entirely count as Dice 0
    n_labels = sum(len(c.masks) for c in trusted_cases)
    early = by_step["snapshot-2"] + [0.0] * (n_labels - len(by_step["snapshot-2"]))
    assert len(late) == n_labels
    assert np.mean(late) > 0.6
    assert np.mean(late) > np.mean(early) + 0.2
    assert 0.0 < np.mean(late) < 1.0
