"""From slice predictions to one predicted Dice per label, with an approximate 90% interval.

The 3D Dice of a mask is the area-weighted mean of its slice Dices when every slice has a similar
union size, so the default weights each scored slice by its candidate-mask area.

A model file may also carry a *label calibration* (learned aggregation, fitted by
``qsaudit.training.calibration`` on held-out labels with known 3D Dice): a ridge-linear score of
label features (:data:`FEATURES`) followed by an isotonic (monotone, piecewise-linear) map to
[0, 1]. It corrects the slice model's bias (perfect labels predicted too low) and sees errors
that leave every remaining slice correct (dropped slices, truncation, specks, a ragged or
shifted boundary) through the label's slice count, z coverage and the model-free shape and HU
descriptors of the whole mask (``qsaudit.checks.shape``). A calibration names the features it
uses, so one fitted before a feature was added keeps working.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from qsaudit.checks.shape import SHAPE_FEATURES  # model-free features of the whole mask

METHODS = ("mean", "median", "area_weighted")
DEFAULT_METHOD = "area_weighted"
LEVEL = 0.90


@dataclass(frozen=True)
class Aggregate:
    """One label's score from its slice scores.

    ``dsc``: the aggregate; ``low``/``high``: approximate interval bounds clipped to [0, 1]
    (NaN with fewer than two slices); ``std``: plain standard deviation of the slice scores;
    ``features``: the label features a calibration read (None without a calibration).
    """

    dsc: float
    low: float
    high: float
    std: float
    features: np.ndarray | None = None


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


SLICE_FEATURES = ("area_mean", "mean", "min", "std", "frac_low", "log_slices", "fill",
                  "gap_mean", "edge_area")
"""Features from the slice scores and the label's slice counts."""
PROBE_FEATURES = ("probe_max", "probe_min")
"""The network's scores of the label's end slices moved one slice outwards
(``qsaudit.inference.probes``): high when the organ goes on beyond an end."""
FIELD_FEATURES = ("volume_ends",)
"""How many of the label's ends lie on the volume's first or last slice
(``qsaudit.inference.probes.volume_ends``): the scan cut it there, the label did not end it."""
PART_FEATURES = ("part_min",)
"""The network's lowest score of the slices through a label's sizeable pieces besides its
largest (``qsaudit.inference.parts``): low when a piece is not the structure."""
PRIOR_FEATURES = ("name_prior", "prior_gap")
"""What the network scores a correct label of the structure (``qsaudit.inference.priors``) and
how far the label's area-weighted score falls below that: a low score means a poor label only
for a structure whose correct labels score high."""
FEATURES = SLICE_FEATURES + SHAPE_FEATURES + PROBE_FEATURES + FIELD_FEATURES + PART_FEATURES \
    + PRIOR_FEATURES
"""Everything :func:`label_features` returns, in order."""
CALIBRATION_FORMAT = "qsaudit-label-calibration"
CANONICAL_SLICE_MM = 3.0  # the slice count feature counts slices of this thickness


