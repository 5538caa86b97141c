"""Weighted MSE bins and the optimal pair ranking loss on hand-made batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qsaudit.errors import ModelError
from qsaudit.model.losses import (
    mse_weights,
    opr_loss,
    optimal_pairs,
    quality_loss,
    weighted_mse,
)


def test_mse_weights_follow_the_dsc_bins():
    target = torch.tensor([0.1, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0])
    expected = [7, 7, 5, 5, 3, 3, 2, 2, 1, 1]
    assert mse_weights(target).tolist() == expected


def test_weighted_mse_value():
    target = torch.tensor([0.1, 0.45, 0.95])
    pred = target + torch.tensor([0.1, -0.2, 0.3])
    expected = (7 * 0.01 + 5 * 0.04 + 1 * 0.09) / 3
    assert weighted_mse(pred, target).item() == pytest.approx(expected, rel=1e-5)


def _two_name_batch():
    e_a, e_b = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]
    emb = torch.tensor([e_a, e_b, e_a, e_b])  # samples 0,2 are one structure; 1,3 another
    pred = torch.tensor([0.2, 0.5, 0.6, 0.4], requires_grad=True)
    target = torch.tensor([0.8, 0.3, 0.4, 0.9])
    return pred, target, emb


def test_optimal_pairs_match_same_structure():
    _, _, emb = _two_name_batch()
    np.testing.assert_array_equal(optimal_pairs(emb), [2, 3, 0, 1])


def test_opr_loss_by_hand():
    pred, target, emb = _two_name_batch()
    # pair (0,2): dp = -0.4, dt = 0.4 -> 0.16 (wrong order); pair (1,3): dp = 0.1, dt = -0.6
    # -> 0.06 (wrong order); each pair counts from both ends.
    assert opr_loss(pred, target, emb).item() == pytest.approx(0.11, abs=1e-6)
    assert opr_loss(pred, target, emb, eps=0.05).item() == pytest.approx(0.16, abs=1e-6)
    opr_loss(pred, target, emb).backward()
    assert pred.grad is not None and torch.any(pred.grad != 0)


def test_opr_loss_zero_when_order_is_right():
    emb = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    target = torch.tensor([0.2, 0.9])
    assert opr_loss(torch.tensor([0.1, 0.7]), target, emb).item() == 0.0
    assert opr_loss(torch.tensor([0.5]), target[:1], emb[:1]).item() == 0.0


def test_quality_loss_parts_and_switches():
    pred, target, emb = _two_name_batch()
    mse = weighted_mse(pred, target).item()
    both = quality_loss(pred, target, emb, opr_weight=2.0).item()
    assert both == pytest.approx(mse + 2 * 0.11, rel=1e-5)
    assert quality_loss(pred, target, emb, opr=False).item() == pytest.approx(mse, rel=1e-6)
    assert quality_loss(pred, target, emb, mse=False).item() == pytest.approx(0.11, abs=1e-6)
    with pytest.raises(ModelError, match="switched off"):
        quality_loss(pred, target, emb, mse=False, opr=False)
