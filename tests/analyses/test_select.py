"""Selecting pseudo-labels by predicted DSC, nnU-Net splits, comparison with truth."""

from __future__ import annotations

import pandas as pd
import pytest

from qsaudit.analyses.results import normalise_results
from qsaudit.analyses.select import SELECTED_COLUMNS, nnunet_splits, select_labels
from qsaudit.errors import AnalysisError, UsageError


def table() -> tuple[pd.DataFrame, pd.DataFrame]:
    res = normalise_results(pd.DataFrame({
        "case_id": ["a", "a", "b", "b", "c", "c", "d", "d"],
        "label": ["liver", "spleen"] * 4,
        "predicted_dsc": [0.3, 0.9, 0.8, 0.85, 0.95, 0.6, 0.7, 0.75],
        "image_path": [f"/d/{c}/ct.nii.gz" for c in "aabbccdd"],
        "label_path": [f"/d/{c}/{s}.nii.gz" for c in "abcd" for s in ("liver", "spleen")],
        "status": ["ok"] * 7 + ["unreadable"]}))
    truth = pd.DataFrame({"case_id": list("aabbccdd"), "label": ["liver", "spleen"] * 4,
                          "true_dsc": [0.2, 0.9, 0.8, 0.9, 1.0, 0.5, 0.6, 0.7]})
    return res, truth


def test_top_fraction_of_labels():
    res, _ = table()
    s = select_labels(res, top=0.5)  # 7 ok labels → 4 (3.5 rounds up)
    assert list(s.selected.columns) == SELECTED_COLUMNS
    assert s.selected["predicted_dsc"].tolist() == [0.95, 0.9, 0.85, 0.8]
    assert s.selected["image_path"].iloc[0] == "/d/c/ct.nii.gz"
    assert s.cases == ["c", "a", "b"] and s.n_skipped == 1


def test_count_and_threshold():
    res, _ = table()
    assert select_labels(res, count=2).selected["label"].tolist() == ["liver", "spleen"]
    s = select_labels(res, min_dsc=0.8)
    assert sorted(s.selected["predicted_dsc"]) == [0.8, 0.85, 0.9, 0.95]
    assert select_labels(res, min_dsc=0.99).selected.empty


def test_case_unit_mean_and_min():
    res, _ = table()
    # case means: a 0.6, b 0.825, c 0.775, d 0.7 (one ok label); mins: a .3, b .8, c .6, d .7
    mean = select_labels(res, count=2, unit="case")
    assert mean.cases == ["b", "c"] and len(mean.selected) == 4
    low = select_labels(res, count=2, unit="case", case_score="min")
    assert low.cases == ["b", "d"]


def test_truth_comparison_is_better_than_random():
    res, truth = table()
    s = select_labels(res, top=0.5, truth=truth, n_draws=500)
    # selected true DSCs: c/liver 1.0, a/spleen .9, b/spleen .9, b/liver .8
    assert s.truth.selected_mean == pytest.approx(0.9)
    assert s.truth.all_mean == pytest.approx((0.2 + 0.9 + 0.8 + 0.9 + 1.0 + 0.5 + 0.6) / 7)
    assert s.truth.random_mean == pytest.approx(s.truth.all_mean, abs=0.03)
    assert s.to_json()["truth"]["selected_mean_true_dsc"] == pytest.approx(0.9)


def test_nnunet_splits_cover_the_selection():
    cases = [f"s{i:04d}" for i in range(12)]
    folds = nnunet_splits(cases, folds=5, seed=3)
    assert len(folds) == 5
    vals = [c for f in folds for c in f["val"]]
    assert sorted(vals) == cases  # each selected case validates exactly once
    for f in folds:
        assert set(f["train"]) | set(f["val"]) == set(cases)
        assert not set(f["train"]) & set(f["val"])
    assert nnunet_splits(["a"], folds=5) == [{"train": ["a"], "val": ["a"]}]
    assert len(nnunet_splits(["a", "b", "c"], folds=5)) == 3
    with pytest.raises(UsageError):
        nnunet_splits(cases, folds=0)


def test_select_errors():
    res, _ = table()
    with pytest.raises(UsageError, match="exactly one"):
        select_labels(res)
    with pytest.raises(UsageError, match="exactly one"):
        select_labels(res, top=0.5, count=3)
    with pytest.raises(UsageError, match="--top"):
        select_labels(res, top=2.0)
    with pytest.raises(UsageError, match="--case-score"):
        select_labels(res, top=0.5, unit="case", case_score="median")
    with pytest.raises(UsageError, match="--unit"):
        select_labels(res, top=0.5, unit="slice")
    res["status"] = "unreadable"
    with pytest.raises(AnalysisError, match="no ok row"):
        select_labels(res, top=0.5)
