"""Budget ranking and simulation against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from analyses_tables import make_results

from qsaudit.analyses.budget import budget_needed, n_within_budget, plan_budget, rank_for_correction
from qsaudit.analyses.results import normalise_results
from qsaudit.errors import AnalysisError, UsageError


def four_labels() -> tuple[pd.DataFrame, pd.DataFrame]:
    res = normalise_results(pd.DataFrame({
        "case_id": ["a", "a", "b", "b"], "label": ["x", "y", "x", "y"],
        "predicted_dsc": [0.3, 0.8, 0.7, 0.95], "mask_slices": [10, 10, 30, 10],
        "voxels": [100, 400, 100, 100]}))
    truth = pd.DataFrame({"case_id": ["a", "a", "b", "b"], "label": ["x", "y", "x", "y"],
                          "true_dsc": [0.2, 0.6, 0.9, 1.0]})
    return res, truth


def test_simulation_matches_hand_computation():
    res, truth = four_labels()
    b = plan_budget(res, fraction=0.5, truth=truth, n_draws=4000, seed=1)
    assert b.selected[["case_id", "label"]].values.tolist() == [["a", "x"], ["b", "x"]]
    sim = b.simulation
    # qsaudit corrects a/x then b/x: mean true DSC (1 + .6 + 1 + 1) / 4 = 0.9
    assert sim.at_budget["qsaudit"] == pytest.approx(0.9)
    # oracle corrects a/x (0.8 gain) then a/y (0.4): (1 + 1 + .9 + 1) / 4
    assert sim.at_budget["oracle"] == pytest.approx(0.975)
    assert sim.at_budget["none"] == pytest.approx(0.675)
    # random in expectation: 0.675 + 0.5 × mean deficit 0.325 = 0.8375
    assert sim.at_budget["random"] == pytest.approx(0.8375, abs=0.005)
    # qsaudit's first quarter gains 0.2: reaches 0.8375 at 0.25 × 0.1625/0.2 = 0.203125
    assert sim.qsaudit_budget_needed == pytest.approx(0.203125, abs=0.01)
    assert sim.saving_vs_random == pytest.approx(1 - 0.203125 / 0.5, abs=0.02)
    curves = b.to_json()["curves"]
    assert curves["qsaudit"][0] == [0.0, pytest.approx(0.675)]
    assert curves["qsaudit"][25] == [0.25, pytest.approx(0.875)]
    assert curves["oracle"][-1] == [1.0, pytest.approx(1.0)]
    assert curves["random"][50][1] == pytest.approx(0.8375, abs=0.005)


def test_saving_vs_random_on_a_constructed_case():
    # 10 labels, one bad (true 0.0), nine perfect; qsaudit ranks the bad one first.
    n = 10
    pred = np.r_[0.1, np.full(n - 1, 0.9)]
    res = normalise_results(pd.DataFrame({"case_id": [f"c{i}" for i in range(n)],
                                          "label": "liver", "predicted_dsc": pred}))
    truth = pd.DataFrame({"case_id": [f"c{i}" for i in range(n)], "label": "liver",
                          "true_dsc": np.r_[0.0, np.ones(n - 1)]})
    b = plan_budget(res, fraction=0.5, truth=truth, n_draws=3000)
    # random at 50% gains 0.05 (half the 0.1 deficit); qsaudit gains 0.1 over the first 10%,
    # so it needs 5% of the budget: saving = 1 − 0.05 / 0.5 = 0.9
    assert b.simulation.saving_vs_random == pytest.approx(0.9, abs=0.02)
    assert b.to_json()["saving_vs_random"] == b.simulation.saving_vs_random


def test_budget_needed_interpolates():
    x = np.array([0.0, 0.5, 1.0])
    y = np.array([0.5, 0.9, 1.0])
    assert budget_needed(x, y, 0.7) == pytest.approx(0.25)
    assert budget_needed(x, y, 0.4) == 0.0
    assert budget_needed(x, y, 0.95) == pytest.approx(0.75)


def test_cost_aware_ranking_and_budget():
    res, truth = four_labels()
    r = rank_for_correction(res, cost="slices")
    # gain/slice: a/x .07, a/y .02, b/x .01, b/y .005
    assert r[["case_id", "label"]].values.tolist() == [["a", "x"], ["a", "y"], ["b", "x"],
                                                        ["b", "y"]]
    assert r["cumulative_cost"].tolist() == [10, 20, 50, 60]
    # 50% of 60 slices = 30 → a/x and a/y fit (20), b/x (cumulative 50) does not
    assert n_within_budget(r, fraction=0.5, uniform=False) == 2
    v = rank_for_correction(res, cost="voxels")
    assert v["label"].tolist()[0] == "x" and v["case_id"].tolist()[:2] == ["a", "b"]
    b = plan_budget(res, fraction=0.5, cost="voxels", truth=truth, n_draws=50)
    assert b.cost == "voxels" and 0 < b.spent_fraction <= 0.5


def test_case_unit_and_count():
    res, truth = four_labels()
    b = plan_budget(res, count=1, unit="case", truth=truth, n_draws=50)
    sel = b.selected
    assert sel["case_id"].tolist() == ["a"] and sel["label"].tolist() == ["*"]
    assert sel["predicted_dsc"].iloc[0] == pytest.approx(0.55)
    assert b.spent_fraction == pytest.approx(0.5) and b.fraction == pytest.approx(0.5)
    # correcting case a: (1 + 1 + .9 + 1) / 4
    assert b.simulation.at_budget["qsaudit"] == pytest.approx(0.975)
    assert plan_budget(res, count=99).n_selected == 4


def test_fraction_rounds_to_nearest_and_skips_not_ok():
    res = make_results(4)  # 12 labels
    res.loc[0, "status"] = "missing_image"
    b = plan_budget(normalise_results(res), fraction=0.33)
    assert b.n_selected == 4 and b.n_skipped == 1  # 0.33 × 11 = 3.63 → 4
    assert b.selected["rank"].tolist() == [1, 2, 3, 4]
    assert b.selected["predicted_dsc"].is_monotonic_increasing


def test_budget_errors():
    res, truth = four_labels()
    with pytest.raises(UsageError, match="exactly one"):
        plan_budget(res, fraction=0.5, count=2)
    with pytest.raises(UsageError, match="above 0 and at most 1"):
        plan_budget(res, fraction=1.5)
    with pytest.raises(UsageError, match="--unit"):
        plan_budget(res, fraction=0.5, unit="patient")
    with pytest.raises(UsageError, match="--cost"):
        plan_budget(res, fraction=0.5, cost="minutes")
    with pytest.raises(AnalysisError, match="mask_slices"):
        plan_budget(res.drop(columns="mask_slices"), fraction=0.5, cost="slices")
    truth["case_id"] = "zz"
    with pytest.raises(AnalysisError, match="no result row has a true DSC"):
        plan_budget(res, fraction=0.5, truth=truth)


def test_correction_list_says_what_to_fix():
    res, _ = four_labels()
    res["likely_error"] = pd.array(["cut_short", "none", "leak", pd.NA], dtype="string")
    res["error_slices"] = pd.array(["40-52", pd.NA, "7-9", pd.NA], dtype="string")
    res["worst_slice"] = pd.array([30, 5, 8, pd.NA], dtype="Int64")
    labels = plan_budget(res, count=4).selected.set_index(["case_id", "label"])["task"]
    assert labels[("a", "x")] == "cut short at the top: extend it over slices 40-52"
    assert labels[("a", "y")].startswith("no specific error recognised")
    assert labels[("b", "x")] == "leaks into a neighbour: cut away the spill over slices 7-9"
    assert labels[("b", "y")] == ""  # no classifier verdict for this row
    cases = plan_budget(res, count=2, unit="case").selected.set_index("case_id")["task"]
    assert cases["a"] == "x: cut short at the top: extend it over slices 40-52"
    assert cases["b"] == "x: leaks into a neighbour: cut away the spill over slices 7-9"
