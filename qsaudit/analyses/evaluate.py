"""Compare predicted label quality with the truth: correlation, error and detection of bad labels.

The truth is either the ``truth.csv`` written by ``qsaudit demo`` (read with
:func:`qsaudit.analyses.results.load_truth`) or is recomputed from reference masks with
:func:`truth_from_reference`. A "bad" label is one whose true Dice is below ``threshold``
(0.8 by default); AUROC measures how well a low ``predicted_dsc`` finds them
(0.5 = chance, 1 = every bad label scored below every good one). When the results carry the
scan's prediction interval (``dsc_low``/``dsc_high``), ``coverage`` is the share of labels whose
true Dice lies inside it (the interval is nominally 90%) and ``width`` its mean width: an
interval is only as honest as its coverage on labels whose truth is known. Which interval that
is depends on the scan: the calibration's error bands for the default aggregation of a model
that stores them, else the spread of the slice predictions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qsaudit.errors import AnalysisError, DatasetError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

METRIC_NAMES = ("n", "pearson", "spearman", "mae", "auroc", "n_bad", "coverage", "width")


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``values``, ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    start = 0
    n = len(values)
    while start < n:
        stop = start + 1
        while stop < n and sorted_vals[stop] == sorted_vals[start]:
            stop += 1
        ranks[order[start:stop]] = (start + 1 + stop) / 2.0
        start = stop
    return ranks


def pearson(x: Any, y: Any) -> float:
    """Pearson correlation of two equal-length sequences; NaN when undefined (n < 2 or constant)."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.shape != b.shape:
        raise AnalysisError(f"pearson: lengths differ ({a.size} vs {b.size})")
    if a.size < 2:
        return math.nan
    a = a - a.mean()
    b = b - b.mean()
    denom = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    if denom == 0.0:
        return math.nan
    return float((a * b).sum() / denom)


