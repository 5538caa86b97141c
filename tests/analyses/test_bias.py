"""Bias statistics: known effects are found, null data stays near 5%, outputs keep the contract."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from qsaudit.analyses.bias import OVERALL, analyse_bias
from qsaudit.analyses.bias_report import templates_dir, write_bias_outputs
from qsaudit.analyses.bias_simulation import simulate_bias_data
from qsaudit.analyses.bias_stats import age_test, benjamini_hochberg, joint_model, sex_test
from qsaudit.errors import AnalysisError, UsageError


def test_sex_test_matches_scipy_welch_and_hand_effect_sizes():
    m = np.array([0.9, 0.8, 0.85, 0.95])
    f = np.array([0.7, 0.75, 0.8])
    t = sex_test(m, f)
    ref = stats.ttest_ind(m, f, equal_var=False)
    assert t.effect == pytest.approx(0.875 - 0.75)
    assert t.p == pytest.approx(ref.pvalue)
    ci = ref.confidence_interval(0.95)
    assert t.ci == pytest.approx((ci.low, ci.high))
    # every male value beats every female value but one tie (0.8 vs 0.8): U = 11.5 of 12
    assert t.rank_biserial == pytest.approx(2 * 11.5 / 12 - 1)
    pooled = math.sqrt((3 * m.var(ddof=1) + 2 * f.var(ddof=1)) / 5)
    assert t.cohen_d == pytest.approx(0.125 / pooled)
    assert math.isnan(sex_test(m, f[:1]).p)


def test_age_test_slope_per_decade():
    age = np.array([20.0, 30, 40, 50, 60, 70])
    dsc = 0.9 - 0.01 * (age - 20) / 10  # exactly −0.01 per decade
    a = age_test(age, dsc)
    assert a.effect_per_decade == pytest.approx(-0.01)
    assert a.rho == pytest.approx(-1.0)
    assert math.isnan(age_test(age[:2], dsc[:2]).p)


def test_benjamini_hochberg_by_hand():
    # m = 4 tests; sorted p 0.01, 0.02, 0.03, 0.5 → 0.04, 0.04, 0.04, 0.5
    assert benjamini_hochberg([0.03, 0.01, float("nan"), 0.5, 0.02]) == pytest.approx(
        [0.04, 0.04, float("nan"), 0.5, 0.04], nan_ok=True)


def test_injected_effects_are_found_with_the_right_sign():
    res, meta = simulate_bias_data(n_patients=80, sex_effect=0.04, age_effect_per_decade=-0.02,
                                   seed=3)
    b = analyse_bias(res, meta, covariates=("institute",))
    assert b.model.sex_p < 0.05 and b.model.sex_ci[0] < 0.04 < b.model.sex_ci[1]
    assert b.model.age_p < 0.05 and b.model.age_effect_per_decade < 0
    assert b.model.method in ("mixedlm", "ols_cluster")
    assert "male patients" in b.summary[0] and "significant at 0.05" in b.summary[0]
    assert "falls" in b.summary[1]


def test_false_positive_rate_near_nominal_without_effect():
    seeds = range(24)
    overall = per_structure = 0
    for seed in seeds:
        res, meta = simulate_bias_data(n_patients=50, seed=100 + seed)
        b = analyse_bias(res, meta)
        overall += b.model.sex_p < 0.05
        per_structure += (b.table["sex_p_adj"].iloc[1:] < 0.05).any()
    # nominal 5%: 1.2 expected of 24; 4 or more has probability < 0.04 if the test is honest
    assert overall <= 3 and per_structure <= 3


def test_joint_model_falls_back_to_clustered_ols_with_one_label_per_patient():
    res, meta = simulate_bias_data(n_patients=30, structures=("liver",), sex_effect=0.1, seed=1)
    data = res.merge(meta.table, left_on="case_id", right_on="patient_id")
    m = joint_model(data)
    assert m.method == "ols_cluster" and "clustered by patient" in m.note
    assert m.sex_effect > 0.05


def test_analyse_bias_contract_and_outputs(tmp_path):
    res, meta = simulate_bias_data(n_patients=30, structures=("liver", "spleen"), seed=2)
    extra = pd.DataFrame([{"case_id": "s0999", "label": "liver", "structure": "liver",
                           "status": "ok", "predicted_dsc": 0.5},
                          {"case_id": "s0001", "label": "aorta", "structure": "aorta",
                           "status": "unreadable", "predicted_dsc": float("nan")}])
    res = pd.concat([res, extra], ignore_index=True)
    b = analyse_bias(res, meta)
    j = b.to_json()
    assert set(j) >= {"overall", "structures", "n_cases", "n_labels", "unmatched"}
    assert set(j["overall"]["sex"]) == {"effect", "ci", "p"}
    assert set(j["overall"]["age"]) == {"effect_per_decade", "ci", "p"}
    assert set(j["structures"]) == {"liver", "spleen"}
    assert {"effect", "ci", "p", "p_adj"} <= set(j["structures"]["liver"]["sex"])
    assert {"effect_per_decade", "ci", "p", "p_adj"} <= set(j["structures"]["liver"]["age"])
    assert j["n_cases"] == 30 and j["n_labels"] == 60 and j["n_skipped_not_ok"] == 1
    assert j["unmatched"]["cases_without_metadata"] == ["s0999"]
    assert b.table["structure"].iloc[0] == OVERALL
    assert any("1 case(s) without metadata" in s for s in b.summary)
    paths = write_bias_outputs(b, tmp_path)
    loaded = json.loads(paths["json"].read_text())
    assert loaded["overall"]["sex"]["effect"] == pytest.approx(b.model.sex_effect)
    assert pd.read_csv(paths["csv"])["structure"].tolist() == [OVERALL, "liver", "spleen"]
    html = paths["html"].read_text()
    assert html.count("data:image/png;base64,") == 2 and "http" not in html.split("<body>")[1]
    assert "s0999" in html
    assert (templates_dir() / "bias.html.j2").is_file()


def test_analyse_bias_errors():
    res, meta = simulate_bias_data(n_patients=10, seed=0)
    with pytest.raises(UsageError, match="no covariate column scanner"):
        analyse_bias(res, meta, covariates=("scanner",))
    res["case_id"] = "x" + res["case_id"]
    with pytest.raises(AnalysisError, match="no case of the results has metadata"):
        analyse_bias(res, meta)
