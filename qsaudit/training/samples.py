"""Training samples: model inputs cut from candidate masks, with the slice Dice as target.

A sample is one axial slice of one candidate mask: the 2-channel crop the model sees
(:func:`qsaudit.model.crop_slice`) and the Dice of the candidate slice against the trusted
slice, in [0, 1]. Slices where the candidate has mask and the truth none are kept (target 0:
false positives the scan will meet); slices where only the truth has mask are skipped (the scan
never sees them). Every sample also belongs to a *group* (one candidate mask of one label) whose
3D Dice is known, so that validation can aggregate slice predictions into a label score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qsaudit.degrade.metrics import slice_dice

GROUP_FIELDS = ("case_id", "patient_id", "structure", "source", "severity", "true_dsc")


def scorable_slices(candidate: np.ndarray) -> np.ndarray:
    """Axial slice indices where the candidate has mask (what a scan can score), ascending."""
    return np.flatnonzero(candidate.reshape(-1, candidate.shape[2]).any(0))


@dataclass
class SampleSet:
    """A batch of samples kept as numpy arrays (fp16 inputs to halve memory).

    ``inputs`` (N, 2, S, S) float16; ``targets`` (N,) float32 slice Dice in [0, 1];
    ``names`` (N,) structure names (str); ``groups`` (N,) int64 index into ``group_table``;
    ``areas`` (N,) float32 candidate voxels on the slice; ``group_table`` one dict per
    candidate with :data:`GROUP_FIELDS`. Validation sets also carry each candidate's end
    probes (``qsaudit.inference.probes``) and then its part probes (``qsaudit.inference.parts``;
    the group's ``end_probes`` field counts the first kind; sets built before part probes have
    no such field and only end probes): ``probe_inputs`` (P, 2, S, S) float16 and
    ``probe_groups`` (P,) int64 (None when the set has none).
    """

    inputs: np.ndarray
    targets: np.ndarray
    names: np.ndarray
    groups: np.ndarray
    areas: np.ndarray
    group_table: list[dict[str, Any]] = field(default_factory=list)
    probe_inputs: np.ndarray | None = None
    probe_groups: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    @classmethod
    def empty(cls, size: int) -> SampleSet:
        """A set with no sample, for inputs of side ``size``."""
        return cls(np.zeros((0, 2, size, size), np.float16), np.zeros(0, np.float32),
                   np.zeros(0, dtype=object), np.zeros(0, np.int64), np.zeros(0, np.float32), [])

    @classmethod
    def concat(cls, parts: list[SampleSet], *, size: int) -> SampleSet:
        """Join sets, renumbering groups (probes kept when any part has them)."""
        parts = [p for p in parts if len(p) or p.group_table]
        if not parts:
            return cls.empty(size)
        offsets = np.cumsum([0] + [len(p.group_table) for p in parts[:-1]])
        probed = [(p, off) for p, off in zip(parts, offsets, strict=True)
                  if p.probe_inputs is not None]
        probes: dict[str, Any] = {}
        if probed:
            probes = {"probe_inputs": np.concatenate([p.probe_inputs for p, _ in probed]),
                      "probe_groups": np.concatenate([p.probe_groups + off
                                                      for p, off in probed]).astype(np.int64)}
        return cls(
            inputs=np.concatenate([p.inputs for p in parts]),
            targets=np.concatenate([p.targets for p in parts]).astype(np.float32),
            names=np.concatenate([p.names.astype(object) for p in parts]),
            groups=np.concatenate([p.groups + off for p, off in zip(parts, offsets,
                                                                    strict=True)]),
            areas=np.concatenate([p.areas for p in parts]).astype(np.float32),
            group_table=[g for p in parts for g in p.group_table],
            **probes,
        )

    def subset(self, index: np.ndarray) -> SampleSet:
        """The samples at ``index`` (group table and probes kept whole)."""
        return SampleSet(self.inputs[index], self.targets[index], self.names[index],
                         self.groups[index], self.areas[index], self.group_table,
                         self.probe_inputs, self.probe_groups)

    def probe_names(self) -> np.ndarray:
        """(P,) structure names of the probes (their groups' structures)."""
        if self.probe_groups is None:
            return np.zeros(0, dtype=object)
        return np.array([self.group_table[int(g)]["structure"] for g in self.probe_groups],
                        dtype=object)

    def patients(self) -> list[str]:
        """Distinct patient ids, sorted."""
        return sorted({g["patient_id"] for g in self.group_table})

    def save(self, path: str | Path) -> None:
        """Write to ``path`` (``.npz``, atomically)."""
        import json

        from qsaudit.atomic import write_with

        probes = {} if self.probe_inputs is None else {"probe_inputs": self.probe_inputs,
                                                       "probe_groups": self.probe_groups}

        def writer(p: Path) -> None:
            with open(p, "wb") as fh:
                np.savez(fh, inputs=self.inputs, targets=self.targets,
                         names=self.names.astype(str), groups=self.groups, areas=self.areas,
                         group_table=np.array(json.dumps(self.group_table)), **probes)

        write_with(path, writer)

    @classmethod
    def load(cls, path: str | Path) -> SampleSet:
        """Read a set written by :meth:`save` (one saved before probes existed has none)."""
        import json

        with np.load(path, allow_pickle=False) as z:
            probed = "probe_inputs" in z.files
            return cls(z["inputs"], z["targets"], z["names"].astype(object), z["groups"],
                       z["areas"], json.loads(str(z["group_table"])),
                       z["probe_inputs"] if probed else None,
                       z["probe_groups"] if probed else None)


def candidate_samples(ct: np.ndarray, candidate: np.ndarray, truth: np.ndarray, *,
                      slices: np.ndarray, model_config: Any, margins: np.ndarray | None = None,
                      spacing: tuple[float, ...] | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs, targets and areas of the given ``slices`` of one candidate.

    ``ct`` HU (X, Y, Z); ``candidate`` and ``truth`` bool (X, Y, Z); ``slices`` must be slices
    where the candidate has mask. ``margins`` gives one crop margin (pixels) per slice (default:
    the model's inference margin, sized by ``spacing`` in mm for a model with a margin in mm). Returns (K, 2, S, S) float16, (K,) float32, (K,) float32.
    """
    from qsaudit.model.preprocess import crop_slice

    dsc = slice_dice(candidate, truth)
    s = model_config.input_size
    inputs = np.empty((len(slices), 2, s, s), dtype=np.float16)
    for i, z in enumerate(slices):
        margin = None if margins is None else int(margins[i])
        inputs[i] = crop_slice(ct[:, :, z], candidate[:, :, z], config=model_config,
                               margin=margin, spacing=spacing)
    targets = dsc[slices].astype(np.float32)
    areas = candidate[:, :, slices].reshape(-1, len(slices)).sum(0).astype(np.float32)
    return inputs, targets, areas


def rebalance(targets: np.ndarray, rng: np.random.Generator, *, bins: int = 10,
              max_ratio: float = 2.0) -> np.ndarray:
    """Indices that even out the distribution of ``targets`` (values in [0, 1]) over ``bins``.

    Each bin keeps at most ``max_ratio`` times the median count of the non-empty bins (the
    excess is dropped at random); sparse bins keep everything (training then oversamples them
    with :func:`bin_weights`). Returned sorted.
    """
    t = np.asarray(targets, dtype=np.float64)
    if t.size == 0:
        return np.zeros(0, dtype=np.int64)
    which = np.minimum((t * bins).astype(np.int64), bins - 1)
    counts = np.bincount(which, minlength=bins)
    cap = max(1, int(np.ceil(max_ratio * np.median(counts[counts > 0]))))
    keep = []
    for b in range(bins):
        members = np.flatnonzero(which == b)
        if members.size > cap:
            members = rng.choice(members, size=cap, replace=False)
        keep.append(members)
    return np.sort(np.concatenate(keep))


def bin_weights(targets: np.ndarray, *, bins: int = 10) -> np.ndarray:
    """Per-sample weights 1 / (count of its target bin), so that each bin is drawn equally."""
    t = np.asarray(targets, dtype=np.float64)
    which = np.minimum((t * bins).astype(np.int64), bins - 1)
    counts = np.bincount(which, minlength=bins).astype(np.float64)
    return (1.0 / counts[which]).astype(np.float64)
