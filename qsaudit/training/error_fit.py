"""Fit the error classifier (``qsaudit.inference.error_model``) on the calibration's labels.

Every held-out candidate of the label calibration was made by a known degradation (or is the
trusted label itself, or another structure's mask), so its error kind is known
(:func:`qsaudit.inference.error_kinds.kind_of_source`): the classifier learns the kind from the
same label features the calibration reads. Network snapshots have no single kind and are left
out of the fit unless they are right (true Dice >= NONE_DSC: ``none``). Two fits are measured by
cross-validation by patient (as the calibration is): one-vs-rest boosted regression trees
(``qsaudit.training.boosting``) and a multinomial logistic regression; by default the one with
the higher cross-validated top-1 accuracy over bad labels (true Dice < :data:`BAD_DSC`) is kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qsaudit.inference.error_kinds import ERROR_KINDS, kind_of_source
from qsaudit.inference.error_model import CLASSIFIER_FEATURES, ErrorClassifier, classifier_rows

BAD_DSC = 0.8  # accuracy is reported over labels with a true Dice below this
METHODS = ("auto", "trees", "softmax")
MIN_PER_KIND = 5  # a kind with fewer training labels than this is not offered


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
        raise ValueError("fit_error_classifier: fewer than two kinds with enough labels")
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


def cross_validated_kinds(rows: np.ndarray, kinds: np.ndarray, patients: np.ndarray, *,
                          method: str, folds: int = 5, seed: int = 0
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Every label's predicted kind (G,) and its probability (G,) from a fit on the other
    patients' labels (labels of unknown kind are predicted, never fitted)."""
    from qsaudit.training.calibration import patient_weights

    unique = np.array(sorted(set(np.asarray(patients, dtype=str).tolist())), dtype=object)
    rng = np.random.default_rng(seed)
    rng.shuffle(unique)
    folds = max(2, min(folds, unique.size))
    fold_of = {p: i % folds for i, p in enumerate(unique)}
    which = np.array([fold_of[str(p)] for p in patients])
    known = np.array([k is not None for k in kinds])
    pred = np.full(kinds.size, None, dtype=object)
    prob = np.full(kinds.size, np.nan)
    for f in range(folds):
        test = which == f
        train = ~test & known
        if not test.any() or not train.any():
            continue
        clf = fit_error_classifier(rows[train], kinds[train], method=method, seed=seed,
                                   weights=patient_weights(patients[train]))
        pred[test], prob[test] = clf.predict(rows[test])
    return pred, prob


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


def fit_errors(table: Any, *, seed: int = 0, method: str = "auto",
               folds: int = 5) -> tuple[ErrorClassifier | None, dict[str, Any]]:
    """Fit the error classifier on a calibration ``LabelTable`` and measure it.

    Returns ``(classifier or None, metrics)``: metrics per fit (``errors_top1_bad_<method>``,
    ``errors_none_perfect_<method>``, cross-validated by patient) and of the kept one
    (``errors_method``, ``errors_top1_bad``, ``errors_none_perfect``, the same on
    ``..._phantoms`` / ``..._real`` labels, and ``errors_confusion`` over bad labels). None
    when fewer than two kinds have enough labels or there is only one patient.
    """
    from qsaudit.training.calibration import patient_weights

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
    cv: dict[str, np.ndarray] = {}
    for m in ("trees", "softmax") if method == "auto" else (method,):
        pred, _prob = cross_validated_kinds(rows, kinds, patients, method=m, folds=folds,
                                            seed=seed)
        cv[m] = pred
        for key, value in kind_metrics(kinds, pred, true, perfect).items():
            metrics[f"errors_{key}_{m}"] = value
    if method == "auto":
        method = max(cv, key=lambda m: np.nan_to_num(metrics[f"errors_top1_bad_{m}"]))
    pred = cv[method]
    metrics["errors_method"] = method
    metrics.update({f"errors_{k}": v for k, v in kind_metrics(kinds, pred, true, perfect).items()})
    phantom = np.array([str(p).startswith("phantom") for p in patients])
    for name, part in (("phantoms", phantom), ("real", ~phantom)):
        if part.any():
            part_metrics = kind_metrics(kinds[part], pred[part], true[part], perfect[part])
            metrics.update({f"errors_{k}_{name}": v for k, v in part_metrics.items()})
    bad = true < 0.8
    metrics["errors_confusion"] = confusion(kinds[bad], pred[bad])
    known = np.array([k is not None for k in kinds])
    info = {"method": method, "cross_validated": {
        k: v for k, v in metrics.items()
        if k.startswith(("errors_top1", "errors_none", "errors_n_bad"))}}
    clf = fit_error_classifier(rows[known], kinds[known], method=method, seed=seed,
                               weights=patient_weights(patients[known]), info=info)
    return clf, metrics
