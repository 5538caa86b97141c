"""The whole user journey through the CLI with the shipped weights:
demo -> scan -> evaluate -> bias -> budget -> select -> gate, from a fresh working folder.

Every command runs with its defaults where a user would (``--results`` left out, so the
default ``./qsaudit-report`` is used), and the test checks exit codes, the files each command
writes, the JSON contracts that other tools rely on, and that nothing inside the dataset was
touched.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from qsaudit.cli import app

WEIGHTS = Path(__file__).resolve().parents[1] / "qsaudit" / "weights" / "qsaudit-default.pt"
CASES = 8

pytestmark = pytest.mark.skipif(not WEIGHTS.is_file(),
                                reason=f"shipped weights absent: {WEIGHTS}")


def _run(*args: object) -> tuple[int, str]:
    """Invoke ``qsaudit ARGS`` in-process; returns (exit code, stdout + stderr)."""
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def _ok(*args: object) -> str:
    code, output = _run(*args)
    assert code == 0, f"qsaudit {' '.join(map(str, args))} -> exit {code}\n{output}"
    assert "Traceback" not in output
    return output


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime in ns) of every file and folder below ``folder``."""
    out = {}
    for path in sorted(folder.rglob("*")):
        st = path.stat()
        out[str(path.relative_to(folder))] = (st.st_size, st.st_mtime_ns)
    return out


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _check_demo(root: Path) -> pd.DataFrame:
    for name in ("truth.csv", "patients.csv", "demo.json"):
        assert (root / "d" / name).is_file(), name
    cases = sorted(p.name for p in (root / "d" / "dataset").iterdir())
    assert len(cases) == CASES
    truth = pd.read_csv(root / "d" / "truth.csv")
    assert set(truth["case_id"]) == set(cases)
    assert truth["true_dsc"].between(0, 1).all()
    return truth


def _check_scan(report: Path, truth: pd.DataFrame) -> pd.DataFrame:
    for name in ("results.csv", "results.parquet", "slices.parquet", "report.html",
                 "scan.json"):
        assert (report / name).is_file(), name
    results = pd.read_csv(report / "results.csv")
    # One row per (case, label) of the dataset, no more, no less.
    assert len(results) == len(truth)
    assert set(zip(results["case_id"], results["label"], strict=True)) == set(
        zip(truth["case_id"], truth["label"], strict=True))
    ok = results[results["status"] == "ok"]
    assert len(ok) > 0.8 * len(results)
    assert ok["predicted_dsc"].between(0, 1).all()
    # The demo plants empty masks: the scan must report them, not score them.
    planted_empty = set(truth.loc[truth["error"] == "empty", ["case_id", "label"]]
                        .itertuples(index=False, name=None))
    reported_empty = set(results.loc[results["status"] == "empty", ["case_id", "label"]]
                         .itertuples(index=False, name=None))
    assert planted_empty <= reported_empty
    meta = json.loads((report / "scan.json").read_text())
    assert meta["state"] == "complete"
    return results


def _check_evaluate(report: Path) -> None:
    for name in ("evaluation.csv", "evaluation.json", "evaluation.png"):
        assert (report / name).is_file(), name
    overall = json.loads((report / "evaluation.json").read_text())["overall"]
    assert overall["n"] > 0
    # The model must carry real signal on its own demo data (loose: weights get replaced).
    assert overall["spearman"] > 0.3 and overall["auroc"] > 0.65


def _check_bias(report: Path, n_labels: int) -> None:
    for name in ("bias.csv", "bias.json", "bias.html"):
        assert (report / name).is_file(), name
    bias = json.loads((report / "bias.json").read_text())
    assert {"overall", "structures", "n_cases", "n_labels", "unmatched"} <= set(bias)
    sex, age = bias["overall"]["sex"], bias["overall"]["age"]
    assert {"effect", "ci", "p"} <= set(sex) and {"effect_per_decade", "ci", "p"} <= set(age)
    for block, key in ((sex, "effect"), (age, "effect_per_decade")):
        assert _finite(block[key]) and 0 <= block["p"] <= 1
        low, high = block["ci"]
        assert low <= block[key] <= high
    assert bias["n_cases"] == CASES and bias["n_labels"] == n_labels
    assert bias["structures"], "no per-structure statistics"
    # Every demo case has a metadata row and vice versa.
    assert bias["unmatched"]["n_cases_without_metadata"] == 0
    assert bias["unmatched"]["n_metadata_without_cases"] == 0


