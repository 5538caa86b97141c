"""Fit the label calibration (learned aggregation) on held-out labels with known 3D Dice.

Numpy only. Each held-out candidate mask (a *group* of a validation :class:`SampleSet`) gives
one feature vector (:func:`qsaudit.inference.aggregate.label_features`) and its true 3D Dice.
Two fits: boosted regression trees (``qsaudit.training.boosting``; they see interactions
between the slice scores and the mask's shape) and a ridge regression on
standardised features followed by isotonic regression (pool-adjacent-violators) of the true
Dice on the linear score (:class:`~qsaudit.inference.aggregate.LabelCalibration`). Both are
stored as plain JSON in the model file. Reported metrics are cross-validated by patient, so they
are honest about labels the fit has not seen; both fits are always measured, and by default
the one with the lower cross-validated MAE is kept (ridge on a few dozen labels, trees on
thousands). The kept fit's cross-validated errors also size its prediction intervals
(``qsaudit.inference.intervals``), stored in its ``info["intervals"]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qsaudit.analyses.evaluate import mae, pearson
from qsaudit.inference.aggregate import (
    FEATURES,
    PRIOR_FEATURES,
    SLICE_FEATURES,
    LabelCalibration,
    aggregate,
    label_features,
    set_prior_features,
)
from qsaudit.inference.intervals import StructureBands, fit_error_bands
from qsaudit.inference.novelty import feature_ranges
from qsaudit.inference.priors import PRIORS_KEY, StructurePriors, leave_patient_out
from qsaudit.registry import is_target_volume
from qsaudit.training.samples import SampleSet

MIN_GROUPS = 20  # fewer held-out labels than this: no calibration is fitted


@dataclass
class LabelTable:
    """Per held-out label: ``features`` (G, F), ``true`` (G,) 3D Dice, ``plain`` (G,) the
    uncalibrated area-weighted mean, ``patients`` (G,) patient ids, ``sources`` (G,),
    ``structures`` (G,) structure names (None in tables saved before they were kept),
    ``cases`` (G,) case ids (a resolution copy's ``<case>@<pixel>mm``; None in older tables)."""

    features: np.ndarray
    true: np.ndarray
    plain: np.ndarray
    patients: np.ndarray
    sources: np.ndarray
    structures: np.ndarray | None = None
    cases: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.true.size)

    def copies(self) -> np.ndarray:
        """Which labels (G,) come from resolution copies of a case (none without ``cases``)."""
        from qsaudit.training.cases import is_resolution_copy

        if self.cases is None:
            return np.zeros(len(self), dtype=bool)
        return np.array([is_resolution_copy(c) for c in self.cases], dtype=bool)

    def save(self, path: str | Path) -> Path:
        """Write the table atomically as ``.npz`` (with the feature names, to check on load)."""
        from qsaudit.atomic import write_with

        def write(tmp: Path) -> None:
            extra = {name: values.astype(str)
                     for name, values in (("structures", self.structures), ("cases", self.cases))
                     if values is not None}
            with open(tmp, "wb") as fh:  # a file object: numpy adds no ".npz" to the name
                np.savez(fh, features=self.features, names=np.array(FEATURES), true=self.true,
                         plain=self.plain, patients=self.patients.astype(str),
                         sources=self.sources.astype(str), **extra)

        return write_with(Path(path), write)

    @classmethod
    def load(cls, path: str | Path) -> LabelTable:
        """Read a table written by :meth:`save`; ValueError when it is not one of this
        qsaudit's (unreadable, fields missing, other features)."""
        try:
            saved = np.load(path)
            names = [str(n) for n in saved["names"]]
            table = cls(saved["features"].astype(np.float64), saved["true"].astype(np.float64),
                        saved["plain"].astype(np.float64), saved["patients"].astype(object),
                        saved["sources"].astype(object),
                        saved["structures"].astype(object) if "structures" in saved else None,
                        saved["cases"].astype(object) if "cases" in saved else None)
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"not a calibration table ({exc})") from None
        unknown = [n for n in names if n not in FEATURES]
        if unknown or names != [n for n in FEATURES if n in names]:
            raise ValueError(f"its features {names} are not this qsaudit's")
        if names != list(FEATURES):  # saved before later features existed: those are unknown
            full = np.full((len(table), len(FEATURES)), np.nan)
            full[:, [FEATURES.index(n) for n in names]] = table.features
            table.features = full
        return table


