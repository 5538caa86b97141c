"""Report numbers and tables: normalisation, summary, worst labels, JSON payloads, figures."""

from __future__ import annotations

import base64
import math
import re

import numpy as np
import pandas as pd
import pytest

from qsaudit.columns import RESULT_COLUMNS, names
from qsaudit.errors import ResultsError
from qsaudit.reports import worst_labels
from qsaudit.reports.plots import dsc_distribution_svg, sparkline_svg
from qsaudit.reports.tables import (
    FLAGS_FIELD,
    TABLE_COLUMNS,
    case_payload,
    normalise_results,
    summarise,
    table_payload,
)


def test_normalise_adds_missing_columns_and_requires_ids():
    out = normalise_results(pd.DataFrame({"case_id": ["a"], "label": ["liver"],
                                          "predicted_dsc": ["0.5"]}))
    assert list(out.columns) == names(RESULT_COLUMNS)
    assert out.loc[0, "predicted_dsc"] == 0.5 and out.loc[0, "status"] == "ok"
    assert out.loc[0, "n_flags"] == 0
    with pytest.raises(ResultsError, match="label"):
        normalise_results(pd.DataFrame({"case_id": ["a"]}))


def test_summary_counts_match_the_table(scan_tables):
    results, _ = scan_tables
    s = summarise(normalise_results(results))
    ok = results[results.status == "ok"]["predicted_dsc"]
    assert (s.n_cases, s.n_labels, s.n_structures, s.n_ok) == (5, 20, 4, 19)
    assert s.status_counts == {"ok": 19, "unreadable": 1}
    assert s.flag_counts["edge"] == 1 and s.flag_counts["hu"] == 0 and s.n_flagged == 1
    assert s.mean_dsc == pytest.approx(ok.mean()) and s.median_dsc == pytest.approx(ok.median())
    assert s.below == {0.5: int((ok < 0.5).sum()), 0.8: int((ok < 0.8).sum())}
    assert s.below[0.5] == 1


def test_summary_of_an_empty_table():
    s = summarise(normalise_results(pd.DataFrame(columns=names(RESULT_COLUMNS))))
    assert (s.n_cases, s.n_labels, s.n_ok, s.n_flagged) == (0, 0, 0, 0)
    assert math.isnan(s.mean_dsc) and s.below == {0.5: 0, 0.8: 0}


def test_worst_labels_finds_the_planted_label_and_skips_problems(scan_tables):
    results, _ = scan_tables
    worst = worst_labels(results, 40)
    assert worst[0] == ("case1", "spleen")
    assert ("case3", "liver") not in worst and len(worst) == 19
    assert worst_labels(results, 2) == worst[:2]
    assert worst_labels(results, 0) == []


def test_table_payload_has_one_row_per_label_with_flags(scan_tables):
    results, _ = scan_tables
    payload = table_payload(normalise_results(results))
    assert payload["columns"] == list(TABLE_COLUMNS) + [FLAGS_FIELD]
    assert len(payload["rows"]) == len(results)
    rows = {(r[0], r[1]): dict(zip(payload["columns"], r, strict=True)) for r in payload["rows"]}
    assert rows[("case2", "aorta")][FLAGS_FIELD] == "edge"
    assert rows[("case3", "liver")]["predicted_dsc"] is None
    assert rows[("case3", "liver")]["status"] == "unreadable"
    assert rows[("case1", "spleen")]["predicted_dsc"] == 0.12


def test_case_payload_one_row_per_case(scan_tables):
    results, _ = scan_tables
    payload = case_payload(normalise_results(results))
    rows = {r[0]: dict(zip(payload["columns"], r, strict=True)) for r in payload["rows"]}
    assert sorted(rows) == [f"case{i}" for i in range(5)]
    assert rows["case1"]["worst_dsc"] == 0.12 and rows["case1"]["worst_label"] == "spleen"
    assert rows["case3"]["problems"] == 1 and rows["case3"]["labels"] == 4
    assert rows["case2"]["flagged"] == 1


