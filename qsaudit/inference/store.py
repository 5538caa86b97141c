"""The results folder of a scan: committed per case, resumable, refusing foreign settings.

Layout of ``OUT/``::

    scan.json            settings, model fingerprint, dataset, state, counts, timings
    parts/<case>.json    one committed case: its result rows and slice rows
    parts/<case>.npz     thumbnails of its labels among the worst seen so far (optional)
    results.csv/.parquet, slices.parquet, report.html   written when every case is done

A case counts as done once its ``.json`` part exists; parts are written atomically (temporary
file, fsync, rename), so a scan killed at any moment, even by ``kill -9``, leaves only whole
parts and resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from qsaudit.atomic import write_json, write_with
from qsaudit.errors import ResultsError, UsageError

SCAN_JSON = "scan.json"
PARTS = "parts"
FINAL_FILES = ("results.csv", "results.parquet", "slices.parquet", "report.html")
# What must match for a folder to be resumed (see ScanSettings.identity).
IDENTITY_KEYS = ("dataset", "model_fingerprint", "identity")


def part_stem(case_id: str) -> str:
    """A file-name-safe, collision-free stem for a case id."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", case_id)[:80]
    return f"{safe}-{hashlib.sha1(case_id.encode()).hexdigest()[:10]}"


def refuse_inside_dataset(dataset: str | Path, out_dir: str | Path) -> None:
    """Raise :class:`UsageError` when ``out_dir`` is ``dataset`` or lies inside it: qsaudit
    only reads a dataset (links are followed, so a link into the dataset is refused too)."""
    data, out = Path(dataset).resolve(), Path(out_dir).resolve()
    if out == data or data in out.parents:
        raise UsageError(f'"{out_dir}": the results folder is inside the dataset "{dataset}"; '
                         "qsaudit never writes into a dataset: choose --out elsewhere")


