"""A CT series as a voxel grid: slice order and geometry checks, then decoding the pixels.

The grid is kept in the series' own voxel order ("file order"): array axes (column i, row j,
slice k), slices sorted along the slice normal (the cross product of the row and column
directions of ImageOrientationPatient). Its affine maps (i, j, k) to DICOM patient
coordinates (LPS, mm); :attr:`SeriesGeometry.ras_affine` is the same in NIfTI's RAS convention.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qsaudit.datasets.dicom.index import Header
from qsaudit.errors import DatasetError

ORIENTATION_ATOL = 1e-4
"""Largest difference allowed between the slices' direction cosines."""
SPACING_RTOL = 0.01
"""Largest relative difference between a slice step and the series' median step."""

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

# transfer syntax UID -> the packages that decode it (pydicom decodes RLE and deflate itself)
_DECODER_PACKAGES = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.51": "pylibjpeg pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.57": "pylibjpeg pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.70": "pylibjpeg pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.80": "pyjpegls",
    "1.2.840.10008.1.2.4.81": "pyjpegls",
    "1.2.840.10008.1.2.4.90": "pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.91": "pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.201": "pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.202": "pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.203": "pylibjpeg pylibjpeg-openjpeg",
}


@dataclass(frozen=True)
class SeriesGeometry:
    """The voxel grid of a CT series, in file order (see the module docstring).

    ``slices``: the slice files, ascending along the normal; ``instances``: their SOP Instance
    UIDs; ``shape``: (columns, rows, slices); ``affine``: 4x4 (i, j, k) -> LPS mm, as tuples.
    """

    slices: tuple[Path, ...]
    instances: tuple[str, ...]
    shape: tuple[int, int, int]
    affine: tuple[tuple[float, ...], ...]
    frame_of_reference: str = ""

    @property
    def lps_affine(self) -> np.ndarray:
        return np.array(self.affine, dtype=np.float64)

    @property
    def ras_affine(self) -> np.ndarray:
        return _LPS_TO_RAS @ self.lps_affine


def series_geometry(headers: Sequence[Header]) -> SeriesGeometry:
    """Sort the slices of one CT series and check that they form a regular grid.

    Raises :class:`DatasetError` naming the problem and a file: a single slice, a slice without
    position/orientation/spacing, slices of differing size or orientation, duplicate or missing
    slices, uneven spacing, or a gantry tilt (slices sheared off the normal).
    """
    first = headers[0]
    if len(headers) < 2:
        raise DatasetError(f'"{first.path}": the CT series has a single slice (not a volume)')
    for header in headers:
        if header.position is None or len(header.position) != 3 \
                or header.orientation is None or len(header.orientation) != 6 \
                or header.pixel_spacing is None or len(header.pixel_spacing) != 2 \
                or header.rows <= 0 or header.columns <= 0:
            raise DatasetError(f'"{header.path}": slice without position, orientation, pixel '
                               "spacing or size")
    _check_alike(headers)
    row_dir = np.array(first.orientation[:3])
    col_dir = np.array(first.orientation[3:])
    if abs(np.linalg.norm(row_dir) - 1) > 1e-3 or abs(np.linalg.norm(col_dir) - 1) > 1e-3 \
            or abs(float(row_dir @ col_dir)) > 1e-3:
        raise DatasetError(f'"{first.path}": ImageOrientationPatient is not two orthonormal '
                           "directions")
    normal = np.cross(row_dir, col_dir)
    positions = np.array([h.position for h in headers], dtype=np.float64)
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    headers = [headers[i] for i in order]
    positions, along = positions[order], along[order]
    step = _regular_step(headers, along)
    _check_tilt(headers, positions, normal, min(first.pixel_spacing))
    row_spacing, col_spacing = first.pixel_spacing
    affine = np.eye(4)
    affine[:3, 0] = row_dir * col_spacing
    affine[:3, 1] = col_dir * row_spacing
    affine[:3, 2] = normal * step
    affine[:3, 3] = positions[0]
    return SeriesGeometry(
        slices=tuple(h.path for h in headers), instances=tuple(h.sop_instance for h in headers),
        shape=(first.columns, first.rows, len(headers)),
        affine=tuple(tuple(float(v) for v in row) for row in affine),
        frame_of_reference=first.frame_of_reference)


