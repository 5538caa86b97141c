"""Which slices of a label are scored: seeded per (seed, case, label), independent of scheduling.

Also decides how a model asks to be sampled: the paper's model follows its own protocol.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from qsaudit.inference.settings import ScanSettings


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


PAPER_SLICES = 10  # the released Quality Sentinel scores 10 slices per label


def model_sampling(config: Any, meta: dict | None) -> tuple[str, int] | None:
    """``(mode, k)`` a model file asks for, or None when it leaves the choice to the scan.

    A model with the paper's preprocessing (``config.preprocessing == "paper"``, e.g. one made
    by ``qsaudit import-paper``) or a ``meta["slice_sampling"]`` of ``{"mode": "paper", "k": K}``
    follows the released inference script: ``valid[int(n / k * i)]`` among the slices with mask,
    in the file's own voxel order, ``k`` = 10 unless the meta says otherwise.
    """
    stored = (meta or {}).get("slice_sampling") or {}
    mode = stored.get("mode") if isinstance(stored, dict) else None
    if mode is None and getattr(config, "preprocessing", None) == "paper":
        mode = "paper"
    if mode != "paper":
        return None
    k = stored.get("k", PAPER_SLICES) if isinstance(stored, dict) else PAPER_SLICES
    return "paper", int(k)


def settings_for_model(settings: ScanSettings, predictor: Any) -> ScanSettings:
    """``settings`` adjusted to the model: the paper's protocol for a paper model.

    For a model :func:`model_sampling` marks as the paper's, every setting still at its
    default follows the released inference script: ``sampling="paper"``, ``slices`` = its
    ``k`` (10) and ``aggregation="mean"`` (a label's ``raw_score`` is the plain mean of its
    raw slice outputs, ``predicted_dsc`` that mean clipped to [0, 1]). Settings the caller
    changed from the defaults (e.g. ``--slices 5``) are kept. Other models: unchanged.
    """
    from dataclasses import fields

    protocol = model_sampling(getattr(predictor, "config", None),
                              getattr(predictor, "meta", None))
    if protocol is None:
        return settings
    mode, k = protocol
    defaults = {f.name: f.default for f in fields(settings)}
    changes: dict[str, Any] = {}
    if settings.sampling == defaults["sampling"]:
        changes["sampling"] = mode
    if settings.slices == defaults["slices"]:
        changes["slices"] = k
    if settings.aggregation == defaults["aggregation"]:
        changes["aggregation"] = "mean"
    return settings.replace(**changes) if changes else settings