def spearman(x: Any, y: Any) -> float:
    """Spearman rank correlation (Pearson of average ranks); NaN when undefined."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.size < 2:
        return math.nan
    return pearson(_ranks(a), _ranks(b))


def mae(predicted: Any, true: Any) -> float:
    """Mean absolute error; NaN for empty input."""
    a = np.asarray(predicted, dtype=np.float64)
    b = np.asarray(true, dtype=np.float64)
    if a.size == 0:
        return math.nan
    return float(np.abs(a - b).mean())


def auroc(scores: Any, positives: Any) -> float:
    """Area under the ROC curve of ``scores`` for the boolean ``positives``.

    The probability that a random positive scores higher than a random negative (ties count
    one half), computed from ranks (Mann-Whitney U). NaN when either class is empty.
    """
    s = np.asarray(scores, dtype=np.float64)
    p = np.asarray(positives, dtype=bool)
    n_pos = int(p.sum())
    n_neg = int(p.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = _ranks(s)
    u = ranks[p].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def interval_metrics(low: Any, high: Any, true: Any) -> tuple[float, float]:
    """(coverage, mean width) of intervals ``low``..``high`` for the ``true`` values; labels
    without an interval (NaN ends) are left out; (NaN, NaN) when none has one."""
    from qsaudit.inference.intervals import coverage

    width = np.asarray(high, dtype=np.float64) - np.asarray(low, dtype=np.float64)
    cover = coverage(low, high, true)  # leaves out the labels without an interval itself
    return (math.nan, math.nan) if math.isnan(cover) else (cover, float(np.nanmean(width)))


def quality_metrics(predicted: Any, true: Any, *, threshold: float = 0.8,
                    low: Any = None, high: Any = None) -> dict[str, float]:
    """Label-quality metrics of predicted vs true Dice (both in [0, 1]).

    Returns ``n``, ``pearson``, ``spearman``, ``mae``, ``auroc`` (finding labels with true Dice
    below ``threshold`` by a low prediction), ``n_bad`` (labels below the threshold), and
    ``coverage`` / ``width`` of the prediction intervals ``low``..``high`` when given
    (:func:`interval_metrics`; NaN without them).
    """
    pred = np.asarray(predicted, dtype=np.float64)
    tru = np.asarray(true, dtype=np.float64)
    bad = tru < threshold
    cover, width = (math.nan, math.nan) if low is None or high is None \
        else interval_metrics(low, high, tru)
    return {
        "n": int(pred.size),
        "pearson": pearson(pred, tru),
        "spearman": spearman(pred, tru),
        "mae": mae(pred, tru),
        "auroc": auroc(-pred, bad),
        "n_bad": int(bad.sum()),
        "coverage": cover,
        "width": width,
    }


@dataclass
class Evaluation:
    """The outcome of :func:`evaluate_predictions`.

    ``table`` has one row per matched label (``case_id``, ``label``, ``structure``,
    ``predicted_dsc``, ``dsc_low``, ``dsc_high`` (NaN when the results have no interval),
    ``true_dsc``, ``error``); ``overall`` the metrics over all of them;
    ``groups`` one row per (scope, group) with scope ``all``, ``structure`` or ``error``;
    ``error_kinds``: how well ``likely_error`` names the error
    (``qsaudit.analyses.error_eval.error_kind_evaluation``), None when the results or the truth
    do not say.
    """

    table: pd.DataFrame
    overall: dict[str, float]
    groups: pd.DataFrame
    threshold: float
    unmatched: dict[str, int] = field(default_factory=dict)
    error_kinds: dict[str, Any] | None = None


def truth_from_reference(dataset: str | Path, reference: str | Path) -> pd.DataFrame:
    """Recompute the true Dice of every label of ``dataset`` against the same-named reference mask.

    Both folders are read with :mod:`qsaudit.datasets` (any supported layout). Labels without a
    reference, or whose own image or mask cannot be read, are skipped; an unreadable reference
    mask raises :class:`DatasetError` naming the file. Returns the truth columns with
    ``error`` = ``"unknown"``, ``severity`` = NaN, the reference file and, for a label map, the
    label's value in it (``reference_value``).
    """
    import pandas as pd

    from qsaudit.datasets import list_cases, read_image, read_mask
    from qsaudit.degrade import dice

    ref_cases = {c.case_id: c for c in list_cases(reference)}
    rows = []
    for case in list_cases(dataset):
        ref = ref_cases.get(case.case_id)
        if ref is None or case.image is None:
            continue
        try:
            image = read_image(case)
        except DatasetError:  # the scan reports this case as unreadable: it has no truth
            continue
        ref_labels = {lab.name: lab for lab in ref.labels}
        for label in case.labels:
            ref_label = ref_labels.get(label.name)
            if ref_label is None:
                continue
            try:
                mask = read_mask(label, image)
            except DatasetError:  # a label the scan reports as unreadable has no truth
                continue
            # an unreadable reference is the user's to fix: silently dropping it would bias
            # the evaluation, so its DatasetError (naming the file) propagates
            truth = read_mask(ref_label, image)
            rows.append({"case_id": case.case_id, "label": label.name,
                         "true_dsc": float(dice(mask, truth)), "error": "unknown",
                         "severity": math.nan, "reference_path": str(ref_label.path),
                         "reference_value": ref_label.value})
    if not rows:
        raise AnalysisError(f'"{dataset}": no label has a same-named reference mask in "{reference}"')
    return pd.DataFrame(rows)


def evaluate_predictions(results: pd.DataFrame, truth: pd.DataFrame, *,
                         threshold: float = 0.8) -> Evaluation:
    """Match predictions with truth on (case_id, label) and compute the metrics.

    Rows whose ``status`` is not ``ok`` or whose ``predicted_dsc`` is empty are left out and
    counted in ``unmatched``. Raises :class:`AnalysisError` when nothing matches.
    """
    import pandas as pd

    for col in ("case_id", "label", "predicted_dsc"):
        if col not in results.columns:
            raise AnalysisError(f"results table lacks column {col!r}")
    res = results.copy()
    if "status" in res.columns:
        res = res[res["status"].fillna("ok").astype(str) == "ok"]
    res = res[res["predicted_dsc"].notna()]
    if "structure" not in res.columns:
        res["structure"] = res["label"]
    for col in ("dsc_low", "dsc_high"):
        if col not in res.columns:
            res[col] = math.nan
    if "likely_error" not in res.columns:
        res["likely_error"] = pd.Series(pd.NA, index=res.index, dtype="string")
    tru = truth.copy()
    if "error" not in tru.columns:
        tru["error"] = "unknown"
    for frame in (res, tru):
        frame["case_id"] = frame["case_id"].astype(str)
        frame["label"] = frame["label"].astype(str)
    table = res[["case_id", "label", "structure", "predicted_dsc", "dsc_low", "dsc_high",
                 "likely_error"]].merge(
        tru[["case_id", "label", "true_dsc", "error"]], on=["case_id", "label"], how="inner")
    table["predicted_dsc"] = table["predicted_dsc"].astype(float)
    for col in ("dsc_low", "dsc_high"):  # an interval end that is not a number: no interval
        table[col] = pd.to_numeric(table[col], errors="coerce")
    table["true_dsc"] = table["true_dsc"].astype(float)
    table["error"] = table["error"].fillna("unknown").astype(str)
    table["structure"] = table["structure"].fillna(table["label"]).astype(str)
    if table.empty:
        raise AnalysisError("no label of the results matches a label of the truth table "
                            "(compare their case_id and label columns)")
    unmatched = {"results_without_truth": int(len(res) - len(table)),
                 "truth_without_prediction": int(len(tru) - len(table)),
                 "not_ok": int(len(results) - len(res))}

    def metrics(part: pd.DataFrame) -> dict[str, float]:
        return quality_metrics(part["predicted_dsc"], part["true_dsc"], threshold=threshold,
                               low=part["dsc_low"], high=part["dsc_high"])

    overall = metrics(table)
    rows = [{"scope": "all", "group": "all", **overall}]
    for scope in ("structure", "error"):
        for name, part in table.groupby(scope, sort=True):
            rows.append({"scope": scope, "group": str(name), **metrics(part)})
    groups = pd.DataFrame(rows, columns=["scope", "group", *METRIC_NAMES])
    from qsaudit.analyses.error_eval import error_kind_evaluation

    return Evaluation(table=table.sort_values(["case_id", "label"]).reset_index(drop=True),
                      overall=overall, groups=groups, threshold=threshold, unmatched=unmatched,
                      error_kinds=error_kind_evaluation(table, threshold=threshold))


def plot_scatter(evaluation: Evaluation, path: str | Path, *, color_by: str = "error") -> Path:
    """Scatter plot of predicted vs true Dice (the paper's Fig. 3), written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from qsaudit.atomic import write_with

    table = evaluation.table
    fig, ax = plt.subplots(figsize=(5.5, 5.0), dpi=120)
    groups = sorted(table[color_by].unique()) if color_by in table.columns else ["all"]
    cmap = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    for i, name in enumerate(groups):
        part = table[table[color_by] == name] if color_by in table.columns else table
        ax.scatter(part["true_dsc"], part["predicted_dsc"], s=12, alpha=0.75,
                   color=cmap(i % cmap.N), label=str(name), edgecolors="none")
    ax.plot([0, 1], [0, 1], color="0.4", lw=1, ls="--")
    thr = evaluation.threshold
    ax.axvline(thr, color="0.75", lw=0.8)
    ax.axhline(thr, color="0.75", lw=0.8)
    ov = evaluation.overall
    title = f"n={ov['n']}  r={ov['pearson']:.3f}  MAE={ov['mae']:.3f}  AUROC={ov['auroc']:.3f}"
    if not math.isnan(ov.get("coverage", math.nan)):
        title += f"  interval coverage={ov['coverage']:.2f}"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("true Dice")
    ax.set_ylabel("predicted Dice")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_aspect("equal")
    if len(groups) > 1:
        ax.legend(fontsize=7, loc="upper left", frameon=False, markerscale=1.5)
    fig.tight_layout()
    out = write_with(Path(path), lambda p: fig.savefig(p, format="png"))
    plt.close(fig)
    return out


def write_evaluation(evaluation: Evaluation, out_dir: str | Path) -> list[Path]:
    """Write ``evaluation.csv`` (per group), ``evaluation.json`` and ``evaluation.png``."""
    from qsaudit.atomic import write_json, write_text

    out_dir = Path(out_dir)
    csv_path = write_text(out_dir / "evaluation.csv", evaluation.groups.to_csv(index=False))
    payload = {
        "threshold": evaluation.threshold,
        "overall": evaluation.overall,
        "unmatched": evaluation.unmatched,
        "groups": evaluation.groups.to_dict(orient="records"),
        "error_kinds": evaluation.error_kinds,
        "labels": evaluation.table.to_dict(orient="records"),
    }
    json_path = write_json(out_dir / "evaluation.json", payload)
    png_path = plot_scatter(evaluation, out_dir / "evaluation.png")
    return [csv_path, json_path, png_path]
