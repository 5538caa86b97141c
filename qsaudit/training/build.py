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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from qsaudit.cpu import single_threaded_children, usable_cores
from qsaudit.training.cases import TRAIN_PHANTOM_VOXELS, CaseSpec, load_case
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
    from itertools import chain

    from qsaudit.checks.shape import shape_features
    from qsaudit.inference.parts import part_probes, part_slices
    from qsaudit.inference.probes import end_probes, volume_ends
    from qsaudit.model.preprocess import sample_slices
    from qsaudit.registry import lookup
    from qsaudit.training.candidates import iter_degraded_candidates, snapshot_group_candidates
    from qsaudit.training.cases import window_case
    from qsaudit.training.resample import draw_pixel_size, resample_inplane

    rng = np.random.default_rng(list(unit.seed))
    cases = []
    for spec in unit.specs:
        case = load_case(spec, min_inside_fraction=sample_config.min_inside_fraction,
                         min_label_voxels=sample_config.min_label_voxels,
                         derived=sample_config.derived,
                         derived_sources=tuple(sample_config.derived_sources))
        if spec.pixel_mm is not None:  # a resolution copy
            case = resample_inplane(case, spec.pixel_mm, rng)
        elif not unit.validation and rng.random() < sample_config.resample_fraction:
            case = resample_inplane(case, draw_pixel_size(rng), rng)
        if spec.z_window is not None:  # a field-of-view copy
            case = window_case(case, *spec.z_window,
                               min_label_voxels=sample_config.min_label_voxels)
        if case.masks:
            cases.append(case)
    if not cases:
        return SampleSet.empty(model_config.input_size)
    snaps = snapshot_group_candidates(cases, steps=tuple(sample_config.snapshot_steps),
                                      size=sample_config.snapshot_size,
                                      seed=int(rng.integers(2**31)))
    parts: list[SampleSet] = []
    for case, snap in zip(cases, snaps, strict=True):
        cands = chain(iter_degraded_candidates(case, rng,
                                               per_label=sample_config.degraded_per_label,
                                               include_perfect=sample_config.include_perfect,
                                               wrong_per_label=sample_config.wrong_per_label),
                      snap)
        for cand in cands:
            truth = case.masks[cand.structure]
            if unit.validation:
                slices = sample_slices(cand.mask, sample_config.eval_slices, mode="even")
                margins = None
            else:
                valid = scorable_slices(cand.mask)
                k = min(sample_config.slices_per_candidate, valid.size)
                slices = np.sort(rng.choice(valid, size=k, replace=False)) if k else valid
                margins = draw_margins(sample_config, model_config, case.spacing, rng,
                                       len(slices))
            if len(slices) == 0:
                continue
            inputs, targets, areas = candidate_samples(case.ct, cand.mask, truth, slices=slices,
                                                       model_config=model_config,
                                                       margins=margins, spacing=case.spacing)
            valid = scorable_slices(cand.mask)
            group = {"case_id": case.case_id, "patient_id": case.patient_id,
                     "structure": cand.structure, "source": cand.source,
                     "severity": cand.severity, "true_dsc": cand.true_dsc,
                     "mask_slices": int(valid.size),
                     "z_extent": int(valid[-1] - valid[0] + 1),
                     "volume_ends": volume_ends((int(valid[0]), int(valid[-1]) + 1),
                                                int(cand.mask.shape[2])),
                     "slice_mm": float(case.spacing[2])}
            probes: dict = {}
            if unit.validation:  # what the label calibration reads beside the slice scores
                group["shape"] = shape_features(cand.mask, case.ct,
                                                structure=lookup(cand.structure),
                                                spacing=case.spacing).tolist()
                crops, _sides = end_probes(case.ct, cand.mask, (int(valid[0]), int(valid[-1]) + 1),
                                           model_config=model_config, spacing=case.spacing)
                group["end_probes"] = len(crops)  # the part probes follow
                box = cand.mask[:, :, int(valid[0]):int(valid[-1]) + 1]
                crops = np.concatenate([crops, part_probes(
                    case.ct, cand.mask, part_slices(box, offset=int(valid[0])),
                    model_config=model_config, spacing=case.spacing)])
                probes = {"probe_inputs": crops.astype(np.float16),
                          "probe_groups": np.zeros(len(crops), np.int64)}
            parts.append(SampleSet(inputs, targets, np.array([cand.structure] * len(slices),
                                                             dtype=object),
                                   np.zeros(len(slices), np.int64), areas, [group], **probes))
    return SampleSet.concat(parts, size=model_config.input_size)


