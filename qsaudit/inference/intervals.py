"""Prediction intervals for a label's calibrated Dice, from the calibration's own held-out errors.

A label calibration is fitted on labels whose true Dice is known. Cross-validated by patient, its
errors (true - predicted) show how far off a prediction of a given value is on labels it never
saw. :class:`ErrorBands` keep, for bins of the predicted value, the ``(1 - level) / 2`` and
``(1 + level) / 2`` quantiles of those errors; a label's interval is its prediction plus them,
clipped to [0, 1] (split conformal prediction conditioned on the predicted value). The interval
is thus about the *true* Dice, and its coverage on new patients can be measured
(``benchmarks/accuracy.py``), unlike an interval from the spread of the slice predictions, which
only says how much the slices disagree.

The bands travel inside the calibration (``calibration.info["intervals"]``, and
``info["intervals_targets"]`` for radiotherapy target volumes when they were sized apart), so a
model file keeps one JSON object for everything that turns slice scores into a label score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

INTERVALS_FORMAT = "qsaudit-error-bands"
LEVEL = 0.90
MIN_PER_BIN = 40  # labels per bin: a 95% quantile of fewer errors is mostly noise
MAX_BINS = 8


@dataclass(frozen=True)
class ErrorBands:
    """Error quantiles of a calibration per bin of its predicted Dice.

    ``edges`` (B-1,) inner bin edges (ascending) of the predicted Dice; ``low``/``high`` (B,)
    the lower (<= 0) and upper (>= 0) error quantiles of each bin; ``counts`` (B,) the labels
    each bin was measured on; ``level`` the nominal coverage; ``reference`` which labels they
    were (e.g. "real CT").
    """

    edges: np.ndarray
    low: np.ndarray
    high: np.ndarray
    counts: np.ndarray
    level: float = LEVEL
    reference: str = ""

    def interval(self, predicted: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) ends of the interval around ``predicted`` Dice (array or scalar),
        clipped to [0, 1]; they always bracket the (clipped) prediction. NaN stays NaN."""
        p = np.asarray(predicted, dtype=np.float64)
        which = np.searchsorted(self.edges, np.nan_to_num(p), side="right")
        clipped = np.clip(p, 0.0, 1.0)
        lo = np.clip(p + self.low[which], 0.0, 1.0)
        hi = np.clip(p + self.high[which], 0.0, 1.0)
        return np.minimum(lo, clipped), np.maximum(hi, clipped)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (kept as ``calibration.info["intervals"]``)."""
        return {"format": INTERVALS_FORMAT, "edges": self.edges.tolist(),
                "low": self.low.tolist(), "high": self.high.tolist(),
                "counts": self.counts.astype(int).tolist(), "level": float(self.level),
                "reference": self.reference}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ErrorBands:
        """Rebuild from :meth:`to_json`; ValueError when it is malformed."""
        if not isinstance(d, dict) or d.get("format") != INTERVALS_FORMAT:
            raise ValueError("interval bands: unknown format")
        try:
            edges, low, high, counts = (np.asarray(d[k], dtype=np.float64)
                                        for k in ("edges", "low", "high", "counts"))
            level = float(d["level"])
        except (KeyError, TypeError, ValueError):
            raise ValueError("interval bands: fields missing or not numbers") from None
        b = low.size
        if not all(np.isfinite(a).all() for a in (edges, low, high, counts)) \
                or not math.isfinite(level):
            raise ValueError("interval bands: values are not finite")
        if b < 1 or high.shape != (b,) or counts.shape != (b,) or edges.shape != (b - 1,) \
                or np.any(np.diff(edges) < 0) or np.any(low > 0) or np.any(high < 0) \
                or np.any(counts < 0) or np.any(counts != np.round(counts)) \
                or not 0.0 < level < 1.0:
            raise ValueError("interval bands: arrays have the wrong sizes, order or signs")
        return cls(edges=edges, low=low, high=high, counts=counts, level=level,
                   reference=str(d.get("reference", "")))


def fit_error_bands(predicted: np.ndarray, true: np.ndarray, *, level: float = LEVEL,
                    max_bins: int = MAX_BINS, min_per_bin: int = MIN_PER_BIN,
                    reference: str = "") -> ErrorBands:
    """Bands from held-out predictions (G,) and the true Dice (G,) of the same labels.

    Bins are quantiles of the predictions (at most ``max_bins``); a bin left with fewer than
    ``min_per_bin`` labels (tied predictions merge quantiles) joins its smaller neighbour. Each
    bin's quantiles carry the split-conformal finite-sample correction (the
    ``ceil((n + 1) q) / n`` order statistic); a bin too small for it (that order statistic beyond
    its n errors) gets the whole range, the honest interval when too few errors were seen.
    Labels with a NaN on either side are ignored. ValueError with fewer than 2 usable labels or
    a level outside (0, 1).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"fit_error_bands: level {level} is not in (0, 1)")
    p = np.asarray(predicted, dtype=np.float64).ravel()
    t = np.asarray(true, dtype=np.float64).ravel()
    if p.shape != t.shape:
        raise ValueError(f"fit_error_bands: {p.size} predictions for {t.size} true values")
    ok = ~(np.isnan(p) | np.isnan(t))
    p, t = p[ok], t[ok]
    if p.size < 2:
        raise ValueError("fit_error_bands: fewer than 2 labels")
    bins = max(1, min(max_bins, p.size // max(1, min_per_bin)))
    edges = _merge_small_bins(np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)[1:-1])),
                              p, min_per_bin)
    which = np.searchsorted(edges, p, side="right")
    low, high, counts = [], [], []
    for b in range(edges.size + 1):
        err = np.sort(t[which == b] - p[which == b])
        n = err.size
        k = math.ceil((n + 1) * (1 + level) / 2)  # the k-th smallest / largest error
        if k > n:  # too few errors to bound this quantile: the whole range
            low.append(-1.0)
            high.append(1.0)
        else:
            low.append(min(0.0, float(err[n - k])))
            high.append(max(0.0, float(err[k - 1])))
        counts.append(n)
    return ErrorBands(edges=edges, low=np.array(low), high=np.array(high),
                      counts=np.array(counts), level=level, reference=reference)


