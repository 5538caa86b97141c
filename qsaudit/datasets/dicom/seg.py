"""DICOM-SEG segments placed on a CT grid.

A binary segment is its frames' set pixels; a fractional one (probability or occupancy) the
pixels above half of its maximum fractional value. The SEG's frames must lie on the CT's grid,
up to whole-voxel shifts, flips and axis swaps: nothing is resampled.

The usual SEG has one frame per CT slice it covers, of the CT's own rows and columns. Such a SEG
is placed frame by frame from its functional groups read by pydicom, each frame decoded by
pydicom when its segment is asked for (:class:`SliceAlignedSeg`): about 3x faster than
highdicom's general reader (31 segments of a 512 x 512 x 20 CT: 0.2 s against 0.9 s), which
handles every other SEG (cropped, other orientation, tiled).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qsaudit.datasets.dicom.series import SeriesGeometry
from qsaudit.datasets.volumes import LabelProblem

_READ_ERRORS = (OSError, EOFError, ValueError, TypeError, AttributeError, KeyError, IndexError,
                NotImplementedError, RuntimeError)


@dataclass
class SliceAlignedSeg:
    """A SEG whose frames are whole CT slices: segment number -> [(frame index, slice k)]."""

    dataset: Any
    frames: dict[int, list[tuple[int, int]]]
    threshold: float
    binary: bool = False


def read_segmentation(path: Path, geometry: SeriesGeometry) -> Any:
    """The SEG at ``path``, as a :class:`SliceAlignedSeg` when its frames are slices of
    ``geometry``, else as a highdicom ``Segmentation``. Raises :class:`LabelProblem`
    (``unreadable``) naming the file."""
    import highdicom as hd
    import pydicom

    try:
        dataset = pydicom.dcmread(path)
        aligned = _slice_aligned(dataset, geometry)
        if aligned is not None:
            return aligned
        return hd.seg.Segmentation.from_dataset(dataset, copy=False)
    except (*_READ_ERRORS, pydicom.errors.InvalidDicomError) as exc:
        raise LabelProblem(f'"{path}": cannot read the DICOM-SEG ({_short(exc)})',
                           status="unreadable") from None


def _slice_aligned(ds: Any, geometry: SeriesGeometry) -> SliceAlignedSeg | None:
    """Map every frame to its segment and CT slice, or None if a frame is not a CT slice."""
    columns, rows, depth = geometry.shape
    kind = str(ds.get("SegmentationType", "")).upper()
    if kind not in ("BINARY", "FRACTIONAL") or (ds.get("Rows"), ds.get("Columns")) != (rows,
                                                                                    columns):
        return None
    shared = ds.get("SharedFunctionalGroupsSequence", [None])[0]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence", [])
    if len(per_frame) != int(ds.get("NumberOfFrames", 0) or 0):
        return None
    lps = geometry.lps_affine
    to_voxel = np.linalg.inv(lps)
    frames: dict[int, list[tuple[int, int]]] = {}
    planes_checked: set[tuple] = set()  # (orientation, spacing) pairs already on the CT grid
    for index, group in enumerate(per_frame):
        orientation = _functional(group, shared, "PlaneOrientationSequence",
                                  "ImageOrientationPatient")
        spacing = _functional(group, shared, "PixelMeasuresSequence", "PixelSpacing")
        position = _functional(group, shared, "PlanePositionSequence", "ImagePositionPatient")
        segment = _functional(group, shared, "SegmentIdentificationSequence",
                              "ReferencedSegmentNumber")
        if orientation is None or spacing is None or position is None or segment is None:
            return None
        plane = (tuple(orientation), tuple(spacing))
        if plane not in planes_checked:
            directions = np.array([float(v) for v in orientation])
            pixel = [float(v) for v in spacing]
            if np.abs(directions[:3] * pixel[1] - lps[:3, 0]).max() > 1e-3 \
                    or np.abs(directions[3:] * pixel[0] - lps[:3, 1]).max() > 1e-3:
                return None
            planes_checked.add(plane)
        voxel = to_voxel[:3, :3] @ np.array([float(v) for v in position]) + to_voxel[:3, 3]
        k = int(np.rint(voxel[2]))
        if np.abs(voxel - [0, 0, k]).max() > 1e-3 or not 0 <= k < depth:
            return None
        frames.setdefault(int(segment), []).append((index, k))
    maximum = float(ds.get("MaximumFractionalValue", 1) or 1) if kind == "FRACTIONAL" else 1.0
    return SliceAlignedSeg(dataset=ds, frames=frames, threshold=0.5 * maximum,
                           binary=kind == "BINARY")


def _functional(group: Any, shared: Any, sequence: str, keyword: str) -> Any:
    """An attribute of a frame's functional groups, else of the shared ones."""
    for groups in (group, shared):
        if groups is None or sequence not in groups:
            continue
        items = groups[sequence].value
        if items and keyword in items[0]:
            value = items[0][keyword].value
            if value is not None:
                return value
    return None


