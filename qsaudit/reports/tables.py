"""Numbers and tables the HTML report shows, computed from a scan's results table.

Everything here is pure pandas over ``RESULT_COLUMNS`` / ``SLICE_COLUMNS`` (``qsaudit.columns``):
the dataset summary, the per-case table, the worst labels and the compact JSON payload that the
page's script turns into a sortable, filterable table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from qsaudit.columns import FLAG_COLUMNS, RESULT_COLUMNS, names
from qsaudit.errors import ResultsError

# Columns of the label table in the page, in order (meanings come from qsaudit.columns).
TABLE_COLUMNS: tuple[str, ...] = (
    "case_id", "label", "structure", "predicted_dsc", "dsc_low", "dsc_high", "novelty",
    "slice_std", "worst_slice", "n_slices", "volume_ml", "mean_hu", "n_flags", "status", "error",
)
# Decimals shown for the float columns of the table (others: 3).
DISPLAY_DIGITS: dict[str, int] = {"volume_ml": 1, "mean_hu": 0}
# Extra column of the payload: names of the raised flags, e.g. "edge, volume".
FLAGS_FIELD = "flags"
# Predicted-DSC thresholds the summary counts labels below.
THRESHOLDS = (0.5, 0.8)
_FLOAT_COLUMNS = {c.name for c in RESULT_COLUMNS if c.dtype == "float64"}
_INT_COLUMNS = {c.name for c in RESULT_COLUMNS if c.dtype == "Int64"}


@dataclass(frozen=True)
class ReportSummary:
    """Dataset-level numbers of the report. DSC statistics are over rows with status ``ok``."""

    n_cases: int
    n_labels: int
    n_structures: int
    n_ok: int
    status_counts: dict[str, int] = field(default_factory=dict)
    flag_counts: dict[str, int] = field(default_factory=dict)
    n_flagged: int = 0
    mean_dsc: float = math.nan
    median_dsc: float = math.nan
    below: dict[float, int] = field(default_factory=dict)


def normalise_results(results: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``results`` with every ``RESULT_COLUMNS`` column present and typed.

    Missing optional columns are added empty; ``case_id`` and ``label`` are required (raises
    ``ResultsError`` naming the missing ones). ``status`` defaults to ``"ok"`` where empty.
    """
    missing = [c for c in ("case_id", "label") if c not in results.columns]
    if missing:
        raise ResultsError(f"results table lacks the column(s) {', '.join(missing)}")
    out = results.copy()
    for col in RESULT_COLUMNS:
        if col.name not in out.columns:
            out[col.name] = pd.NA
        if col.name in _FLOAT_COLUMNS:
            out[col.name] = pd.to_numeric(out[col.name], errors="coerce").astype("float64")
        elif col.name in _INT_COLUMNS:
            out[col.name] = pd.to_numeric(out[col.name], errors="coerce").round().astype("Int64")
        elif col.dtype == "boolean":
            out[col.name] = out[col.name].astype("boolean")
        else:
            out[col.name] = out[col.name].astype("string")
    out["status"] = out["status"].fillna("ok")
    out["error"] = out["error"].fillna("")
    if out["n_flags"].isna().all() and len(out):
        out["n_flags"] = out[list(FLAG_COLUMNS)].fillna(False).sum(axis=1).astype("Int64")
    extra = [c for c in out.columns if c not in names(RESULT_COLUMNS)]
    return out[names(RESULT_COLUMNS) + extra].reset_index(drop=True)


def summarise(results: pd.DataFrame) -> ReportSummary:
    """Counts and DSC statistics of a normalised results table."""
    ok = results[results["status"] == "ok"]
    dsc = ok["predicted_dsc"].dropna()
    flags = {c.removeprefix("flag_"): int(results[c].fillna(False).sum()) for c in FLAG_COLUMNS}
    any_flag = results[list(FLAG_COLUMNS)].fillna(False).any(axis=1) if len(results) else []
    return ReportSummary(
        n_cases=int(results["case_id"].nunique()),
        n_labels=len(results),
        n_structures=int(results["structure"].fillna(results["label"]).nunique()),
        n_ok=len(ok),
        status_counts={str(k): int(v) for k, v in results["status"].value_counts().items()},
        flag_counts=flags,
        n_flagged=int(sum(any_flag)),
        mean_dsc=float(dsc.mean()) if len(dsc) else math.nan,
        median_dsc=float(dsc.median()) if len(dsc) else math.nan,
        below={t: int((dsc < t).sum()) for t in THRESHOLDS},
    )


