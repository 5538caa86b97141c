"""Final results tables: rows from the per-case parts, dataset-level flags, exact columns/dtypes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from qsaudit.columns import FLAG_COLUMNS, RESULT_COLUMNS, SLICE_COLUMNS, names


def results_table(rows: Sequence[dict[str, Any]], body_areas: Sequence[float]):
    """The results DataFrame (``RESULT_COLUMNS``, sorted by case_id, label).

    ``rows``: one dict per label as committed by the scan (no ``flag_volume``/``n_flags``);
    ``body_areas``: aligned body cross-section areas (mm²) of each row's case. ``flag_volume`` is
    computed here across all rows (it compares a label with the rest of the dataset) and
    ``n_flags`` counts the raised flags.
    """
    import pandas as pd

    from qsaudit.checks import flag_volume

    ok = np.array([r.get("status") == "ok" for r in rows], dtype=bool)
    volumes = np.array([_num(r.get("volume_ml")) if good else np.nan
                        for r, good in zip(rows, ok, strict=True)], dtype=np.float64)
    structures = [str(r.get("structure") or r.get("label")) for r in rows]
    vol_flags = flag_volume(volumes, np.asarray(body_areas, dtype=np.float64), structures)
    table = pd.DataFrame(list(rows), columns=[c for c in names(RESULT_COLUMNS)])
    table["flag_volume"] = pd.array([bool(f) if good else None
                                     for f, good in zip(vol_flags, ok, strict=True)],
                                    dtype="boolean")
    table = _typed(table, RESULT_COLUMNS)
    flags = table[list(FLAG_COLUMNS)].fillna(False).astype(bool)
    table["n_flags"] = pd.array(flags.sum(axis=1).to_numpy(), dtype="Int64")
    return table.sort_values(["case_id", "label"], kind="mergesort").reset_index(drop=True)


def slices_table(rows: Sequence[dict[str, Any]]):
    """The per-slice DataFrame (``SLICE_COLUMNS``), sorted by case_id, label, slice_index."""
    import pandas as pd

    table = _typed(pd.DataFrame(list(rows), columns=names(SLICE_COLUMNS)), SLICE_COLUMNS)
    return table.sort_values(["case_id", "label", "slice_index"],
                             kind="mergesort").reset_index(drop=True)


def _typed(table, columns):
    import pandas as pd

    for col in columns:
        values = table[col.name]
        if col.dtype == "string":
            table[col.name] = values.astype(object).where(values.notna(), None).astype("string")
        elif col.dtype == "boolean":
            table[col.name] = pd.array([None if _missing(v) else bool(v) for v in values],
                                       dtype="boolean")
        elif col.dtype == "Int64":
            table[col.name] = pd.array([None if _missing(v) else int(v) for v in values],
                                       dtype="Int64")
        else:
            table[col.name] = pd.to_numeric(values, errors="coerce").astype(col.dtype)
    return table


def _missing(value: Any) -> bool:
    import pandas as pd

    return value is None or bool(pd.isna(value))


def _num(value: Any) -> float:
    return float("nan") if _missing(value) else float(value)
