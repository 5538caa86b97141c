"""Render a gate result for CI: JUnit XML, GitHub Actions annotations, a Markdown summary."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

from qsaudit import atomic
from qsaudit.analyses.gate import GateResult

MAX_LISTED = 20


def junit_xml(result: GateResult) -> str:
    """JUnit XML: one ``<testcase>`` per structure, a ``<failure>`` listing its errors."""
    suite = ET.Element("testsuite", name="qsaudit gate", tests=str(len(result.structures)),
                       failures=str(int((~result.structures["passed"]).sum())), errors="0",
                       skipped="0")
    for row in result.structures.itertuples(index=False):
        case = ET.SubElement(suite, "testcase", classname="qsaudit.gate", name=row.structure)
        errors = [f for f in result.findings if f.structure == row.structure
                  and f.level == "error"]
        warnings = [f for f in result.findings if f.structure == row.structure
                    and f.level == "warning"]
        if errors:
            kinds = sorted({f.kind for f in errors})
            fail = ET.SubElement(case, "failure", type=",".join(kinds),
                                 message=f"{len(errors)} problem(s): {errors[0].message}")
            fail.text = "\n".join(f.message for f in errors)
        if warnings:
            out = ET.SubElement(case, "system-out")
            out.text = "\n".join(f"warning: {f.message}" for f in warnings)
    root = ET.Element("testsuites", name="qsaudit", tests=suite.get("tests", "0"),
                      failures=suite.get("failures", "0"))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(result: GateResult, path: str | Path) -> Path:
    """Write :func:`junit_xml` to ``path`` atomically."""
    return atomic.write_text(path, junit_xml(result))


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(result: GateResult, *, limit: int = 50) -> list[str]:
    """``::error title=…::message`` / ``::warning title=…::message`` workflow commands
    (GitHub shows at most 10 of each per step; the rest are summarised in one line)."""
    lines = []
    for f in result.findings[:limit]:
        title = _escape_property(f"qsaudit gate: {f.structure} ({f.kind})")
        lines.append(f"::{f.level} title={title}::{_escape_data(f.message)}")
    if len(result.findings) > limit:
        lines.append(f"::warning title=qsaudit gate::{len(result.findings) - limit} more "
                     "finding(s), see the JUnit report or summary")
    return lines


def _cell(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown_summary(result: GateResult) -> str:
    """A Markdown table of structures and the first errors, for ``$GITHUB_STEP_SUMMARY``."""
    verdict = "passed ✅" if result.passed else f"failed ❌ ({len(result.errors)} error(s))"
    lines = [f"### qsaudit gate {verdict}", "",
             "| Structure | Labels | Mean DSC | Baseline | Drop | Min DSC | Max drop | Result |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in result.structures.itertuples(index=False):
        res = "pass" if r.passed else f"**fail** ({r.n_errors})"
        if r.n_warnings:
            res += f", {r.n_warnings} warning(s)"
        lines.append(f"| {r.structure} | {r.n_labels} | {_cell(r.mean_dsc)} | "
                     f"{_cell(r.baseline_mean)} | {_cell(r.drop)} | {_cell(r.min_dsc)} | "
                     f"{_cell(r.max_drop)} | {res} |")
    if result.errors:
        lines += ["", "**Errors**", ""]
        lines += [f"- {f.message}" for f in result.errors[:MAX_LISTED]]
        if len(result.errors) > MAX_LISTED:
            lines.append(f"- … and {len(result.errors) - MAX_LISTED} more")
    return "\n".join(lines) + "\n\n"


def append_step_summary(result: GateResult, path: str | Path) -> None:
    """Append :func:`markdown_summary` to ``path`` (GitHub's step-summary file; appending, not
    an atomic replace, is what GitHub expects)."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(markdown_summary(result))