def worst_labels(results: pd.DataFrame, n: int = 40) -> list[tuple[str, str]]:
    """``(case_id, label)`` of the ``n`` labels with the lowest predicted DSC, worst first.

    Only rows with status ``ok`` and a prediction count; ties go by case then label. A scan calls
    this to know which labels need thumbnails.
    """
    if n <= 0 or results.empty:
        return []
    ok = results[(results["status"].fillna("ok") == "ok") & results["predicted_dsc"].notna()]
    ok = ok.assign(_dsc=pd.to_numeric(ok["predicted_dsc"], errors="coerce"))
    ranked = ok.sort_values(["_dsc", "case_id", "label"], kind="mergesort").head(n)
    return [(str(c), str(lab)) for c, lab in zip(ranked["case_id"], ranked["label"], strict=True)]


def raised_flags(row: pd.Series) -> list[str]:
    """Short names of the flags raised on one results row, e.g. ``["edge", "volume"]``."""
    return [c.removeprefix("flag_") for c in FLAG_COLUMNS if _true(row.get(c))]


def table_payload(results: pd.DataFrame) -> dict:
    """The label table as ``{"columns": [...], "rows": [[...], ...]}`` for the page's script.

    Values are JSON-ready: floats rounded to 4 decimals, missing values ``None``; the last field
    of each row (``FLAGS_FIELD``) lists the raised flags.
    """
    columns = list(TABLE_COLUMNS) + [FLAGS_FIELD]
    flag_frame = results[list(FLAG_COLUMNS)].fillna(False).astype(bool)
    flag_names = [c.removeprefix("flag_") for c in FLAG_COLUMNS]
    flag_text = [", ".join(n for n, on in zip(flag_names, r, strict=True) if on)
                 for r in flag_frame.itertuples(index=False)]
    cols = [_json_column(results[c], c) for c in TABLE_COLUMNS]
    rows = [list(vals) + [flags] for vals, flags in zip(zip(*cols), flag_text, strict=True)]
    return {"columns": columns, "rows": rows}


def case_payload(results: pd.DataFrame) -> dict:
    """One row per case: labels, lowest and mean predicted DSC, flagged labels, problem rows."""
    columns = ["case_id", "labels", "worst_dsc", "mean_dsc", "worst_label", "flagged",
               "problems"]
    if results.empty:
        return {"columns": columns, "rows": []}
    frame = results.assign(
        _flagged=(results["n_flags"].fillna(0) > 0).astype(int),
        _problem=(results["status"] != "ok").astype(int),
    )
    groups = frame.groupby("case_id", sort=True)
    stats = groups.agg(labels=("label", "size"), worst_dsc=("predicted_dsc", "min"),
                       mean_dsc=("predicted_dsc", "mean"), flagged=("_flagged", "sum"),
                       problems=("_problem", "sum"))
    scored = frame[frame["predicted_dsc"].notna()]
    worst_rows = scored.sort_values(["predicted_dsc", "label"], kind="mergesort")
    worst_label = worst_rows.drop_duplicates("case_id").set_index("case_id")["label"]
    rows = [
        [str(case_id), int(r.labels), _round(r.worst_dsc), _round(r.mean_dsc),
         None if pd.isna(worst_label.get(case_id)) else str(worst_label.get(case_id)),
         int(r.flagged), int(r.problems)]
        for case_id, r in stats.iterrows()
    ]
    return {"columns": columns, "rows": rows}


def column_kind(name: str) -> str:
    """``"float"``, ``"int"`` or ``"str"``: how the page sorts and formats a results column."""
    dtype = {c.name: c.dtype for c in RESULT_COLUMNS}.get(name, "string")
    return {"float64": "float", "Int64": "int"}.get(dtype, "str")


def case_meanings() -> dict[str, str]:
    """Header tooltips of the per-case table."""
    return {
        "case_id": "Case identifier, as named in the dataset.",
        "labels": "Number of labels of the case in the results.",
        "worst_dsc": "Lowest predicted Dice among the case's labels (lower = worse).",
        "mean_dsc": "Mean predicted Dice of the case's labels with a prediction.",
        "worst_label": "The label with the lowest predicted Dice.",
        "flagged": "Labels with at least one model-free flag.",
        "problems": "Labels whose status is not ok (not scored).",
    }


def _json_column(series: pd.Series, name: str) -> list:
    """A column as a JSON-ready list (vectorised: this runs on every row of big scans)."""
    if name in _FLOAT_COLUMNS:
        values = np.round(series.to_numpy(dtype=float, na_value=np.nan), 4)
        out = values.astype(object)
        out[~np.isfinite(values)] = None
        return out.tolist()
    present = series.notna().to_numpy()
    if name in _INT_COLUMNS:
        out = np.full(len(series), None, dtype=object)
        out[present] = series[present].astype("int64").to_numpy().tolist()
        return out.tolist()
    out = series.astype(object).to_numpy().copy()
    out[~present] = None
    return [v if v is None else str(v) for v in out]


def _round(value: object, digits: int = 4) -> float | None:
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) or math.isinf(f) else round(f, digits)


def _true(value: object) -> bool:
    return False if value is None or pd.isna(value) else bool(value)