class ResultsStore:
    """A scan's results folder (see the module docstring)."""

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.parts_dir = self.out_dir / PARTS

    @classmethod
    def open(cls, out_dir: str | Path, manifest: dict[str, Any], *,
             force: bool = False) -> ResultsStore:
        """Open (or create) ``out_dir`` for a scan described by ``manifest``.

        ``manifest`` holds at least the :data:`IDENTITY_KEYS`. A folder made with a different
        dataset, model or settings raises :class:`ResultsError` naming the differences, unless
        ``force``, which deletes the earlier scan's files (only those) and starts afresh.
        """
        store = cls(out_dir)
        if store.out_dir.exists() and not store.out_dir.is_dir():
            raise ResultsError(f'"{store.out_dir}": exists and is not a folder')
        previous = store.read_manifest()
        orphan = store.parts_dir.is_dir() and any(store.parts_dir.iterdir())
        if previous is None and orphan and not force:
            raise ResultsError(f'"{store.out_dir}": has scan parts but no {SCAN_JSON}; '
                                   "use --force to start afresh")
        if previous is not None:
            diffs = differences(previous, manifest)
            if diffs and not force:
                raise ResultsError(
                    f'"{store.out_dir}": holds a scan made with other settings '
                    f'({"; ".join(diffs)}); use --force to replace it, or another --out')
            if diffs or force:
                store.clear()
        elif force:
            store.clear()
        store.parts_dir.mkdir(parents=True, exist_ok=True)
        started = (previous or {}).get("started") if not force else None
        write_json(store.out_dir / SCAN_JSON, {**manifest, "state": "running",
                                               "started": started or manifest.get("started")})
        return store

    def read_manifest(self) -> dict[str, Any] | None:
        """The folder's ``scan.json`` (None when absent); ResultsError when unreadable."""
        return read_manifest(self.out_dir)

    def clear(self) -> None:
        """Delete an earlier scan's parts and final files (nothing else in the folder)."""
        shutil.rmtree(self.parts_dir, ignore_errors=True)
        for name in (*FINAL_FILES, SCAN_JSON):
            (self.out_dir / name).unlink(missing_ok=True)

    def done_case_ids(self) -> set[str]:
        """Ids of the cases with a committed part."""
        if not self.parts_dir.is_dir():
            return set()
        done = set()
        for path in self.parts_dir.glob("*.json"):
            done.add(self._read_part(path)["case_id"])
        return done

    def commit(self, case_id: str, part: dict[str, Any],
               thumbnails: dict[str, dict[str, Any]] | None = None) -> None:
        """Commit one case: thumbnails first, then the part that marks the case done.

        ``part``: JSON-able dict with ``rows`` (list of row dicts), ``slices`` (list of slice row
        dicts) and ``body_area_mm2``; ``thumbnails``: label → {"ct": (n,h,w) int16, "mask":
        (n,h,w) bool, "slice_indices": list, "spacing": (sx, sy), "views": optional name →
        {"ct", "mask", "spacing", "position", "z0", "z_step"} (coronal and sagittal planes)}.
        """
        stem = part_stem(case_id)
        index = {}
        if thumbnails:
            arrays = {}
            for i, (label, thumb) in enumerate(sorted(thumbnails.items())):
                arrays[f"ct{i}"] = thumb["ct"]
                arrays[f"mask{i}"] = thumb["mask"]
                index[label] = {"key": i, "slice_indices": [int(s) for s in thumb["slice_indices"]],
                                "spacing": [float(s) for s in thumb["spacing"]]}
                views = {}
                for name, view in (thumb.get("views") or {}).items():
                    arrays[f"{name}_ct{i}"], arrays[f"{name}_mask{i}"] = view["ct"], view["mask"]
                    views[name] = {"spacing": [float(s) for s in view["spacing"]],
                                   **{k: int(view[k]) for k in ("position", "z0", "z_step")}}
                if views:
                    index[label]["views"] = views

            def _save(tmp: Path) -> None:
                with open(tmp, "wb") as fh:
                    np.savez_compressed(fh, **arrays)

            write_with(self.parts_dir / f"{stem}.npz", _save)
        write_json(self.parts_dir / f"{stem}.json",
                   {**part, "case_id": case_id, "thumbnails": index})

    def load_parts(self, case_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The committed parts of ``case_ids`` (in that order); ResultsError if one is missing."""
        parts = []
        for case_id in case_ids:
            path = self.parts_dir / f"{part_stem(case_id)}.json"
            if not path.is_file():
                raise ResultsError(f'"{path}": part of case "{case_id}" is missing')
            parts.append(self._read_part(path))
        return parts

    def load_thumbnail(self, part: dict[str, Any], label: str) -> dict[str, Any] | None:
        """The stored thumbnail arrays of ``label`` in a loaded part, or None."""
        entry = part.get("thumbnails", {}).get(label)
        path = self.parts_dir / f"{part_stem(part['case_id'])}.npz"
        if entry is None or not path.is_file():
            return None
        key = entry["key"]
        with np.load(path) as data:
            views = {name: {**view, "ct": data[f"{name}_ct{key}"],
                            "mask": data[f"{name}_mask{key}"]}
                     for name, view in entry.get("views", {}).items()}
            return {"ct": data[f"ct{key}"], "mask": data[f"mask{key}"],
                    "slice_indices": entry["slice_indices"], "spacing": tuple(entry["spacing"]),
                    "views": views}

    @staticmethod
    def _read_part(path: Path) -> dict[str, Any]:
        try:
            part = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ResultsError(f'"{path}": unreadable scan part ({exc})') from None
        if not isinstance(part, dict) or "case_id" not in part:
            raise ResultsError(f'"{path}": not a qsaudit scan part')
        return part


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """``folder/scan.json`` as a dict, None when absent; ResultsError when unreadable."""
    path = Path(folder) / SCAN_JSON
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ResultsError(f'"{path}": unreadable ({exc})') from None
    if not isinstance(data, dict):
        raise ResultsError(f'"{path}": not a qsaudit scan.json')
    return data


IDENTITY_DEFAULTS = {"precision": "fp32"}
"""Identity fields older results folders lack, with the value they had."""


def differences(previous: dict[str, Any], current: dict[str, Any], *,
                ignore: tuple[str, ...] = ()) -> list[str]:
    """Human-readable differences between two manifests' identity fields."""
    diffs = []
    if previous.get("dataset") != current.get("dataset") and "dataset" not in ignore:
        diffs.append(f'dataset was "{previous.get("dataset")}"')
    if previous.get("model_fingerprint") != current.get("model_fingerprint"):
        diffs.append("model changed (fingerprint "
                     f'{str(previous.get("model_fingerprint"))[:12]} -> '
                     f'{str(current.get("model_fingerprint"))[:12]})')
    old, new = previous.get("identity") or {}, current.get("identity") or {}
    # scans from before the arithmetic was recorded ran in fp32 on CPU
    old = {**IDENTITY_DEFAULTS, **old}
    new = {**IDENTITY_DEFAULTS, **new}
    for key in sorted(set(old) | set(new)):
        if key in ignore:
            continue
        if old.get(key) != new.get(key):
            diffs.append(f"{key} was {old.get(key)!r}, now {new.get(key)!r}")
    return diffs
