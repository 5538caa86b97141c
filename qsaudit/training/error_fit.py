"""Fit the error classifier (``qsaudit.inference.error_model``) on the calibration's labels.

Every held-out candidate of the label calibration was made by a known degradation (or is the
trusted label itself, or another structure's mask), so its error kind is known
(:func:`qsaudit.inference.error_kinds.kind_of_source`): the classifier learns the kind from the
same label features the calibration reads. Network snapshots have no single kind and are left
out of the fit unless they are right (true Dice >= NONE_DSC: ``none``). Fits are measured by
cross-validation by patient (as the calibration is): multinomial boosted trees (``boosted``,
``qsaudit.training.boosting.fit_softmax_trees``), one-vs-rest boosted regression trees
(``trees``, the first choice) and a multinomial logistic regression (``softmax``); by default
``boosted`` and ``softmax`` are compared and the one with the higher cross-validated top-1
accuracy over bad labels (true Dice < :data:`BAD_DSC`) is kept.

On the fit's cross-validated probabilities two more things are fitted: a calibration (a power
and a bias per kind, by maximum likelihood) that makes ``likely_error_p`` a real probability,
and the none rule: the smallest factor on p(none) under which :data:`NONE_TARGET` of the
perfect labels (every patient counting once) are called ``none``, and at least
:data:`DOMAIN_NONE_FLOOR` of those of real CT and of phantoms apart (real CT's resolution
copies count as real CT: they are real anatomy at the pixel sizes users scan). Both are
measured nested: the labels of each fold are decided by a rule fitted on the other folds.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from qsaudit.inference.error_kinds import ERROR_KINDS, kind_of_source
from qsaudit.inference.error_model import (
    CLASSIFIER_FEATURES,
    RAW_FLOOR,
    ErrorClassifier,
    calibrate_probabilities,
    classifier_rows,
    decide,
    none_factors,
    target_rows,
)

BAD_DSC = 0.8  # accuracy is reported over labels with a true Dice below this
METHODS = ("auto", "boosted", "trees", "softmax")
AUTO_METHODS = ("boosted", "softmax")  # what "auto" compares (one-vs-rest trees lost to both)
MIN_PER_KIND = 5  # a kind with fewer training labels than this is not offered
NONE_TARGET = 0.9  # the none rule calls at least this share of perfect labels `none`
DOMAIN_NONE_FLOOR = 0.90  # ... and at least this share of each domain's (real CT, phantoms)
MAX_NONE_FACTOR = 5.0  # the none rule never weighs p(none) more than this
MAX_NONE_FACTOR_TARGETS = 20.0  # nor that of a target volume (whose kind it rarely knows)
MIN_TARGET_PERFECT = 20  # perfect target volumes needed to fit their own none factor
MIN_DOMAIN_PERFECT = 20  # perfect labels a domain needs to bound the none factor


class TooFewKinds(ValueError):
    """The labels hold fewer than two error kinds with :data:`MIN_PER_KIND` labels each: there
    is nothing to tell apart (small data, or a cross-validation fold of it)."""


def table_kinds(table: Any) -> np.ndarray:
    """The error kind (or None) of every label of a ``LabelTable`` (G,) object."""
    return np.array([kind_of_source(s, t) for s, t in zip(table.sources, table.true, strict=True)],
                    dtype=object)


def table_rows(table: Any) -> np.ndarray:
    """Classifier rows (G, len(CLASSIFIER_FEATURES)) of a ``LabelTable``."""
    structures = table.structures if table.structures is not None else [None] * len(table)
    return classifier_rows(table.features, structures)


def fit_error_classifier(rows: np.ndarray, kinds: np.ndarray, *, method: str = "trees",
                         weights: np.ndarray | None = None, seed: int = 0,
                         info: dict[str, Any] | None = None) -> ErrorClassifier:
    """An :class:`ErrorClassifier` from classifier rows (N, len(CLASSIFIER_FEATURES)) and their
    kinds (N,) (names from ERROR_KINDS). ``weights`` (N,) > 0: e.g. every patient counting once.
    Kinds with fewer than :data:`MIN_PER_KIND` labels are left out; a feature unknown for
    every row is not used, other NaNs count as the feature's mean."""
    x = np.asarray(rows, dtype=np.float64)
    kinds = np.asarray(kinds, dtype=object)
    if x.ndim != 2 or x.shape[1] != len(CLASSIFIER_FEATURES) or x.shape[0] != kinds.size:
        raise ValueError(f"fit_error_classifier: rows {x.shape} for {kinds.size} kinds")
    present = [k for k in ERROR_KINDS if int(np.sum(kinds == k)) >= MIN_PER_KIND]
    keep = np.isin(kinds, present)
    if len(present) < 2:
        raise TooFewKinds("fit_error_classifier: fewer than two kinds with enough labels")
    x, kinds = x[keep], kinds[keep]
    w = np.ones(kinds.size) if weights is None else np.asarray(weights, dtype=np.float64)[keep]
    w = w * (w.size / w.sum())
    known = ~np.isnan(x).all(axis=0)
    names = tuple(n for n, k in zip(CLASSIFIER_FEATURES, known, strict=True) if k)
    x = x[:, known]
    fill = np.nanmean(x, axis=0)
    x = np.where(np.isnan(x), fill, x)
    y = np.array([present.index(k) for k in kinds])
    common = {"kinds": tuple(present), "names": names, "fill": fill, "info": dict(info or {})}
    if method == "softmax":
        return ErrorClassifier(method="softmax", **common, **_fit_softmax(x, y, len(present), w))
    if method == "boosted":
        from qsaudit.training.boosting import fit_softmax_trees

        config = _boosted_config(seed)
        base, trees = fit_softmax_trees(x, y, len(present), config, weights=w)
        return ErrorClassifier(method="boosted", base=base, rate=config.rate,
                               trees=tuple(tuple(t) for t in trees), **common)
    if method == "trees":
        from qsaudit.training.boosting import fit_trees

        config = _tree_config(seed)
        fits = [fit_trees(x, (y == k).astype(np.float64), config, weights=w)
                for k in range(len(present))]
        return ErrorClassifier(method="trees", base=np.array([b for b, _ in fits]),
                               rate=config.rate, trees=tuple(tuple(t) for _, t in fits),
                               **common)
    raise ValueError(f'error classifier method "{method}": choose from {", ".join(METHODS)}')