def label_table(samples: SampleSet, slice_pred: np.ndarray,
                probe_pred: np.ndarray | None = None) -> LabelTable:
    """Group the slice predictions (N,) of ``samples`` by candidate and compute the features.

    Slices of a group are in ascending axial order (as validation samples are built); a
    group's ``mask_slices``/``z_extent`` fields are used when present, and its ``shape``
    (the mask's shape features; NaN when absent). ``probe_pred`` (P,): the predictions of
    ``samples.probe_inputs`` (None: probe features unknown, NaN); a group's first
    ``end_probes`` of them are its end probes and the rest its part probes (a group without
    that field, from a set built before part probes: all end probes, ``part_min`` NaN).
    """
    pred = np.clip(np.asarray(slice_pred, dtype=np.float64), 0.0, 1.0)
    probes_of: dict[int, list[float]] | None = None
    if probe_pred is not None and samples.probe_groups is not None:
        probe_pred = np.asarray(probe_pred, dtype=np.float64).ravel()
        if probe_pred.size != samples.probe_groups.size:
            raise ValueError(f"label_table: {probe_pred.size} probe predictions for "
                             f"{samples.probe_groups.size} probes")
        probes_of = {}
        for g, v in zip(samples.probe_groups.tolist(), probe_pred.tolist(), strict=True):
            probes_of.setdefault(int(g), []).append(v)
    feats, true, plain, patients, sources, structures, cases = [], [], [], [], [], [], []
    order = np.argsort(samples.groups, kind="stable")
    bounds = np.flatnonzero(np.diff(samples.groups[order])) + 1
    for part in np.split(order, bounds):
        if part.size == 0:
            continue
        group = int(samples.groups[part[0]])
        g = samples.group_table[group]
        areas = samples.areas[part].astype(np.float64)
        shape = g.get("shape")
        probes = parts = None
        if probes_of is not None:  # a group without probes: both ends at the volume's edge
            probes = np.asarray(probes_of.get(group, []), dtype=np.float64)
            if "end_probes" in g:  # its part probes follow its end probes (older sets: none)
                probes, parts = probes[:int(g["end_probes"])], probes[int(g["end_probes"]):]
        feats.append(label_features(pred[part], areas, mask_slices=g.get("mask_slices"),
                                    z_extent=g.get("z_extent"), slice_mm=g.get("slice_mm"),
                                    shape=None if shape is None else np.asarray(shape),
                                    probes=probes, volume_ends=g.get("volume_ends"),
                                    parts=parts))
        plain.append(aggregate(pred[part], areas, method="area_weighted").dsc)
        true.append(float(g["true_dsc"]))
        patients.append(str(g["patient_id"]))
        sources.append(str(g.get("source", "")))
        structures.append(str(g.get("structure", "")))
        cases.append(str(g.get("case_id", "")))
    f = len(FEATURES)
    return LabelTable(np.asarray(feats, dtype=np.float64).reshape(-1, f),
                      np.asarray(true, dtype=np.float64), np.asarray(plain, dtype=np.float64),
                      np.asarray(patients, dtype=object), np.asarray(sources, dtype=object),
                      np.asarray(structures, dtype=object), np.asarray(cases, dtype=object))


