"""Scanning a dataset: slice sampling, batched inference, aggregation, resumable results.

``scan_dataset`` is the Python API behind ``qsaudit scan``; ``merge_shards`` behind
``qsaudit merge``. Importing this package does not import torch, nor the scan engine and the
merger (pandas, the report) until they are asked for: a reader process, which imports
``qsaudit.inference.prepare``, starts without them.
"""

from typing import TYPE_CHECKING

from qsaudit.inference.aggregate import METHODS, Aggregate, aggregate
from qsaudit.inference.sampling import choose_slices, label_seed
from qsaudit.inference.settings import ScanSettings, parse_shard
from qsaudit.lazy import lazy_attributes

if TYPE_CHECKING:
    from qsaudit.inference.engine import ScanSummary, WorstKeeper, scan_dataset, shard_cases
    from qsaudit.inference.merge import merge_shards

_LAZY = {"ScanSummary": "engine", "WorstKeeper": "engine", "scan_dataset": "engine",
         "shard_cases": "engine", "merge_shards": "merge"}

__all__ = [
    "METHODS",
    "Aggregate",
    "ScanSettings",
    "ScanSummary",
    "WorstKeeper",
    "aggregate",
    "choose_slices",
    "label_seed",
    "merge_shards",
    "parse_shard",
    "scan_dataset",
    "shard_cases",
]

__getattr__ = lazy_attributes(__name__, _LAZY)
