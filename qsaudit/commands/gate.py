"""``qsaudit gate``: fail a CI job when label quality drops (exit 1), 0 when it holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qsaudit.cli import app
from qsaudit.commands._common import QuietOption, ResultsOption, record, run_command, set_quiet

# Findings listed on screen; the rest are counted (every one is in --junit and the annotations).
MAX_ERRORS_SHOWN = 30
MAX_WARNINGS_SHOWN = 10


@app.command("gate")
@run_command
def gate(
    results: Path = ResultsOption,
    baseline: Annotated[Path | None, typer.Option(
        "--baseline", "-b", help="Previous results folder or table to compare with.")] = None,
    min_dsc: Annotated[float | None, typer.Option(
        "--min-dsc", help="Fail when any label's predicted DSC is below this.")] = None,
    max_drop: Annotated[float | None, typer.Option(
        "--max-drop", help="Fail when a structure's mean drops by more (DSC units, e.g. 0.05) "
        "vs --baseline.")] = None,
    policy: Annotated[Path | None, typer.Option(
        "--policy", help='TOML thresholds: \\[default] and \\[structures."<name>"] with min_dsc, '
        "max_drop, fail_on_new_flags.")] = None,
    junit: Annotated[Path | None, typer.Option(
        "--junit", help="Write a JUnit XML report here.")] = None,
    quiet: bool = QuietOption,
) -> None:
    """Check label quality for CI: exit 1 on a problem, 0 when everything holds, 2 on bad input.

    Fails on labels below --min-dsc, structure means dropping more than --max-drop versus
    --baseline, labels missing since the baseline, and masks newly empty or newly flagged.
    Prints GitHub annotations when GITHUB_ACTIONS=true and appends to GITHUB_STEP_SUMMARY.

    Example: qsaudit gate --results new-report --baseline main-report --max-drop 0.05 --junit gate.xml
    """
    set_quiet(quiet)
    import os

    from qsaudit.analyses.gate import GatePolicy, check_gate, load_policy
    from qsaudit.analyses.gate_report import append_step_summary, github_annotations, write_junit
    from qsaudit.analyses.results import load_results
    from qsaudit.commands._common import writable_folder
    from qsaudit.errors import QsauditError, UsageError

    for name, value in (("--min-dsc", min_dsc), ("--max-drop", max_drop)):
        if value is not None and not 0 <= value <= 1:
            raise UsageError(f"{name} {value}: must be between 0 and 1")
    if max_drop is not None and baseline is None:
        raise UsageError("--max-drop needs --baseline (a previous results folder or table)")
    rules = load_policy(policy) if policy is not None else GatePolicy()
    rules = rules.with_defaults(min_dsc=min_dsc, max_drop=max_drop)
    try:  # an unreadable input is a usage error for CI (exit 2), not a quality failure
        current = load_results(results)
        base = load_results(baseline) if baseline is not None else None
    except QsauditError as exc:
        raise UsageError(str(exc)) from None
    if junit is not None:
        if junit.is_dir():
            raise UsageError(f'"{junit}": --junit is a folder; give a file name such as '
                             "qsaudit-junit.xml")
        writable_folder(junit.parent, what="folder of --junit")
    result = check_gate(current, baseline=base, policy=rules)
    if junit is not None:
        write_junit(result, junit)
    if os.environ.get("GITHUB_ACTIONS", "").lower() == "true":
        for line in github_annotations(result):
            typer.echo(line)
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        append_step_summary(result, summary_file)
    lines = _render(result)
    record(results, "gate", [junit] if junit is not None else [], lines, passed=result.passed)
    if not result.passed:
        raise typer.Exit(1)


def _render(result) -> list[str]:
    """Print the gate's table, findings and verdict; return the lines for the home page."""
    import math

    from rich.table import Table

    from qsaudit.commands._common import stdout_console

    def f(v) -> str:
        return "–" if v is None or math.isnan(v) else f"{v:.3f}"

    t = Table(title="qsaudit gate", title_justify="left")
    for name in ("structure", "labels", "mean", "baseline", "drop", "min", "max drop", "result"):
        t.add_column(name, justify="left" if name in ("structure", "result") else "right")
    for r in result.structures.itertuples(index=False):
        verdict = "[green]pass[/]" if r.passed else f"[bold red]FAIL ({r.n_errors})[/]"
        t.add_row(r.structure, str(r.n_labels), f(r.mean_dsc), f(r.baseline_mean), f(r.drop),
                  f(r.min_dsc), f(r.max_drop), verdict)
    console = stdout_console()
    console.print(t)
    errors = [f for f in result.findings if f.level == "error"]
    warnings = [f for f in result.findings if f.level != "error"]
    for findings, limit, what in ((errors, MAX_ERRORS_SHOWN, "error"),
                                  (warnings, MAX_WARNINGS_SHOWN, "warning")):
        for finding in findings[:limit]:
            console.print(f"{finding.level}: {finding.message}", markup=False)
        if len(findings) > limit:
            console.print(f"… and {len(findings) - limit} more {what}(s)", markup=False)
    counts = f"{_count(len(errors), 'error')}, {_count(len(warnings), 'warning')}"
    verdict = f"Gate passed ({counts})." if result.passed else f"Gate failed: {counts}."
    console.print(verdict, markup=False)
    failing = [s for s, ok in zip(result.structures["structure"], result.structures["passed"],
                                  strict=True) if not ok]
    lines = [verdict]
    if failing:
        lines.append(f"Failing structures ({len(failing)}): {', '.join(map(str, failing[:12]))}"
                     + (", …" if len(failing) > 12 else ""))
    return lines + [f"{f.level}: {f.message}" for f in errors[:5]]


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"
