"""``merge_shards``: join the results folders of a sharded scan into one, as if scanned at once."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from qsaudit import __version__
from qsaudit.atomic import write_json
from qsaudit.errors import ResultsError
from qsaudit.inference.engine import ScanSummary, _summary
from qsaudit.inference.finalize import write_outputs
from qsaudit.inference.store import SCAN_JSON, ResultsStore, differences, read_manifest
from qsaudit.reports.scan_report import settings_as_run


def merge_shards(shard_dirs: Sequence[str | Path], out_dir: str | Path, *,
                 force: bool = False, worst_n: int = 40) -> ScanSummary:
    """Merge complete shard folders (``qsaudit scan --shard I/N``) into ``out_dir``.

    Checks that every shard is complete and was made from the same dataset, model and settings,
    that shards 0..N-1 are all there once, and that no case appears twice. Dataset-level flags
    (``flag_volume``) are recomputed over all cases, so the merged tables equal those of one
    unsharded scan. Raises :class:`ResultsError` otherwise.
    """
    started = time.perf_counter()
    if not shard_dirs:
        raise ResultsError("merge: no shard folder given")
    out_dir = Path(out_dir)
    folders = [Path(d) for d in shard_dirs]
    manifests = []
    for folder in folders:
        if folder.resolve() == out_dir.resolve():
            raise ResultsError(f'"{out_dir}": the output folder cannot be one of the shards')
        manifest = read_manifest(folder)
        if manifest is None:
            raise ResultsError(f'"{folder}": no {SCAN_JSON}: not a qsaudit results folder')
        if manifest.get("state") != "complete":
            raise ResultsError(f'"{folder}": scan not finished (state {manifest.get("state")}); '
                               "run the same scan command again to complete it")
        manifests.append(manifest)
    first = manifests[0]
    for folder, manifest in zip(folders[1:], manifests[1:], strict=True):
        diffs = differences(first, manifest, ignore=("shard",))
        if diffs:
            raise ResultsError(f'"{folder}": made with other settings than "{folders[0]}" '
                               f'({"; ".join(diffs)})')
    _check_shard_set(folders, manifests)
    sources, owner = [], {}
    for folder in folders:
        store = ResultsStore(folder)
        for part in store.load_parts(_case_ids(folder)):
            case_id = part["case_id"]
            if case_id in owner:
                raise ResultsError(f'case "{case_id}" is in both "{owner[case_id]}" and '
                                   f'"{folder}"')
            owner[case_id] = folder
            sources.append((store, part))
    identity = {**first["identity"], "shard": None}
    merged = {**{k: first.get(k) for k in ("dataset", "model_fingerprint", "model")},
              "identity": identity, "qsaudit_version": __version__,
              "settings": {**first.get("settings", {}), "shard": None},
              "merged_from": [str(f.resolve()) for f in folders]}
    previous = read_manifest(out_dir) if out_dir.is_dir() else None
    if previous is not None and not force:
        diffs = differences(previous, merged)
        if diffs:
            raise ResultsError(f'"{out_dir}": holds results made with other settings '
                               f'({"; ".join(diffs)}); use --force or another --out')
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = write_outputs(out_dir, sources, dataset=str(first.get("dataset")),
                            model=str((first.get("model") or {}).get("name", "")),
                            settings=settings_as_run(merged), worst_n=worst_n)
    summary = _summary(out_dir, outputs, scanned=0, resumed=len(sources),
                       seconds=time.perf_counter() - started)
    write_json(out_dir / SCAN_JSON, {
        **merged, "state": "complete",
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "counts": {"cases": summary.cases, "labels": summary.labels,
                   "status": summary.status_counts, "flagged": summary.flagged},
        "report_error": outputs.report_error,
    })
    return summary


def _check_shard_set(folders: list[Path], manifests: list[dict]) -> None:
    shards = [(m.get("identity") or {}).get("shard") for m in manifests]
    if any(s is None for s in shards):
        bad = folders[shards.index(None)]
        raise ResultsError(f'"{bad}": not a shard (scanned without --shard)')
    counts = {int(s[1]) for s in shards}
    if len(counts) != 1:
        raise ResultsError(f"shards of different splits ({', '.join(map(str, sorted(counts)))} "
                           "shards): merge shards of one split")
    count = counts.pop()
    seen: dict[int, Path] = {}
    for folder, (index, _n) in zip(folders, shards, strict=True):
        if int(index) in seen:
            raise ResultsError(f'shard {index}/{count} given twice: "{seen[int(index)]}" and '
                               f'"{folder}"')
        seen[int(index)] = folder
    missing = sorted(set(range(count)) - set(seen))
    if missing:
        raise ResultsError(f"shard(s) {', '.join(f'{i}/{count}' for i in missing)} missing: "
                           "give every shard folder of the split")


def _case_ids(folder: Path) -> list[str]:
    import pandas as pd

    path = folder / "results.parquet"
    try:
        table = pd.read_parquet(path, columns=["case_id"])
    except (OSError, ValueError) as exc:
        raise ResultsError(f'"{path}": cannot read the shard\'s results ({exc})') from None
    return sorted(set(table["case_id"].astype(str)))
