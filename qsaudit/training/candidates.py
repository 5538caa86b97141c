"""Candidate masks for one trusted label: perfect, degraded, and network snapshots.

A candidate is what a dataset might hold instead of the trusted label; its true 3D Dice against
the trusted label is known, and so is the Dice of each of its slices.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from qsaudit.degrade.metrics import dice
from qsaudit.training.cases import TrustedCase


@dataclass
class Candidate:
    """One candidate mask: ``mask`` bool (X, Y, Z) for structure ``structure``; ``source`` is
    ``"perfect"``, a degradation name or ``"snapshot-<steps>"``; ``true_dsc`` in [0, 1]."""

    structure: str
    mask: np.ndarray
    source: str
    severity: float
    true_dsc: float


def body_mask(ct: np.ndarray, *, body_hu: float = -500.0) -> np.ndarray:
    """Voxels above ``body_hu`` HU: a rough body mask that degradations must stay inside."""
    return ct > body_hu


def degraded_candidates(case: TrustedCase, rng: np.random.Generator, *, per_label: int,
                        include_perfect: bool = True,
                        wrong_per_label: int = 0) -> list[Candidate]:
    """All of :func:`iter_degraded_candidates`, as a list."""
    return list(iter_degraded_candidates(case, rng, per_label=per_label,
                                         include_perfect=include_perfect,
                                         wrong_per_label=wrong_per_label))


def iter_degraded_candidates(case: TrustedCase, rng: np.random.Generator, *, per_label: int,
                             include_perfect: bool = True,
                             wrong_per_label: int = 0) -> Iterator[Candidate]:
    """``per_label`` random degradations of every label of ``case`` (plus the label itself).

    Error types are drawn uniformly from :data:`qsaudit.degrade.ERRORS` (except ``empty``: the
    scan cannot score an empty mask) and severities uniformly from [0.05, 1]. A degradation that
    leaves an empty mask is skipped. ``wrong_per_label`` more candidates per label are another
    structure's correct mask filed under this label's name (:func:`wrong_structure_candidates`).
    Made one label at a time, so that a case with a hundred structures never holds all its
    candidate volumes at once.
    """
    from qsaudit.degrade import ERRORS, degrade

    errors = [e for e in ERRORS if e not in ("none", "empty")]
    body = body_mask(case.ct)
    for name, truth in case.masks.items():
        if include_perfect:
            yield Candidate(name, truth, "perfect", 0.0, 1.0)
        neighbours = {k: v for k, v in case.masks.items() if k != name}
        for _ in range(per_label):
            error = errors[int(rng.integers(len(errors)))]
            severity = float(rng.uniform(0.05, 1.0))
            result = degrade(truth, error, severity, rng, spacing=case.spacing,
                             neighbours=neighbours, body=body)
            mask = np.asarray(result.mask, dtype=bool)
            if not mask.any():
                continue
            yield Candidate(name, mask, str(result.error), float(result.severity),
                            dice(mask, truth))
    if wrong_per_label > 0:
        yield from wrong_structure_candidates(case, rng, per_label=wrong_per_label)


def wrong_structure_candidates(case: TrustedCase, rng: np.random.Generator, *,
                               per_label: int = 1) -> list[Candidate]:
    """Another structure's mask under each label's name: the error of a swapped label file,
    a wrong label value in a label map, or a model that segmented the wrong organ.

    Half of the draws take the structure whose centroid is nearest (a neighbour that looks
    alike: the hardest case for the network), the other half any other structure of the case.
    The candidate's Dice against the label is usually 0 (some neighbours overlap a little).
    Source ``"wrong_structure"``, severity 1.

    Another member of the label's own series (:func:`qsaudit.registry.series_key`: rib 6 for
    rib 5, vertebra C6 for C5, PTV63 for PTV70) is never drawn: on one axial slice it looks
    exactly like a correct mask of the label, so it would teach the network to doubt every
    correct rib and vertebra (a slice cannot count ribs).
    """
    from qsaudit.registry import series_key

    names = sorted(case.masks)
    if len(names) < 2:
        return []
    sp = np.asarray(case.spacing, dtype=np.float64)
    centres = {n: np.argwhere(case.masks[n]).mean(axis=0) * sp for n in names}
    series = {n: series_key(n) for n in names}
    out: list[Candidate] = []
    for name in names:
        others = [n for n in names if n != name
                  and (series[name] is None or series[n] != series[name])]
        if not others:
            continue
        dist = np.array([np.linalg.norm(centres[n] - centres[name]) for n in others])
        for _ in range(per_label):
            if rng.random() < 0.5:
                other = others[int(np.argmin(dist))]
            else:
                other = others[int(rng.integers(len(others)))]
            truth = case.masks[name]
            mask = case.masks[other]
            out.append(Candidate(name, mask, "wrong_structure", 1.0, dice(mask, truth)))
    return out


def snapshot_group_candidates(cases: list[TrustedCase], *, steps: tuple[int, ...], size: int,
                              seed: int) -> list[list[Candidate]]:
    """Candidates from :func:`qsaudit.training.snapshots.snapshot_candidates`, per case
    (the network trains on CUDA when there is one)."""
    import torch

    from qsaudit.training.snapshots import snapshot_candidates

    device = "cuda" if torch.cuda.is_available() else "cpu"
    per_case = snapshot_candidates(cases, steps=steps, size=size, seed=seed, device=device)
    out: list[list[Candidate]] = []
    for case, found in zip(cases, per_case, strict=True):
        cands = []
        for name, items in found.items():
            truth = case.masks[name]
            for source, mask in items:
                cands.append(Candidate(name, mask, source, float("nan"), dice(mask, truth)))
        out.append(cands)
    return out
