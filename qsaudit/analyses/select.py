"""``qsaudit select``: pick the best pseudo-labels (or cases) for semi-supervised training.

Selection is by predicted DSC (in [0, 1], higher = better label): the top fraction, the top
count, or every unit at or above a threshold. A case's score is the mean (or min) of its labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from qsaudit.analyses.budget import check_budget, require_some
from qsaudit.analyses.results import attach_truth, ok_rows
from qsaudit.errors import AnalysisError, UsageError

SELECTED_COLUMNS = ["case_id", "label", "predicted_dsc", "image_path", "label_path"]


@dataclass(frozen=True)
class SelectionTruth:
    """Mean true DSC of the selected labels vs random selections of the same size."""

    selected_mean: float
    random_mean: float
    random_sd: float
    all_mean: float
    n_labels: int
    n_without_truth: int
    n_draws: int


@dataclass(frozen=True)
class SelectResult:
    """Outcome of :func:`select_labels`. ``selected``: one row per selected label with
    ``SELECTED_COLUMNS``, best first; ``cases``: selected case ids, best first."""

    selected: pd.DataFrame
    cases: list[str]
    unit: str
    n_units: int
    n_selected_units: int
    n_skipped: int
    truth: SelectionTruth | None

    def to_json(self) -> dict[str, Any]:
        """Summary for ``select.json``."""
        t = self.truth
        return {"unit": self.unit, "n_units": self.n_units,
                "n_selected_units": self.n_selected_units, "n_selected_labels": len(self.selected),
                "n_cases": len(self.cases), "n_skipped_not_ok": self.n_skipped,
                "truth": None if t is None else {
                    "selected_mean_true_dsc": t.selected_mean, "random_mean_true_dsc": t.random_mean,
                    "random_sd": t.random_sd, "all_mean_true_dsc": t.all_mean,
                    "n_labels": t.n_labels, "n_without_truth": t.n_without_truth,
                    "random_draws": t.n_draws}}


def _units(ok: pd.DataFrame, unit: str, case_score: str) -> pd.DataFrame:
    if unit == "label":
        u = ok[["case_id", "label", "predicted_dsc"]].rename(columns={"predicted_dsc": "score"})
    elif unit == "case":
        u = ok.groupby("case_id", sort=False)["predicted_dsc"].agg(case_score).reset_index()
        u = u.rename(columns={"predicted_dsc": "score"})
    else:
        raise UsageError(f'--unit "{unit}": expected label or case')
    sort_cols = ["score", "case_id"] + (["label"] if unit == "label" else [])
    return u.sort_values(sort_cols, ascending=[False] + [True] * (len(sort_cols) - 1),
                         kind="mergesort").reset_index(drop=True)


def select_labels(results: pd.DataFrame, *, top: float | None = None, count: int | None = None,
                  min_dsc: float | None = None, unit: Literal["label", "case"] = "label",
                  case_score: Literal["mean", "min"] = "mean", truth: pd.DataFrame | None = None,
                  n_draws: int = 200, seed: int = 0) -> SelectResult:
    """Select the best units by predicted DSC: exactly one of ``top`` (fraction 0..1, rounded
    to nearest), ``count`` or ``min_dsc`` (score ≥ threshold). With ``truth`` (case_id, label,
    true_dsc) compare the selection's mean true DSC with seeded random selections."""
    given = [x is not None for x in (top, count, min_dsc)]
    if sum(given) != 1:
        raise UsageError("give exactly one of --top, --count or --min-dsc")
    check_budget(fraction=top, count=count, fraction_flag="--top")
    if case_score not in ("mean", "min"):
        raise UsageError(f'--case-score "{case_score}": expected mean or min')
    if min_dsc is not None and not 0 <= min_dsc <= 1:
        raise UsageError(f"--min-dsc {min_dsc}: must be between 0 and 1")
    ok, n_skipped = ok_rows(results)
    if ok.empty:
        raise AnalysisError("no ok row in the results: nothing to select")
    units = _units(ok, unit, case_score)
    if top is not None:
        n = require_some(int(np.floor(top * len(units) + 0.5)), fraction=top,
                         n_units=len(units), fraction_flag="--top")
    elif count is not None:
        n = min(count, len(units))
    else:
        n = int((units["score"] >= min_dsc).sum())
    chosen = units.head(n)
    key = ["case_id", "label"] if unit == "label" else ["case_id"]
    rows = chosen[key].merge(ok, on=key, how="left")
    for col in ("image_path", "label_path"):
        if col not in rows.columns:
            rows[col] = pd.NA
    selected = rows[SELECTED_COLUMNS].reset_index(drop=True)
    cases = list(dict.fromkeys(chosen["case_id"]))
    t = None if truth is None else _compare_truth(ok, units, chosen, key, truth, n_draws, seed)
    return SelectResult(selected=selected, cases=cases, unit=unit, n_units=len(units),
                        n_selected_units=n, n_skipped=n_skipped, truth=t)


def _compare_truth(ok: pd.DataFrame, units: pd.DataFrame, chosen: pd.DataFrame, key: list[str],
                   truth: pd.DataFrame, n_draws: int, seed: int) -> SelectionTruth:
    matched, n_missing = attach_truth(ok, truth)
    if matched.empty:
        raise AnalysisError("no result row has a true DSC in the truth table (check case_id "
                            "and label names)")
    if n_draws < 1:
        raise UsageError(f"--draws {n_draws}: must be at least 1")
    sel = chosen[key].merge(matched, on=key)["true_dsc"]
    # per unit: sum and count of true DSCs, so random draws are index sampling
    per = matched.groupby(key, sort=False)["true_dsc"].agg(["sum", "count"]).reset_index()
    per = units[key].merge(per, on=key, how="left").fillna({"sum": 0.0, "count": 0})
    sums, counts = per["sum"].to_numpy(float), per["count"].to_numpy(float)
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(n_draws):
        idx = rng.choice(len(units), size=len(chosen), replace=False)
        if counts[idx].sum() > 0:
            means.append(float(sums[idx].sum() / counts[idx].sum()))
    return SelectionTruth(
        selected_mean=float(sel.mean()) if len(sel) else float("nan"),
        random_mean=float(np.mean(means)) if means else float("nan"),
        random_sd=float(np.std(means)) if means else float("nan"),
        all_mean=float(matched["true_dsc"].mean()), n_labels=len(matched),
        n_without_truth=n_missing, n_draws=n_draws)


def nnunet_splits(cases: list[str], *, folds: int = 5, seed: int = 0) -> list[dict[str, list[str]]]:
    """nnU-Net-style ``splits_final.json``: ``folds`` seeded folds over the selected ``cases``
    (every selected case is in ``train`` of all folds but one; non-selected cases appear
    nowhere, so nnU-Net trains on the selection only). One fold (train = val = all) when
    fewer than 2 cases or ``folds`` == 1."""
    if folds < 1:
        raise UsageError(f"--folds {folds}: must be at least 1")
    ids = sorted(cases)
    if folds == 1 or len(ids) < 2:
        return [{"train": ids, "val": ids}]
    k = min(folds, len(ids))
    order = np.random.default_rng(seed).permutation(len(ids))
    parts = np.array_split(order, k)
    out = []
    for part in parts:
        val = sorted(ids[i] for i in part)
        vset = set(val)
        out.append({"train": [c for c in ids if c not in vset], "val": val})
    return out