def _check_budget(report: Path, n_ok: int) -> None:
    for name in ("correction_list.csv", "budget.json", "budget.png"):
        assert (report / name).is_file(), name
    budget = json.loads((report / "budget.json").read_text())
    assert {"unit", "fraction", "n_selected", "curves", "saving_vs_random"} <= set(budget)
    assert budget["unit"] == "label" and budget["fraction"] == pytest.approx(0.3)
    assert {"qsaudit", "random", "oracle"} <= set(budget["curves"])
    assert budget["saving_vs_random"] > 0
    ranked = pd.read_csv(report / "correction_list.csv")
    assert len(ranked) == budget["n_selected"] == round(0.3 * n_ok)
    # Worst first: the predicted DSC never decreases down the list.
    assert ranked["predicted_dsc"].is_monotonic_increasing


def _check_select(report: Path, root: Path) -> None:
    for name in ("selected.csv", "select.json"):
        assert (report / name).is_file(), name
    selected = pd.read_csv(report / "selected.csv")
    assert len(selected) > 0
    for column in ("image_path", "label_path"):
        missing = [p for p in selected[column] if not (root / p).is_file()]
        assert not missing, f"{column}: {missing[:3]}"


def _check_gate(report: Path, truth: pd.DataFrame) -> None:
    lax, output = _run("gate", "--baseline", report, "--min-dsc", "0.0",
                       "--junit", "gate.xml", "--quiet")
    assert lax == 0, output
    assert "Gate passed (" in output and Path("gate.xml").is_file()
    strict, output = _run("gate", "--min-dsc", "0.99", "--junit", "strict.xml", "--quiet")
    assert strict == 1, output
    assert "Gate failed" in output and "Traceback" not in output
    # Without a baseline empty masks are warnings, still named in the JUnit report.
    junit = Path("strict.xml").read_text(encoding="utf-8")
    empty = truth[truth["error"] == "empty"]
    assert len(empty) > 0, "the demo planted no empty mask"
    for case_id, label in empty[["case_id", "label"]].itertuples(index=False):
        assert f"{case_id}/{label}: mask is empty" in junit
    bad = _run("gate", "--min-dsc", "2")[0]
    assert bad == 2


def test_demo_scan_and_every_analysis(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)

    _ok("demo", "d", "--cases", CASES, "--seed", "3", "--quiet")
    truth = _check_demo(tmp_path)
    before = _snapshot(tmp_path / "d")

    output = _ok("scan", "d/dataset", "--quiet")
    assert f"Cases: {CASES}" in output
    report = tmp_path / "qsaudit-report"  # the default results folder, in the cwd
    results = _check_scan(report, truth)
    n_ok = int((results["status"] == "ok").sum())

    _ok("evaluate", "--truth", "d/truth.csv", "--quiet")
    _check_evaluate(report)
    _ok("bias", "--meta", "d/patients.csv", "--quiet")
    _check_bias(report, n_ok)
    output = _ok("budget", "--fraction", "0.3", "--truth", "d/truth.csv", "--quiet")
    assert "less annotation" in output
    _check_budget(report, n_ok)
    _ok("select", "--top", "0.5", "--quiet")
    _check_select(report, tmp_path)
    _check_gate(report, truth)

    # qsaudit never writes inside a dataset (nor next to it, in the demo folder).
    assert _snapshot(tmp_path / "d") == before
    assert sorted(os.listdir(tmp_path)) == ["d", "gate.xml", "qsaudit-report", "strict.xml"]
