"""RT Structure Set contours rasterised onto a CT grid, holes and islands by the even-odd rule.

A voxel belongs to an ROI when a ray from its centre along the row crosses the ROI's contours
on that slice an odd number of times: a contour inside another is a hole, one inside a hole an
island, whether the structure set draws them as separate contours or as one keyhole contour.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qsaudit.datasets.dicom.series import SeriesGeometry
from qsaudit.datasets.volumes import LabelProblem

_CONTOUR_DATA = 0x30060050


@dataclass(frozen=True)
class StructureSet:
    """The closed planar contours of a structure set: ROI number -> list of (N, 3) LPS mm."""

    path: Path
    contours: dict[int, list[np.ndarray]]


def read_structure_set(path: Path) -> StructureSet:
    """Read every ROI's closed planar contours (open contours and points cannot be filled).

    Raises :class:`LabelProblem` (``unreadable``) naming the file.
    """
    import pydicom

    try:
        ds = pydicom.dcmread(path)
        if "ROIContourSequence" not in ds:  # type 1: absent in a truncated file
            raise ValueError("no ROI Contour Sequence")
        contours: dict[int, list[np.ndarray]] = {}
        for roi in ds.ROIContourSequence:
            number = int(roi.ReferencedROINumber)
            polygons = contours.setdefault(number, [])
            for contour in roi.get("ContourSequence", []):
                kind = str(contour.get("ContourGeometricType", "CLOSED_PLANAR")).strip()
                if kind != "CLOSED_PLANAR" or _CONTOUR_DATA not in contour:
                    continue
                points = _contour_points(contour)
                if points.size >= 9 and points.size % 3 == 0:
                    polygons.append(points.reshape(-1, 3))
    except (OSError, EOFError, ValueError, TypeError, AttributeError, KeyError,
            pydicom.errors.InvalidDicomError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LabelProblem(f'"{path}": cannot read the structure set ({text})',
                           status="unreadable") from None
    return StructureSet(path=Path(path), contours=contours)


def _contour_points(contour) -> np.ndarray:
    """Contour Data as float64. The decimal strings are converted by numpy in one call: pydicom
    would make one Python object per coordinate, 10x slower on a large structure set."""
    element = contour.get_item(_CONTOUR_DATA)
    raw = getattr(element, "value", None)
    if isinstance(raw, bytes | bytearray):
        text = raw.decode("ascii", errors="replace").replace("\\", " ").strip()
        values = np.array(text.split(), dtype=np.float64) if text else np.zeros(0)
        return values
    return np.asarray(contour.ContourData, dtype=np.float64)


def rasterise_roi(structure_set: StructureSet, number: int, name: str,
                  geometry: SeriesGeometry, mask: np.ndarray) -> None:
    """Set the voxels of ROI ``number`` in ``mask``: bool, all False, (slices, rows, columns)
    of ``geometry`` (any strides: it may view a canonical array).

    Each contour goes onto the slice nearest to its plane. An ROI without contours leaves the
    mask empty; one whose contours all lie outside the CT raises :class:`LabelProblem`
    (``outside_image``). Parts outside the grid are cut off.
    """
    columns, rows, depth = geometry.shape
    polygons = structure_set.contours.get(number, [])
    if not polygons:
        return
    to_voxel = np.linalg.inv(geometry.lps_affine)
    edges, kept = [], 0
    for points in polygons:
        voxel = points @ to_voxel[:3, :3].T + to_voxel[:3, 3]
        k = int(np.rint(np.median(voxel[:, 2])))
        inside = (0 <= k < depth
                  and voxel[:, 0].max() >= -0.5 and voxel[:, 0].min() <= columns - 0.5
                  and voxel[:, 1].max() >= -0.5 and voxel[:, 1].min() <= rows - 0.5)
        if not inside:
            continue
        kept += 1
        x, y = voxel[:, 0], voxel[:, 1]
        edges.append(np.column_stack([np.full(len(x), k), x, y, np.roll(x, -1), np.roll(y, -1)]))
    if kept:
        _fill_even_odd(mask, np.concatenate(edges))
    if not mask.any():
        where = "outside the CT" if not kept else "around no voxel centre of the CT"
        raise LabelProblem(f'"{structure_set.path}": ROI "{name}": all {len(polygons)} contours '
                           f"lie {where}", status="outside_image")


def _fill_even_odd(mask: np.ndarray, edges: np.ndarray) -> None:
    """Set in ``mask`` (slices, rows, columns) the voxels inside ``edges`` by the even-odd rule.

    ``edges``: (E, 5) rows of (slice, x0, y0, x1, y1) in voxel units (x = column, y = row).
    Every edge crosses the rows whose centre y satisfies min(y0, y1) <= y < max(y0, y1) (the
    half-open rule counts a vertex once); each crossing toggles the voxels from the first
    centre at or right of it to the row's end. Work is limited to the crossings' bounding box.
    """
    _depth, rows, columns = mask.shape
    k, x0, y0, x1, y1 = edges.T
    flat = y0 != y1
    k, x0, y0, x1, y1 = k[flat].astype(np.int64), x0[flat], y0[flat], x1[flat], y1[flat]
    low, high = np.minimum(y0, y1), np.maximum(y0, y1)
    first = np.clip(np.ceil(low), 0, rows).astype(np.int64)
    stop = np.clip(np.ceil(high), 0, rows).astype(np.int64)
    counts = np.maximum(stop - first, 0)
    if counts.sum() == 0:
        return
    edge = np.repeat(np.arange(len(counts)), counts)
    row = first[edge] + (np.arange(edge.size) - np.repeat(np.cumsum(counts) - counts, counts))
    x = x0[edge] + (row - y0[edge]) * (x1[edge] - x0[edge]) / (y1[edge] - y0[edge])
    column = np.clip(np.ceil(x), 0, columns).astype(np.int64)
    planes, plane = np.unique(k[edge], return_inverse=True)  # only the contoured slices
    r0, r1 = int(row.min()), int(row.max()) + 1  # and only the box the crossings span
    c0, c1 = int(column.min()), int(column.max()) + 1
    # toggles laid out (column, slice, row) so the running XOR goes over whole rows at once
    toggles = np.zeros((c1 - c0, len(planes), r1 - r0), dtype=np.uint8)
    np.bitwise_xor.at(toggles, (column - c0, plane, row - r0), 1)
    np.bitwise_xor.accumulate(toggles, axis=0, out=toggles)
    c1 = min(c1, columns)  # a crossing beyond the last column toggles no voxel
    inside = toggles[: c1 - c0].transpose(1, 2, 0).view(bool)
    mask[planes, r0:r1, c0:c1] |= inside
