"""Load scan results and ground-truth tables, with dtypes from :mod:`qsaudit.columns`.

A results folder (default ``./qsaudit-report``) holds ``results.parquet`` and/or ``results.csv``
with the columns of :data:`qsaudit.columns.RESULT_COLUMNS`, one row per (case, label).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from qsaudit.columns import FLAG_COLUMNS, RESULT_COLUMNS, TRUTH_COLUMNS, Column
from qsaudit.errors import ResultsError, UsageError

REQUIRED_RESULT_COLUMNS = ("case_id", "label", "predicted_dsc")
REQUIRED_TRUTH_COLUMNS = ("case_id", "label", "true_dsc")
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}


def results_file(path: str | Path) -> Path:
    """The results table behind ``path`` (a folder or a .csv/.tsv/.parquet file).

    Raises :class:`UsageError` when nothing is there and :class:`ResultsError` when a folder
    holds no results table.
    """
    path = Path(path)
    if not path.exists():
        raise UsageError(f'"{path}": no such results folder or file')
    if path.is_dir():
        for name in ("results.parquet", "results.csv"):
            if (path / name).is_file():
                return path / name
        raise ResultsError(f'"{path}": no results.parquet or results.csv in this folder '
                           "(run `qsaudit scan` first)")
    return path


def results_dir(path: str | Path) -> Path:
    """The folder that outputs go to by default: ``path`` itself, or the folder of a file."""
    path = Path(path)
    return path if path.is_dir() else path.parent


def _read_table(path: Path) -> pd.DataFrame:
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in {".csv", ".csv.gz"}:
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        if suffix in {".tsv", ".tsv.gz"}:
            return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False,
                               encoding="utf-8-sig")
    except (OSError, ValueError, ImportError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ResultsError(f'"{path}": cannot read the table ({first})') from None
    raise UsageError(f'"{path}": expected a results folder or a .csv, .tsv or .parquet file')


def _to_bool(series: pd.Series, name: str, path: Path) -> pd.Series:
    if pd.api.types.is_bool_dtype(series):
        return series.astype("boolean")
    text = series.astype("string").str.strip().str.lower()
    bad = text[text.notna() & ~text.isin(_TRUE | _FALSE | {"nan", "<na>", "none"})]
    if len(bad):
        raise ResultsError(f'"{path}": column {name} has a non-boolean value "{bad.iloc[0]}"')
    out = pd.Series(pd.NA, index=series.index, dtype="boolean")
    out[text.isin(_TRUE)] = True
    out[text.isin(_FALSE)] = False
    return out


def _coerce(df: pd.DataFrame, columns: tuple[Column, ...], path: Path) -> pd.DataFrame:
    df = df.copy()
    for col in columns:
        if col.name not in df.columns:
            continue
        s = df[col.name]
        if col.dtype == "string":
            s = s.astype("string")
            df[col.name] = s.where(s != "", pd.NA) if col.name not in ("case_id", "label") else s
        elif col.dtype in ("float64", "Int64"):
            if not pd.api.types.is_numeric_dtype(s):
                s = s.astype("string").str.strip().replace({"": pd.NA})
            num = pd.to_numeric(s, errors="coerce")
            bad = s.notna() & num.isna()
            if bad.any():
                raise ResultsError(f'"{path}": column {col.name} has a non-numeric value '
                                   f'"{s[bad].iloc[0]}"')
            if col.dtype == "Int64":
                frac = num.notna() & (num.round() != num)
                if frac.any():
                    raise ResultsError(f'"{path}": column {col.name} needs whole numbers, got '
                                       f"{num[frac].iloc[0]}")
                df[col.name] = num.round().astype("Int64")
            else:
                df[col.name] = num.astype("float64")
        elif col.dtype == "boolean":
            df[col.name] = _to_bool(s, col.name, path)
    return df


def normalise_results(df: pd.DataFrame, *, source: str | Path = "<table>") -> pd.DataFrame:
    """Give a results table the dtypes of ``RESULT_COLUMNS`` and fill optional columns.

    Required: ``case_id``, ``label``, ``predicted_dsc``. Missing optional columns get defaults:
    ``structure`` = ``label``, ``status`` = ``"ok"``, flags = False, ``n_flags`` = number of
    flags raised. Extra columns are kept. Raises :class:`ResultsError` naming the source.
    """
    path = Path(str(source))
    missing = [c for c in REQUIRED_RESULT_COLUMNS if c not in df.columns]
    if missing:
        raise ResultsError(f'"{path}": missing column(s) {", ".join(missing)}')
    df = _coerce(df, RESULT_COLUMNS, path)
    df["case_id"] = df["case_id"].str.strip()
    df["label"] = df["label"].str.strip()
    if "structure" not in df.columns:
        df["structure"] = df["label"]
    df["structure"] = df["structure"].fillna(df["label"]).astype("string")
    if "status" not in df.columns:
        df["status"] = pd.Series("ok", index=df.index, dtype="string")
    df["status"] = df["status"].fillna("ok").str.strip().astype("string")
    for flag in FLAG_COLUMNS:
        if flag not in df.columns:
            df[flag] = pd.Series(False, index=df.index, dtype="boolean")
        df[flag] = df[flag].fillna(False)
    if "n_flags" not in df.columns:
        df["n_flags"] = df[list(FLAG_COLUMNS)].astype(int).sum(axis=1).astype("Int64")
    df["n_flags"] = df["n_flags"].fillna(0)
    if df.duplicated(["case_id", "label"]).any():
        dup = df.loc[df.duplicated(["case_id", "label"]), ["case_id", "label"]].iloc[0]
        raise ResultsError(f'"{path}": case {dup.case_id} label {dup.label} appears twice')
    return df.reset_index(drop=True)


def load_results(path: str | Path) -> pd.DataFrame:
    """Read a results folder or table into a DataFrame with the dtypes of ``RESULT_COLUMNS``.

    ``path`` is a results folder (``results.parquet`` is preferred over ``results.csv``) or a
    ``.csv``/``.tsv``/``.parquet`` file. One row per (case_id, label).
    """
    file = results_file(path)
    return normalise_results(_read_table(file), source=file)


def ok_rows(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Rows with ``status == "ok"`` and a predicted DSC, and how many other rows were skipped."""
    keep = (df["status"] == "ok").fillna(False) & df["predicted_dsc"].notna()
    return df[keep].reset_index(drop=True), int((~keep).sum())


