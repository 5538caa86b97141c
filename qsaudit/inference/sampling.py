"""Which slices of a label are scored: seeded per (seed, case, label), independent of scheduling."""

from __future__ import annotations

import hashlib

import numpy as np


def label_seed(seed: int, case_id: str, label: str) -> int:
    """A 64-bit seed derived from the scan seed, the case and the label (stable across runs)."""
    digest = hashlib.sha256(f"{int(seed)}\x00{case_id}\x00{label}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def choose_slices(mask: np.ndarray, k: int, *, seed: int, case_id: str, label: str,
                  mode: str = "even") -> np.ndarray:
    """Indices (ascending int64) of up to ``k`` axial slices of ``mask`` (X, Y, Z) to score.

    Wraps ``qsaudit.model.preprocess.sample_slices`` with a generator seeded by
    :func:`label_seed`, so the same scan settings always pick the same slices whatever the order
    in which worker processes read the cases.
    """
    from qsaudit.model.preprocess import sample_slices

    rng = np.random.default_rng(label_seed(seed, case_id, label))
    return np.asarray(sample_slices(mask, k, rng=rng, mode=mode), dtype=np.int64)
