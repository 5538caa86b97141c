"""report.html as the home page: analyses recorded beside the results and summarised in it."""

from __future__ import annotations

import pandas as pd

from qsaudit.columns import SLICE_COLUMNS, names
from qsaudit.reports import render_report
from qsaudit.reports.hub import ANALYSES_JSON, analyses, home_link, record_analysis


def _report(folder, results):
    folder.mkdir(parents=True, exist_ok=True)
    return render_report(results, pd.DataFrame(columns=names(SLICE_COLUMNS)),
                         folder / "report.html")


def test_recorded_analyses_appear_in_the_report_and_survive_a_rerender(tmp_path, scan_tables):
    results, _ = scan_tables
    folder = tmp_path / "r"
    report = _report(folder, results)
    before = report.read_text()
    assert 'id="analyses"' in before and "None yet" in before
    elsewhere = tmp_path / "elsewhere" / "selected.csv"
    elsewhere.parent.mkdir()
    elsewhere.write_text("x\n")
    record_analysis(folder, "select", files=[elsewhere], summary=["Selected 3 of 9 labels."])
    record_analysis(folder, "gate", files=[], summary=["Gate failed: 2 errors, 0 warnings."],
                    passed=False)
    html = report.read_text()
    assert "Selected 3 of 9 labels." in html and 'href="../elsewhere/selected.csv"' in html
    assert 'class="analysis bad" id="analysis-gate"' in html and "None yet" not in html
    # only the analyses section changed: the rest of the page is byte for byte the same
    head, tail = before.split("<!-- qsaudit:analyses -->")[0], before.split(
        "<!-- /qsaudit:analyses -->")[1]
    assert html.startswith(head) and html.endswith(tail)
    assert [a["name"] for a in analyses(folder)] == ["select", "gate"]
    # a later scan's report keeps showing them
    assert "Selected 3 of 9 labels." in _report(folder, results).read_text()


def test_unreadable_record_or_missing_report_is_not_an_error(tmp_path, scan_tables):
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / ANALYSES_JSON).write_text("{broken")
    assert analyses(folder) == []
    assert record_analysis(folder, "budget", files=[], summary=["x"]) is None  # no report.html
    assert [a["name"] for a in analyses(folder)] == ["budget"]
    assert home_link(tmp_path, folder) is None
    _report(folder, scan_tables[0])
    assert home_link(tmp_path / "other", folder) == "../r/report.html"