def load_truth(path: str | Path) -> pd.DataFrame:
    """Read a table of true Dice scores (``truth.csv`` of ``qsaudit demo``, or any table with
    ``case_id``, ``label``, ``true_dsc`` in [0, 1]); raises :class:`UsageError` when unusable."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f'"{path}": no such truth table')
    try:
        df = _read_table(path)
    except ResultsError as exc:
        raise UsageError(str(exc)) from None
    missing = [c for c in REQUIRED_TRUTH_COLUMNS if c not in df.columns]
    if missing:
        raise UsageError(f'"{path}": missing column(s) {", ".join(missing)}')
    try:
        df = _coerce(df, TRUTH_COLUMNS, path)
    except ResultsError as exc:
        raise UsageError(str(exc)) from None
    df["case_id"] = df["case_id"].str.strip()
    df["label"] = df["label"].str.strip()
    out_of_range = df["true_dsc"].notna() & ~df["true_dsc"].between(0, 1)
    if out_of_range.any():
        raise UsageError(f'"{path}": true_dsc {df.loc[out_of_range, "true_dsc"].iloc[0]} is '
                         "outside [0, 1]")
    if df["true_dsc"].isna().any():
        raise UsageError(f'"{path}": true_dsc is empty for some rows')
    if "reference_path" in df.columns:  # relative to the table's folder, which may have moved
        folder = path.resolve().parent
        df["reference_path"] = df["reference_path"].map(
            lambda p: str(folder / p) if isinstance(p, str) and p else pd.NA).astype("string")
    return df.drop_duplicates(["case_id", "label"]).reset_index(drop=True)


def attach_truth(df: pd.DataFrame, truth: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Add ``true_dsc`` to result rows; returns matched rows and the number without truth."""
    merged = df.merge(truth[["case_id", "label", "true_dsc"]], on=["case_id", "label"],
                      how="left")
    has = merged["true_dsc"].notna()
    return merged[has].reset_index(drop=True), int((~has).sum())
