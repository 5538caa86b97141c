"""Settings of a scan: one frozen dataclass with every default in one place."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from qsaudit.errors import UsageError
from qsaudit.model.config import PRECISIONS

AGGREGATIONS = ("mean", "median", "area_weighted")
SAMPLINGS = ("even", "random", "paper")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class ScanSettings:
    """How ``scan_dataset`` scores a dataset; CLI flags override these defaults.

    Attributes:
        model: checkpoint path (None = the shipped default weights).
        slices: K, slices scored per label (evenly spaced among the slices with mask).
        sampling: slice choice, ``even`` (paper's inference), ``random`` or ``paper``.
        aggregation: how slice scores become one score (see ``qsaudit.inference.aggregate``).
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        precision: ``auto`` (bf16/fp16 autocast on CUDA, bf16 on CPUs that compute it natively,
            fp32 otherwise and always for the paper's unbounded model), ``fp32``, ``bf16`` or
            ``fp16`` (CUDA only). The precision actually used is part of a results folder's
            identity: a scan is resumed only with the same one.
        batch_size: crops per forward pass; every pass has exactly this size (padded) so that a
            crop's score never depends on which other crops share its batch. None: chosen by
            device and model size (``qsaudit.model.checkpoint.default_batch_size``: on the CPU
            4 for the paper's ResNet-50, 32 for the default model; 128 on CUDA).
        workers: reader processes (None = min(2, CPU cores); 0 = read in the main process).
        seed: seeds slice sampling, per (seed, case_id, label).
        shard: (index, count), 0-based: this run scans sorted cases ``index::count``.
        layout, labels_table, preset: passed to ``qsaudit.datasets.list_cases``.
        force: start afresh in a results folder made with other settings or another model.
        thumbnails: how many of the worst labels get thumbnails in the report.
    """

    model: Path | None = None
    slices: int = 10
    sampling: str = "even"
    aggregation: str = "area_weighted"
    device: str = "auto"
    precision: str = "auto"
    batch_size: int | None = None
    workers: int | None = None
    seed: int = 0
    shard: tuple[int, int] | None = None
    layout: str | None = None
    labels_table: Path | None = None
    preset: str | None = None
    force: bool = False
    thumbnails: int = 40

    def __post_init__(self) -> None:
        if self.slices < 1:
            raise UsageError(f"slices = {self.slices}: must be at least 1")
        if self.batch_size is not None and self.batch_size < 1:
            raise UsageError(f"batch size = {self.batch_size}: must be at least 1")
        if self.workers is not None and self.workers < 0:
            raise UsageError(f"workers = {self.workers}: must be 0 or more")
        if self.sampling not in SAMPLINGS:
            raise UsageError(f'sampling "{self.sampling}": choose from {", ".join(SAMPLINGS)}')
        if self.aggregation not in AGGREGATIONS:
            raise UsageError(f'aggregation "{self.aggregation}": choose from '
                             f'{", ".join(AGGREGATIONS)}')
        if self.precision not in PRECISIONS:
            raise UsageError(f'precision "{self.precision}": choose from {", ".join(PRECISIONS)}')
        if self.device not in DEVICES:
            raise UsageError(f'device "{self.device}": choose from {", ".join(DEVICES)}')
        if self.shard is not None:
            index, count = self.shard
            if count < 1 or not 0 <= index < count:
                raise UsageError(f"shard {index}/{count}: need 0 <= I < N")

    @property
    def n_workers(self) -> int:
        """Reader processes actually used."""
        if self.workers is not None:
            return self.workers
        return min(2, os.cpu_count() or 1)

    def identity(self) -> dict[str, Any]:
        """The settings that change results; a results folder made with others is refused.

        Device, batch size, workers and thumbnails are left out: they change speed, not results
        (beyond float rounding between devices).
        """
        return {
            "slices": self.slices,
            "sampling": self.sampling,
            "aggregation": self.aggregation,
            "seed": self.seed,
            "shard": list(self.shard) if self.shard else None,
            "layout": self.layout,
            "labels_table": str(Path(self.labels_table).resolve()) if self.labels_table else None,
            "preset": self.preset,
        }

    def to_dict(self) -> dict[str, Any]:
        """All fields as JSON-able values (for ``scan.json`` and the report)."""
        d = asdict(self)
        for key in ("model", "labels_table"):
            d[key] = str(d[key]) if d[key] is not None else None
        d["shard"] = list(self.shard) if self.shard else None
        d["workers"] = self.n_workers
        return d

    def replace(self, **changes: Any) -> ScanSettings:
        """A copy with some fields changed."""
        return replace(self, **changes)


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``"I/N"`` (0-based shard I of N) into ``(I, N)``; UsageError if malformed."""
    try:
        index_text, count_text = text.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise UsageError(f'shard "{text}": expected I/N, e.g. 0/4 (0-based index)') from None
    if count < 1 or not 0 <= index < count:
        raise UsageError(f'shard "{text}": need 0 <= I < N (0-based index)')
    return index, count
