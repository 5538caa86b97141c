"""``qsaudit budget``: which labels to correct first with a limited annotation budget.

Ranking: every unit (a label, or a case with all its labels) gets an expected gain
``Σ (1 − predicted_dsc)`` over its labels (predicted DSC in [0, 1]; a corrected label becomes
perfect) and a cost (``label``: one per label; ``slices``: axial slices holding the mask;
``voxels``: mask voxels; at least 1 per label). Units are ranked by gain per cost, worst first.
Budgets are fractions of the total cost (with ``label`` cost and label units: of the labels;
with case units: of the cases).

Simulation (with true DSCs): the mean true DSC of the dataset after correcting a budget, for
qsaudit's ranking, random orderings (averaged over seeded draws) and the oracle (ranking by
true gain per cost). Curves are piecewise linear between unit boundaries (a partly spent unit
counts in proportion).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from qsaudit.analyses.results import attach_truth, ok_rows
from qsaudit.errors import AnalysisError, UsageError

Unit = Literal["label", "case"]
Cost = Literal["label", "slices", "voxels"]
COST_COLUMNS = {"slices": "mask_slices", "voxels": "voxels"}
GRID = np.round(np.linspace(0.0, 1.0, 101), 10)
ALL_LABELS = "*"


@dataclass(frozen=True)
class BudgetSimulation:
    """Simulated quality curves: ``curves[name]`` is a list of ``[budget, mean_true_dsc]``."""

    curves: dict[str, list[list[float]]]
    at_budget: dict[str, float]          # mean true DSC at the requested budget
    saving_vs_random: float | None       # 1 − budget qsaudit needs for random's quality / budget
    qsaudit_budget_needed: float | None
    n_labels: int                        # labels with a true DSC
    n_without_truth: int
    n_draws: int


@dataclass(frozen=True)
class BudgetResult:
    """Outcome of :func:`plan_budget`. ``ranking``: every unit, worst first, with ``rank``,
    ``case_id``, ``label`` (``*`` for a whole case), ``predicted_dsc`` (mean for a case),
    ``n_labels``, ``gain``, ``cost``, ``cumulative_cost``; the first ``n_selected`` rows are the
    correction list."""

    ranking: pd.DataFrame
    n_selected: int
    unit: str
    cost: str
    fraction: float          # requested budget as a fraction of total cost
    spent_fraction: float    # cost of the selection / total cost
    total_cost: float
    n_skipped: int
    simulation: BudgetSimulation | None

    @property
    def selected(self) -> pd.DataFrame:
        """The correction list (rank, case_id, label, predicted_dsc, task, cost,
        cumulative_cost); ``task`` says what to fix, in a curator's words, when the model
        names error kinds (``likely_error``), else it is empty."""
        cols = ["rank", "case_id", "label", "predicted_dsc", "task", "cost", "cumulative_cost"]
        return self.ranking.head(self.n_selected)[cols]

    def to_json(self) -> dict[str, Any]:
        """The stable ``budget.json`` contract."""
        sim = self.simulation
        out: dict[str, Any] = {
            "unit": self.unit, "cost": self.cost, "fraction": self.fraction,
            "spent_fraction": self.spent_fraction, "n_selected": self.n_selected,
            "n_units": len(self.ranking), "total_cost": self.total_cost,
            "n_skipped_not_ok": self.n_skipped,
            "curves": sim.curves if sim else None,
            "saving_vs_random": sim.saving_vs_random if sim else None,
        }
        if sim:
            out.update(at_budget=sim.at_budget, qsaudit_budget_needed=sim.qsaudit_budget_needed,
                       n_labels_simulated=sim.n_labels, n_without_truth=sim.n_without_truth,
                       random_draws=sim.n_draws)
        return out


def _label_costs(df: pd.DataFrame, cost: str) -> np.ndarray:
    if cost == "label":
        return np.ones(len(df))
    col = COST_COLUMNS.get(cost)
    if col is None:
        raise UsageError(f'--cost "{cost}": expected label, slices or voxels')
    if col not in df.columns or df[col].isna().any():
        raise AnalysisError(f"--cost {cost} needs the column {col} for every ok row of the "
                            "results")
    # An empty or tiny mask still costs a look: at least one unit per label.
    return np.maximum(df[col].astype(float).to_numpy(), 1.0)


def rank_for_correction(results: pd.DataFrame, *, unit: Unit = "label", cost: Cost = "label"
                        ) -> pd.DataFrame:
    """Rank ok rows (or cases) for correction, highest expected gain per cost first.

    Returns the ``ranking`` table of :class:`BudgetResult` (ties broken by case and label).
    """
    if unit not in ("label", "case"):
        raise UsageError(f'--unit "{unit}": expected label or case')
    df = results.copy()
    df["cost"] = _label_costs(df, cost)
    df["gain"] = 1.0 - df["predicted_dsc"].astype(float)
    df["n_labels"] = 1
    df["task"] = _tasks(df)
    if unit == "case":
        tasks = _case_tasks(df)
        df = (df.groupby("case_id", sort=False)
              .agg(predicted_dsc=("predicted_dsc", "mean"), gain=("gain", "sum"),
                   cost=("cost", "sum"), n_labels=("n_labels", "sum")).reset_index())
        df["label"] = ALL_LABELS
        df["task"] = [tasks.get(str(c), "") for c in df["case_id"]]
    df["priority"] = df["gain"] / df["cost"]
    df = df.sort_values(["priority", "case_id", "label"], ascending=[False, True, True],
                        kind="mergesort").reset_index(drop=True)
    df["rank"] = np.arange(1, len(df) + 1)
    df["cumulative_cost"] = df["cost"].cumsum()
    return df[["rank", "case_id", "label", "predicted_dsc", "task", "n_labels", "gain", "cost",
               "cumulative_cost"]]


def _tasks(df: pd.DataFrame) -> list[str]:
    """Each row's correction task (``qsaudit.inference.error_kinds.row_task``)."""
    from qsaudit.inference.error_kinds import row_task

    if "likely_error" not in df.columns:
        return [""] * len(df)
    return [row_task(row) for _, row in df.iterrows()]


