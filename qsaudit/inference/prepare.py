"""Worker side of a scan: read one case and turn every label into compact arrays.

Runs in reader processes (numpy/scipy/nibabel only, never torch): reads the CT once, decodes each
label (a shared label map once), computes the model-free flags and statistics, picks the slices to
score and crops them into model inputs, and keeps small thumbnails. Only these compact arrays go
back to the main process, which batches crops across labels and cases into the model.

Volumes are read in canonical RAS orientation, except for the crops of a model with the paper's
protocol (``preprocessing == "paper"`` or ``sampling == "paper"``): the released Quality Sentinel
read files with SimpleITK, i.e. in each file's own voxel order, so its slices are picked and
cropped in that order (:class:`FileOrder`), after the same CT/mask shape and affine checks. The
flags, statistics and thumbnails stay in RAS, and reported slice indices are RAS axial indices
whenever the file's slice axis is the axial one.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qsaudit.errors import DatasetError

THUMB_SIZE = 96  # longest side (pixels) of the thumbnail crops kept per scored slice
PER_LABEL_FLAGS = ("flag_empty", "flag_edge", "flag_components", "flag_hu", "flag_side")


@dataclass(frozen=True)
class PrepareSpec:
    """What a worker needs to prepare a case: the model's crop settings and the sampling."""

    model_config: Any  # qsaudit.model.config.ModelConfig (input_size, margin, hu_window, ...)
    slices: int = 10
    sampling: str = "even"
    seed: int = 0
    thumb_size: int = THUMB_SIZE
    shape_features: bool = True  # computed only for a calibration that reads them
    end_probes: bool = False  # likewise: crops beyond the label's ends (inference.probes)
    part_probes: bool = False  # likewise: crops through the label's other pieces (inference.parts)


@dataclass
class LabelWork:
    """One label of one case, ready for the model.

    ``crops``: (n + n_probes + n_parts, 2, S, S) float32 model inputs of the ``n`` scored
    slices, then of the label's ``n_probes`` end probes (``qsaudit.inference.probes``; None
    unless ok) on the sides ``probe_sides`` (n_probes,), then of its ``n_parts`` part probes
    (``qsaudit.inference.parts``; ``n_parts`` None when not computed) on the slices
    ``part_slices``, the peaks of the label's other pieces ``part_pieces``;
    ``slice_indices``/``slice_areas``: (n,) axial index and candidate-mask voxels per slice;
    ``thumb_ct``/``thumb_mask``: (n, h, w) int16 HU / bool thumbnails of those slices around the
    mask, with in-plane spacing ``thumb_spacing`` (mm); ``thumb_views``: the coronal and sagittal
    planes through the mask (name -> ct, mask, spacing, position, z0, z_step; None when the
    file's slices are not axial). ``z_range``: the mask's axial slices (half-open, RAS z),
    ``z_areas`` its voxels per slice of that range and ``z_size`` the volume's slices (where an
    error lies, ``qsaudit.inference.error_model``; None for files read in their own order).
    ``row`` holds the results-table fields
    known before prediction (statistics, per-label flags, status, error, paths).
    """

    label: str
    row: dict[str, Any]
    crops: np.ndarray | None = None
    slice_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    slice_areas: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    thumb_ct: np.ndarray | None = None
    thumb_mask: np.ndarray | None = None
    thumb_spacing: tuple[float, float] = (1.0, 1.0)
    thumb_views: dict[str, Any] | None = None
    shape: np.ndarray | None = None
    n_probes: int = 0
    n_parts: int | None = None  # None: part probes not computed
    part_pieces: list[tuple[int, int, int]] | None = None  # (first, last, peak) of each piece
    part_slices: np.ndarray | None = None  # (n_parts,) the slices the part probes show
    slice_mm: float | None = None
    probe_sides: np.ndarray | None = None
    z_range: tuple[int, int] | None = None
    z_areas: np.ndarray | None = None
    z_size: int | None = None

    @property
    def n_slices(self) -> int:
        """Number of crops to score (scored slices, end probes and part probes)."""
        return 0 if self.crops is None else int(self.crops.shape[0])


