"""Trusted cases for training: where they come from and how they are cleaned before use.

A training case is a CT with labels we trust (phantoms, OpenKBP, a user's TotalSegmentator
download). Before any sample is drawn, :func:`prepare_case` clips HU to -1024..3071, crops the
volume in z to its main CT block (OpenKBP keeps CT outside that block only as a thin margin
around the true contours, which would let a model read the answer off the CT's edge), and drops
labels that lie mostly outside the CT or are too small to learn from.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from qsaudit.errors import DatasetError, UsageError

HU_MIN, HU_MAX = -1024.0, 3071.0
# Phantom seeds are (stream, seed, index): training and the benchmarks use different streams
# so that a benchmark never meets a phantom seen in training.
PHANTOM_TRAIN_STREAM = 7101
PHANTOM_BENCHMARK_STREAM = 9307
RESOLUTION_COPY_STREAM = 6151
WINDOW_COPY_STREAM = 6163
WINDOW_MM = (30.0, 200.0)  # heights of a field-of-view copy's z-window, drawn log-uniformly
# A trunk phantom has ~90 structures; with its candidates and the other cases of its group in
# memory, a training worker needs about 90 bytes per voxel of a phantom: cap the grid.
TRAIN_PHANTOM_VOXELS = 8_000_000


@dataclass(frozen=True)
class CaseSpec:
    """A picklable recipe for one trusted case (worker processes load it themselves).

    ``kind`` is ``"dataset"`` (``case`` is a :class:`qsaudit.datasets.Case`) or ``"phantom"``
    (``seed`` feeds :func:`numpy.random.default_rng`, ``shape`` the phantom size or None).
    ``pixel_mm``: a *resolution copy*, the case resampled in-plane to this pixel size once
    loaded (``qsaudit.training.resample``); None = as stored. ``z_window``: a *field-of-view
    copy*, the case cut in z to a window ``(height mm, start)`` once loaded (start in 0-1: where
    the window lies in the case's height; :func:`window_case`); None = whole.
    """

    kind: str
    case_id: str
    patient_id: str
    case: Any = None
    seed: tuple[int, ...] = ()
    shape: tuple[int, int, int] | None = None
    region: str = "abdomen"
    pixel_mm: float | None = None
    z_window: tuple[float, float] | None = None


@dataclass
class TrustedCase:
    """A cleaned case: ``ct`` float32 HU (X, Y, Z) cropped to the main block, ``masks`` bool
    arrays of the same shape keyed by canonical structure name, ``spacing`` in mm."""

    case_id: str
    patient_id: str
    ct: np.ndarray
    masks: dict[str, np.ndarray]
    spacing: tuple[float, float, float]
    z_range: tuple[int, int] = (0, 0)
    dropped: list[str] = field(default_factory=list)


def structure_name(label: str) -> str:
    """Canonical structure name of ``label`` (registry), or the label itself when unknown."""
    from qsaudit.registry import canonical_name

    return canonical_name(label) or label


def prepare_case(case_id: str, ct: np.ndarray, masks: dict[str, np.ndarray],
                 spacing: tuple[float, float, float], *, patient_id: str | None = None,
                 min_inside_fraction: float = 0.5, min_label_voxels: int = 20) -> TrustedCase:
    """Clip, crop to the main CT block and filter labels (see the module docstring).

    ``ct`` is HU (X, Y, Z); ``masks`` name -> bool (X, Y, Z). A label is kept when at least
    ``min_inside_fraction`` of its voxels lie inside the block on real CT (above -1020 HU) and
    at least ``min_label_voxels`` remain there.
    """
    from qsaudit.datasets import ct_main_block

    ct = np.clip(np.asarray(ct, dtype=np.float32), HU_MIN, HU_MAX)
    z0, z1 = ct_main_block(ct)
    z0, z1 = int(z0), int(z1)
    block = ct[:, :, z0:z1]
    kept: dict[str, np.ndarray] = {}
    dropped: list[str] = []
    for name, mask in masks.items():
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != ct.shape:
            raise DatasetError(f'case "{case_id}" label "{name}": mask shape {mask.shape} differs '
                               f"from CT shape {ct.shape}")
        total = int(mask.sum())
        inside = mask[:, :, z0:z1]
        on_ct = int((inside & (block > HU_MIN + 4)).sum())
        if total == 0 or on_ct < max(min_label_voxels, min_inside_fraction * total):
            dropped.append(name)
            continue
        kept[name] = np.ascontiguousarray(inside)
    return TrustedCase(case_id=case_id, patient_id=patient_id or case_id,
                       ct=np.ascontiguousarray(block), masks=kept,
                       spacing=tuple(float(s) for s in spacing), z_range=(z0, z1),
                       dropped=dropped)


def dataset_specs(root: str | Path) -> list[CaseSpec]:
    """One :class:`CaseSpec` per case with an image in the dataset at ``root`` (any layout)."""
    from qsaudit.datasets import list_cases

    root = Path(root)
    if not root.is_dir():
        raise UsageError(f'"{root}": no such dataset folder')
    specs = [CaseSpec(kind="dataset", case_id=c.case_id, patient_id=c.case_id, case=c)
             for c in list_cases(root) if c.image is not None and c.labels]
    if not specs:
        raise DatasetError(f'"{root}": no case with a CT image and labels')
    return specs


COPY_MARK = "@"  # a resolution copy's case id: ``<case>@<pixel>mm``


def copy_case_id(case_id: str, pixel_mm: float) -> str:
    """The case id of ``case_id``'s resolution copy at ``pixel_mm``: ``<case>@<pixel>mm``,
    the pixel with two decimals (what :func:`is_resolution_copy` recognises)."""
    return f"{case_id}{COPY_MARK}{pixel_mm:.2f}mm"


def is_resolution_copy(case_id: str) -> bool:
    """Whether ``case_id`` names a resolution copy (:func:`copy_case_id`): it ends in
    ``@<pixel with two decimals>mm`` (a dataset's own case id may hold an ``@`` elsewhere)."""
    import re

    return re.search(rf"{re.escape(COPY_MARK)}\d+\.\d\dmm$", str(case_id)) is not None


def resolution_copies(specs: list[CaseSpec], copies: int, *, seed: int) -> list[CaseSpec]:
    """``copies`` resolution copies of every dataset case of ``specs`` (phantoms are already
    drawn at every pixel size): the same patient, an in-plane pixel size drawn log-uniformly in
    ``qsaudit.training.resample.PIXEL_MM`` per copy (seeded by ``seed`` and the case id), case
    ids ``<case>@<drawn pixel>mm`` (``resample_inplane`` caps the grid at ``MAX_MATRIX``, so a
    very fine draw of a wide CT comes out coarser than its name). Real CT at the fine pixels our
    users scan, with its real texture, for a calibration whose only real CT is coarse."""
    import zlib

    from qsaudit.training.resample import draw_pixel_size

    out = []
    for spec in specs:
        if spec.kind != "dataset":
            continue
        rng = np.random.default_rng([RESOLUTION_COPY_STREAM, seed,
                                     zlib.crc32(spec.case_id.encode())])
        for _ in range(copies):
            pixel = round(draw_pixel_size(rng), 2)
            out.append(replace(spec, case_id=copy_case_id(spec.case_id, pixel), pixel_mm=pixel))
    return out


WINDOW_MARK = "#z"  # a field-of-view copy's case id: ``<case>#z<height>mm<start>``


def window_case_id(case_id: str, height_mm: float, start: float) -> str:
    """The case id of ``case_id``'s field-of-view copy: ``<case>#z<height>mm<start>``."""
    return f"{case_id}{WINDOW_MARK}{height_mm:.0f}mm{start:.2f}"


def window_copies(specs: list[CaseSpec], copies: int, *, seed: int,
                  kinds: tuple[str, ...] = ("dataset",)) -> list[CaseSpec]:
    """``copies`` field-of-view copies of every case of ``specs`` whose kind is in ``kinds``:
    the same patient cut in z to a window of a height drawn log-uniformly in :data:`WINDOW_MM`
    at a drawn height in the case (seeded by ``seed`` and the case id).

    Real scans rarely hold a structure whole (an abdominal CT cuts the lungs, ribs, humeri and
    back muscles at its edges); a label cut there is as good as the structure's label on that
    scan, but a calibration that has only seen whole structures reads its flat end at the
    volume's edge, with no end probe, as a label cut short. These copies show it cut labels of
    every quality (their candidates are drawn on the window: the window's part of a label is
    its truth)."""
    import zlib

    out = []
    low, high = np.log(WINDOW_MM[0]), np.log(WINDOW_MM[1])
    for spec in specs:
        if spec.kind not in kinds or spec.z_window is not None:
            continue
        rng = np.random.default_rng([WINDOW_COPY_STREAM, seed, zlib.crc32(spec.case_id.encode())])
        for _ in range(copies):
            height = round(float(np.exp(rng.uniform(low, high))))
            start = round(float(rng.uniform()), 2)
            out.append(replace(spec, case_id=window_case_id(spec.case_id, height, start),
                               z_window=(float(height), start)))
    return out


def window_span(nz: int, slice_mm: float, height_mm: float, start: float) -> tuple[int, int]:
    """The slices ``(z0, z1)`` (half-open) of a z-window ``height_mm`` tall (at least 2 slices,
    at most all ``nz``) of a volume with ``slice_mm`` slices, starting at ``start`` (0-1) of the
    slices left above the window."""
    length = min(nz, max(2, round(height_mm / max(float(slice_mm), 1e-6))))
    z0 = round(float(np.clip(start, 0.0, 1.0)) * (nz - length))
    return z0, z0 + length


def window_case(case: TrustedCase, height_mm: float, start: float, *,
                min_label_voxels: int = 20) -> TrustedCase:
    """``case`` cut in z to the :func:`window_span` of ``height_mm`` at ``start``; labels with
    fewer than ``min_label_voxels`` voxels in it are dropped."""
    z0, z1 = window_span(case.ct.shape[2], case.spacing[2], height_mm, start)
    masks, dropped = {}, list(case.dropped)
    for name, mask in case.masks.items():
        part = mask[:, :, z0:z1]
        if int(np.count_nonzero(part)) >= min_label_voxels:
            masks[name] = np.ascontiguousarray(part)
        else:
            dropped.append(name)
    offset = case.z_range[0]
    return replace(case, ct=np.ascontiguousarray(case.ct[:, :, z0:z1]), masks=masks,
                   z_range=(offset + z0, offset + z1), dropped=dropped)


def phantom_specs(count: int, *, seed: int, stream: int = PHANTOM_TRAIN_STREAM,
                  shape: tuple[int, int, int] | None = None,
                  region: str = "abdomen") -> list[CaseSpec]:
    """``count`` phantom recipes; seeds ``(stream, seed, i)`` never overlap between streams.

    ``region="trunk"``: chest-to-pelvis phantoms (ids ``phantom_trunk_...``, their own seeds;
    every phantom id starts with ``phantom``, which tells them from real patients)."""
    prefix, seeds = ("phantom", ()) if region == "abdomen" else (f"phantom_{region}", (17,))
    return [CaseSpec(kind="phantom", case_id=f"{prefix}_{stream}_{seed}_{i:04d}",
                     patient_id=f"{prefix}_{stream}_{seed}_{i:04d}", seed=(stream, seed, i, *seeds),
                     shape=shape, region=region)
            for i in range(count)]


def load_case(spec: CaseSpec, *, min_inside_fraction: float = 0.5,
              min_label_voxels: int = 20, derived: bool = False,
              derived_sources: tuple[str, ...] = ("lungs",)) -> TrustedCase:
    """Load (or generate) the case of ``spec`` and clean it with :func:`prepare_case`.

    Labels that cannot be read are dropped (their names land in ``dropped``). ``derived``:
    add to a dataset case the structures its CT defines by itself
    (:func:`qsaudit.training.derived.derived_structures`: ``derived_sources`` of them), where
    it lacks them.
    """
    if spec.kind == "phantom":
        from qsaudit.phantoms import make_phantom

        rng = np.random.default_rng(list(spec.seed))
        sex = "F" if rng.random() < 0.5 else "M"
        age = int(rng.integers(25, 85))
        extra = {} if spec.region == "abdomen" else {"region": spec.region,
                                                     "max_voxels": TRAIN_PHANTOM_VOXELS}
        ph = make_phantom(rng, sex=sex, age=age, shape=spec.shape, **extra)
        masks = {structure_name(k): v for k, v in ph.masks.items()}
        return prepare_case(spec.case_id, ph.ct, masks, ph.spacing, patient_id=spec.patient_id,
                            min_inside_fraction=min_inside_fraction,
                            min_label_voxels=min_label_voxels)
    if spec.kind != "dataset":
        raise UsageError(f"unknown case kind {spec.kind!r}")
    from qsaudit.datasets import read_image, read_mask

    image = read_image(spec.case)
    masks: dict[str, np.ndarray] = {}
    unreadable: list[str] = []
    cache: dict = {}
    for label in spec.case.labels:
        try:
            masks[structure_name(label.name)] = read_mask(label, image, label_maps=cache)
        except DatasetError:  # LabelProblem: such a label cannot be trusted
            unreadable.append(label.name)
    case = prepare_case(spec.case_id, image.array, masks, tuple(image.spacing),
                        patient_id=spec.patient_id, min_inside_fraction=min_inside_fraction,
                        min_label_voxels=min_label_voxels)
    case.dropped.extend(unreadable)
    if derived:
        from qsaudit.training.derived import derived_structures

        found = derived_structures(case.ct, case.spacing, existing=set(case.masks),
                                   masks=case.masks, sources=tuple(derived_sources))
        case.masks.update({k: v for k, v in found.items() if int(v.sum()) >= min_label_voxels})
    return case


def split_patients(patients: list[str], *, fraction: float, seed: int,
                   forced: set[str] | None = None) -> set[str]:
    """Seeded patient-level validation split: about ``fraction`` of the distinct patients.

    At least one patient is held out when ``fraction`` > 0 and there are two or more patients.
    ``forced`` ids are held out in addition (e.g. ids the user wants kept out of training).
    """
    unique = sorted(set(patients))
    held = set(forced or ()) & set(unique)
    if fraction <= 0 or len(unique) < 2:
        return held
    rng = np.random.default_rng([seed, 5501])
    order = [unique[i] for i in rng.permutation(len(unique))]
    n_val = max(1, round(fraction * len(unique)))
    n_val = min(n_val, len(unique) - 1)
    return held | set(order[:n_val])


def untouched_patients(meta: dict[str, Any], *, excluded: bool = False) -> set[str]:
    """The patients a model file (its ``meta``) was neither trained nor calibrated on: its
    validation patients less those its label calibration used; ``excluded``: its excluded
    cases count as held out too (unless the calibration used them)."""
    held = set(meta.get("validation_patients") or ())
    if excluded:
        held |= set(meta.get("excluded_cases") or ())
    return held - set(meta.get("calibration_patients") or ())
