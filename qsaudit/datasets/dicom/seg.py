"""DICOM-SEG segments placed on a CT grid (highdicom decodes the frames and matches the grids).

A binary segment is its frames' set pixels; a fractional one (probability or occupancy) the
pixels above half of its maximum fractional value. The SEG's frames must lie on the CT's grid,
up to whole-voxel shifts, flips and axis swaps: nothing is resampled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from qsaudit.datasets.dicom.series import SeriesGeometry
from qsaudit.datasets.volumes import LabelProblem


def read_segmentation(path: Path) -> Any:
    """The highdicom ``Segmentation`` at ``path``; raises :class:`LabelProblem` (unreadable)."""
    import highdicom as hd
    import pydicom

    try:
        return hd.seg.segread(path)
    except (OSError, EOFError, ValueError, TypeError, AttributeError, KeyError, IndexError,
            NotImplementedError, RuntimeError, pydicom.errors.InvalidDicomError) as exc:
        raise LabelProblem(f'"{path}": cannot read the DICOM-SEG ({_short(exc)})',
                           status="unreadable") from None


def segment_mask(segmentation: Any, path: Path, number: int, name: str,
                 geometry: SeriesGeometry) -> np.ndarray:
    """Segment ``number`` as a bool mask of ``geometry.shape`` (file order, see series.py).

    Raises :class:`LabelProblem`: ``affine_mismatch`` when the SEG's frames are not on the CT
    grid, ``outside_image`` when they lie entirely outside it, ``unreadable`` when the frames
    cannot be decoded.
    """
    import highdicom as hd

    try:
        volume = segmentation.get_volume(segment_numbers=[number], combine_segments=False,
                                         rescale_fractional=True, dtype=np.float32)
    except (ValueError, RuntimeError, KeyError, IndexError, TypeError, AttributeError,
            NotImplementedError) as exc:
        if "No frames" in str(exc) or "no frames" in str(exc):
            return np.zeros(geometry.shape, dtype=bool)  # a segment without any frame: empty
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
    array = array.reshape(array.shape[:3])  # drop the segment channel
    return (array > 0.5).transpose(2, 1, 0)


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