@dataclass
class PreparedCase:
    """Every label of one case; ``body_area_mm2`` normalises volumes (NaN if the CT is bad)."""

    case_id: str
    labels: list[LabelWork]
    body_area_mm2: float
    seconds: float
    cpu_seconds: float = 0.0  # CPU time of the reading process (all its threads)
    decode_seconds: float = 0.0  # of ``seconds``, reading and decompressing the CT and masks
    decode_cpu_seconds: float = 0.0  # of ``cpu_seconds``, likewise


def prepare_case(case: Any, spec: PrepareSpec) -> PreparedCase:
    """Read ``case`` (a ``qsaudit.datasets.Case``) and prepare all its labels; never raises.

    A CT that cannot be read gives every label status ``missing_image`` or ``unreadable``; a
    label that cannot be read gives that label its problem as status; an unexpected error gives
    status ``error`` with the exception text. The scan goes on in every case.
    """
    start, cpu = time.perf_counter(), time.process_time()
    decoding = _Clock()
    try:
        labels, area = _prepare(case, spec, decoding)
    except Exception as exc:  # noqa: BLE001 - one bad case must never stop a scan
        labels = [_failed(case, ref, "error", f"{type(exc).__name__}: {exc}")
                  for ref in case.labels]
        area = float("nan")
    return PreparedCase(case_id=case.case_id, labels=labels, body_area_mm2=area,
                        seconds=time.perf_counter() - start,
                        cpu_seconds=time.process_time() - cpu, decode_seconds=decoding.wall,
                        decode_cpu_seconds=decoding.cpu)


class _Clock:
    """Wall and CPU seconds (this process, all threads) spent in the blocks it times."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    @contextlib.contextmanager
    def timing(self) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall += time.perf_counter() - wall
            self.cpu += time.process_time() - cpu


def exit_with_parent(parent_pid: int, *, poll_seconds: float = 0.5) -> None:
    """Reader-process initializer: exit when the scan process dies (even by ``kill -9``).

    Without it a reader blocked on a full result pipe would outlive a killed scan.
    """
    import os
    import threading

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


@dataclass(frozen=True)
class FileOrder:
    """How to view a canonical (RAS) array in the CT file's own voxel order.

    ``to_file``: nibabel orientation transform from RAS back to the file's axes; ``spacing``:
    the file's voxel sizes (mm) in its own axis order; ``slice_axis``/``slice_flip``: the RAS
    axis (0..2) that the file's third (slice) axis runs along and whether it runs backwards.
    """

    to_file: np.ndarray
    spacing: tuple[float, float, float]
    slice_axis: int
    slice_flip: bool

    @classmethod
    def from_affine(cls, affine: np.ndarray) -> FileOrder:
        """The file order of a file with voxel-to-world ``affine`` (4x4, mm)."""
        from nibabel import orientations

        file_ornt = orientations.io_orientation(np.asarray(affine, dtype=np.float64))
        ras = orientations.axcodes2ornt(("R", "A", "S"))
        spacing = np.sqrt((np.asarray(affine, dtype=np.float64)[:3, :3] ** 2).sum(axis=0))
        return cls(to_file=orientations.ornt_transform(ras, file_ornt),
                   spacing=(float(spacing[0]), float(spacing[1]), float(spacing[2])),
                   slice_axis=int(file_ornt[2, 0]), slice_flip=bool(file_ornt[2, 1] < 0))

    def view(self, ras_array: np.ndarray) -> np.ndarray:
        """``ras_array`` (X, Y, Z) re-laid in the file's voxel order (a view, no copy)."""
        from nibabel import orientations

        return orientations.apply_orientation(ras_array, self.to_file)

    def ras_slices(self, index: np.ndarray, n_slices: int) -> np.ndarray | None:
        """RAS axial indices of the file's slices ``index`` (None if its slices are not axial)."""
        if self.slice_axis != 2:
            return None
        index = np.asarray(index, dtype=np.int64)
        return n_slices - 1 - index if self.slice_flip else index