def _merge_small_bins(edges: np.ndarray, p: np.ndarray, min_per_bin: int) -> np.ndarray:
    """``edges`` with the bins of fewer than ``min_per_bin`` predictions ``p`` merged, each into
    its smaller neighbour, smallest first, until every bin has enough or one bin is left."""
    edges = np.asarray(edges, dtype=np.float64)
    while edges.size:
        counts = np.bincount(np.searchsorted(edges, p, side="right"), minlength=edges.size + 1)
        b = int(np.argmin(counts))
        if counts[b] >= min_per_bin:
            break
        # bin b lies between edges[b - 1] and edges[b]: drop the edge towards the smaller side
        if b == 0:
            drop = 0
        elif b == edges.size:
            drop = b - 1
        else:
            drop = b - 1 if counts[b - 1] <= counts[b + 1] else b
        edges = np.delete(edges, drop)
    return edges


@dataclass(frozen=True)
class StructureBands:
    """The bands of a calibration: ``default`` for every structure, and ``targets`` for
    radiotherapy target volumes when the calibration had enough of them to size their own
    (their errors are larger: a PTV's edge is a clinical margin, not an edge in the CT)."""

    default: ErrorBands
    targets: ErrorBands | None = None

    def for_structure(self, structure: str | None) -> ErrorBands:
        """The bands for a label of ``structure`` (a name any vocabulary knows, or None)."""
        if self.targets is not None and structure:
            from qsaudit.registry import is_target_volume

            if is_target_volume(structure):
                return self.targets
        return self.default

    def interval(self, predicted: np.ndarray, structures: list[str] | np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) of many labels (G,) with their structures (G,)."""
        p = np.asarray(predicted, dtype=np.float64)
        low, high = np.empty_like(p), np.empty_like(p)
        for i, (value, name) in enumerate(zip(p, structures, strict=True)):
            lo, hi = self.for_structure(str(name)).interval(value)
            low[i], high[i] = lo, hi
        return low, high


def calibration_bands(calibration: Any) -> StructureBands | None:
    """The bands stored in a calibration (``info["intervals"]``, and
    ``info["intervals_targets"]`` when target volumes have their own), None when it has none.
    Raises ValueError when they are stored but damaged."""
    info = getattr(calibration, "info", None) or {}
    if info.get("intervals") is None:
        return None
    targets = info.get("intervals_targets")
    return StructureBands(ErrorBands.from_json(info["intervals"]),
                          None if targets is None else ErrorBands.from_json(targets))


def coverage(low: np.ndarray, high: np.ndarray, true: np.ndarray) -> float:
    """Share of the labels with an interval whose true Dice lies in [low, high]; labels whose
    interval has a NaN end are left out (NaN when none is left). A 1e-9 tolerance absorbs the
    digits a Dice loses when stored as text."""
    low, high, true = (np.asarray(a, dtype=np.float64) for a in (low, high, true))
    has = ~(np.isnan(low) | np.isnan(high))
    if not has.any():
        return float("nan")
    low, high, true = low[has], high[has], true[has]
    return float(np.mean((low <= true + 1e-9) & (true <= high + 1e-9)))
