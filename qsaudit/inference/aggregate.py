"""From slice predictions to one predicted Dice per label, with an approximate 90% interval.

The 3D Dice of a mask is the area-weighted mean of its slice Dices when every slice has a similar
union size, so the default weights each scored slice by its candidate-mask area.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

METHODS = ("mean", "median", "area_weighted")
DEFAULT_METHOD = "area_weighted"
LEVEL = 0.90


@dataclass(frozen=True)
class Aggregate:
    """One label's score from its slice scores.

    ``dsc``: the aggregate; ``low``/``high``: approximate interval bounds clipped to [0, 1]
    (NaN with fewer than two slices); ``std``: plain standard deviation of the slice scores.
    """

    dsc: float
    low: float
    high: float
    std: float


def aggregate(slice_scores: np.ndarray, weights: np.ndarray | None = None, *,
              method: str = DEFAULT_METHOD, population: int | None = None,
              level: float = LEVEL) -> Aggregate:
    """Aggregate ``n`` slice scores into one label score and an interval.

    Args:
        slice_scores: (n,) predicted slice Dice values in [0, 1] (raw model outputs work too).
        weights: (n,) non-negative weights for ``area_weighted`` (candidate-mask area per slice);
            ignored by ``mean`` and ``median``; all-zero or missing weights fall back to equal.
        method: ``mean``, ``median`` or ``area_weighted``.
        population: number of slices the scored ones were drawn from (the mask's slice count);
            the interval shrinks with a finite-population correction, to zero when every slice
            was scored.
        level: two-sided coverage of the interval.

    The interval is ``dsc ± t(level, n_eff - 1) * sd / sqrt(n_eff) * fpc`` with ``sd`` the
    (weighted) spread of the slice scores and ``n_eff = (Σw)² / Σw²`` the effective number of
    slices (×1/1.2533² for the median): it covers the uncertainty of scoring a sample of slices,
    not the model's own error, and is therefore approximate.
    """
    if method not in METHODS:
        raise ValueError(f'aggregation "{method}": choose from {", ".join(METHODS)}')
    scores = np.asarray(slice_scores, dtype=np.float64).ravel()
    n = scores.size
    if n == 0:
        nan = float("nan")
        return Aggregate(nan, nan, nan, nan)
    w = np.ones(n)
    if method == "area_weighted" and weights is not None:
        given = np.asarray(weights, dtype=np.float64).ravel()
        if given.shape != scores.shape:
            raise ValueError(f"weights shape {given.shape} != scores shape {scores.shape}")
        if np.any(given < 0):
            raise ValueError("weights must be non-negative")
        if given.sum() > 0:
            w = given
    w = w / w.sum()
    center = float(np.median(scores)) if method == "median" else float(np.dot(w, scores))
    std = float(scores.std())
    if n < 2:
        return Aggregate(center, float("nan"), float("nan"), std)
    mean_w = float(np.dot(w, scores))
    var = float(np.dot(w, (scores - mean_w) ** 2)) * n / (n - 1)
    n_eff = 1.0 / float(np.sum(w ** 2))
    se = math.sqrt(var / n_eff)
    if method == "median":
        se *= 1.2533
    if population is not None and population > 1:
        se *= math.sqrt(max(population - n, 0) / (population - 1))
    half = _t_quantile(0.5 + level / 2, max(n_eff - 1.0, 1.0)) * se
    return Aggregate(center, max(0.0, center - half), min(1.0, center + half), std)


def _t_quantile(p: float, df: float) -> float:
    from scipy import stats

    return float(stats.t.ppf(p, df))
