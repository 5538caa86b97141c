"""Build the training and validation sample sets from trusted cases, on several processes.

Cases are grouped into *units* of ``SampleConfig.snapshot_group`` cases of one split; a unit is
loaded, cleaned, given its candidates (degradations + network snapshots) and cut into samples by
one worker process. Training units draw ``slices_per_candidate`` random scorable slices per
candidate with a random crop margin; validation units score each candidate the way a scan does
(``eval_slices`` evenly spaced slices, the model's fixed margin) so that label-level metrics
after aggregation mean what they will mean in use. Training targets are then rebalanced over
DSC bins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from qsaudit.cpu import single_threaded_children, usable_cores
from qsaudit.training.cases import CaseSpec, load_case
from qsaudit.training.config import SampleConfig
from qsaudit.training.samples import SampleSet, candidate_samples, rebalance, scorable_slices


@dataclass(frozen=True)
class Unit:
    """A group of cases built together by one worker (``validation``: scan-like sampling)."""

    specs: tuple[CaseSpec, ...]
    seed: tuple[int, ...]
    validation: bool


def build_unit(unit: Unit, model_config, sample_config: SampleConfig) -> SampleSet:
    """Load the cases of ``unit``, make their candidates and cut them into samples."""
    from qsaudit.checks.shape import shape_features
    from qsaudit.inference.probes import end_probes
    from qsaudit.model.preprocess import sample_slices
    from qsaudit.registry import lookup
    from qsaudit.training.candidates import degraded_candidates, snapshot_group_candidates

    rng = np.random.default_rng(list(unit.seed))
    cases = []
    for spec in unit.specs:
        case = load_case(spec, min_inside_fraction=sample_config.min_inside_fraction,
                         min_label_voxels=sample_config.min_label_voxels)
        if case.masks:
            cases.append(case)
    if not cases:
        return SampleSet.empty(model_config.input_size)
    snaps = snapshot_group_candidates(cases, steps=tuple(sample_config.snapshot_steps),
                                      size=sample_config.snapshot_size,
                                      seed=int(rng.integers(2**31)))
    lo, hi = train_margins(sample_config, model_config)
    parts: list[SampleSet] = []
    for case, snap in zip(cases, snaps, strict=True):
        cands = degraded_candidates(case, rng, per_label=sample_config.degraded_per_label,
                                    include_perfect=sample_config.include_perfect) + snap
        for cand in cands:
            truth = case.masks[cand.structure]
            if unit.validation:
                slices = sample_slices(cand.mask, sample_config.eval_slices, mode="even")
                margins = None
            else:
                valid = scorable_slices(cand.mask)
                k = min(sample_config.slices_per_candidate, valid.size)
                slices = np.sort(rng.choice(valid, size=k, replace=False)) if k else valid
                margins = rng.integers(lo, hi + 1, size=len(slices))
            if len(slices) == 0:
                continue
            inputs, targets, areas = candidate_samples(case.ct, cand.mask, truth, slices=slices,
                                                       model_config=model_config,
                                                       margins=margins)
            valid = scorable_slices(cand.mask)
            group = {"case_id": case.case_id, "patient_id": case.patient_id,
                     "structure": cand.structure, "source": cand.source,
                     "severity": cand.severity, "true_dsc": cand.true_dsc,
                     "mask_slices": int(valid.size),
                     "z_extent": int(valid[-1] - valid[0] + 1)}
            probes: dict = {}
            if unit.validation:  # what the label calibration reads beside the slice scores
                group["shape"] = shape_features(cand.mask, case.ct,
                                                structure=lookup(cand.structure)).tolist()
                crops, _sides = end_probes(case.ct, cand.mask, (int(valid[0]), int(valid[-1]) + 1),
                                           model_config=model_config)
                probes = {"probe_inputs": crops.astype(np.float16),
                          "probe_groups": np.zeros(len(crops), np.int64)}
            parts.append(SampleSet(inputs, targets, np.array([cand.structure] * len(slices),
                                                             dtype=object),
                                   np.zeros(len(slices), np.int64), areas, [group], **probes))
    return SampleSet.concat(parts, size=model_config.input_size)


def train_margins(sample_config: SampleConfig, model_config) -> tuple[int, int]:
    """Range (inclusive, pixels) of the random crop margin of training samples.

    ``SampleConfig.margin_range`` when set; otherwise 60-140% of the model's inference margin,
    so that the scan's fixed margin sits in the middle of what training showed the model.
    """
    if sample_config.margin_range is not None:
        lo, hi = sample_config.margin_range
        return int(lo), int(hi)
    m = int(model_config.margin)
    return max(0, round(0.6 * m)), max(1, round(1.4 * m))


def make_units(specs: list[CaseSpec], validation_patients: set[str], *, group: int,
               seed: int, draw: int = 0) -> list[Unit]:
    """Group ``specs`` into units of at most ``group`` cases, never mixing the two splits.

    ``draw`` (``SampleConfig.draw``) reseeds the training units only: validation units keep
    their seeds, so every draw is validated on the same samples.
    """
    units: list[Unit] = []
    for is_val in (False, True):
        chosen = [s for s in specs if (s.patient_id in validation_patients) == is_val]
        extra = (draw,) if draw and not is_val else ()
        for start in range(0, len(chosen), max(1, group)):
            units.append(Unit(tuple(chosen[start:start + group]),
                              (seed, 3301, int(is_val), start, *extra), is_val))
    return units


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def build_samples(specs: list[CaseSpec], validation_patients: set[str], *, model_config,
                  sample_config: SampleConfig, seed: int, workers: int = 0,
                  on_unit: Callable[[int, int], None] | None = None
                  ) -> tuple[SampleSet, SampleSet]:
    """Build (train, validation) sample sets; training targets rebalanced over DSC bins.

    ``workers`` processes (0 = all cores; 1 = in this process). ``on_unit(done, total)`` is
    called after each unit, for progress display.
    """
    units = make_units(specs, validation_patients, group=sample_config.snapshot_group, seed=seed,
                       draw=sample_config.draw)
    workers = usable_cores() if workers <= 0 else workers
    workers = min(workers, max(1, len(units)))
    results: list[SampleSet | None] = [None] * len(units)
    if workers == 1:
        for i, unit in enumerate(units):
            results[i] = build_unit(unit, model_config, sample_config)
            if on_unit:
                on_unit(i + 1, len(units))
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                 initializer=_worker_init) as pool:
            with single_threaded_children():  # workers start at these submits
                futures = {pool.submit(build_unit, u, model_config, sample_config): i
                           for i, u in enumerate(units)}
            for done, fut in enumerate(as_completed(futures), start=1):
                results[futures[fut]] = fut.result()
                if on_unit:
                    on_unit(done, len(units))
    return combine_units(results, units, sample_config=sample_config, seed=seed,
                         size=model_config.input_size)


def combine_units(results: list[SampleSet | None], units: list[Unit], *,
                  sample_config: SampleConfig, seed: int, size: int
                  ) -> tuple[SampleSet, SampleSet]:
    """Join the built ``units`` (``results`` in the same order) into (train, validation) sets,
    training targets rebalanced over DSC bins (whichever engine built the units)."""
    train = SampleSet.concat([r for r, u in zip(results, units, strict=True)
                              if r is not None and not u.validation], size=size)
    val = SampleSet.concat([r for r, u in zip(results, units, strict=True)
                            if r is not None and u.validation], size=size)
    draw = (sample_config.draw,) if sample_config.draw else ()
    keep = rebalance(train.targets, np.random.default_rng([seed, 4401, *draw]),
                     bins=sample_config.bins, max_ratio=sample_config.max_bin_ratio)
    return train.subset(keep), val