def label_features(slice_scores: np.ndarray, areas: np.ndarray, *, mask_slices: int | None = None,
                   z_extent: int | None = None, shape: np.ndarray | None = None,
                   probes: np.ndarray | None = None,
                   slice_mm: float | None = None,
                   volume_ends: int | None = None,
                   parts: np.ndarray | None = None,
                   prior: float | None = None) -> np.ndarray:
    """The calibration features of one label -> (len(FEATURES),) float64.

    Args:
        slice_scores: (n,) predicted slice Dice of the scored slices, ascending slice order
            (clipped to [0, 1] here).
        areas: (n,) candidate-mask voxels on those slices.
        mask_slices: slices with mask in the whole label (default ``n``).
        z_extent: slices from the first to the last slice with mask, inclusive (default
            ``mask_slices``); ``fill = mask_slices / z_extent`` is below 1 when slices are missing.
        shape: the mask's ``qsaudit.checks.shape.shape_features`` (None = unknown: NaN, which a
            calibration replaces by its training mean).
        probes: the label's end-probe scores (``qsaudit.inference.probes``; None or empty =
            unknown: NaN).
        slice_mm: the slice spacing in mm: the slice count is then counted in slices of
            :data:`CANONICAL_SLICE_MM` (a 0.6 mm series has five times the slices of a 3 mm one
            over the same organ); None counts the slices as they are.
        volume_ends: how many of the label's ends lie on the volume's edge slices
            (``qsaudit.inference.probes.volume_ends``; None = unknown: NaN).
        parts: the label's part-probe scores (``qsaudit.inference.parts``; empty = a label in
            one piece: 1; None = unknown: NaN).
        prior: the structure's prior (``qsaudit.inference.priors``; None or NaN = unknown).

    Features: area-weighted and plain mean, min, std, fraction below 0.5, ``log1p`` of the slice
    count, ``fill``, the area-weighted mean times ``2 fill / (1 + fill)`` (the Dice of a mask
    whose missing slices score 0) and the mean area of the two end slices over the largest area
    (high when the label is cut off flat), then the :data:`SHAPE_FEATURES` of the whole mask
    and the :data:`PROBE_FEATURES`, the :data:`FIELD_FEATURES`, the :data:`PART_FEATURES` and
    the :data:`PRIOR_FEATURES` (the prior, and the area-weighted mean minus it).
    """
    from qsaudit.inference.parts import part_summary
    from qsaudit.inference.probes import probe_summary

    s = np.clip(np.asarray(slice_scores, dtype=np.float64).ravel(), 0.0, 1.0)
    a = np.asarray(areas, dtype=np.float64).ravel()
    if s.size == 0:
        raise ValueError("label_features: no slice score")
    w = a / a.sum() if a.size == s.size and a.sum() > 0 else np.full(s.size, 1.0 / s.size)
    area_mean = float(np.dot(w, s))
    n_mask = int(mask_slices) if mask_slices else s.size
    extent = int(z_extent) if z_extent else n_mask
    length = n_mask if not slice_mm or not slice_mm > 0 else n_mask * slice_mm / CANONICAL_SLICE_MM
    fill = min(1.0, n_mask / max(extent, 1))
    edge = float((a[0] + a[-1]) / (2.0 * a.max())) if a.size == s.size and a.max() > 0 else 1.0
    if shape is None:
        shape_part = np.full(len(SHAPE_FEATURES), np.nan)
    else:
        shape_part = np.asarray(shape, dtype=np.float64).ravel()
        if shape_part.size != len(SHAPE_FEATURES):
            raise ValueError(f"label_features: {shape_part.size} shape features, expected "
                             f"{len(SHAPE_FEATURES)}")
    return np.concatenate([[area_mean, float(s.mean()), float(s.min()), float(s.std()),
                            float((s < 0.5).mean()), math.log1p(length), fill,
                            area_mean * 2.0 * fill / (1.0 + fill), edge], shape_part,
                           probe_summary(probes),
                           [float("nan") if volume_ends is None else float(volume_ends)],
                           [part_summary(parts)], _prior_pair(area_mean, prior)])


def _prior_pair(area_mean: float, prior: float | None) -> list[float]:
    """The :data:`PRIOR_FEATURES` of a label scoring ``area_mean`` (NaN, NaN without a prior)."""
    if prior is None or not math.isfinite(prior):
        return [float("nan"), float("nan")]
    return [float(prior), area_mean - float(prior)]


def set_prior_features(features: np.ndarray, prior: np.ndarray) -> None:
    """Write the :data:`PRIOR_FEATURES` of label features (N, len(FEATURES)) in place from each
    label's structure prior (N,), as :func:`label_features` makes them (NaN, NaN where a label
    has no prior)."""
    prior = np.asarray(prior, dtype=np.float64)
    prior = np.where(np.isfinite(prior), prior, np.nan)
    features[:, FEATURES.index(PRIOR_FEATURES[0])] = prior
    features[:, FEATURES.index(PRIOR_FEATURES[1])] = \
        features[:, FEATURES.index("area_mean")] - prior