def _tree_config(seed: int) -> Any:
    """Boosting settings of the one-vs-rest trees: shallower and fewer than the calibration's
    (eleven forests must stay a small part of the model file)."""
    from qsaudit.training.boosting import BoostConfig

    return BoostConfig(trees=120, rate=0.1, depth=4, min_leaf=20, subsample=0.8, bins=32,
                       seed=seed)


def _boosted_config(seed: int) -> Any:
    """Settings of the multinomial boosted trees (200 rounds of one depth-5 tree per kind):
    kept over 120 one-vs-rest trees of depth 4 by cross-validation (see the model card)."""
    from qsaudit.training.boosting import BoostConfig

    return BoostConfig(trees=200, rate=0.1, depth=5, min_leaf=20, subsample=0.8, bins=32,
                       seed=seed)


def _fit_softmax(x: np.ndarray, y: np.ndarray, k: int, w: np.ndarray, *,
                 l2: float = 1.0) -> dict[str, np.ndarray]:
    """Multinomial logistic regression on standardised ``x`` (N, F), classes ``y`` (N,) in
    [0, k), weights ``w``; L2 penalty ``l2`` in units of one label. L-BFGS (scipy)."""
    from scipy.optimize import minimize

    center = np.average(x, axis=0, weights=w)
    scale = np.sqrt(np.average((x - center) ** 2, axis=0, weights=w))
    scale[scale < 1e-9] = 1.0
    z = np.clip((x - center) / scale, -8.0, 8.0)
    n, f = z.shape
    onehot = np.zeros((n, k))
    onehot[np.arange(n), y] = 1.0

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        coef, bias = theta[:k * f].reshape(k, f), theta[k * f:]
        logits = z @ coef.T + bias
        logits -= logits.max(axis=1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        value = -float(np.sum(w[:, None] * onehot * logp)) + 0.5 * l2 * float(np.sum(coef ** 2))
        diff = (np.exp(logp) - onehot) * w[:, None]
        grad = np.concatenate([(diff.T @ z + l2 * coef).ravel(), diff.sum(axis=0)])
        return value, grad

    result = minimize(loss, np.zeros(k * f + k), jac=True, method="L-BFGS-B",
                      options={"maxiter": 500})
    theta = result.x
    return {"center": center, "scale": scale, "coef": theta[:k * f].reshape(k, f),
            "intercept": theta[k * f:]}


def cross_validated_probabilities(rows: np.ndarray, kinds: np.ndarray, patients: np.ndarray,
                                  *, method: str, folds: int = 5, seed: int = 0
                                  ) -> tuple[np.ndarray, np.ndarray]:
    """Every label's raw probabilities (G, len(ERROR_KINDS)) from a fit on the other patients'
    labels (kinds a fit does not offer get 0; labels of unknown kind are predicted, never
    fitted), and the fold (G,) of every label."""
    from qsaudit.training.calibration import patient_folds, patient_weights

    which = patient_folds(patients, folds, seed)
    known = np.array([k is not None for k in kinds])
    out = np.zeros((kinds.size, len(ERROR_KINDS)))
    for f in np.unique(which):
        test = which == f
        train = ~test & known
        if not train.any():
            continue
        clf = fit_error_classifier(rows[train], kinds[train], method=method, seed=seed,
                                   weights=patient_weights(patients[train]))
        columns = [ERROR_KINDS.index(k) for k in clf.kinds]
        out[np.ix_(test, columns)] = clf.probabilities(rows[test])
    return out, which


def fit_probability_calibration(p: np.ndarray, y: np.ndarray, w: np.ndarray
                                ) -> tuple[float, np.ndarray]:
    """``(power, bias (K,))`` of :func:`qsaudit.inference.error_model.calibrate_probabilities`
    maximising the weighted log-likelihood of the true kinds ``y`` (N,) (column indices of
    ``p`` (N, K), cross-validated raw probabilities); a small penalty keeps the biases of
    kinds never seen finite."""
    from scipy.optimize import minimize

    log_raw = np.log(np.clip(p, RAW_FLOOR, None))
    w = np.asarray(w, dtype=np.float64) / np.sum(w)
    k = p.shape[1]
    rows = np.arange(y.size)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        logits = theta[0] * log_raw + theta[1:]
        logits -= logits.max(axis=1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        value = -float(np.sum(w * logp[rows, y])) + 1e-3 * float(np.sum(theta[1:] ** 2))
        diff = np.exp(logp) * w[:, None]
        diff[rows, y] -= w
        grad = np.concatenate([[float(np.sum(diff * log_raw))],
                               diff.sum(axis=0) + 2e-3 * theta[1:]])
        return value, grad

    theta = minimize(loss, np.concatenate([[1.0], np.zeros(k)]), jac=True,
                     method="L-BFGS-B").x
    return float(theta[0]), theta[1:]


def none_factor_for(p: np.ndarray, perfect_w: np.ndarray, *, target: float = NONE_TARGET,
                    cap: float = MAX_NONE_FACTOR) -> float:
    """The smallest factor on p(none) (column 0 of calibrated probabilities ``p`` (N, K) of
    perfect labels, weighted ``perfect_w``) under which at least ``target`` of them are called
    ``none``; 1 when they already are, ``cap`` at most."""
    if p.shape[0] == 0:
        return 1.0
    w = np.asarray(perfect_w, dtype=np.float64)
    # label i is called none for every factor >= max(other kinds) / p(none)
    need = np.max(p[:, 1:], axis=1) / np.clip(p[:, 0], 1e-12, None)
    order = np.argsort(need)
    share = np.cumsum(w[order]) / w.sum()
    factor = float(need[order][np.searchsorted(share, target - 1e-9)]) \
        if share[-1] >= target - 1e-9 else cap
    return float(np.clip(factor, 1.0, cap))


def _group_factor(calibrated: np.ndarray, w: np.ndarray, domains: np.ndarray | None, *,
                  cap: float, floor: float | None = None) -> float:
    """The none factor of one group of perfect labels (calibrated probabilities (N, K),
    weights (N,)): the smallest that calls :data:`NONE_TARGET` of them all ``none`` and at
    least ``floor`` (default :data:`DOMAIN_NONE_FLOOR`) of the labels of each domain with at
    least :data:`MIN_DOMAIN_PERFECT` of them (all labels together without ``domains``).

    A floor below the target keeps the domain that needs the largest factor from setting it
    for all (session 12: real CT then drove the factor to its cap and a tenth of the phantoms'
    bad labels were called ``none``); session 14's table meets the target in every domain at a
    90% floor with top-1 to spare (model card)."""
    floor = DOMAIN_NONE_FLOOR if floor is None else floor
    factor = none_factor_for(calibrated, w, cap=cap)
    if domains is not None:
        for domain in sorted(set(domains.tolist()), key=str):
            part = domains == domain
            if int(part.sum()) >= MIN_DOMAIN_PERFECT:
                factor = max(factor, none_factor_for(calibrated[part], w[part], cap=cap,
                                                     target=floor))
    return factor


def _decision_rule(p: np.ndarray, kinds: np.ndarray, perfect: np.ndarray, w: np.ndarray,
                   targets: np.ndarray | None = None, domains: np.ndarray | None = None
                   ) -> tuple[float, np.ndarray, float, float | None]:
    """``(power, bias, none_factor, none_factor_targets)`` fitted on cross-validated raw
    probabilities ``p`` (N, len(ERROR_KINDS)) of labels of kinds ``kinds`` (None: not used for
    the calibration).

    ``targets`` (N,) marks radiotherapy target volumes: with at least
    :data:`MIN_TARGET_PERFECT` perfect ones they get their own none factor, capped at
    :data:`MAX_NONE_FACTOR_TARGETS` (a correct PTV looks unlike a correct organ: its edge is a
    margin, not an edge of the CT, and the classifier names a bad PTV's kind only half the
    time), and the anatomical structures' factor is fitted without them; else None and one
    factor for all. ``domains`` (N,) (e.g. real CT / phantoms): each factor must also reach
    :data:`DOMAIN_NONE_FLOOR` on every domain's perfect labels, not only the target on all
    together (perfect real labels look less right to the classifier than perfect phantom
    labels, and users scan real CT).
    """
    known = np.array([k is not None for k in kinds])
    y = np.array([ERROR_KINDS.index(k) for k in kinds[known]], dtype=np.int64)
    power, bias = fit_probability_calibration(p[known], y, w[known])
    calibrated = calibrate_probabilities(p[perfect], power, bias)
    wp = w[perfect]
    dp = None if domains is None else np.asarray(domains, dtype=object)[perfect]
    t = np.zeros(int(perfect.sum()), dtype=bool) if targets is None else \
        np.asarray(targets, dtype=bool)[perfect]
    if int(t.sum()) < MIN_TARGET_PERFECT or not (~t).any():
        return power, bias, _group_factor(calibrated, wp, dp, cap=MAX_NONE_FACTOR), None
    organs = _group_factor(calibrated[~t], wp[~t], None if dp is None else dp[~t],
                           cap=MAX_NONE_FACTOR)
    target_factor = _group_factor(calibrated[t], wp[t], None if dp is None else dp[t],
                                  cap=MAX_NONE_FACTOR_TARGETS)
    return power, bias, organs, target_factor


def ruled_kinds(p: np.ndarray, which: np.ndarray, kinds: np.ndarray, perfect: np.ndarray,
                w: np.ndarray, targets: np.ndarray | None = None,
                domains: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Nested measurement of the calibration and none rule: the labels of each fold are
    decided by a rule fitted on the other folds' cross-validated probabilities ``p``
    (``targets``, ``domains``: see :func:`_decision_rule`).
    Returns the kinds (G,), their calibrated probabilities (G,) and each fold's factor."""
    names = np.asarray(ERROR_KINDS, dtype=object)
    pred = np.full(kinds.size, None, dtype=object)
    prob = np.full(kinds.size, np.nan)
    t = np.zeros(kinds.size, dtype=bool) if targets is None else np.asarray(targets, bool)
    d = None if domains is None else np.asarray(domains, dtype=object)
    factors = []
    for f in np.unique(which):
        test, other = which == f, which != f
        power, bias, factor, factor_t = _decision_rule(p[other], kinds[other], perfect[other],
                                                       w[other], t[other],
                                                       None if d is None else d[other])
        q = calibrate_probabilities(p[test], power, bias)
        best = decide(q, ERROR_KINDS, none_factors(t[test], factor, factor_t))
        pred[test], prob[test] = names[best], q[np.arange(q.shape[0]), best]
        factors.append(round(factor, 3))
    return pred, prob, factors


def kind_metrics(true_kind: np.ndarray, pred_kind: np.ndarray, true_dsc: np.ndarray,
                 perfect: np.ndarray) -> dict[str, Any]:
    """``top1_bad``: share of labels with a known kind and true Dice < BAD_DSC whose kind is
    predicted (``n_bad`` of them); ``none_perfect``: share of perfect labels called ``none``."""
    known = np.array([k is not None for k in true_kind])
    bad = known & (np.asarray(true_dsc, dtype=np.float64) < BAD_DSC)
    out: dict[str, Any] = {"n_bad": int(bad.sum())}
    out["top1_bad"] = float(np.mean(pred_kind[bad] == true_kind[bad])) if bad.any() \
        else float("nan")
    perfect = np.asarray(perfect, dtype=bool)
    out["none_perfect"] = float(np.mean(pred_kind[perfect] == "none")) if perfect.any() \
        else float("nan")
    return out


def confusion(true_kind: np.ndarray, pred_kind: np.ndarray) -> dict[str, dict[str, int]]:
    """Counts ``{true kind: {predicted kind: n}}`` over the labels whose kinds are both known,
    in ERROR_KINDS order (kinds never seen left out)."""
    pairs = [(str(t), str(p)) for t, p in zip(true_kind, pred_kind, strict=True)
             if t is not None and p is not None]
    seen = {k for pair in pairs for k in pair}
    kinds = [k for k in ERROR_KINDS if k in seen]
    table = {t: dict.fromkeys(kinds, 0) for t in kinds}
    for t, p in pairs:
        table[t][p] += 1
    return table


def calibration_gap(prob: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the label-weighted mean |accuracy - mean probability| over
    ``bins`` equal-width bins of the probabilities ``prob`` (N,) of the kinds named."""
    prob = np.asarray(prob, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    which = np.clip((prob * bins).astype(np.int64), 0, bins - 1)
    gap = 0.0
    for b in np.unique(which):
        part = which == b
        gap += part.sum() * abs(float(correct[part].mean()) - float(prob[part].mean()))
    return gap / max(prob.size, 1)


def fit_errors(table: Any, *, seed: int = 0, method: str = "auto",
               folds: int = 5) -> tuple[ErrorClassifier | None, dict[str, Any]]:
    """Fit the error classifier on a calibration ``LabelTable`` and measure it.

    Each fit's raw probabilities are cross-validated by patient; the probability calibration
    and the none rule (:func:`ruled_kinds`) are fitted on those, and measured nested (each
    fold decided by a rule fitted on the other folds). Returns ``(classifier or None,
    metrics)``: metrics per fit (``errors_top1_bad_<method>``, ``errors_none_perfect_<method>``
    with the rule; ``..._argmax_<method>`` without) and of the kept one (``errors_method``,
    ``errors_top1_bad``, ``errors_none_perfect``, the same on ``..._phantoms`` / ``..._real``
    labels, ``errors_p_gap`` (expected calibration error of ``likely_error_p`` over labels of
    known kind, ``errors_p_gap_raw`` before calibration), ``errors_none_factors`` (per fold)
    and ``errors_confusion`` over bad labels). None when fewer than two kinds have enough
    labels or there is only one patient. Radiotherapy target volumes get their own none
    factor when there are enough perfect ones, and each factor reaches its target on all
    perfect labels and its floor on real CT and on phantoms apart (:func:`_decision_rule`).
    """
    from qsaudit.training.calibration import patient_weights, phantom_patients

    if method not in METHODS:
        raise ValueError(f'error classifier method "{method}": choose from {", ".join(METHODS)}')
    kinds = table_kinds(table)
    counts = {k: int(np.sum(kinds == k)) for k in ERROR_KINDS}
    metrics: dict[str, Any] = {"errors_kind_counts": counts}
    patients = np.asarray(table.patients, dtype=object)
    if sum(c >= MIN_PER_KIND for c in counts.values()) < 2 or len(set(patients.tolist())) < 2:
        metrics["errors"] = "skipped: too few labels of known kinds"
        return None, metrics
    rows = table_rows(table)
    perfect = np.asarray(table.sources == "perfect", dtype=bool)
    true = np.asarray(table.true, dtype=np.float64)
    w = patient_weights(patients)
    known = np.array([k is not None for k in kinds])
    names = np.asarray(ERROR_KINDS, dtype=object)
    phantom = phantom_patients(patients)
    targets = target_rows(rows)
    domains = np.where(phantom, "phantoms", "real").astype(object)
    cv: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]] = {}
    for m in AUTO_METHODS if method == "auto" else (method,):
        try:
            p, which = cross_validated_probabilities(rows, kinds, patients, method=m,
                                                     folds=folds, seed=seed)
        except TooFewKinds as exc:  # a fold's patients hold too few kinds (small data)
            metrics["errors"] = f"skipped: {exc}"
            return None, metrics
        pred, prob, factors = ruled_kinds(p, which, kinds, perfect, w, targets, domains)
        cv[m] = (p, pred, prob, factors)
        for key, value in kind_metrics(kinds, pred, true, perfect).items():
            metrics[f"errors_{key}_{m}"] = value
        argmax = names[np.argmax(p, axis=1)]
        for key, value in kind_metrics(kinds, argmax, true, perfect).items():
            metrics[f"errors_{key}_argmax_{m}"] = value
    if method == "auto":
        method = max(cv, key=lambda m: np.nan_to_num(metrics[f"errors_top1_bad_{m}"]))
    p, pred, prob, factors = cv[method]
    metrics["errors_method"] = method
    metrics.update({f"errors_{k}": v for k, v in kind_metrics(kinds, pred, true, perfect).items()})
    for name, part in (("phantoms", phantom), ("real", ~phantom)):
        if part.any():
            part_metrics = kind_metrics(kinds[part], pred[part], true[part], perfect[part])
            metrics.update({f"errors_{k}_{name}": v for k, v in part_metrics.items()})
    raw_best = np.argmax(p, axis=1)
    metrics["errors_p_gap"] = calibration_gap(prob[known], pred[known] == kinds[known])
    metrics["errors_p_gap_raw"] = calibration_gap(p[known, raw_best[known]],
                                                  names[raw_best[known]] == kinds[known])
    metrics["errors_none_factors"] = factors
    bad = true < BAD_DSC
    metrics["errors_confusion"] = confusion(kinds[bad], pred[bad])
    power, bias, factor, factor_targets = _decision_rule(p, kinds, perfect, w, targets,
                                                         domains)
    info = {"method": method, "cross_validated": {
        k: v for k, v in metrics.items()
        if k.startswith(("errors_top1", "errors_none", "errors_n_bad", "errors_p_gap"))}}
    clf = fit_error_classifier(rows[known], kinds[known], method=method, seed=seed,
                               weights=patient_weights(patients[known]), info=info)
    offered = [ERROR_KINDS.index(k) for k in clf.kinds]
    return replace(clf, power=power, bias=bias[offered], none_factor=factor,
                   none_factor_targets=factor_targets), metrics