CASE_TASKS = 3  # a case's task names at most this many of its worst labels


def _case_tasks(df: pd.DataFrame) -> dict[str, str]:
    """Per case: "label: task; ..." for its worst labels that have a named error."""
    if "likely_error" not in df.columns:
        return {}
    kinds = df["likely_error"].astype("string").fillna("none").to_numpy(dtype=object)
    named = df[(df["task"].to_numpy(dtype=object) != "") & (kinds != "none")]
    out: dict[str, str] = {}
    for case_id, part in named.sort_values("predicted_dsc", kind="mergesort").groupby(
            "case_id", sort=False):
        out[str(case_id)] = "; ".join(f"{r.label}: {r.task}"
                                      for r in part.head(CASE_TASKS).itertuples())
    return out


def check_budget(*, fraction: float | None, count: int | None,
                 fraction_flag: str = "--fraction") -> None:
    """The one rule for budget sizes (``budget`` and ``select``): a fraction in (0, 1] or a
    count of at least 1. An empty budget selects nothing, so it is refused before anything is
    written (a :class:`UsageError`, exit 2), as is a budget too small to buy one unit
    (:func:`require_some`)."""
    if count is not None and count < 1:
        raise UsageError(f"--count {count}: must be at least 1 (an empty budget selects nothing)")
    if fraction is not None and not 0 < fraction <= 1:
        raise UsageError(f"{fraction_flag} {fraction}: must be above 0 and at most 1 (an empty "
                         "budget selects nothing)")


def require_some(n: int, *, fraction: float | None, n_units: int,
                 fraction_flag: str = "--fraction") -> int:
    """``n`` when a fraction budget buys at least one unit, else a :class:`UsageError`."""
    if n == 0 and fraction is not None:
        raise UsageError(f"{fraction_flag} {fraction}: too small to select any of the {n_units} "
                         "units; give a larger fraction or --count 1")
    return n


def n_within_budget(ranking: pd.DataFrame, *, fraction: float | None = None,
                    count: int | None = None, uniform: bool = True) -> int:
    """How many ranked units a budget buys: ``count`` units, or ``fraction`` of the units
    (uniform cost, rounded to nearest) or of the total cost (largest prefix within it).
    Budgets follow :func:`check_budget`; one that buys nothing is refused."""
    if (fraction is None) == (count is None):
        raise UsageError("give exactly one of --fraction or --count")
    check_budget(fraction=fraction, count=count)
    n = len(ranking)
    if count is not None:
        return min(count, n)
    assert fraction is not None
    if uniform:
        bought = int(np.floor(fraction * n + 0.5))
    else:
        total = float(ranking["cost"].sum())
        bought = int(np.searchsorted(ranking["cumulative_cost"].to_numpy(),
                                     fraction * total * (1 + 1e-12), side="right"))
    return require_some(bought, fraction=fraction, n_units=n)


