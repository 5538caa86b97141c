"""Turn committed parts into the final tables and the report (used by scan and merge)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qsaudit.atomic import write_with
from qsaudit.inference.store import ResultsStore

REPORT_SLICES = 3  # worst slices shown per thumbnail


@dataclass(frozen=True)
class FinalOutputs:
    """Files written by :func:`write_outputs`; ``report`` is None when it could not be made."""

    results_csv: Path
    results_parquet: Path
    slices_parquet: Path
    report: Path | None
    report_error: str | None
    results: Any  # pandas DataFrame (RESULT_COLUMNS)
    slices: Any   # pandas DataFrame (SLICE_COLUMNS)


def write_outputs(out_dir: Path, sources: Sequence[tuple[ResultsStore, dict[str, Any]]], *,
                  dataset: str, model: str, settings: dict[str, Any],
                  worst_n: int = 40, title: str = "qsaudit report") -> FinalOutputs:
    """Write results.csv/.parquet, slices.parquet and report.html from committed parts.

    ``sources``: (store, part) pairs, one per case; the tables are sorted, so their order does
    not matter. Thumbnails come from the parts' stored arrays for the ``worst_n`` labels.
    """
    from qsaudit.inference.tables import results_table, slices_table

    rows, areas, slice_rows = [], [], []
    for _store, part in sources:
        for row in part["rows"]:
            rows.append(row)
            areas.append(part.get("body_area_mm2"))
        for s in part["slices"]:
            slice_rows.append({"case_id": part["case_id"], **s})
    areas_f = [float("nan") if a is None else float(a) for a in areas]
    results = results_table(rows, areas_f)
    slices = slices_table(slice_rows)
    out_dir = Path(out_dir)
    csv_path = write_with(out_dir / "results.csv", lambda p: results.to_csv(p, index=False))
    pq_path = write_with(out_dir / "results.parquet",
                         lambda p: results.to_parquet(p, index=False))
    sl_path = write_with(out_dir / "slices.parquet", lambda p: slices.to_parquet(p, index=False))
    if settings.get("model") in (None, "") and model:
        settings = {**settings, "model": f"{model} (default weights)"}
    report, error = _report(out_dir, results, slices, sources, dataset=dataset, model=model,
                            settings=settings, worst_n=worst_n, title=title)
    return FinalOutputs(csv_path, pq_path, sl_path, report, error, results, slices)


def _report(out_dir: Path, results, slices, sources, *, dataset: str, model: str,
            settings: dict[str, Any], worst_n: int, title: str) -> tuple[Path | None, str | None]:
    try:
        from qsaudit.reports import ThumbnailInputs, render_report, worst_labels
        from qsaudit.reports.thumbnails import plane_view
    except ImportError as exc:
        return None, f"report renderer unavailable ({exc})"
    by_case = {part["case_id"]: (store, part) for store, part in sources}
    thumbs = {}
    for case_id, label in worst_labels(results, worst_n):
        store, part = by_case[case_id]
        stored = store.load_thumbnail(part, label)
        if stored is None:
            continue
        views = {name: plane_view(v) for name, v in stored.get("views", {}).items()}
        thumbs[(case_id, label)] = ThumbnailInputs(
            ct_slices=[a.astype("float32") for a in stored["ct"]],
            mask_slices=[a.astype(bool) for a in stored["mask"]],
            slice_indices=[int(i) for i in stored["slice_indices"]],
            spacing=tuple(stored["spacing"]), coronal=views.get("coronal"),
            sagittal=views.get("sagittal"))
    try:
        path = render_report(results, slices, out_dir / "report.html", thumbnails=thumbs,
                             title=title, dataset=dataset, model=model, settings=settings,
                             worst_n=worst_n)
    except Exception as exc:  # noqa: BLE001 - the tables are written; a report bug must not lose them
        return None, f"{type(exc).__name__}: {exc}"
    return path, None
