"""Read patient metadata (sex, age, covariates) and join it to scan results.

Accepts TotalSegmentator's ``meta.csv`` as shipped (``;``-separated, UTF-8 byte-order mark,
``image_id;age;gender;institute;...``) and any CSV/TSV whose id, sex and age columns are named
by options. Sex is normalised to ``"M"``/``"F"``; age to years (float). Values that cannot be
read become missing and are counted, never guessed.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from qsaudit.errors import UsageError

ID_CANDIDATES = ("image_id", "case_id", "case", "subject_id", "subject", "patient_id",
                 "patient", "id")
SEX_CANDIDATES = ("gender", "sex", "patient_sex", "patientsex")
AGE_CANDIDATES = ("age", "patient_age", "patientage", "age_years")

_SEX_WORDS = {"m": "M", "male": "M", "man": "M",
              "f": "F", "female": "F", "woman": "F", "w": "F"}
_AGE_RE = re.compile(
    r"^(?P<num>\d+(?:[.,]\d+)?)\s*(?P<unit>y|yr|yrs|year|years|m|mo|month|months|w|wk|week|weeks"
    r"|d|day|days)?\.?$", re.IGNORECASE)
_UNIT_YEARS = {"y": 1.0, "m": 1 / 12, "w": 7 / 365.25, "d": 1 / 365.25}
MAX_AGE = 130.0


@dataclass(frozen=True)
class Metadata:
    """Patient metadata, one row per patient id.

    ``table`` has ``patient_id`` (string), ``sex`` ("M", "F" or missing), ``age`` (years, float
    or NaN) and every other column of the file (string) usable as a covariate.
    """

    table: pd.DataFrame
    source: str
    id_col: str
    sex_col: str | None
    age_col: str | None
    unreadable_sex: list[str] = field(default_factory=list)
    unreadable_age: list[str] = field(default_factory=list)
    duplicate_ids: list[str] = field(default_factory=list)


def parse_sex_map(text: str | None) -> dict[str, str]:
    """Parse ``"0=F,1=M"`` into ``{"0": "F", "1": "M"}``; values must be M or F."""
    if not text:
        return {}
    out: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        value = value.strip().upper()
        value = {"MALE": "M", "FEMALE": "F"}.get(value, value)
        if not sep or not key.strip() or value not in ("M", "F"):
            raise UsageError(f'--sex-map "{text}": expected pairs like 0=F,1=M')
        out[key.strip().lower()] = value
    return out


def normalise_sex(value: object, sex_map: dict[str, str] | None = None) -> str | None:
    """``"M"``, ``"F"`` or None for a raw sex value (M/F, male/female, or per ``sex_map``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip().lower()
    if sex_map and text in sex_map:
        return sex_map[text]
    return _SEX_WORDS.get(text)


def parse_age(value: object) -> float:
    """Age in years from ``45``, ``"045Y"`` (DICOM), ``"45.5"``, ``"45 years"``, ``"6M"``.

    DICOM units: Y years, M months, W weeks, D days. Returns NaN when unreadable or outside
    0..130 years.
    """
    if value is None:
        return float("nan")
    if isinstance(value, int | float):
        age = float(value)
    else:
        match = _AGE_RE.match(str(value).strip())
        if not match:
            return float("nan")
        age = float(match["num"].replace(",", "."))
        unit = (match["unit"] or "y").lower()[0]
        age *= _UNIT_YEARS[unit]
    return age if 0 <= age <= MAX_AGE else float("nan")


def _sniff_delimiter(head: str, path: Path) -> str:
    first = head.splitlines()[0] if head else ""
    if not first.strip():
        raise UsageError(f'"{path}": the metadata file is empty')
    counts = {d: first.count(d) for d in (";", "\t", ",")}
    best = max(counts, key=lambda d: counts[d])
    if counts[best] > 0:
        return best
    try:
        return csv.Sniffer().sniff(head, delimiters=";\t,").delimiter
    except csv.Error:
        raise UsageError(f'"{path}": cannot tell the column separator (expected ; , or tab)'
                         ) from None


def _pick(columns: list[str], wanted: str | None, candidates: tuple[str, ...], what: str,
          path: Path, option: str) -> str | None:
    lower = {c.strip().lower(): c for c in columns}
    if wanted is not None:
        if wanted in columns:
            return wanted
        if wanted.strip().lower() in lower:
            return lower[wanted.strip().lower()]
        raise UsageError(f'"{path}": no column "{wanted}" ({option}); columns are '
                         f'{", ".join(columns)}')
    for cand in candidates:
        if cand in lower:
            return lower[cand]
    return None


def read_metadata(path: str | Path, *, id_col: str | None = None, sex_col: str | None = None,
                  age_col: str | None = None, sex_map: dict[str, str] | None = None
                  ) -> Metadata:
    """Read a metadata CSV/TSV (separator sniffed, BOM tolerated) into :class:`Metadata`.

    Columns are found by name (case-insensitive: ``image_id``/``case_id``/…, ``gender``/``sex``,
    ``age``) unless named explicitly. Sex values 0/1 (or any other code) need ``sex_map``.
    Raises :class:`UsageError` for a missing file, an unknown column or no id column.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f'"{path}": no such metadata file')
    encoding = "utf-8-sig"
    try:
        raw = path.read_bytes().decode(encoding)
    except UnicodeDecodeError:
        encoding = "latin-1"
        raw = path.read_bytes().decode(encoding)
    delimiter = _sniff_delimiter(raw[:8192], path)
    try:
        df = pd.read_csv(path, sep=delimiter, dtype=str, keep_default_na=False,
                         encoding=encoding, engine="python")
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise UsageError(f'"{path}": cannot read the metadata ({str(exc).splitlines()[0]})'
                         ) from None
    df.columns = [str(c).strip().lstrip("\ufeff") for c in df.columns]
    columns = list(df.columns)
    idc = _pick(columns, id_col, ID_CANDIDATES, "id", path, "--id-col")
    if idc is None:
        raise UsageError(f'"{path}": no id column found (tried {", ".join(ID_CANDIDATES)}); '
                         "name it with --id-col")
    sexc = _pick(columns, sex_col, SEX_CANDIDATES, "sex", path, "--sex-col")
    agec = _pick(columns, age_col, AGE_CANDIDATES, "age", path, "--age-col")
    if sexc is None and agec is None:
        raise UsageError(f'"{path}": neither a sex nor an age column found; name them with '
                         "--sex-col / --age-col")
    table = df.rename(columns={idc: "patient_id"}).copy()
    table["patient_id"] = table["patient_id"].astype(str).str.strip()
    table = table[table["patient_id"] != ""]
    dups = sorted(set(table.loc[table["patient_id"].duplicated(), "patient_id"]))
    table = table.drop_duplicates("patient_id", keep="first")
    unreadable_sex: list[str] = []
    if sexc is not None:
        raw_sex = table[sexc].astype(str).str.strip()
        sex = raw_sex.map(lambda v: normalise_sex(v, sex_map))
        bad = raw_sex[sex.isna() & (raw_sex != "")]
        codes = set(bad.str.lower())
        if codes and codes <= {"0", "1"} and not sex_map:
            raise UsageError(f'"{path}": sex column "{sexc}" holds 0/1; say which is which with '
                             "--sex-map 0=F,1=M")
        unreadable_sex = sorted(set(bad))
        table["sex"] = sex.astype("string")
    else:
        table["sex"] = pd.Series(pd.NA, index=table.index, dtype="string")
    unreadable_age: list[str] = []
    if agec is not None:
        raw_age = table[agec].astype(str).str.strip()
        age = raw_age.map(parse_age).astype(float)
        unreadable_age = sorted(set(raw_age[age.isna() & (raw_age != "")]))
        table["age"] = age
    else:
        table["age"] = float("nan")
    drop = [c for c in (sexc, agec) if c is not None and c not in ("sex", "age")]
    table = table.drop(columns=drop).reset_index(drop=True)
    return Metadata(table=table, source=str(path), id_col=idc, sex_col=sexc, age_col=agec,
                    unreadable_sex=unreadable_sex, unreadable_age=unreadable_age,
                    duplicate_ids=dups)


@dataclass(frozen=True)
class JoinedData:
    """Result rows joined to metadata, with what did not match.

    ``table``: ok result rows with ``patient_id``, ``sex``, ``age`` and covariates (rows of
    cases without metadata are not in it; they are listed in ``cases_without_metadata``).
    """

    table: pd.DataFrame
    cases_without_metadata: list[str]
    metadata_without_cases: list[str]
    cases_missing_sex: list[str]
    cases_missing_age: list[str]


def join_metadata(results: pd.DataFrame, meta: Metadata) -> JoinedData:
    """Join result rows to metadata on ``case_id`` == ``patient_id`` (exact after stripping)."""
    res = results.copy()
    res["patient_id"] = res["case_id"].astype(str).str.strip()
    meta_cols = [c for c in meta.table.columns if c not in res.columns or c == "patient_id"]
    joined = res.merge(meta.table[meta_cols], on="patient_id", how="left", indicator=True)
    matched = joined["_merge"] == "both"
    result_ids = set(res["patient_id"])
    meta_ids = set(meta.table["patient_id"])
    table = joined[matched].drop(columns="_merge").reset_index(drop=True)
    missing_sex = sorted(set(table.loc[table["sex"].isna(), "patient_id"]))
    missing_age = sorted(set(table.loc[table["age"].isna(), "patient_id"]))
    return JoinedData(table=table,
                      cases_without_metadata=sorted(result_ids - meta_ids),
                      metadata_without_cases=sorted(meta_ids - result_ids),
                      cases_missing_sex=missing_sex, cases_missing_age=missing_age)
