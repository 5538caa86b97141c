"""The bias, budget, select and gate commands through Typer: exit codes, output, files."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from analyses_tables import make_results, write_meta, write_results
from typer.testing import CliRunner

from qsaudit.analyses.bias_simulation import simulate_bias_data
from qsaudit.cli import app

runner = CliRunner()


def invoke(args, **kw):
    return runner.invoke(app, [str(a) for a in args], **kw)


@pytest.fixture
def report(tmp_path):
    df = make_results(12, seed=4)
    df.loc[0, "status"] = "unreadable"
    return write_results(df, tmp_path / "report")


@pytest.fixture
def truth(tmp_path, report):
    df = pd.read_csv(report / "results.csv")
    df["true_dsc"] = (df["predicted_dsc"].fillna(0.5) - 0.05).clip(0, 1)
    path = tmp_path / "truth.csv"
    df[["case_id", "label", "true_dsc"]].to_csv(path, index=False)
    return path


def test_bias_command_writes_outputs(tmp_path):
    res, meta = simulate_bias_data(n_patients=40, structures=("liver", "spleen"),
                                   sex_effect=0.08, seed=5)
    folder = write_results(res, tmp_path / "r")
    rows = [(r.patient_id, f"{int(r.age):03d}Y", "M" if r.sex == "M" else "f")
            for r in meta.table.itertuples()] + [("s9000", "50", "m")]
    meta_path = write_meta(tmp_path / "meta.csv", rows)
    out = invoke(["bias", "--meta", meta_path, "--results", folder])
    assert out.exit_code == 0, out.output
    assert "Predicted DSC by sex and age" in out.output and "male patients" in out.output
    for name in ("bias.csv", "bias.json", "bias.html"):
        assert (folder / name).is_file()
    j = json.loads((folder / "bias.json").read_text())
    assert j["overall"]["sex"]["effect"] > 0 and j["unmatched"]["metadata_without_cases"] == [
        "s9000"]
    other = tmp_path / "other"
    out = invoke(["bias", "-m", meta_path, "-r", folder, "--out", other, "--no-html",
                  "--covariate", "age", "--alpha", "0.01", "--id-col", "image_id",
                  "--sex-col", "gender", "--age-col", "age", "-q"])
    assert out.exit_code == 2 and "already in the model" in out.output
    out = invoke(["bias", "-m", meta_path, "-r", folder, "--out", other, "--no-html", "-q"])
    assert out.exit_code == 0 and not (other / "bias.html").exists()


def test_bias_command_usage_errors(tmp_path, report):
    assert invoke(["bias", "--meta", tmp_path / "none.csv", "-r", report]).exit_code == 2
    meta = write_meta(tmp_path / "m.csv", [("s0001", "40", "0")], sep=",")
    out = invoke(["bias", "--meta", meta, "-r", report])
    assert out.exit_code == 2 and "--sex-map" in out.output
    out = invoke(["bias", "--meta", meta, "-r", report, "--sex-map", "0=F,1=M", "--alpha", "2"])
    assert out.exit_code == 2 and "--alpha" in out.output
    out = invoke(["bias", "--meta", meta, "-r", tmp_path / "nowhere"])
    assert out.exit_code == 2 and "nowhere" in out.output
    nomatch = write_meta(tmp_path / "n.csv", [("x1", "40", "m")])
    out = invoke(["bias", "--meta", nomatch, "-r", report])
    assert out.exit_code == 2 and "no case of the results has metadata" in out.output
    assert "Traceback" not in out.output


def test_budget_command(report, truth, tmp_path):
    out = invoke(["budget", "--fraction", "0.33", "-r", report, "--truth", truth,
                  "--draws", "20"])
    assert out.exit_code == 0, out.output
    assert "Selected 12 of 35 labels" in out.output and "Skipped 1" in out.output
    assert "less annotation" in out.output
    lst = pd.read_csv(report / "correction_list.csv")
    assert list(lst.columns) == ["rank", "case_id", "label", "predicted_dsc", "task", "cost",
                                 "cumulative_cost"]
    assert lst["task"].isna().all()  # results without likely_error: no task to name
    assert len(lst) == 12 and lst["predicted_dsc"].is_monotonic_increasing
    j = json.loads((report / "budget.json").read_text())
    assert {"unit", "fraction", "n_selected", "curves", "saving_vs_random"} <= set(j)
    assert set(j["curves"]) == {"qsaudit", "random", "oracle"} and j["n_selected"] == 12
    assert (report / "budget.png").read_bytes()[:4] == b"\x89PNG"
    out = invoke(["budget", "-n", "3", "--unit", "case", "--cost", "slices", "-r", report,
                  "--out", tmp_path / "o", "--seed", "2"])
    assert out.exit_code == 0, out.output
    assert len(pd.read_csv(tmp_path / "o" / "correction_list.csv")) == 3
    out = invoke(["budget", "--cost", "voxels", "-f", "0.5", "-r", report, "-o", tmp_path / "v"])
    assert out.exit_code == 0 and "cost = voxels" in out.output


@pytest.mark.parametrize("args, code", [
    ([], 2), (["-f", "0.3", "-n", "2"], 2), (["-f", "3"], 2), (["-f", "0.3", "--unit", "x"], 2),
    (["-f", "0.3", "--truth", "missing.csv"], 2), (["-f", "0.3", "--draws", "0"], 2),
])
def test_budget_command_usage_errors(report, args, code):
    out = invoke(["budget", "-r", report, *args])
    assert out.exit_code == code and "Error" in out.output and "Traceback" not in out.output


def test_gate_screen_counts_add_up_and_show_warnings(tmp_path, monkeypatch):
    """Listed plus "… and N more" equals the totals on the last line, errors and warnings."""
    import re

    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    df = make_results(40, structures=("liver", "spleen"), seed=3)
    df.loc[::2, "predicted_dsc"] = 0.1            # 40 errors below --min-dsc
    flagged = df.index[1::2][:25]
    df.loc[flagged, "n_flags"] = 1                # 25 flagged labels: warnings
    df.loc[flagged, df.columns[df.columns.str.startswith("flag_")][0]] = True
    out = invoke(["gate", "-r", write_results(df, tmp_path / "r"), "--min-dsc", "0.2"])
    assert out.exit_code == 1, out.output
    lines = out.output.splitlines()
    shown = {level: sum(line.startswith(f"{level}: ") for line in lines)
             for level in ("error", "warning")}
    more = {level: sum(int(n) for n in re.findall(rf"… and (\d+) more {level}", out.output))
            for level in ("error", "warning")}
    assert shown["warning"] > 0
    assert lines[-1] == "Gate failed: 40 errors, 25 warnings."
    assert shown["error"] + more["error"] == 40 and shown["warning"] + more["warning"] == 25


@pytest.mark.parametrize("args", [
    ["budget", "--fraction", "0"], ["budget", "--count", "0"], ["budget", "--fraction", "0.01"],
    ["select", "--top", "0"], ["select", "--count", "0"], ["select", "--top", "0.01"],
])
def test_empty_budgets_are_refused_alike_and_keep_earlier_outputs(report, args):
    """One rule: a budget that selects nothing exits 2 and overwrites nothing."""
    assert invoke(["budget", "-f", "0.5", "-r", report]).exit_code == 0
    assert invoke(["select", "--top", "0.5", "-r", report]).exit_code == 0
    before = {name: (report / name).read_bytes() for name in
              ("correction_list.csv", "budget.json", "selected.csv", "select.json")}
    out = invoke([*args, "-r", report])
    assert out.exit_code == 2 and "Error" in out.output and "Traceback" not in out.output
    assert {name: (report / name).read_bytes() for name in before} == before


def test_select_command(report, truth, tmp_path):
    splits = tmp_path / "splits_final.json"
    out = invoke(["select", "--top", "0.5", "--unit", "case", "-r", report,
                  "--nnunet-splits", splits, "--folds", "3", "--truth", truth,
                  "--draws", "20"])
    assert out.exit_code == 0, out.output
    sel = pd.read_csv(report / "selected.csv")
    assert list(sel.columns) == ["case_id", "label", "predicted_dsc", "image_path",
                                 "label_path"]
    assert sel["case_id"].nunique() == 6 and "Mean true DSC: selected" in out.output
    folds = json.loads(splits.read_text())
    assert len(folds) == 3 and sorted(c for f in folds for c in f["val"]) == sorted(
        sel["case_id"].unique())
    out = invoke(["select", "--min-dsc", "0.9", "-r", report, "-o", tmp_path / "s"])
    assert out.exit_code == 0
    assert (pd.read_csv(tmp_path / "s" / "selected.csv")["predicted_dsc"] >= 0.9).all()
    out = invoke(["select", "-n", "2", "--case-score", "min", "--unit", "case", "--seed", "1",
                  "-r", report, "-o", tmp_path / "t"])
    assert out.exit_code == 0
    assert invoke(["select", "-r", report]).exit_code == 2
    assert invoke(["select", "--top", "0.5", "--unit", "x", "-r", report]).exit_code == 2


def test_gate_command_exit_codes(tmp_path, monkeypatch):
    base_df = make_results(5, structures=("liver", "spleen"))
    base = write_results(base_df, tmp_path / "base")
    same = write_results(base_df, tmp_path / "same")
    worse = base_df.copy()
    worse.loc[worse["structure"] == "liver", "predicted_dsc"] -= 0.2
    worse = write_results(worse, tmp_path / "worse")
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    ok = invoke(["gate", "-r", same, "--baseline", base, "--max-drop", "0.05"])
    assert ok.exit_code == 0 and "Gate passed" in ok.output and "::" not in ok.output
    junit = tmp_path / "gate.xml"
    summary = tmp_path / "summary.md"
    bad = invoke(["gate", "-r", worse, "-b", base, "--max-drop", "0.05", "--junit", junit],
                 env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    assert bad.exit_code == 1, bad.output
    assert "::error title=qsaudit gate%3A liver (mean_drop)::" in bad.output
    assert "<failure" in junit.read_text() and "| liver |" in summary.read_text()
    assert invoke(["gate", "-r", worse, "--min-dsc", "0.95"]).exit_code == 1
    policy = tmp_path / "p.toml"
    policy.write_text('[default]\nmin_dsc = 0.0\n[structures."liver"]\nmax_drop = 0.5\n')
    assert invoke(["gate", "-r", worse, "-b", base, "--policy", policy]).exit_code == 0


@pytest.mark.parametrize("args", [
    ["--max-drop", "0.05"],                       # no baseline
    ["--min-dsc", "1.5"],                         # out of range
    [],                                           # nothing to check
    ["--min-dsc", "0.5", "-b", "{tmp}/missing"],  # unreadable baseline
    ["--policy", "{tmp}/bad.toml"],               # bad policy
])
def test_gate_usage_errors_exit_2(tmp_path, args):
    folder = write_results(make_results(2), tmp_path / "r")
    (tmp_path / "bad.toml").write_text("[default\n")
    out = invoke(["gate", "-r", folder, *[a.format(tmp=tmp_path) for a in args]])
    assert out.exit_code == 2, out.output
    assert "Error" in out.output and "Traceback" not in out.output


def test_gate_unreadable_results_exit_2(tmp_path):
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "results.csv").write_text("case_id,label\nx,liver\n")
    out = invoke(["gate", "-r", folder, "--min-dsc", "0.5"])
    assert out.exit_code == 2 and "predicted_dsc" in out.output


@pytest.mark.slow
def test_bias_budget_select_gate_chain_on_demo_format_files(tmp_path):
    """The four commands in a row on one results folder with demo-style truth/patients files."""
    res, meta = simulate_bias_data(n_patients=24, structures=("liver", "spleen", "aorta"),
                                   sex_effect=0.05, seed=9)
    res["mask_slices"] = 20
    res["voxels"] = 1000
    folder = write_results(res, tmp_path / "qsaudit-report", fmt="parquet")
    demo = tmp_path / "demo"
    demo.mkdir()
    truth = res[["case_id", "label"]].assign(
        true_dsc=(res["predicted_dsc"] - 0.03).clip(0, 1), error="erode", severity=0.3)
    truth.to_csv(demo / "truth.csv", index=False)
    lines = ["image_id;age;gender;institute;study_type;split;manufacturer"] + [
        f"{r.patient_id};{int(r.age)};{r.sex.lower()};{r.institute};ct;train;siemens"
        for r in meta.table.itertuples()]
    (demo / "patients.csv").write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode())
    steps = [
        ["bias", "--meta", demo / "patients.csv", "-r", folder, "-c", "institute", "-q"],
        ["budget", "--fraction", "0.33", "--truth", demo / "truth.csv", "-r", folder],
        ["select", "--top", "0.5", "--truth", demo / "truth.csv", "-r", folder,
         "--nnunet-splits", folder / "splits_final.json"],
        ["gate", "-r", folder, "--baseline", folder, "--max-drop", "0.01", "--junit",
         folder / "gate.xml"],
    ]
    for args in steps:
        out = invoke(args)
        assert out.exit_code == 0, (args[0], out.output)
    written = {p.name for p in folder.iterdir()}
    assert {"bias.json", "bias.html", "budget.json", "correction_list.csv", "selected.csv",
            "splits_final.json", "gate.xml"} <= written
    assert json.loads((folder / "bias.json").read_text())["overall"]["model"]["covariates"] == [
        "institute"]
    assert json.loads((folder / "budget.json").read_text())["saving_vs_random"] > 0