@dataclass(frozen=True)
class LabelCalibration:
    """Feature vector -> calibrated label Dice in [0, 1] (see the module docstring).

    ``names``: the features it uses (a subset of :data:`FEATURES`, in that order);
    ``center``/``scale``/``coef``: (F,) standardisation and ridge coefficients of those;
    ``knots_x``/``knots_y``: (K,) increasing isotonic knots, interpolated linearly and held
    constant beyond the ends.
    """

    center: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    knots_x: np.ndarray
    knots_y: np.ndarray
    info: dict = field(default_factory=dict)
    names: tuple[str, ...] = FEATURES

    def linear(self, features: np.ndarray) -> np.ndarray:
        """Linear score of full feature vectors (N, len(FEATURES)) or (len(FEATURES),).

        Unknown (NaN) features count as the training mean.
        """
        x = np.asarray(features, dtype=np.float64)[..., [FEATURES.index(n) for n in self.names]]
        x = np.where(np.isnan(x), self.center, x)
        return ((x - self.center) / self.scale) @ self.coef + self.intercept

    def apply(self, features: np.ndarray) -> np.ndarray:
        """Calibrated Dice of ``features`` (N, F) or (F,), clipped to [0, 1]."""
        return np.clip(np.interp(self.linear(features), self.knots_x, self.knots_y), 0.0, 1.0)

    def to_json(self) -> dict:
        """Plain JSON (stored as a model file's ``meta["calibration"]``)."""
        return {"format": CALIBRATION_FORMAT, "features": list(self.names),
                "center": self.center.tolist(), "scale": self.scale.tolist(),
                "coef": self.coef.tolist(), "intercept": float(self.intercept),
                "knots_x": self.knots_x.tolist(), "knots_y": self.knots_y.tolist(),
                "info": self.info}

    @classmethod
    def from_json(cls, d: dict) -> LabelCalibration:
        """Rebuild from :meth:`to_json`; ValueError when the features or sizes do not match."""
        names = tuple(d.get("features", ()))
        if d.get("format") != CALIBRATION_FORMAT or not names \
                or any(n not in FEATURES for n in names):
            raise ValueError("label calibration: unknown format or feature list")
        arrays = {k: np.asarray(d[k], dtype=np.float64) for k in
                  ("center", "scale", "coef", "knots_x", "knots_y")}
        f, k = len(names), arrays["knots_x"].size
        if any(arrays[n].shape != (f,) for n in ("center", "scale", "coef")) or k < 1 \
                or arrays["knots_y"].shape != (k,) or np.any(np.diff(arrays["knots_x"]) < 0):
            raise ValueError("label calibration: arrays have the wrong sizes or order")
        return cls(intercept=float(d["intercept"]), info=dict(d.get("info", {})), names=names,
                   **arrays)


def model_calibration(meta: dict | None) -> Calibration | None:
    """The label calibration stored in a model file's ``meta`` (None when it has none):
    a :class:`LabelCalibration` (ridge + isotonic) or boosted trees
    (:class:`~qsaudit.inference.trees.TreeCalibration`). Raises ValueError when one is stored
    but damaged.
    """
    from qsaudit.inference.trees import TREES_FORMAT, TreeCalibration

    stored = (meta or {}).get("calibration")
    if not stored:
        return None
    if isinstance(stored, dict) and stored.get("format") == TREES_FORMAT:
        return TreeCalibration.from_json(stored)
    return LabelCalibration.from_json(stored)


Calibration = Any  # LabelCalibration or qsaudit.inference.trees.TreeCalibration: .names, .apply