def file_order(path: str | Path) -> FileOrder:
    """The :class:`FileOrder` of the NIfTI file at ``path`` (reads its header only)."""
    import nibabel as nib

    try:
        return FileOrder.from_affine(nib.load(str(path)).affine)
    except (OSError, ValueError, nib.filebasedimages.ImageFileError) as exc:
        raise DatasetError(f'"{path}": cannot read the NIfTI header ({exc})') from None


def _file_order(volume: Any) -> FileOrder:
    """The file order of a read volume: a DICOM series' own, else its NIfTI file's."""
    file_affine = getattr(volume, "file_affine", None)
    return FileOrder.from_affine(file_affine) if file_affine is not None \
        else file_order(volume.path)


def uses_file_order(spec: PrepareSpec) -> bool:
    """True when ``spec`` follows the paper's protocol (slices in the file's voxel order)."""
    return (getattr(spec.model_config, "preprocessing", None) == "paper"
            or spec.sampling == "paper")


def _prepare(case: Any, spec: PrepareSpec, decoding: _Clock
             ) -> tuple[list[LabelWork], float]:
    """The case's label works and body area; ``decoding`` times reading and decompressing the
    files (the rest is checks, shape features and crops)."""
    from qsaudit.checks import body_profile
    from qsaudit.datasets import LabelProblem, read_image, read_mask
    from qsaudit.datasets.volumes import parse_labels_early

    label_maps: dict = {}
    try:
        with decoding.timing():
            ready = parse_labels_early(case, label_maps)  # DICOM labels parse as the CT decodes
            try:
                volume = read_image(case)
            finally:
                ready()
    except DatasetError as exc:
        missing = case.image is None or not case.image.exists()
        status = "missing_image" if missing else "unreadable"
        return [_failed(case, ref, status, str(exc)) for ref in case.labels], float("nan")
    order = _file_order(volume) if uses_file_order(spec) else None
    body = body_profile(volume.array, volume.spacing)
    works: list[LabelWork] = []
    offsets: dict[str, tuple[str, float]] = {}  # structure key -> (label, centroid x in mm)
    for ref in case.labels:
        try:
            with decoding.timing():
                mask = read_mask(ref, volume, label_maps=label_maps)
        except LabelProblem as problem:
            status = "missing_label" if problem.status == "missing" else problem.status
            works.append(_failed(case, ref, status, str(problem)))
            continue
        try:
            work, key_x = _prepare_label(case, ref, volume, mask, body.midline_x, spec, order)
        except Exception as exc:  # noqa: BLE001 - one bad label must not take its case down
            works.append(_failed(case, ref, "error", f"{type(exc).__name__}: {exc}"))
            continue
        works.append(work)
        if key_x is not None:
            offsets[key_x[0]] = (ref.name, key_x[1])
    _flag_swapped(works, offsets)
    return works, body.area_mm2


def _registry_name(ref: Any) -> str:
    """The name to resolve through the registry (a DICOM-SEG segment may name it by a code)."""
    return getattr(ref, "structure_name", None) or ref.name


def _base_row(case: Any, ref: Any) -> dict[str, Any]:
    from qsaudit.registry import canonical_name

    return {
        "case_id": case.case_id,
        "label": ref.name,
        "structure": canonical_name(_registry_name(ref)),
        "image_path": str(case.image) if case.image is not None else None,
        "label_path": str(ref.path),
        "label_value": ref.value,
        "study_uid": getattr(case, "study_uid", None),
        "series_uid": getattr(case, "series_uid", None),
        "label_sop_uid": getattr(ref, "sop_instance_uid", None),
    }


def _failed(case: Any, ref: Any, status: str, error: str) -> LabelWork:
    row = _base_row(case, ref)
    row.update(status=status, error=error)
    return LabelWork(label=ref.name, row=row)


