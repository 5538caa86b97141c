"""report.html as the audit's home page: what evaluate, bias, budget, select and gate found.

Each analysis command, once its files are written, calls :func:`record_analysis` with the
results folder it read, the files it wrote and a few summary lines. The record goes to
``analyses.json`` in the results folder, and the "Analyses" section of ``report.html`` (between
two marker comments) is re-rendered in place, so the scan's report, with its thumbnails, is
never rebuilt. Links are relative to the results folder, so the folder can be moved or shared.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qsaudit.atomic import write_json, write_text

ANALYSES_JSON = "analyses.json"
REPORT_HTML = "report.html"
PARTIAL = "_analyses.html.j2"
BEGIN, END = "<!-- qsaudit:analyses -->", "<!-- /qsaudit:analyses -->"
# Order and titles of the analyses on the home page.
TITLES = {
    "evaluate": "Evaluation against the truth",
    "bias": "Label quality by sex and age",
    "budget": "Correction budget",
    "select": "Selection for training",
    "gate": "Quality gate",
}


def analyses(results_dir: str | Path) -> list[dict[str, Any]]:
    """The recorded analyses of a results folder, in :data:`TITLES` order (``[]`` when none or
    when ``analyses.json`` is unreadable: the home page then simply lists nothing)."""
    try:
        recorded = json.loads((Path(results_dir) / ANALYSES_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(recorded, dict):
        return []
    return [{"name": name, "title": TITLES[name], **recorded[name]}
            for name in TITLES if isinstance(recorded.get(name), dict)]


def record_analysis(results_dir: str | Path, name: str, *, files: Sequence[str | Path],
                    summary: Sequence[str], passed: bool | None = None) -> Path | None:
    """Record analysis ``name`` (a key of :data:`TITLES`) of ``results_dir`` and refresh the
    home page. ``files``: what it wrote (any folder; linked relative to ``results_dir``);
    ``summary``: one-line findings; ``passed``: the gate's verdict. Returns the refreshed
    report, or ``None`` when the folder has no ``report.html`` (nothing to refresh)."""
    if name not in TITLES:
        raise ValueError(f"unknown analysis {name!r}")
    folder = Path(results_dir)
    try:
        recorded = json.loads((folder / ANALYSES_JSON).read_text(encoding="utf-8"))
        recorded = recorded if isinstance(recorded, dict) else {}
    except (OSError, ValueError):
        recorded = {}
    recorded[name] = {
        "files": [_relative(Path(f), folder) for f in files],
        "summary": [str(line) for line in summary],
        "passed": passed,
        "when": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M"),
    }
    write_json(folder / ANALYSES_JSON, recorded)
    return refresh_report(folder)


def refresh_report(results_dir: str | Path) -> Path | None:
    """Re-render the analyses section of ``results_dir/report.html`` in place (atomically)."""
    report = Path(results_dir) / REPORT_HTML
    try:
        html = report.read_text(encoding="utf-8")
    except OSError:
        return None
    start, stop = html.find(BEGIN), html.find(END)
    if start < 0 or stop < start:
        return None  # a report from before the home page: left as it is
    section = render_section(analyses(results_dir))
    return write_text(report, html[:start] + section + html[stop + len(END):])


def render_section(entries: list[dict[str, Any]]) -> str:
    """The analyses section (markers included) for :func:`analyses` entries."""
    from qsaudit.reports.scan_report import template_environment

    body = template_environment().get_template(PARTIAL).render(analyses=entries)
    return f"{BEGIN}{body}{END}"


def home_link(page_dir: str | Path, results_dir: str | Path) -> str | None:
    """The link from a page written in ``page_dir`` back to the results folder's report.html
    (``None`` when there is no report there)."""
    report = Path(results_dir) / REPORT_HTML
    if not report.is_file():
        return None
    return _relative(report, Path(page_dir))


def _relative(path: Path, start: Path) -> str:
    try:
        rel = os.path.relpath(path.resolve(), start.resolve())
    except ValueError:  # another drive (Windows)
        return path.resolve().as_uri()
    return Path(rel).as_posix()