def quality_curve(costs: np.ndarray, gains: np.ndarray, order: np.ndarray, *, base: float,
                  n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """Corner points of the quality curve for correcting units in ``order``.

    ``costs``/``gains`` per unit (gain = Σ (1 − true_dsc)); returns budget fractions of total
    cost (0..1) and the mean true DSC over ``n_labels`` labels, starting at ``base``.
    """
    c = np.concatenate([[0.0], np.cumsum(costs[order])])
    g = np.concatenate([[0.0], np.cumsum(gains[order])])
    return c / c[-1], base + g / n_labels


def budget_needed(x: np.ndarray, y: np.ndarray, target: float) -> float:
    """Smallest budget at which the piecewise linear, non-decreasing curve reaches ``target``."""
    if target <= y[0] + 1e-12:
        return 0.0
    k = int(np.argmax(y >= target - 1e-12))
    if y[k] < target - 1e-12:
        return float("nan")
    x0, x1, y0, y1 = x[k - 1], x[k], y[k - 1], y[k]
    return float(x1 if y1 == y0 else x0 + (target - y0) * (x1 - x0) / (y1 - y0))


def simulate_budget(ranking: pd.DataFrame, results: pd.DataFrame, truth: pd.DataFrame, *,
                    budget: float, unit: Unit = "label", cost: Cost = "label",
                    n_draws: int = 200, seed: int = 0) -> BudgetSimulation:
    """Quality curves for qsaudit's ranking vs random vs oracle, and the saving vs random.

    ``saving_vs_random`` = 1 − (budget qsaudit needs to reach the mean true DSC that random
    ordering reaches at ``budget``) / ``budget``; None when ``budget`` is 0. Only labels with
    a true DSC take part.
    """
    matched, n_missing = attach_truth(results, truth)
    if matched.empty:
        raise AnalysisError("no result row has a true DSC in the truth table (check case_id "
                            "and label names)")
    matched["cost"] = _label_costs(matched, cost)
    matched["true_gain"] = 1.0 - matched["true_dsc"]
    key = ["case_id", "label"] if unit == "label" else ["case_id"]
    per_unit = matched.groupby(key, sort=False).agg(true_gain=("true_gain", "sum"),
                                                    cost=("cost", "sum")).reset_index()
    order_keys = ranking[key].drop_duplicates()
    per_unit = order_keys.merge(per_unit, on=key, how="inner")  # in qsaudit's order
    costs = per_unit["cost"].to_numpy(float)
    gains = per_unit["true_gain"].to_numpy(float)
    n_labels = len(matched)
    base = float(matched["true_dsc"].mean())
    m = len(per_unit)
    qx, qy = quality_curve(costs, gains, np.arange(m), base=base, n_labels=n_labels)
    oracle_order = np.lexsort((np.arange(m), -(gains / costs)))
    ox, oy = quality_curve(costs, gains, oracle_order, base=base, n_labels=n_labels)
    rng = np.random.default_rng(seed)
    grid_random = np.zeros_like(GRID)
    at_random = 0.0
    for _ in range(n_draws):
        rx, ry = quality_curve(costs, gains, rng.permutation(m), base=base, n_labels=n_labels)
        grid_random += np.interp(GRID, rx, ry)
        at_random += float(np.interp(budget, rx, ry))
    grid_random /= n_draws
    at_random /= n_draws

    def pts(y: np.ndarray) -> list[list[float]]:
        return [[float(b), float(v)] for b, v in zip(GRID, y, strict=True)]

    curves = {"qsaudit": pts(np.interp(GRID, qx, qy)), "random": pts(grid_random),
              "oracle": pts(np.interp(GRID, ox, oy))}
    at = {"qsaudit": float(np.interp(budget, qx, qy)), "random": at_random,
          "oracle": float(np.interp(budget, ox, oy)), "none": base}
    needed = budget_needed(qx, qy, at_random)
    saving = None if budget <= 0 or math.isnan(needed) else 1.0 - needed / budget
    return BudgetSimulation(curves=curves, at_budget=at, saving_vs_random=saving,
                            qsaudit_budget_needed=needed, n_labels=n_labels,
                            n_without_truth=n_missing, n_draws=n_draws)


def plan_budget(results: pd.DataFrame, *, fraction: float | None = None,
                count: int | None = None, unit: Unit = "label", cost: Cost = "label",
                truth: pd.DataFrame | None = None, n_draws: int = 200, seed: int = 0
                ) -> BudgetResult:
    """Rank ok rows for correction, pick a budget (``fraction`` of the total cost, or
    ``count`` units) and, given ``truth`` (case_id, label, true_dsc), simulate its effect."""
    if cost not in ("label", *COST_COLUMNS):
        raise UsageError(f'--cost "{cost}": expected label, slices or voxels')
    if n_draws < 1:
        raise UsageError(f"--draws {n_draws}: must be at least 1")
    ok, n_skipped = ok_rows(results)
    if ok.empty:
        raise AnalysisError("no ok row in the results: nothing to rank")
    ranking = rank_for_correction(ok, unit=unit, cost=cost)
    n = n_within_budget(ranking, fraction=fraction, count=count, uniform=cost == "label")
    total = float(ranking["cost"].sum())
    spent = float(ranking["cost"].head(n).sum()) / total
    requested = float(fraction) if fraction is not None else spent
    sim = None
    if truth is not None:
        sim = simulate_budget(ranking, ok, truth, budget=requested, unit=unit, cost=cost,
                              n_draws=n_draws, seed=seed)
    return BudgetResult(ranking=ranking, n_selected=n, unit=unit, cost=cost, fraction=requested,
                        spent_fraction=spent, total_cost=total, n_skipped=n_skipped,
                        simulation=sim)
