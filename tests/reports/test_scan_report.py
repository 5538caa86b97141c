"""render_report / render_report_from_folder: one self-contained page with every label in it."""

from __future__ import annotations

import base64
import json
import re

import pandas as pd
import pytest
from markupsafe import escape

from qsaudit.columns import RESULT_COLUMNS, SLICE_COLUMNS, names
from qsaudit.errors import ResultsError
from qsaudit.reports import render_report, render_report_from_folder


def _json_block(page: str, block_id: str) -> dict:
    m = re.search(rf'<script type="application/json" id="{block_id}">(.*?)</script>', page, re.DOTALL)
    assert m, block_id
    return json.loads(m.group(1))


def _render(tmp_path, results, slices, **kw) -> str:
    out = render_report(results, slices, tmp_path / "out" / "report.html", **kw)
    assert out == tmp_path / "out" / "report.html"
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temporary file left
    return out.read_text(encoding="utf-8")


def test_report_has_every_label_and_no_external_resource(tmp_path, report_inputs):
    results, slices, thumbs = report_inputs
    page = _render(tmp_path, results, slices, thumbnails=thumbs, dataset="toy set",
                   model="qs-default", settings={"slices": 6, "aggregate": {"method": "mean"}})
    rows = _json_block(page, "label-data")["rows"]
    assert sorted((r[0], r[1]) for r in rows) == sorted(zip(results.case_id, results.label))
    assert len(_json_block(page, "case-data")["rows"]) == 5
    assert "://" not in page and "<link rel=\"stylesheet\"" not in page
    for attr in re.findall(r'\b(?:src|href)="([^"]*)"', page):
        assert attr.startswith(("data:", "#")), attr
    assert "toy set" in page and "qs-default" in page and "&#34;method&#34;" in page
    for col in ("predicted_dsc", "flag_edge"):  # column meanings as tooltips
        assert str(escape({c.name: c.meaning for c in RESULT_COLUMNS}[col])) in page


def test_thumbnails_are_inline_pngs_for_the_worst_labels(tmp_path, report_inputs):
    results, slices, thumbs = report_inputs
    page = _render(tmp_path, results, slices, thumbnails=thumbs)
    uris = re.findall(r'<img class="thumb" src="([^"]+)"', page)
    assert len(uris) == len(thumbs) == 8
    for uri in uris:
        assert uri.startswith("data:image/png;base64,")
        assert base64.b64decode(uri.split(",", 1)[1], validate=True)[:8] == b"\x89PNG\r\n\x1a\n"
    assert page.count('<article class="card">') == 19  # every scored label, worst first
    assert page.index(">case1</a>") < page.index("#2<")
    assert page.count('<svg class="spark"') == 19  # a slice profile for each card
    assert re.search(r'<img class="plot" src="data:image/svg\+xml;base64,', page)


def test_worst_n_limits_the_cards(tmp_path, scan_tables):
    results, slices = scan_tables
    page = _render(tmp_path, results, slices, worst_n=3)
    assert page.count('<article class="card">') == 3
    assert '<img class="thumb"' not in page  # no thumbnails given: cards without them


def test_rows_that_are_not_ok_are_shown_with_their_error(tmp_path, scan_tables):
    results, slices = scan_tables
    page = _render(tmp_path, results, slices)
    error = results.loc[results.status == "unreadable", "error"].iloc[0]
    section = page[page.index('id="problems"'):page.index('id="labels"')]
    assert "unreadable" in section and str(escape(error)) in section
    assert "Not scored (1)" in page


def test_empty_results_render_a_page(tmp_path):
    empty = pd.DataFrame(columns=names(RESULT_COLUMNS))
    page = _render(tmp_path, empty, pd.DataFrame(columns=names(SLICE_COLUMNS)))
    assert _json_block(page, "label-data")["rows"] == []
    assert "No label has a prediction." in page and 'id="problems"' not in page


def test_names_are_escaped_in_markup_and_data(tmp_path, scan_tables):
    results, slices = scan_tables
    evil = "<script>alert(1)</script>"
    results = results.copy()
    results.loc[results.label == "spleen", "label"] = evil
    page = _render(tmp_path, results, slices)
    assert evil not in page and "</script><" not in page.replace("</script>\n<", "")
    labels = {r[1] for r in _json_block(page, "label-data")["rows"]}
    assert evil in labels


def test_render_from_folder(tmp_path, scan_tables):
    results, slices = scan_tables
    folder = tmp_path / "qsaudit-report"
    folder.mkdir()
    results.to_parquet(folder / "results.parquet")
    slices.to_parquet(folder / "slices.parquet")
    (folder / "scan.json").write_text(json.dumps({
        "dataset": "/data/TotalSeg", "model": {"name": "default", "fingerprint": "abc123"},
        "settings": {"slices": 10, "seed": 0}}))
    out = render_report_from_folder(folder)
    page = out.read_text(encoding="utf-8")
    assert out == folder / "report.html"
    assert "/data/TotalSeg" in page and "abc123" in page and "<th>slices</th>" in page
    assert len(_json_block(page, "label-data")["rows"]) == len(results)
    assert page.count('<svg class="spark"') == 19


def test_render_from_folder_reads_csv_and_reports_problems(tmp_path, scan_tables):
    results, _ = scan_tables
    with pytest.raises(ResultsError, match="not found"):
        render_report_from_folder(tmp_path / "missing")
    with pytest.raises(ResultsError, match="no results.parquet"):
        render_report_from_folder(tmp_path)
    results.to_csv(tmp_path / "results.csv", index=False)
    out = render_report_from_folder(tmp_path, out_path=tmp_path / "x" / "r.html")
    assert len(_json_block(out.read_text(encoding="utf-8"), "label-data")["rows"]) == 20
    (tmp_path / "results.parquet").write_bytes(b"not parquet")
    with pytest.raises(ResultsError, match="cannot read"):
        render_report_from_folder(tmp_path)


def test_a_novel_label_says_its_interval_is_wider(tmp_path, scan_tables):
    results, slices = scan_tables
    results = results.copy()
    results["novelty"] = ""
    worst = results.sort_values("predicted_dsc").index[0]
    results.loc[worst, "novelty"] = "name+image"
    page = _render(tmp_path, results, slices, worst_n=3)
    assert page.count('class="novel"') == 1
    assert "never measured on real CT" in page and "unlike the labels its errors were measured on" in page


def test_a_card_says_what_to_fix_in_a_curators_words(tmp_path, scan_tables):
    results, slices = scan_tables
    results = results.copy()
    order = results.sort_values("predicted_dsc").index
    results["likely_error"] = pd.array(["none"] * len(results), dtype="string")
    results["error_slices"] = pd.array([pd.NA] * len(results), dtype="string")
    results["likely_error_p"] = 0.9
    inside = int(results.loc[order[0], "worst_slice"])
    results.loc[order[0], ["likely_error", "error_slices"]] = [
        "cut_short", f"{inside + 5}-{inside + 9}"]
    page = _render(tmp_path, results, slices, worst_n=3)
    assert page.count('class="advice"') == 1  # "none" says nothing
    assert (f"Likely cut short at the top: extend it over slices {inside + 5}-{inside + 9}"
            in page)
    plain = _render(tmp_path / "plain", results.drop(columns=["likely_error"]), slices,
                    worst_n=3)
    assert 'class="advice"' not in plain  # a model without an error classifier