def _prepare_label(case: Any, ref: Any, volume: Any, mask: np.ndarray, midline_x: float,
                   spec: PrepareSpec, order: FileOrder | None = None
                   ) -> tuple[LabelWork, tuple[str, float] | None]:
    from qsaudit import checks
    from qsaudit.checks.shape import shape_features
    from qsaudit.inference.parts import label_pieces, part_probes, part_slices
    from qsaudit.inference.probes import end_probes
    from qsaudit.registry import lookup

    row = _base_row(case, ref)
    stats = checks.mask_stats(mask)
    row.update(voxels=stats.voxels, mask_slices=stats.mask_slices,
               volume_ml=stats.voxels * float(np.prod(volume.spacing)) / 1000.0)
    if stats.empty:
        row.update(status="empty", error="the mask has no voxel", flag_empty=True,
                   mean_hu=float("nan"))
        return LabelWork(label=ref.name, row=row), None
    structure = lookup(_registry_name(ref))
    ct = volume.array
    res = checks.check_label(mask, ct, volume.spacing, structure=structure,
                             midline_x=midline_x, stats=stats)
    offset = res.side_offset_mm
    side = structure.side if structure is not None else None
    row.update(status="ok", error=None, mean_hu=res.mean_hu, flag_empty=False, **res.flags())
    if order is None:
        index, crops, areas = _crops(ct, mask, case.case_id, ref.name, spec,
                                     z_range=stats.bbox[2], spacing=volume.spacing)
        thumbs = _thumbnails(ct, mask, stats, index, volume.spacing, spec.thumb_size)
    else:
        file_ct, file_mask = order.view(ct), order.view(mask)
        index, crops, areas = _crops(file_ct, file_mask, case.case_id, ref.name, spec,
                                     spacing=order.spacing)
        ras = order.ras_slices(index, file_mask.shape[2])
        if ras is not None:  # report RAS axial indices, ascending, like every other scan
            keep = np.argsort(ras, kind="stable")
            index, crops, areas = ras[keep], crops[keep], areas[keep]
            thumbs = _thumbnails(ct, mask, stats, index, volume.spacing, spec.thumb_size)
        else:  # slices not axial in the file: indices and thumbnails in the file's order
            thumbs = _thumbnails(file_ct, file_mask, checks.mask_stats(file_mask), index,
                                 order.spacing, spec.thumb_size, planes=False)
    thumb_ct, thumb_mask, thumb_spacing, thumb_views = thumbs
    n_probes, sides, z_areas = 0, None, None
    if spec.end_probes and order is None:  # a paper-protocol model has no calibration
        probes, sides = end_probes(ct, mask, stats.bbox[2], model_config=spec.model_config,
                                   spacing=volume.spacing)
        crops, n_probes = np.concatenate([crops, probes]), len(probes)
        z_areas = stats.crop(mask).sum(axis=(0, 1), dtype=np.int64)
    n_parts, pieces, piece_slices = None, None, None
    if spec.part_probes and order is None:
        pieces = label_pieces(stats.crop(mask), offset=stats.bbox[2][0])
        piece_slices = part_slices(mask, pieces=pieces)
        parts = part_probes(ct, mask, piece_slices, model_config=spec.model_config,
                            spacing=volume.spacing)
        crops, n_parts = np.concatenate([crops, parts]), len(parts)
    work = LabelWork(label=ref.name, row=row, crops=crops, slice_indices=index, n_probes=n_probes,
                     n_parts=n_parts, part_pieces=pieces, part_slices=piece_slices,
                     slice_mm=float(volume.spacing[2]), probe_sides=sides, z_areas=z_areas,
                     z_range=tuple(int(v) for v in stats.bbox[2]),
                     z_size=int(mask.shape[2]),
                     slice_areas=areas, thumb_ct=thumb_ct, thumb_mask=thumb_mask,
                     thumb_spacing=thumb_spacing, thumb_views=thumb_views,
                     shape=shape_features(mask, ct, structure=structure, bbox=stats.bbox,
                                          largest_share=res.largest_share,
                                          spacing=volume.spacing)
                     if spec.shape_features else None)
    key_x = None
    if side is not None and structure is not None and structure.pair:
        key_x = (structure.key, offset)
    return work, key_x


