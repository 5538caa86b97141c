"""The scan's HTML report: one self-contained ``report.html`` (inline images, CSS and script).

``render_report`` is called by ``qsaudit scan`` and ``qsaudit merge`` at the end of a run;
``render_report_from_folder`` re-renders it from a results folder. Templates live in
``qsaudit/reports/templates/`` (package data: ``report.html.j2`` plus the shared ``_style.css``
and ``_table.js``). The page never loads anything from the network.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from qsaudit.atomic import write_text
from qsaudit.columns import RESULT_COLUMNS, meanings
from qsaudit.errors import ResultsError
from qsaudit.reports.hub import analyses, render_section
from qsaudit.reports.plots import dsc_distribution_svg, sparkline_svg
from qsaudit.reports.tables import (
    DISPLAY_DIGITS,
    FLAGS_FIELD,
    TABLE_COLUMNS,
    THRESHOLDS,
    case_meanings,
    case_payload,
    column_kind,
    normalise_results,
    raised_flags,
    summarise,
    table_payload,
    worst_labels,
)
from qsaudit.reports.thumbnails import ThumbnailInputs, make_thumbnail, make_views

TEMPLATE = "report.html.j2"
# Rows listed in the "labels not scored" section; the table holds them all anyway.
MAX_PROBLEM_ROWS = 300


def settings_as_run(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """A scan.json's settings for the report, with the device and precision actually used
    (e.g. ``device: cpu (auto)``, ``precision: bf16 (auto)``) rather than only those asked for."""
    settings = manifest.get("settings")
    if not isinstance(settings, Mapping):
        return None
    shown = dict(settings)
    model = manifest.get("model") if isinstance(manifest.get("model"), Mapping) else {}
    for key in ("device", "precision"):
        used, asked = model.get(key), shown.get(key)
        if used and asked and str(used) != str(asked) and not str(asked).startswith(f"{used} ("):
            shown[key] = f"{used} ({asked})"
    return shown


def templates_dir() -> Path:
    """The folder of the report templates: ``qsaudit/reports/templates`` (package data)."""
    return Path(__file__).resolve().parent / "templates"


def template_environment():
    """A Jinja2 environment over ``templates_dir()`` with HTML autoescaping (shared by reports)."""
    import jinja2

    folder = templates_dir()
    if not folder.is_dir():
        raise ResultsError(f'"{folder}": report templates not found')
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _fmt_number
    env.filters["tojson_script"] = json_for_script
    return env


def render_report(
    results: pd.DataFrame,
    slices: pd.DataFrame,
    out_path: Path,
    *,
    thumbnails: Mapping[tuple[str, str], ThumbnailInputs] | None = None,
    title: str = "qsaudit report",
    dataset: str = "",
    model: str = "",
    settings: Mapping[str, Any] | None = None,
    worst_n: int = 40,
) -> Path:
    """Write the HTML report of a scan to ``out_path`` (atomically) and return the path.

    ``results`` has the ``RESULT_COLUMNS`` (one row per case and label; missing optional columns
    are tolerated), ``slices`` the ``SLICE_COLUMNS`` (may be empty). ``thumbnails`` maps
    ``(case_id, label)`` to the worst slices of that label; only the ``worst_n`` lowest predicted
    labels (``worst_labels``) get a card, with a thumbnail when one is given. ``settings`` is shown
    as a key/value table (nested values as JSON).
    """
    from qsaudit import __version__

    table = normalise_results(results)
    summary = summarise(table)
    worst = worst_labels(table, worst_n)
    by_label = _slices_by_label(slices, worst)
    thumbs = dict(thumbnails or {})
    cards = [_card(table, key, thumbs.get(key), by_label.get(key)) for key in worst]
    problems = table[table["status"] != "ok"]
    recorded = analyses(Path(out_path).parent)  # analyses already run on this folder, if any
    result_meanings = meanings(RESULT_COLUMNS)
    result_meanings[FLAGS_FIELD] = "Model-free flags raised on the label."
    context = {
        "title": title,
        "dataset": dataset,
        "model": model,
        "version": __version__,
        "settings": _settings_rows(settings),
        "summary": summary,
        "thresholds": THRESHOLDS,
        "distribution_plot": dsc_distribution_svg(table[table["status"] == "ok"]),
        "cards": cards,
        "worst_n": worst_n,
        "problems": problems.head(MAX_PROBLEM_ROWS).to_dict("records"),
        "n_problems": len(problems),
        "problem_counts": problems["status"].astype(str).value_counts().sort_index().to_dict(),
        "analyses_section": render_section(recorded),
        "n_analyses": len(recorded),
        "table_columns": [(c, column_kind(c), result_meanings[c], DISPLAY_DIGITS.get(c, 3))
                          for c in TABLE_COLUMNS],
        "case_columns": [(c, _case_kind(c), m, 3) for c, m in case_meanings().items()],
        "meanings": result_meanings,
        "structures": sorted(set(table["structure"].fillna(table["label"]).astype(str))),
        "table_json": json_for_script(table_payload(table)),
        "cases_json": json_for_script(case_payload(table)),
    }
    html = template_environment().get_template(TEMPLATE).render(**context)
    return write_text(Path(out_path), html)


def render_report_from_folder(
    results_dir: Path,
    *,
    out_path: Path | None = None,
    title: str = "qsaudit report",
    worst_n: int | None = None,
    read_volumes: bool = False,
    references: Mapping[tuple[str, str], tuple[str, Any]] | None = None,
) -> Path:
    """Re-render ``report.html`` from a results folder written by ``qsaudit scan``.

    Reads ``results.parquet`` (or ``results.csv``), ``slices.parquet`` when present and the
    dataset, model and settings from ``scan.json`` when present. With ``read_volumes`` the
    thumbnails of the worst labels are rebuilt from the CT and label files the table names (those
    that can't be read go without one); otherwise the cards have no thumbnail. Writes
    ``results_dir/report.html`` unless ``out_path`` is given; raises ``ResultsError`` when the
    folder or its results table is missing or unreadable. ``worst_n``: cards shown (default: as
    the scan had them, else 40); ``references``: ``(case_id, label)`` -> (reference mask file,
    value or None), outlined on the cards when ``read_volumes``.
    """
    folder = Path(results_dir)
    if not folder.is_dir():
        raise ResultsError(f'"{folder}": results folder not found')
    results = _read_table(folder, "results")
    if results is None:
        raise ResultsError(f'"{folder}": no results.parquet or results.csv in the folder')
    slices = _read_table(folder, "slices")
    meta = _read_scan_json(folder / "scan.json")
    settings = settings_as_run(meta)
    if worst_n is None:
        worst_n = int((settings or {}).get("thumbnails") or 40)
    thumbnails = None
    if read_volumes:
        from qsaudit.reports.volume_thumbnails import thumbnails_from_volumes

        table = normalise_results(results)
        thumbnails = thumbnails_from_volumes(table, slices, worst_labels(table, worst_n),
                                             references=dict(references or {}))
    return render_report(
        results,
        slices if slices is not None else pd.DataFrame(columns=["case_id", "label"]),
        Path(out_path) if out_path is not None else folder / "report.html",
        thumbnails=thumbnails,
        title=title,
        dataset=_describe(meta.get("dataset")),
        model=_describe(meta.get("model")),
        settings=settings,
        worst_n=worst_n,
    )


def json_for_script(obj: Any) -> str:
    """JSON safe to embed in a ``<script type="application/json">`` element (no ``</``)."""
    from markupsafe import Markup

    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def _card(table: pd.DataFrame, key: tuple[str, str], thumb: ThumbnailInputs | None,
          slice_rows: pd.DataFrame | None) -> dict:
    from markupsafe import Markup

    row = table[(table["case_id"] == key[0]) & (table["label"] == key[1])].iloc[0]
    spark = ""
    if slice_rows is not None and len(slice_rows):
        spark = sparkline_svg(slice_rows["slice_index"].to_numpy(dtype=float, na_value=float("nan")),
                              slice_rows["slice_dsc"].to_numpy(dtype=float, na_value=float("nan")))
    return {
        "case_id": key[0],
        "label": key[1],
        "structure": "" if pd.isna(row["structure"]) else str(row["structure"]),
        "dsc": float(row["predicted_dsc"]),
        "low": row["dsc_low"],
        "high": row["dsc_high"],
        "novelty": novelty_words(row.get("novelty")),
        "advice": _advice(row),
        "advice_p": row.get("likely_error_p"),
        "worst_slice": None if pd.isna(row["worst_slice"]) else int(row["worst_slice"]),
        "flags": raised_flags(row),
        "views": _views_or_none(thumb),
        "thumbnail": _thumbnail_or_none(thumb),
        "reference": thumb is not None and thumb.reference_slices is not None,
        "thumb_slices": list(thumb.slice_indices) if thumb is not None else [],
        "sparkline": Markup(spark),
    }


def _advice(row: pd.Series) -> str:
    """What the card tells the curator to do (``qsaudit.inference.error_kinds.advice``): "" for a
    model without an error classifier, and for a label that looks right."""
    from qsaudit.inference.error_kinds import advice

    kind = row.get("likely_error")
    if not isinstance(kind, str) or kind == "none":
        return ""
    worst = row.get("worst_slice")
    return advice(kind, row.get("error_slices"), inside=None if pd.isna(worst) else int(worst))


NOVELTY_WORDS = {
    "name": "a structure whose errors were never measured on real CT (a low score may be "
            "the model's unfamiliarity, not a bad label: the interval reaches 1)",
    "image": "a mask, CT or score pattern unlike the labels its errors were measured on",
}


def novelty_words(value: object) -> str:
    """The report's words for a ``novelty`` value ("name+image" -> both reasons), "" for
    none: why the label's interval is wider than usual."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or not str(value):
        return ""
    return "; ".join(NOVELTY_WORDS.get(part, part) for part in str(value).split("+"))


def _views_or_none(thumb: ThumbnailInputs | None) -> list | None:
    """Axial, coronal and sagittal views; None for thumbnails kept without the two planes
    (the card then shows its worst axial slices side by side, as before)."""
    if thumb is None or (thumb.coronal is None and thumb.sagittal is None):
        return None
    try:
        return make_views(thumb)
    except ValueError:
        return None


def _thumbnail_or_none(thumb: ThumbnailInputs | None) -> str | None:
    """The card's image; a slice that can't be drawn costs the card its picture, not the report."""
    if thumb is None:
        return None
    try:
        return make_thumbnail(thumb)
    except ValueError:
        return None


def _slices_by_label(
    slices: pd.DataFrame | None, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], pd.DataFrame]:
    """The slice rows of the labels ``keys`` (the others are not shown), grouped per label."""
    needed = ["case_id", "label", "slice_index", "slice_dsc"]
    if slices is None or slices.empty or not keys or not set(needed) <= set(slices.columns):
        return {}
    wanted = pd.MultiIndex.from_tuples(keys, names=["case_id", "label"])
    ids = pd.MultiIndex.from_arrays([slices["case_id"].astype(str), slices["label"].astype(str)])
    frame = slices.loc[ids.isin(wanted), needed]
    return {(str(c), str(lab)): g for (c, lab), g in frame.groupby(["case_id", "label"], sort=False)}