def segment_mask(segmentation: Any, path: Path, number: int, name: str,
                 geometry: SeriesGeometry, mask: np.ndarray) -> None:
    """Set the voxels of segment ``number`` in ``mask``: bool, all False, (slices, rows,
    columns) of ``geometry`` (any strides: it may view a canonical array).

    Raises :class:`LabelProblem`: ``affine_mismatch`` when the SEG's frames are not on the CT
    grid, ``outside_image`` when they lie entirely outside it, ``unreadable`` when the frames
    cannot be decoded.
    """
    import highdicom as hd

    if isinstance(segmentation, SliceAlignedSeg):
        _aligned_mask(segmentation, path, number, name, mask)
        return

    try:
        volume = segmentation.get_volume(segment_numbers=[number], combine_segments=False,
                                         rescale_fractional=True, dtype=np.float32)
    except (ValueError, RuntimeError, KeyError, IndexError, TypeError, AttributeError,
            NotImplementedError) as exc:
        if "no frames" in str(exc).lower():
            return  # a segment without any frame: empty
        raise LabelProblem(f'"{path}": segment {number} ("{name}"): cannot place its frames '
                           f"({_short(exc)})", status="unreadable") from None
    columns, rows, depth = geometry.shape
    target = hd.VolumeGeometry(affine=_hd_affine(geometry), spatial_shape=(depth, rows, columns),
                               coordinate_system="PATIENT")
    try:
        matched = volume.match_geometry(target, tol=1e-3)
    except RuntimeError:
        if _outside(volume, target):
            raise LabelProblem(f'"{path}": segment {number} ("{name}") lies outside the CT',
                               status="outside_image") from None
        raise LabelProblem(f'"{path}": segment {number} ("{name}") is not on the CT grid '
                           "(other spacing, orientation or sub-voxel shift)",
                           status="affine_mismatch") from None
    array = np.asarray(matched.array)
    mask[...] = array.reshape(array.shape[:3]) > 0.5  # without the segment channel


def _aligned_mask(seg: SliceAlignedSeg, path: Path, number: int, name: str,
                  mask: np.ndarray) -> None:
    from pydicom.pixels import iter_pixels

    placed = seg.frames.get(number, [])
    if not placed:
        return
    try:  # one decoder set-up for all of the segment's frames (4x faster than frame by frame)
        frames = iter_pixels(seg.dataset, indices=[index for index, _ in placed])
        once = len({k for _, k in placed}) == len(placed)  # no slice has two frames
        for (_, k), frame in zip(placed, frames, strict=True):
            # a binary frame unpacks to 0/1 bytes: read as bool without a comparison
            on = frame.view(bool) if seg.binary and frame.dtype == np.uint8 \
                else frame > seg.threshold
            if once:
                mask[k] = on
            else:
                mask[k] |= on
    except _READ_ERRORS as exc:
        raise LabelProblem(f'"{path}": segment {number} ("{name}"): cannot decode its frames '
                           f"({_short(exc)})", status="unreadable") from None


def _hd_affine(geometry: SeriesGeometry) -> np.ndarray:
    """highdicom's affine of the CT grid: array axes (slice, row, column) -> LPS mm."""
    lps = geometry.lps_affine
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1], affine[:3, 2] = lps[:3, 2], lps[:3, 1], lps[:3, 0]
    affine[:3, 3] = lps[:3, 3]
    return affine


def _outside(volume: Any, target: Any) -> bool:
    """True when the SEG's voxel centres all lie beyond the CT grid's box."""
    shape = np.array(volume.spatial_shape)
    corners = np.array([[i, j, k] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1)
                        for k in (0, shape[2] - 1)], dtype=np.float64)
    world = corners @ volume.affine[:3, :3].T + volume.affine[:3, 3]
    inverse = np.linalg.inv(target.affine)
    index = world @ inverse[:3, :3].T + inverse[:3, 3]
    low, high = index.min(axis=0), index.max(axis=0)
    size = np.array(target.spatial_shape) - 0.5
    return bool(np.any(high < -0.5) or np.any(low > size))


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
