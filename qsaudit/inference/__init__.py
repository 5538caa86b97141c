"""Scanning a dataset: slice sampling, batched inference, aggregation, resumable results.

``scan_dataset`` is the Python API behind ``qsaudit scan``; ``merge_shards`` behind
``qsaudit merge``. Importing this package does not import torch.
"""

from qsaudit.inference.aggregate import METHODS, Aggregate, aggregate
from qsaudit.inference.engine import ScanSummary, WorstKeeper, scan_dataset, shard_cases
from qsaudit.inference.merge import merge_shards
from qsaudit.inference.sampling import choose_slices, label_seed
from qsaudit.inference.settings import ScanSettings, parse_shard

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
