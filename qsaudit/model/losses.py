"""Training losses of the Quality Sentinel: weighted MSE and the optimal pair ranking loss.

Predictions and targets are Dice values ``(B,)``; the targets are the true slice Dice in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from qsaudit.errors import ModelError

# Upper ends of the true-Dice bins and their weights: poor masks are rare and matter most.
DSC_BIN_EDGES = (0.3, 0.5, 0.7, 0.9)
DSC_BIN_WEIGHTS = (7.0, 5.0, 3.0, 2.0, 1.0)


def mse_weights(target: Tensor) -> Tensor:
    """Per-sample weights 7/5/3/2/1 for true Dice <=0.3 / <=0.5 / <=0.7 / <=0.9 / above."""
    edges = torch.tensor(DSC_BIN_EDGES, dtype=target.dtype, device=target.device)
    table = torch.tensor(DSC_BIN_WEIGHTS, dtype=target.dtype, device=target.device)
    # right=False: bucketize gives the first edge >= value, so a value on an edge stays in its bin
    return table[torch.bucketize(target.detach(), edges)]


def weighted_mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean of ``w(target) * (pred - target)^2`` over the batch (weights: :func:`mse_weights`).

    Args:
        pred: predicted Dice ``(B,)``.
        target: true Dice ``(B,)`` in [0, 1].

    Returns:
        scalar tensor.
    """
    _check_pair(pred, target)
    return (mse_weights(target) * (pred - target.to(pred.dtype)) ** 2).mean()


def optimal_pairs(emb: Tensor) -> np.ndarray:
    """Partner of every sample: the assignment maximising total text-embedding cosine similarity.

    The Hungarian method (``scipy.optimize.linear_sum_assignment``) runs on the negated cosine
    similarity matrix with self-pairs forbidden, so samples of the same (or a similar) structure
    are compared with each other.

    Args:
        emb: embeddings ``(B, E)``, ``B >= 2``.

    Returns:
        int array ``(B,)``; ``partner[i] != i``.
    """
    e = emb.detach().float()
    e = e / e.norm(dim=1, keepdim=True).clamp_min(1e-12)
    sim = (e @ e.T).cpu().numpy().astype(np.float64)
    cost = -sim
    np.fill_diagonal(cost, 1e6)  # finite: scipy rejects infeasible (all-inf) rows
    rows, cols = linear_sum_assignment(cost)
    partner = np.empty(len(rows), dtype=np.int64)
    partner[rows] = cols
    return partner


def opr_loss(pred: Tensor, target: Tensor, emb: Tensor, *, eps: float = 0.0) -> Tensor:
    """Optimal pair ranking loss: pairs whose predicted order contradicts the true order.

    Each sample ``i`` is paired with ``j = partner[i]`` from :func:`optimal_pairs`; the loss is
    ``mean_i relu(-(p_i - p_j) * (t_i - t_j) + eps)``. Zero for a batch of fewer than 2.

    Args:
        pred: predicted Dice ``(B,)``.
        target: true Dice ``(B,)``.
        emb: text embeddings ``(B, E)`` of the samples' structures.
        eps: hinge margin (>= 0).

    Returns:
        scalar tensor.
    """
    _check_pair(pred, target)
    if emb.ndim != 2 or emb.shape[0] != pred.shape[0]:
        raise ModelError(f"opr_loss: embeddings must be ({pred.shape[0]}, E), "
                         f"got {tuple(emb.shape)}")
    if pred.shape[0] < 2:
        return pred.sum() * 0.0
    partner = torch.as_tensor(optimal_pairs(emb), device=pred.device)
    t = target.to(pred.dtype)
    agreement = (pred - pred[partner]) * (t - t[partner])
    return torch.relu(-agreement + eps).mean()


def quality_loss(pred: Tensor, target: Tensor, emb: Tensor, *, mse: bool = True,
                 opr: bool = True, opr_weight: float = 1.0, eps: float = 0.0) -> Tensor:
    """The training loss: ``weighted_mse + opr_weight * opr_loss``, each part switchable.

    Raises:
        ModelError: both parts switched off.
    """
    if not (mse or opr):
        raise ModelError("quality_loss: both the MSE and the ranking part are switched off")
    total = pred.sum() * 0.0
    if mse:
        total = total + weighted_mse(pred, target)
    if opr:
        total = total + opr_weight * opr_loss(pred, target, emb, eps=eps)
    return total


def _check_pair(pred: Tensor, target: Tensor) -> None:
    if pred.ndim != 1 or pred.shape != target.shape:
        raise ModelError(f"loss: predictions {tuple(pred.shape)} and targets "
                         f"{tuple(target.shape)} must both be (B,)")
