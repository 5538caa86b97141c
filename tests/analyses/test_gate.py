"""Gate checks, policy files, JUnit XML, GitHub annotations and step summary."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pandas as pd
import pytest
from analyses_tables import make_results

from qsaudit.analyses.gate import GatePolicy, Thresholds, check_gate, load_policy
from qsaudit.analyses.gate_report import (
    append_step_summary,
    github_annotations,
    junit_xml,
    markdown_summary,
)
from qsaudit.analyses.results import normalise_results
from qsaudit.errors import UsageError


def base_and_current():
    base = make_results(4, structures=("liver", "spleen"), seed=0)
    base["predicted_dsc"] = 0.9
    return normalise_results(base), normalise_results(base.copy())


def kinds(result):
    return sorted({(f.level, f.kind) for f in result.findings})


def test_unchanged_dataset_passes():
    base, cur = base_and_current()
    r = check_gate(cur, baseline=base, policy=GatePolicy(Thresholds(min_dsc=0.5, max_drop=0.05)))
    assert r.passed and r.findings == []
    assert r.structures["passed"].all() and r.structures["drop"].tolist() == [0.0, 0.0]


def test_below_min_dsc_without_baseline():
    _, cur = base_and_current()
    cur.loc[0, "predicted_dsc"] = 0.4
    r = check_gate(cur, policy=GatePolicy(Thresholds(min_dsc=0.5)))
    assert not r.passed and kinds(r) == [("error", "below_min_dsc")]
    assert "s0001/liver" in r.errors[0].message and "0.400" in r.errors[0].message


def test_mean_drop_dropped_failed_empty_and_flagged():
    base, cur = base_and_current()
    cur.loc[cur["structure"] == "spleen", "predicted_dsc"] = 0.8   # drop 0.1 > 0.05
    cur = cur[~((cur["case_id"] == "s0004") & (cur["label"] == "liver"))].copy()  # dropped
    cur.loc[0, "status"] = "unreadable"                             # newly failed
    cur.loc[0, "error"] = "truncated gzip"
    cur.loc[2, "flag_empty"] = True                                 # newly empty
    cur.loc[4, "flag_side"] = True                                  # newly flagged
    cur.loc[4, "n_flags"] = 1
    r = check_gate(cur, baseline=base, policy=GatePolicy(Thresholds(max_drop=0.05)))
    assert kinds(r) == [("error", "dropped_label"), ("error", "mean_drop"),
                        ("error", "newly_empty"), ("error", "newly_failed"),
                        ("error", "newly_flagged")]
    row = r.structures.set_index("structure").loc["spleen"]
    assert row["drop"] == pytest.approx(0.1) and not row["passed"]


def test_n_flags_increase_alone_and_warning_policy():
    base, cur = base_and_current()
    cur.loc[1, "n_flags"] = 2
    r = check_gate(cur, baseline=base)
    assert kinds(r) == [("error", "newly_flagged")] and "n_flags 0 → 2" in r.errors[0].message
    relaxed = GatePolicy(structures={"spleen": Thresholds(fail_on_new_flags=False)})
    assert check_gate(cur, baseline=base, policy=relaxed).passed


def test_new_labels_warn_and_flags_without_baseline():
    base, cur = base_and_current()
    r = check_gate(cur, baseline=base.iloc[:-1])
    assert r.passed and kinds(r) == [("warning", "new_label")]
    cur.loc[0, "flag_empty"] = True
    cur.loc[1, "flag_edge"] = True
    r = check_gate(cur, policy=GatePolicy(Thresholds(min_dsc=0.1)))
    assert r.passed  # without a baseline an empty mask is only a warning
    assert kinds(r) == [("warning", "empty"), ("warning", "flagged")]


def test_policy_file_per_structure(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text('[default]\nmin_dsc = 0.5\nmax_drop = 0.05\n\n'
                    '[structures."liver"]\nmin_dsc = 0.95\n')
    policy = load_policy(path)
    assert policy.for_structure("liver") == Thresholds(min_dsc=0.95, max_drop=0.05)
    assert policy.for_structure("spleen").min_dsc == 0.5
    base, cur = base_and_current()
    r = check_gate(cur, baseline=base, policy=policy)
    assert {f.structure for f in r.errors} == {"liver"} and len(r.errors) == 4
    cli = policy.with_defaults(min_dsc=0.2, max_drop=0.5)
    assert cli.default == Thresholds(min_dsc=0.2, max_drop=0.5)
    assert cli.for_structure("liver").min_dsc == 0.95


@pytest.mark.parametrize("text, match", [
    ("[default]\nmin_dsc = 2\n", "must be a number in"),
    ("[default]\nmindsc = 0.5\n", "unknown key"),
    ("[thresholds]\nmin_dsc = 0.5\n", "unknown section"),
    ("[default\n", "not a valid TOML"),
    ('[structures."liver"]\nfail_on_new_flags = "yes"\n', "true or false"),
])
def test_bad_policies_are_usage_errors(tmp_path, text, match):
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=match):
        load_policy(path)


def test_nothing_to_check_is_a_usage_error():
    _, cur = base_and_current()
    with pytest.raises(UsageError, match="nothing to check"):
        check_gate(cur)
    with pytest.raises(UsageError, match="no such policy"):
        load_policy("/nonexistent/policy.toml")


def test_junit_annotations_and_summary(tmp_path):
    base, cur = base_and_current()
    cur.loc[0, "predicted_dsc"] = 0.1
    cur.loc[1, "flag_edge"] = True
    r = check_gate(cur, baseline=base.iloc[:-1],
                   policy=GatePolicy(Thresholds(min_dsc=0.5, fail_on_new_flags=False)))
    root = ET.fromstring(junit_xml(r))
    suite = root.find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"liver", "spleen"}
    failure = cases["liver"].find("failure")
    assert "below_min_dsc" in failure.get("type") and "s0001/liver" in failure.text
    assert cases["spleen"].find("failure") is None
    assert "warning" in cases["spleen"].find("system-out").text
    lines = github_annotations(r)
    assert lines[0].startswith("::error title=qsaudit gate%3A liver (below_min_dsc)::")
    assert any(line.startswith("::warning title=") for line in lines)
    md = markdown_summary(r)
    assert "| liver | 4 |" in md and "**fail** (1)" in md and "failed" in md
    summary = tmp_path / "summary.md"
    summary.write_text("previous step\n")
    append_step_summary(r, summary)
    assert summary.read_text().startswith("previous step\n### qsaudit gate")


def test_a_failing_label_says_what_is_likely_wrong():
    _, cur = base_and_current()
    cur.loc[[0, 1], "predicted_dsc"] = 0.4
    cur["likely_error"] = pd.array([pd.NA] * len(cur), dtype="string")
    cur["error_slices"] = pd.array([pd.NA] * len(cur), dtype="string")
    cur.loc[0, ["likely_error", "error_slices"]] = ["missing_slices", "12-14"]
    cur.loc[1, "likely_error"] = "none"
    r = check_gate(cur, policy=GatePolicy(Thresholds(min_dsc=0.5)))
    first, second = (f.message for f in r.errors)
    assert first.endswith("< min 0.500; likely slices missing: fill in the gap over slices 12-14")
    assert second.endswith("< min 0.500")  # "none": nothing to add