def _check_alike(headers: Sequence[Header]) -> None:
    first = headers[0]
    for header in headers[1:]:
        if (header.rows, header.columns) != (first.rows, first.columns):
            raise DatasetError(f'"{header.path}": slice of {header.rows}x{header.columns} pixels '
                               f"in a series of {first.rows}x{first.columns}")
        if max(abs(a - b) for a, b in zip(header.orientation, first.orientation,
                                            strict=True)) > ORIENTATION_ATOL:
            raise DatasetError(f'"{header.path}": slice orientation differs from the rest of '
                               "the series")
        if max(abs(a - b) / max(abs(b), 1e-6) for a, b in
               zip(header.pixel_spacing, first.pixel_spacing, strict=True)) > 1e-4:
            raise DatasetError(f'"{header.path}": pixel spacing differs from the rest of the '
                               "series")


def _regular_step(headers: Sequence[Header], along: np.ndarray) -> float:
    """The slice step (mm) of sorted positions ``along`` the normal, or the problem."""
    steps = np.diff(along)
    duplicate = np.flatnonzero(steps < 1e-3)
    if duplicate.size:
        i = int(duplicate[0])
        raise DatasetError(f'"{headers[i + 1].path}": duplicate slice: same position '
                           f'({along[i]:.2f} mm along the normal) as "{headers[i].path}"')
    step = float(np.median(steps))
    tol = max(SPACING_RTOL * step, 1e-3)
    for i in np.flatnonzero(np.abs(steps - step) > tol):
        ratio = steps[i] / step
        if round(ratio) >= 2 and abs(steps[i] - round(ratio) * step) <= tol * round(ratio):
            missing = round(ratio) - 1
            raise DatasetError(
                f'"{headers[i].path}": {missing} missing slice{"s" if missing > 1 else ""} after '
                f"it (gap of {steps[i]:.2f} mm between {along[i]:.2f} and {along[i + 1]:.2f} mm "
                f"along the normal; the series steps {step:.2f} mm)")
    uneven = np.flatnonzero(np.abs(steps - step) > tol)
    if uneven.size:
        i = int(uneven[0])
        raise DatasetError(f'"{headers[i + 1].path}": uneven slice spacing in the series (a step '
                           f"of {steps[i]:.3f} mm where the series steps {step:.3f} mm; steps "
                           f"from {steps.min():.3f} to {steps.max():.3f} mm)")
    return step


def _check_tilt(headers: Sequence[Header], positions: np.ndarray, normal: np.ndarray,
                pixel: float) -> None:
    """Refuse slices that do not stack along their normal (gantry tilt): a sheared grid."""
    offsets = positions - positions[0]
    along = offsets @ normal
    sideways = np.linalg.norm(offsets - np.outer(along, normal), axis=1)
    if sideways.max() > 0.5 * pixel:
        angle = math.degrees(math.atan2(float(sideways[-1]), abs(float(along[-1]))))
        raise DatasetError(
            f'"{headers[0].path}": gantry tilt of {angle:.1f}° (slices are sheared off their '
            "normal); resample the series to an orthogonal grid first")


