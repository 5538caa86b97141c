"""`qsaudit scan` and `qsaudit merge` through the CLI: exit codes, output, files."""

import shlex

import pandas as pd
from typer.testing import CliRunner

from qsaudit.cli import app


def _scan(*args):
    return CliRunner().invoke(app, ["scan", *map(str, args), "--workers", "0", "--device",
                                    "cpu", "--quiet", "--slices", "3"])


def test_scan_merge_and_errors(make_dataset, tiny_model, tmp_path):
    dataset = make_dataset(cases=4, plants={"c001": "empty"})
    (dataset / "c002" / "ct.nii.gz").write_bytes(b"\x1f\x8b broken")
    out = tmp_path / "out"
    result = _scan(dataset, "--out", out, "--model", tiny_model)
    assert result.exit_code == 0, result.output
    assert "Cases: 4" in result.output and "Report:" in result.output
    table = pd.read_csv(out / "results.csv")
    assert set(table.loc[table.case_id == "c002", "status"]) == {"unreadable"}
    refused = _scan(dataset, "--out", out, "--model", tiny_model, "--seed", "3")
    assert refused.exit_code == 2 and "seed was 0, now 3" in refused.output
    assert "Traceback" not in refused.output
    assert _scan(dataset, "--out", out, "--model", tiny_model, "--shard", "2/2").exit_code == 2
    assert _scan(dataset, "--model", tmp_path / "none.pt", "--out", out).exit_code == 2
    for i in range(2):
        r = _scan(dataset, "--out", tmp_path / f"s{i}", "--model", tiny_model, "--shard", f"{i}/2")
        assert r.exit_code == 0, r.output
    merged = CliRunner().invoke(app, ["merge", str(tmp_path / "s0"), str(tmp_path / "s1"),
                                      "--out", str(tmp_path / "m")])
    assert merged.exit_code == 0, merged.output
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"),
                                  pd.read_parquet(tmp_path / "m" / "results.parquet"))
    bad = CliRunner().invoke(app, ["merge", str(tmp_path / "s0"), "--out", str(tmp_path / "m")])
    assert bad.exit_code == 2 and "missing" in bad.output


def test_suggested_next_command_runs_as_printed(make_dataset, tiny_model, tmp_path, monkeypatch):
    dataset = make_dataset(cases=3)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "my results"
    result = _scan(dataset, "--out", out, "--model", tiny_model)
    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("Next: ")]
    words = shlex.split(line.removeprefix("Next: "))
    assert words[0] == "qsaudit"
    follow = CliRunner().invoke(app, words[1:])
    assert follow.exit_code == 0, follow.output
    assert (out / "correction_list.csv").is_file()


def test_a_dataset_of_images_without_masks_says_so(make_dataset, tiny_model, tmp_path):
    dataset = make_dataset(cases=2)
    for mask in dataset.glob("*/segmentations/*"):
        mask.unlink()
    result = _scan(dataset, "--out", tmp_path / "out", "--model", tiny_model)
    assert result.exit_code == 0, result.output
    assert "Labels: 0" in result.output and "()" not in result.output
    assert "No labels: the 2 case(s) read have an image but no mask" in result.output
    assert "nan" not in result.output and "Next:" not in result.output


def test_out_inside_the_dataset_is_refused(make_dataset, tiny_model):
    dataset = make_dataset(cases=2)
    before = sorted(p for p in dataset.rglob("*"))
    for out in (dataset / "rep", dataset, dataset / "c000" / "deeper"):
        result = _scan(dataset, "--out", out, "--model", tiny_model)
        assert result.exit_code == 2, result.output
        assert "inside the dataset" in result.output and "Traceback" not in result.output
    assert sorted(p for p in dataset.rglob("*")) == before


def test_cards_show_three_views_and_evaluate_outlines_references(make_dataset, tiny_model,
                                                                 tmp_path):
    import re

    dataset = make_dataset(cases=3)
    out = tmp_path / "out"
    assert _scan(dataset, "--out", out, "--model", tiny_model).exit_code == 0
    html = (out / "report.html").read_text()
    cards = html.count('<article class="card">')
    assert cards > 0 and html.count('<button type="button" class="view"') == 3 * cards
    assert 'class="key-ref"' not in html  # no reference known yet
    table = pd.read_csv(out / "results.csv")
    truth = table[["case_id", "label"]].assign(
        true_dsc=0.9, reference_path=[str(dataset / c / "segmentations" / f"{lab}.nii.gz")
                                      for c, lab in zip(table.case_id, table.label, strict=True)])
    truth.to_csv(tmp_path / "truth.csv", index=False)
    result = CliRunner().invoke(app, ["evaluate", "--truth", str(tmp_path / "truth.csv"),
                                      "--results", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert "outlined against their reference" in result.output
    html = (out / "report.html").read_text()
    assert html.count('<button type="button" class="view"') == 3 * cards
    assert html.count('class="key-ref"') == cards
    assert re.search(r'id="analysis-evaluate"', html)


def test_scan_says_what_it_does_before_the_first_case(make_dataset, tiny_model, tmp_path):
    """The 5-10 s start (model, readers, first batch) is not a silent 0/N bar."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    dataset = make_dataset(cases=2)
    root = Path(__file__).resolve().parents[2]
    # Rich animates only on a terminal: make stderr count as one
    env = {**{k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")},
           "PYTHONPATH": str(root), "FORCE_COLOR": "1", "TTY_INTERACTIVE": "1",
           "TERM": "xterm", "COLUMNS": "160"}
    proc = subprocess.run([sys.executable, "-m", "qsaudit", "scan", str(dataset), "--out",
                           str(tmp_path / "out"), "--model", str(tiny_model), "--workers", "1",
                           "--device", "cpu", "--slices", "2"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, check=True)
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", proc.stderr)
    for words in ("listing the cases", "loading the model", "starting 1 reader process",
                  "reading the first cases"):
        assert words in shown, words
    quiet = subprocess.run([sys.executable, "-m", "qsaudit", "scan", str(dataset), "--out",
                            str(tmp_path / "q"), "--model", str(tiny_model), "--workers", "0",
                            "--device", "cpu", "--slices", "2", "--quiet"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, check=True)
    assert quiet.stderr == ""