def _svg(uri):
    import xml.etree.ElementTree as ET

    assert uri.startswith("data:image/svg+xml;base64,")
    return ET.fromstring(base64.b64decode(uri.split(",", 1)[1]))


def test_distribution_plot_and_empty(scan_tables):
    results, _ = scan_tables
    assert _svg(dsc_distribution_svg(results)).tag.endswith("svg")
    assert dsc_distribution_svg(results.iloc[:0]) is None
    assert dsc_distribution_svg(results.assign(predicted_dsc=np.nan)) is None


def test_distribution_plot_draws_every_label_worst_structure_on_top():
    ns = "{http://www.w3.org/2000/svg}"
    rng = np.random.default_rng(3)
    good, bad = rng.uniform(0.82, 0.99, 12), np.r_[rng.uniform(0.1, 0.45, 4), 0.6, 0.7]
    frame = pd.DataFrame({"structure": ["liver"] * 12 + ["a <pancreas> & more"] * 6,
                          "label": "x", "predicted_dsc": np.r_[good, bad]})
    frame.loc[len(frame)] = {"structure": "liver", "label": "x", "predicted_dsc": np.nan}
    root = _svg(dsc_distribution_svg(frame))
    names = ["".join(t.itertext()) for t in root.iter(f"{ns}text") if "(n=" in "".join(t.itertext())]
    assert names[0].startswith("a <pancreas> & more") and names[0].endswith("(n=6)")
    assert names[1].endswith("liver (n=12)")  # the NaN is left out
    fills = [c.get("fill") for c in root.iter(f"{ns}circle")]
    assert len(fills) == 18
    assert fills.count("#c0392b") == 4 and fills.count("#e67e22") == 2
    # the median mark of each box sits at the median's x, left to right in DSC order
    marks = [float(line.get("x1")) for line in root.iter(f"{ns}line")
             if line.get("stroke-width") == "2"]
    assert len(marks) == 2 and marks[0] < marks[1]


def test_sparkline_marks_the_lowest_slice():
    svg = sparkline_svg(np.array([30, 10, 20]), np.array([0.9, 0.8, 0.2]), width=100, height=40)
    assert svg.startswith("<svg") and svg.endswith("</svg>") and "http" not in svg
    points = re.search(r'points="([^"]+)"', svg).group(1).split()
    xs = [float(p.split(",")[0]) for p in points]
    assert xs == sorted(xs) and len(xs) == 3  # drawn in slice order
    cx, cy = (float(v) for v in re.search(r'<circle cx="([\d.]+)" cy="([\d.]+)"', svg).groups())
    assert cx == pytest.approx(50.0) and cy > 20  # slice 20 (the middle) is low on the chart
    assert "lowest 0.20 at slice 20" in svg
    assert sparkline_svg(np.array([]), np.array([])) == ""
    assert "<polyline" not in sparkline_svg(np.array([5]), np.array([0.5]))


def test_distribution_plot_leaves_room_for_long_structure_names():
    ns = "{http://www.w3.org/2000/svg}"
    long_name = "right autochthonous back muscles"  # 32 characters: shown whole
    frame = pd.DataFrame({"structure": [long_name] * 3 + ["liver"] * 3, "label": "x",
                          "predicted_dsc": [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]})
    root = _svg(dsc_distribution_svg(frame))
    texts = {"".join(t.itertext()): t for t in root.iter(f"{ns}text")}
    label = texts[f"{long_name}{long_name} (n=3)"]  # <title> + shown text
    # right-aligned at x: its ~39 characters (<= 6.7 px each at 11 px) must fit left of x
    assert float(label.get("x")) >= 6.7 * len(f"{long_name} (n=3)")
    short = _svg(dsc_distribution_svg(frame.assign(structure="liver")))
    assert float(short.get("width")) < float(root.get("width"))  # no wasted margin
