"""`qsaudit datasets` through Typer's CliRunner."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from qsaudit.cli import app

runner = CliRunner()


def test_lists_layout_cases_and_labels(per_structure_dataset: Path):
    result = runner.invoke(app, ["datasets", str(per_structure_dataset), "--head", "2"])
    assert result.exit_code == 0, result.output
    assert "per-structure" in result.output
    assert "Cases:   3" in result.output
    assert "Labels:  9 in 3 names" in result.output
    assert "case_1" in result.output and "case_2" in result.output
    assert "case_10" not in result.output.split("First 2")[1]


def test_paired_with_labels_csv_and_forced_layout(paired_dataset: Path, labels_csv: Path):
    result = runner.invoke(app, ["datasets", str(paired_dataset), "--labels", str(labels_csv),
                                 "--layout", "paired"])
    assert result.exit_code == 0, result.output
    assert "paired" in result.output and "spleen (3)" in result.output


def test_errors_are_one_line_with_exit_codes(tmp_path: Path, paired_dataset: Path):
    missing = runner.invoke(app, ["datasets", str(tmp_path / "absent")])
    assert missing.exit_code == 2
    assert "no such folder" in missing.output and "Traceback" not in missing.output
    no_names = runner.invoke(app, ["datasets", str(paired_dataset)])
    assert no_names.exit_code == 2 and "--labels" in no_names.output
    bad_layout = runner.invoke(app, ["datasets", str(paired_dataset), "--layout", "zip"])
    assert bad_layout.exit_code == 2 and "unknown layout" in bad_layout.output


def test_help_ends_with_an_example():
    result = runner.invoke(app, ["datasets", "--help"])
    assert result.exit_code == 0 and "Example: qsaudit datasets" in result.output