def _settings_rows(settings: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    rows = []
    for key, value in (settings or {}).items():
        if isinstance(value, dict | list | tuple):
            text = json.dumps(value, default=str)
        elif value is None:
            text = "–"
        else:
            text = str(value)
        rows.append((str(key), text))
    return rows


def _case_kind(name: str) -> str:
    if name in ("case_id", "worst_label"):
        return "str"
    return "float" if name.endswith("_dsc") else "int"


def _read_table(folder: Path, stem: str) -> pd.DataFrame | None:
    parquet, csv = folder / f"{stem}.parquet", folder / f"{stem}.csv"
    try:
        if parquet.is_file():
            return pd.read_parquet(parquet)
        if csv.is_file():
            return pd.read_csv(csv, dtype={"case_id": "string", "label": "string"})
    except Exception as exc:  # pyarrow and the CSV parser raise many types
        path = parquet if parquet.is_file() else csv
        raise ResultsError(f'"{path}": cannot read the table ({exc})') from exc
    return None


def _read_scan_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ResultsError(f'"{path}": not valid JSON ({exc})') from exc
    return meta if isinstance(meta, dict) else {}


def _describe(value: Any) -> str:
    """A one-line description of a dataset or model entry of ``scan.json``."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items() if not isinstance(v, dict | list))
    return str(value)


def _fmt_number(value: Any, digits: int = 3) -> str:
    """A number for display; ``–`` for missing values."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if math.isnan(f) else f"{f:.{digits}f}"