def _crops(ct: np.ndarray, mask: np.ndarray, case_id: str, label: str, spec: PrepareSpec,
           z_range: tuple[int, int] | None = None,
           spacing: tuple[float, ...] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slices to score along axis 2 of ``ct``/``mask`` (X, Y, Z), their model inputs and areas.

    ``z_range``: the mask's slices (half-open), when known: only those are searched, which
    picks the same slices (every slice with mask is inside) for a fraction of the work.
    ``spacing``: voxel size (mm) of these axes; a model with a margin in mm needs it.
    Returns ``(index (n,) int64, crops (n, 2, S, S) float32, areas (n,) int64)``.
    """
    from qsaudit.inference.sampling import choose_slices
    from qsaudit.model.preprocess import crop_slice

    z0, z1 = z_range if z_range is not None else (0, mask.shape[2])
    index = z0 + choose_slices(mask[:, :, z0:z1], spec.slices, seed=spec.seed,
                               case_id=case_id, label=label, mode=spec.sampling)
    crops = np.stack([crop_slice(ct[:, :, z], mask[:, :, z], config=spec.model_config,
                                 spacing=spacing)
                      for z in index]).astype(np.float32, copy=False)
    areas = mask[:, :, index].sum(axis=(0, 1), dtype=np.int64)
    return index, crops, areas


def _thumbnails(ct: np.ndarray, mask: np.ndarray, stats: Any, index: np.ndarray,
                spacing: tuple[float, float, float], size: int, *, planes: bool = True
                ) -> tuple[np.ndarray, np.ndarray, tuple[float, float], dict[str, Any] | None]:
    """Strided crops of the scored slices, and (with ``planes``) the coronal and sagittal planes
    through the mask (``qsaudit.reports.thumbnails.cut_planes``), each over a physical field of
    view around the mask so that a small structure keeps its surroundings."""
    from qsaudit.reports.thumbnails import cut_planes, field_of_view

    (x0, x1), (y0, y1), _ = stats.bbox
    xs = field_of_view(x0, x1, ct.shape[0], spacing[0])
    ys = field_of_view(y0, y1, ct.shape[1], spacing[1])
    step = max(1, math.ceil(max(xs[1] - xs[0], ys[1] - ys[0]) / size))
    sub_ct = ct[xs[0]:xs[1]:step, ys[0]:ys[1]:step][:, :, index]
    sub_mask = mask[xs[0]:xs[1]:step, ys[0]:ys[1]:step][:, :, index]
    thumb_ct = np.clip(np.rint(sub_ct), -32768, 32767).astype(np.int16).transpose(2, 0, 1)
    thumb_mask = np.ascontiguousarray(sub_mask.transpose(2, 0, 1))
    views = cut_planes(ct, mask, spacing, stats.bbox, size=size) if planes else None
    return (np.ascontiguousarray(thumb_ct), thumb_mask,
            (float(spacing[0]) * step, float(spacing[1]) * step), views)


def _flag_swapped(works: list[LabelWork], offsets: dict[str, tuple[str, float]]) -> None:
    """Flag both members of a left/right pair whose centroids are on each other's side."""
    from qsaudit.checks import swapped_pairs
    from qsaudit.registry import lookup

    sides, pairs, xs = {}, {}, {}
    for key, (label, x) in offsets.items():
        structure = lookup(key)  # the registry key of the label's structure
        sides[key], pairs[key], xs[key] = structure.side, structure.pair, x
    swapped = {offsets[key][0] for key in swapped_pairs(xs, sides, pairs)}
    for work in works:
        if work.label in swapped:
            work.row["flag_side"] = True