def draw_margins(sample_config: SampleConfig, model_config, spacing: tuple[float, ...],
                 rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random crop margins (pixels) for training slices of a case with voxel ``spacing``.

    ``SampleConfig.margin_range`` (pixels) when set; otherwise 60-140% of the model's
    inference margin, in millimetres for a model with ``margin_mm`` (so that every pixel size
    shows the same anatomy), else in pixels (:func:`train_margins`).
    """
    from qsaudit.model.preprocess import margin_pixels

    if sample_config.margin_range is None and model_config.margin_mm is not None:
        scales = rng.uniform(0.6, 1.4, size=n)
        return np.array([margin_pixels(model_config, spacing, scale=float(s)) for s in scales],
                        dtype=np.int64)
    lo, hi = train_margins(sample_config, model_config)
    return rng.integers(lo, hi + 1, size=n)


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


def unit_cost(unit: Unit) -> float:
    """A rough cost of building ``unit``: its cases' voxels (a trunk phantom is generated at up
    to :data:`TRAIN_PHANTOM_VOXELS` on a fine grid; a dataset case counts as 128³)."""
    cost = 0.0
    for spec in unit.specs:
        if spec.kind == "phantom" and spec.region != "abdomen":
            cost += TRAIN_PHANTOM_VOXELS
        elif spec.kind == "phantom" and spec.shape is not None:
            cost += float(np.prod(spec.shape))
        else:
            cost += 128.0 ** 3
    return cost


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def unit_key(unit: Unit, model_config, sample_config: SampleConfig) -> str:
    """A digest of everything that decides a unit's samples: its cases, seed and split, the
    model's crop settings, the sample settings and the shape descriptors' reading
    (:data:`qsaudit.checks.shape.SHAPE_READING`; a cached unit is reused only for its key)."""
    import hashlib
    import json

    from qsaudit.checks.shape import SHAPE_READING
    from qsaudit.inference.aggregate import FEATURES

    cases = [{"kind": s.kind, "case_id": s.case_id, "patient_id": s.patient_id,
              "seed": list(s.seed), "shape": s.shape, "region": s.region,
              "path": str(getattr(s.case, "image", "")) if s.case is not None else ""}
             | ({"pixel_mm": s.pixel_mm} if s.pixel_mm is not None else {})
             | ({"z_window": list(s.z_window)} if s.z_window is not None else {})
             for s in unit.specs]
    blob = json.dumps({"cases": cases, "seed": list(unit.seed), "validation": unit.validation,
                       "model": model_config.to_dict(), "samples": asdict(sample_config),
                       "shape_reading": SHAPE_READING, "features": FEATURES},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _cached_unit(unit: Unit, model_config, sample_config: SampleConfig,
                 cache: Path | None) -> SampleSet:
    """:func:`build_unit`, read from / written to ``cache/<key>.npz`` when a cache is given."""
    if cache is None:
        return build_unit(unit, model_config, sample_config)
    path = cache / f"{unit_key(unit, model_config, sample_config)}.npz"
    if path.is_file():
        try:
            return SampleSet.load(path)
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # a damaged file is rebuilt
    result = build_unit(unit, model_config, sample_config)
    cache.mkdir(parents=True, exist_ok=True)
    result.save(path)
    return result


def build_samples(specs: list[CaseSpec], validation_patients: set[str], *, model_config,
                  sample_config: SampleConfig, seed: int, workers: int = 0,
                  on_unit: Callable[[int, int], None] | None = None,
                  unit_cache: Path | None = None) -> tuple[SampleSet, SampleSet]:
    """Build (train, validation) sample sets; training targets rebalanced over DSC bins.

    ``workers`` processes (0 = all cores; 1 = in this process). ``on_unit(done, total)`` is
    called after each unit, for progress display. ``unit_cache``: a folder where each built
    unit is kept (one ``.npz`` per :func:`unit_key`), so that an interrupted build, or a run
    that adds cases to another's, builds only the units it lacks.
    """
    units = make_units(specs, validation_patients, group=sample_config.snapshot_group, seed=seed,
                       draw=sample_config.draw)
    workers = usable_cores() if workers <= 0 else workers
    workers = min(workers, max(1, len(units)))
    results: list[SampleSet | None] = [None] * len(units)
    if workers == 1:
        for i, unit in enumerate(units):
            results[i] = _cached_unit(unit, model_config, sample_config, unit_cache)
            if on_unit:
                on_unit(i + 1, len(units))
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                 initializer=_worker_init) as pool:
            # the heaviest units first, so that the last ones to finish are short
            order = sorted(range(len(units)), key=lambda i: -unit_cost(units[i]))
            with single_threaded_children():  # workers start at these submits
                futures = {pool.submit(_cached_unit, units[i], model_config, sample_config,
                                       unit_cache): i
                           for i in order}
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