def canonical_buffer(geometry: SeriesGeometry, dtype: type
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An array in canonical RAS orientation for the series' grid, and a view of it per slice.

    Returns ``(array, slices, affine)``: ``array`` Fortran-ordered, zero, shaped and oriented
    as :func:`qsaudit.datasets.volumes.to_canonical` makes the file-order grid; ``slices`` the
    same memory as (slices, rows, columns) in the series' own order, for readers to fill
    without a reorienting copy; ``affine`` the RAS affine of ``array``.
    """
    from nibabel import orientations

    file_ornt = orientations.io_orientation(geometry.ras_affine)
    ras = orientations.axcodes2ornt(("R", "A", "S"))
    to_ras = orientations.ornt_transform(file_ornt, ras)
    shape = orientations.apply_orientation(np.empty(geometry.shape, dtype=bool), to_ras).shape
    array = np.zeros(shape, dtype=dtype, order="F")
    file_view = orientations.apply_orientation(array, orientations.ornt_transform(ras, file_ornt))
    affine = geometry.ras_affine @ orientations.inv_ornt_aff(to_ras, geometry.shape)
    return array, file_view.transpose(2, 1, 0), affine


def read_pixels(geometry: SeriesGeometry, stack: np.ndarray) -> None:
    """Decode the series into ``stack`` (slices, rows, columns) as float32 HU, per-slice
    rescale applied. JPEG 2000 slices decode on several threads when imagecodecs is installed
    (:mod:`qsaudit.datasets.dicom.j2k`); other syntaxes one slice after the other.

    Raises :class:`DatasetError` naming the file: unreadable, a size that differs from the
    index, no pixel data, or a compressed transfer syntax no installed package decodes.
    """
    from qsaudit.datasets.dicom import j2k

    if not geometry.slices:
        return
    first = _read_slice(geometry, stack, 0, fast=j2k.available())
    syntax = first.file_meta.get("TransferSyntaxUID", "") if hasattr(first, "file_meta") else ""
    threads = j2k.threads_for(str(syntax))
    rest = range(1, len(geometry.slices))
    if threads <= 1:
        for k in rest:
            _read_slice(geometry, stack, k, fast=False)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads, thread_name_prefix="qsaudit-j2k") as pool:
        for _ in pool.map(lambda k: _read_slice(geometry, stack, k, fast=True), rest):
            pass  # in order, so the first failing slice is the one reported


def _read_slice(geometry: SeriesGeometry, stack: np.ndarray, k: int, *, fast: bool) -> Any:
    """Read slice ``k`` of ``geometry`` into ``stack[k]`` (HU); returns its pydicom dataset.
    ``fast``: try the threaded JPEG 2000 decoder first."""
    import pydicom

    from qsaudit.datasets.dicom import j2k

    path = geometry.slices[k]
    columns, rows, _depth = geometry.shape
    try:
        ds = pydicom.dcmread(path)
    except (OSError, EOFError, ValueError, TypeError, pydicom.errors.InvalidDicomError) as exc:
        raise DatasetError(f'"{path}": cannot read DICOM ({_short(exc)})') from None
    pixels = j2k.decode_slice(ds) if fast and "PixelData" in ds else None
    if pixels is None:
        pixels = decode_pixels(ds, path)
    if pixels.shape != (rows, columns):
        raise DatasetError(f'"{path}": pixel data of shape {pixels.shape}, expected '
                           f"{(rows, columns)}")
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    np.multiply(pixels, slope, out=stack[k], casting="unsafe")
    if intercept:
        stack[k] += intercept
    return ds


def decode_pixels(ds, path: Path) -> np.ndarray:
    """The stored pixel values of ``ds``; a compressed syntax without decoder names the fix."""
    if "PixelData" not in ds:
        raise DatasetError(f'"{path}": no pixel data')
    try:
        return ds.pixel_array
    except (NotImplementedError, RuntimeError, ImportError) as exc:
        syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
        if syntax is not None and syntax.is_compressed:
            raise DatasetError(f'"{path}": {missing_decoder(str(syntax))}') from None
        raise DatasetError(f'"{path}": cannot decode pixel data ({_short(exc)})') from None
    except (ValueError, TypeError, AttributeError, KeyError, EOFError) as exc:
        raise DatasetError(f'"{path}": cannot decode pixel data ({_short(exc)})') from None


def missing_decoder(syntax: str) -> str:
    """What to say about pixel data in transfer syntax ``syntax`` that nothing here decodes."""
    from pydicom.uid import UID

    name = UID(syntax).name
    packages = _DECODER_PACKAGES.get(syntax)
    if packages is None:
        return (f"compressed pixel data ({name}) that no Python package decodes; export the "
                "series uncompressed (e.g. dcmdjpeg, gdcmconv --raw)")
    return f"compressed pixel data ({name}); install {packages} to decode it"


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