def calibrated_aggregate(slice_scores: np.ndarray, weights: np.ndarray,
                         calibration: Calibration, *, population: int | None = None,
                         slice_indices: np.ndarray | None = None,
                         shape: np.ndarray | None = None, probes: np.ndarray | None = None,
                         level: float = LEVEL, bands: Any | None = None,
                         slice_mm: float | None = None,
                         volume_ends: int | None = None,
                         parts: np.ndarray | None = None,
                         structure: str | None = None) -> Aggregate:
    """Like ``aggregate(..., method="area_weighted")``, then calibrated.

    ``slice_indices`` (n,) ascending axial indices of the scored slices give the z extent
    (first to last); ``population`` is the label's slice count. With ``bands`` (the
    calibration's :class:`~qsaudit.inference.intervals.ErrorBands`) the interval is a
    prediction interval for the true Dice, sized by the calibration's held-out errors at this
    predicted value. Without (calibrations fitted before bands existed), its ends are the
    calibrated values of the slice scores shifted down / up by the plain interval's half widths,
    which show only how much the slices disagree. ``std`` stays the spread of the raw slice
    scores. ``shape``/``probes``/``slice_mm``/``volume_ends``/``parts``: the mask's shape
    features, its end-probe scores, the slice spacing, how many of its ends lie on the volume's
    edge slices and its part-probe scores (see label_features); ``structure``: its registry
    name, whose prior the calibration stores (``qsaudit.inference.priors``; read only by a
    calibration that uses the :data:`PRIOR_FEATURES`).
    """
    plain = aggregate(slice_scores, weights, method="area_weighted", population=population,
                      level=level)
    if math.isnan(plain.dsc):
        return plain
    scores = np.asarray(slice_scores, dtype=np.float64)
    extent = None
    if slice_indices is not None and len(slice_indices):
        extent = int(slice_indices[-1]) - int(slice_indices[0]) + 1
        extent = max(extent, int(population or 0)) if population else extent

    prior = structure_prior(calibration, structure)
    shifts = [0.0] if bands is not None or math.isnan(plain.low) else \
        [0.0, plain.low - plain.dsc, plain.high - plain.dsc]
    feats = np.stack([label_features(scores + shift, weights, mask_slices=population,
                                     z_extent=extent, shape=shape, probes=probes,
                                     slice_mm=slice_mm, volume_ends=volume_ends,
                                     parts=parts, prior=prior)
                      for shift in shifts])
    # one call for the value and both interval ends: a calibration evaluates rows together
    values = np.atleast_1d(calibration.apply(feats)).astype(np.float64)
    dsc = float(values[0])
    if bands is not None:
        low, high = bands.interval(dsc)
        return Aggregate(dsc, float(low), float(high), plain.std, feats[0])
    if values.size == 1:
        return Aggregate(dsc, float("nan"), float("nan"), plain.std, feats[0])
    return Aggregate(dsc, float(values.min()), float(values.max()), plain.std, feats[0])


_PRIORS: dict[int, tuple[Any, Any]] = {}  # id(calibration) -> (calibration, its priors)


def structure_prior(calibration: Calibration, structure: str | None) -> float | None:
    """The prior of ``structure`` stored with ``calibration`` (None when the calibration reads
    no :data:`PRIOR_FEATURES` or stores no priors; NaN when it has none for this structure)."""
    if not any(n in PRIOR_FEATURES for n in getattr(calibration, "names", ())):
        return None
    priors = _stored_priors(calibration)
    return None if priors is None else priors.value(structure)


def _stored_priors(calibration: Calibration) -> Any:
    """The :class:`~qsaudit.inference.priors.StructurePriors` stored with ``calibration``
    (None without), read from its JSON once per calibration object."""
    held = _PRIORS.get(id(calibration))
    if held is None or held[0] is not calibration:
        from qsaudit.inference.priors import calibration_priors

        if len(_PRIORS) > 8:
            _PRIORS.clear()
        held = (calibration, calibration_priors(calibration))
        _PRIORS[id(calibration)] = held
    return held[1]


def with_priors(features: np.ndarray, structures: Any, calibration: Calibration) -> np.ndarray:
    """A copy of label features (N, len(FEATURES)) with the :data:`PRIOR_FEATURES` of each
    label's structure (``structures`` (N,); None: every structure unknown) from
    ``calibration``'s stored priors, as the scan reads them (unchanged for a calibration that
    reads none): for code that applies a stored calibration to features computed without the
    structure's prior (a label table)."""
    out = np.array(features, dtype=np.float64, copy=True)
    if not any(n in PRIOR_FEATURES for n in getattr(calibration, "names", ())):
        return out
    priors = _stored_priors(calibration)
    set_prior_features(out, np.full(out.shape[0], np.nan)
                       if priors is None or structures is None else priors.values(structures))
    return out


@lru_cache(maxsize=1024)
def _t_quantile(p: float, df: float) -> float:
    """Student-t quantile (``scipy.stats.t.ppf``, through scipy.special: a 4x lighter import)."""
    from scipy.special import stdtrit

    return float(stdtrit(df, p))