def isotonic(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Non-decreasing least-squares fit of ``y`` on ``x`` by pool-adjacent-violators.

    Returns knots ``(kx, ky)``: one per pooled block, at the block's weighted mean ``x`` with
    its weighted mean ``y``; ``np.interp(t, kx, ky)`` is the fitted monotone function.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    # blocks as parallel stacks: weight, weighted sum of y, weighted sum of x
    bw: list[float] = []
    by: list[float] = []
    bx: list[float] = []
    for i in order:
        bw.append(w[i])
        by.append(w[i] * y[i])
        bx.append(w[i] * x[i])
        while len(bw) > 1 and by[-2] / bw[-2] >= by[-1] / bw[-1]:
            wl, yl, xl = bw.pop(), by.pop(), bx.pop()
            bw[-1] += wl
            by[-1] += yl
            bx[-1] += xl
    bw_a = np.asarray(bw)
    return np.asarray(bx) / bw_a, np.asarray(by) / bw_a


def fit_calibration(features: np.ndarray, true: np.ndarray, *, ridge: float = 1.0,
                    names: tuple[str, ...] = FEATURES, weights: np.ndarray | None = None,
                    info: dict[str, Any] | None = None) -> LabelCalibration:
    """Ridge on standardised ``features`` (G, len(FEATURES)), then isotonic on the linear score.

    ``true`` (G,) 3D Dice in [0, 1]; ``ridge`` is the L2 penalty in units of "one label"
    (features are standardised, so it is scale-free). Constant features get scale 1.
    ``names``: the features to use (default all); a feature unknown (NaN) for every label is
    left out, and a NaN elsewhere counts as that feature's mean. ``weights`` (G,) > 0:
    weighted ridge and isotonic fits (e.g. every patient counting once).
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(true, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != y.size or x.shape[1] != len(FEATURES):
        raise ValueError(f"fit_calibration: features {x.shape} do not match targets {y.shape}")
    known = ~np.isnan(x).all(axis=0)
    names = tuple(n for n in FEATURES if n in names and known[FEATURES.index(n)])
    x = x[:, [FEATURES.index(n) for n in names]]
    x = np.where(np.isnan(x), np.nanmean(x, axis=0), x)
    w = np.ones(y.size) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w * (w.size / w.sum())  # mean 1: the ridge penalty keeps its "one label" unit
    center = np.average(x, axis=0, weights=w)
    scale = np.sqrt(np.average((x - center) ** 2, axis=0, weights=w))
    scale[scale < 1e-9] = 1.0
    z = (x - center) / scale
    y0 = float(np.average(y, weights=w))
    coef = np.linalg.solve((z * w[:, None]).T @ z + ridge * np.eye(z.shape[1]),
                           (z * w[:, None]).T @ (y - y0))
    score = z @ coef + y0
    kx, ky = isotonic(score, y, w)
    return LabelCalibration(center=center, scale=scale, coef=coef, intercept=float(y0),
                            knots_x=kx, knots_y=np.clip(ky, 0.0, 1.0), info=dict(info or {}),
                            names=names)


METHODS = ("auto", "trees", "ridge")  # auto: whichever has the lower cross-validated MAE


def patient_weights(patients: np.ndarray) -> np.ndarray:
    """Per-label weights (mean 1) under which every patient counts once, however many labels
    it has (a phantom has ~4x the labels of an OpenKBP patient: unweighted, the fit would
    follow the phantoms)."""
    _keys, inverse, counts = np.unique(np.asarray(patients, dtype=str), return_inverse=True,
                                      return_counts=True)
    w = 1.0 / counts[inverse]
    return w * (w.size / w.sum())


def phantom_patients(patients: np.ndarray) -> np.ndarray:
    """Which labels (G,) belong to phantoms (patient ids ``phantom...``) rather than real CT."""
    return np.array([str(p).startswith("phantom") for p in patients], dtype=bool)


def patient_folds(patients: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """The fold (G,) of every label: patients shuffled by ``seed``, dealt round-robin (the Dice
    calibration and the error classifier are cross-validated on the same folds)."""
    unique = np.array(sorted(set(np.asarray(patients, dtype=str).tolist())), dtype=object)
    rng = np.random.default_rng(seed)
    rng.shuffle(unique)
    folds = max(2, min(folds, unique.size))
    fold_of = {p: i % folds for i, p in enumerate(unique)}
    return np.array([fold_of[str(p)] for p in patients], dtype=np.int64)


def fit_method(method: str, features: np.ndarray, true: np.ndarray, *, ridge: float = 1.0,
               names: tuple[str, ...] = FEATURES, seed: int = 0,
               weights: np.ndarray | None = None, info: dict[str, Any] | None = None) -> Any:
    """A calibration of kind ``method`` (``trees`` or ``ridge``) fitted on full feature rows."""
    if method == "trees":
        from qsaudit.training.boosting import BoostConfig, fit_tree_calibration

        return fit_tree_calibration(features, true, names=names, config=BoostConfig(seed=seed),
                                    weights=weights, info=info)
    if method == "ridge":
        return fit_calibration(features, true, ridge=ridge, names=names, weights=weights,
                               info=info)
    raise ValueError(f'calibration method "{method}": choose from {", ".join(METHODS)}')


def cross_validated(table: LabelTable, *, folds: int = 5, ridge: float = 1.0,
                    seed: int = 0, names: tuple[str, ...] = FEATURES,
                    method: str = "ridge") -> np.ndarray:
    """Calibrated predictions (G,) of every label from a fit (``method``, features ``names``)
    on the other patients' labels, the structure priors too taken from those patients alone."""
    which = patient_folds(table.patients, folds, seed)
    out = np.full(len(table), np.nan)
    for k in np.unique(which):
        test = which == k
        if test.all():
            continue
        features = _fold_features(table, ~test)
        cal = fit_method(method, features[~test], table.true[~test], ridge=ridge,
                         names=names, seed=seed,
                         weights=patient_weights(table.patients[~test]))
        out[test] = cal.apply(features[test])
    return out


def _r(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r over the labels where both values are known."""
    ok = ~(np.isnan(a) | np.isnan(b))
    return pearson(a[ok], b[ok])


def _mae(a: np.ndarray, b: np.ndarray) -> float:
    """MAE over the labels where both values are known."""
    ok = ~(np.isnan(a) | np.isnan(b))
    return mae(a[ok], b[ok])


def calibrate(samples: SampleSet, slice_pred: np.ndarray, *, ridge: float = 1.0,
              seed: int = 0, method: str = "auto", probe_pred: np.ndarray | None = None
              ) -> tuple[Any, dict[str, Any]]:
    """Fit a calibration on held-out ``samples`` and measure it.

    ``probe_pred``: predictions of ``samples.probe_inputs`` (see :func:`label_table`).

    Returns ``(calibration, metrics)``; calibration is None with fewer than
    :data:`MIN_GROUPS` labels or fewer than 2 patients. ``metrics``: label-level r / MAE
    uncalibrated (``label_r``, ``label_mae``) and calibrated by ``method``, cross-validated
    by patient (``label_r_calibrated``, ``label_mae_calibrated``; ``auto`` takes the fit with
    the lower cross-validated MAE, named in ``method``); for comparison the same for
    ``..._trees``, ``..._ridge`` and ``..._ridge_slice_features`` (ridge without the mask's
    shape features); the MAE of perfect labels both ways, and the slice-level bias (mean
    prediction - target) overall and for targets >= 0.95.
    """
    if method not in METHODS:
        raise ValueError(f'calibration method "{method}": choose from {", ".join(METHODS)}')
    pred = np.clip(np.asarray(slice_pred, dtype=np.float64), 0.0, 1.0)
    targets = samples.targets.astype(np.float64)
    high = targets >= 0.95
    slice_metrics = {
        "slice_bias": float((pred - targets).mean()) if pred.size else float("nan"),
        "slice_bias_dsc_ge_0.95": float((pred[high] - targets[high]).mean())
        if high.any() else float("nan"),
    }
    calibration, metrics = calibrate_table(label_table(samples, pred, probe_pred), ridge=ridge,
                                           seed=seed, method=method)
    return calibration, {**slice_metrics, **metrics}


def _prior_sources(table: LabelTable) -> tuple[np.ndarray, np.ndarray]:
    """The labels' area-weighted scores (G,) and which of them are correct real-CT labels (G,),
    the labels structure priors are taken from. A phantom's correct labels are left out: what
    the network scores on a phantom does not say what it scores on a real image (session 24)."""
    score = table.features[:, FEATURES.index("area_mean")]
    return score, np.asarray(table.sources == "perfect", dtype=bool) \
        & ~phantom_patients(table.patients)


def add_priors(table: LabelTable, priors: StructurePriors | None = None
               ) -> StructurePriors | None:
    """Fill the table's :data:`PRIOR_FEATURES` (in place) and return the priors of all its real
    patients (for the scan). Without ``priors`` each label's prior comes from the other patients'
    correct real-CT labels (``qsaudit.inference.priors``); with them (another table's, e.g. a
    fit's for its test labels) every label takes its structure's. None, and the features left
    unknown, for a table without structure names."""
    if table.structures is None:
        return None
    if priors is not None:
        set_prior_features(table.features, priors.values(table.structures))
        return priors
    score, correct = _prior_sources(table)
    set_prior_features(table.features,
                       leave_patient_out(table.structures, table.patients, score, correct))
    return StructurePriors.fit(table.structures[correct], table.patients[correct], score[correct])


def _fold_features(table: LabelTable, train: np.ndarray) -> np.ndarray:
    """The table's features (a copy) with structure priors taken from the ``train`` (G,) labels'
    patients alone: leave-patient-out among them for their own labels, all of them for the
    others (a cross-validation fold never reads a held-out patient's score in a prior). The
    features themselves when the table has no structure names or no priors filled."""
    cols = [FEATURES.index(n) for n in PRIOR_FEATURES]
    if table.structures is None or np.isnan(table.features[:, cols]).all():
        return table.features
    score, correct = _prior_sources(table)
    features = table.features.copy()
    prior = np.full(len(table), np.nan)
    prior[train] = leave_patient_out(table.structures[train], table.patients[train],
                                     score[train], correct[train])
    fold = StructurePriors.fit(table.structures[correct & train],
                               table.patients[correct & train], score[correct & train])
    prior[~train] = fold.values(table.structures[~train])
    set_prior_features(features, prior)
    return features


MIN_REAL_FOR_INTERVALS = 200  # real-CT labels needed to size the intervals on them alone


def interval_bands(cross_validated_pred: np.ndarray, true: np.ndarray, *,
                   real: np.ndarray, target: np.ndarray | None = None) -> StructureBands:
    """The calibration's prediction-interval bands (``qsaudit.inference.intervals``) from its
    cross-validated predictions: sized on the real-CT labels alone when there are at least
    :data:`MIN_REAL_FOR_INTERVALS` (scans are of real CT, whose errors are larger than the
    phantoms'), else on all labels. ``target`` (G,) marks radiotherapy target volumes: when
    real CT has that many labels both of them and of anatomical structures, each gets its own."""
    p, t = cross_validated_pred, true
    real = np.asarray(real, dtype=bool)
    if target is not None:
        target = np.asarray(target, dtype=bool)
        organs, targets = real & ~target, real & target
        if min(organs.sum(), targets.sum()) >= MIN_REAL_FOR_INTERVALS:
            return StructureBands(
                fit_error_bands(p[organs], t[organs], reference="real CT, anatomical structures"),
                fit_error_bands(p[targets], t[targets],
                                reference="real CT, radiotherapy target volumes"))
    if int(real.sum()) >= MIN_REAL_FOR_INTERVALS:
        return StructureBands(fit_error_bands(p[real], t[real], reference="real CT"))
    return StructureBands(fit_error_bands(p, t, reference="all calibration labels"))


def reference_population(table: LabelTable, *, real: np.ndarray) -> dict[str, Any]:
    """What the novelty check (``qsaudit.inference.novelty``) compares a scanned label with:
    the real-CT labels when there are enough of them (:data:`MIN_REAL_FOR_INTERVALS`), their
    resolution copies included (the intervals are sized on the originals, but the copies show
    the same structures at the pixel sizes users scan; ``name_prior`` left out, as a property of
    the name that the name check weighs), so a structure seen only on phantoms, or
    a real label whose features leave the real labels' range, counts as novel: its errors on
    real CT were never measured. ``feature_ranges``: their features' range;
    ``reference_structures``: their structure names."""
    real = np.asarray(real, dtype=bool)
    keep = real if int(real.sum()) >= MIN_REAL_FOR_INTERVALS else np.ones(len(table), bool)
    reference = table.features[keep].copy()
    # a structure's prior is a property of its name, which the name check already weighs
    reference[:, FEATURES.index("name_prior")] = np.nan
    out: dict[str, Any] = {"feature_ranges": feature_ranges(reference, FEATURES).to_json()}
    if table.structures is not None:
        out["reference_structures"] = sorted({str(s) for s in table.structures[keep]})
    return out


def calibrate_table(table: LabelTable, *, ridge: float = 1.0, seed: int = 0,
                    method: str = "auto", errors: bool = True) -> tuple[Any, dict[str, Any]]:
    """:func:`calibrate` from a per-label table (e.g. one saved by ``calibrate --table``).

    Fits weigh every patient once (:func:`patient_weights`); the reported r / MAE weigh every
    label once, per source in ``..._phantoms`` / ``..._real`` (patient ids ``phantom...``).
    ``errors``: also fit the error classifier (``qsaudit.training.error_fit``; its metrics are
    ``errors_...``) and store it in the calibration's ``info["errors"]``. The table's
    :data:`PRIOR_FEATURES` are filled in place (:func:`add_priors`) and the priors stored in the
    calibration's ``info``.
    """
    if method not in METHODS:
        raise ValueError(f'calibration method "{method}": choose from {", ".join(METHODS)}')
    priors = add_priors(table)
    metrics: dict[str, Any] = {
        "n_labels": len(table), "n_patients": len(set(table.patients.tolist())),
        "label_r": _r(table.plain, table.true), "label_mae": _mae(table.plain, table.true),
    }
    perfect = table.sources == "perfect"
    if perfect.any():
        metrics["perfect_mae"] = _mae(table.plain[perfect], table.true[perfect])
    if len(table) < MIN_GROUPS or metrics["n_patients"] < 2:
        metrics["calibration"] = f"skipped: {len(table)} labels of {metrics['n_patients']} " \
            f"patient(s) (need {MIN_GROUPS} labels of 2+)"
        return None, metrics
    variants = {"trees": {"method": "trees"}, "ridge": {"method": "ridge"},
                "ridge_slice_features": {"method": "ridge", "names": SLICE_FEATURES}}
    cvs: dict[str, np.ndarray] = {}
    for name, kw in variants.items():
        other = cross_validated(table, ridge=ridge, seed=seed, **kw)
        metrics[f"label_r_calibrated_{name}"] = _r(other, table.true)
        metrics[f"label_mae_calibrated_{name}"] = _mae(other, table.true)
        cvs[name] = other
    if method == "auto":
        method = min(("trees", "ridge"), key=lambda m: metrics[f"label_mae_calibrated_{m}"])
    cv = cvs[method]
    metrics.update(method=method, label_r_calibrated=_r(cv, table.true),
                   label_mae_calibrated=_mae(cv, table.true))
    phantom = phantom_patients(table.patients)
    for name, part in (("phantoms", phantom), ("real", ~phantom)):
        if part.sum() > 2:
            metrics[f"label_r_calibrated_{name}"] = _r(cv[part], table.true[part])
            metrics[f"label_mae_calibrated_{name}"] = _mae(cv[part], table.true[part])
    if perfect.any():
        metrics["perfect_mae_calibrated"] = _mae(cv[perfect], table.true[perfect])
    target = None if table.structures is None else \
        np.array([is_target_volume(str(s)) for s in table.structures], dtype=bool)
    # the bands are sized on the labels as they were scanned: a resolution copy is the same
    # patient's label resampled, not a new one, and its errors are smaller, so counting the
    # copies narrowed the bands below their level on held-out real CT (session 12, OpenKBP
    # test patients: coverage 0.890 at width 0.47 with them, 0.918 at 0.49 without). The
    # copies still teach the trees and widen the novelty check's reference to fine pixels.
    scanned = ~phantom & ~table.copies()
    if int(scanned.sum()) < MIN_REAL_FOR_INTERVALS:  # too few originals: the copies too
        scanned = ~phantom
    bands = interval_bands(cv, table.true, real=scanned, target=target)
    metrics.update(interval_reference=bands.default.reference, interval_level=bands.default.level,
                   interval_mean_width=float(np.mean(bands.default.high - bands.default.low)))
    if bands.targets is not None:
        metrics["interval_mean_width_targets"] = float(np.mean(bands.targets.high
                                                               - bands.targets.low))
    info = {"n_labels": len(table), "n_patients": metrics["n_patients"], "method": method,
            "ridge": ridge, **{k: metrics[k] for k in ("label_r", "label_mae",
                                                       "label_r_calibrated",
                                                       "label_mae_calibrated")},
            "intervals": bands.default.to_json(),
            **reference_population(table, real=~phantom)}
    if priors is not None:
        info[PRIORS_KEY] = priors.to_json()
    if bands.targets is not None:
        info["intervals_targets"] = bands.targets.to_json()
    if errors:
        from qsaudit.inference.error_model import INFO_KEY
        from qsaudit.training.error_fit import fit_errors

        classifier, error_metrics = fit_errors(table, seed=seed)
        metrics.update(error_metrics)
        if classifier is not None:
            info[INFO_KEY] = classifier.to_json()
    return fit_method(method, table.features, table.true, ridge=ridge, seed=seed,
                      weights=patient_weights(table.patients), info=info), metrics
