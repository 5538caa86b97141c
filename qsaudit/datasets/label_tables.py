"""Names for the integer values of label maps: CSV/JSON tables, dataset.json and presets.

A label table maps a label-map value (int > 0) to the label's name as written in the dataset.
Background (value 0) is never part of a table.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from qsaudit.errors import DatasetError, UsageError

ADJACENT_TABLE_NAMES: tuple[str, ...] = (
    "labels.csv", "labels.json", "label_names.csv", "label_names.json", "dataset.json",
)
"""File names searched next to a label map when no table is given."""


def read_json(path: Path) -> Any:
    """Read a small JSON file; a missing or malformed file raises :class:`DatasetError`."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise DatasetError(f'"{path}": file not found') from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f'"{path}": cannot read ({exc.__class__.__name__})') from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f'"{path}": not valid JSON (line {exc.lineno}: {exc.msg})') from None


def read_label_table(path: str | Path) -> dict[int, str]:
    """Read a label table from a CSV (columns ``value,name``) or a JSON file.

    JSON may map values to names (``{"1": "spleen"}``), names to values (``{"spleen": 1}``,
    nnU-Net v2 style) or hold either under a ``"labels"`` key (``dataset.json``).
    Returns ``{value: name}`` without background (value 0).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f'"{path}": label table not found')
    if path.suffix.lower() == ".json":
        return labels_from_json(read_json(path), source=path)
    return _read_label_csv(path)


def _read_label_csv(path: Path) -> dict[int, str]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f'"{path}": cannot read label table ({exc})') from None
    if not rows:
        raise DatasetError(f'"{path}": label table is empty')
    header = [cell.strip().lower() for cell in rows[0]]
    if "value" in header and "name" in header:
        value_col, name_col = header.index("value"), header.index("name")
        body, first_line = rows[1:], 2
    elif len(header) >= 2 and _as_int(header[0]) is not None:
        value_col, name_col = 0, 1
        body, first_line = rows, 1
    else:
        raise DatasetError(f'"{path}": label table needs columns "value,name"')
    table: dict[int, str] = {}
    for line, row in enumerate(body, start=first_line):
        if len(row) <= max(value_col, name_col):
            raise DatasetError(f'"{path}": line {line} has too few columns')
        value, name = _as_int(row[value_col]), row[name_col].strip()
        if value is None or value < 0 or not name:
            raise DatasetError(f'"{path}": line {line}: expected a value >= 0 and a name, '
                               f'got {row[value_col]!r}, {row[name_col]!r}')
        _add(table, value, name, path)
    return _without_background(table, path)


def labels_from_json(data: Any, *, source: Path | str) -> dict[int, str]:
    """Turn a JSON label mapping (either direction, or under ``"labels"``) into ``{value: name}``.

    nnU-Net region entries (a name mapped to a list of values) are skipped.
    """
    if isinstance(data, dict) and isinstance(data.get("labels"), dict):
        data = data["labels"]
    if not isinstance(data, dict) or not data:
        raise DatasetError(f'"{source}": no label mapping found')
    table: dict[int, str] = {}
    if all(_as_int(key) is not None for key in data):
        for key, name in data.items():
            if not isinstance(name, str) or not name.strip():
                raise DatasetError(f'"{source}": label {key} has no name')
            _add(table, _as_int(key), name.strip(), source)
    else:
        for name, value in data.items():
            if isinstance(value, list):
                continue
            number = value if isinstance(value, int) and not isinstance(value, bool) else None
            if number is None or number < 0:
                raise DatasetError(f'"{source}": label "{name}" has value {value!r}, '
                                   "expected an integer >= 0")
            _add(table, number, str(name).strip(), source)
    return _without_background(table, source)


def find_adjacent_table(*folders: Path) -> dict[int, str] | None:
    """The first label table found in ``folders`` under :data:`ADJACENT_TABLE_NAMES`, or None."""
    for folder in folders:
        for name in ADJACENT_TABLE_NAMES:
            candidate = folder / name
            if not candidate.is_file():
                continue
            if name == "dataset.json":
                data = read_json(candidate)
                if isinstance(data, dict) and isinstance(data.get("labels"), dict):
                    return labels_from_json(data, source=candidate)
                continue
            return read_label_table(candidate)
    return None


def preset_table(preset: str) -> dict[int, str]:
    """Label table of a known dataset (``"btcv"``, ``"amos"``) from qsaudit's registry."""
    from qsaudit.registry import preset_labels

    try:
        table = preset_labels(preset)
    except (KeyError, ValueError, LookupError) as exc:
        detail = exc.args[0] if exc.args else preset
        raise UsageError(f'unknown label preset "{preset}" ({detail})') from None
    return {int(value): name for value, name in table.items() if int(value) != 0}


def _as_int(text: Any) -> int | None:
    if isinstance(text, bool):
        return None
    if isinstance(text, int):
        return text
    try:
        return int(str(text).strip())
    except ValueError:
        return None


def _add(table: dict[int, str], value: int, name: str, source: Path | str) -> None:
    if value in table:
        raise DatasetError(f'"{source}": value {value} is named twice '
                           f'("{table[value]}" and "{name}")')
    table[value] = name


def _without_background(table: dict[int, str], source: Path | str) -> dict[int, str]:
    table = {value: name for value, name in sorted(table.items()) if value != 0}
    if not table:
        raise DatasetError(f'"{source}": label table names no label besides background')
    return table
