"""Read a DICOM case as the NIfTI layouts are read: a RAS :class:`Volume` and bool masks on it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qsaudit.datasets.dicom.listing import DicomCase, DicomLabel
from qsaudit.datasets.dicom.rtstruct import rasterise_roi, read_structure_set
from qsaudit.datasets.dicom.seg import read_segmentation, segment_mask
from qsaudit.datasets.dicom.series import SeriesGeometry, canonical_buffer, read_pixels
from qsaudit.datasets.volumes import LabelProblem, Volume
from qsaudit.errors import DatasetError


@dataclass
class DicomVolume(Volume):
    """A :class:`Volume` read from a CT series; ``geometry`` is its grid in file order."""

    geometry: SeriesGeometry | None = None

    @property
    def file_affine(self) -> np.ndarray:
        """Voxel-to-world (RAS, mm) affine of the series in its own voxel order."""
        return self.geometry.ras_affine


def read_dicom_image(case: DicomCase) -> DicomVolume:
    """Decode the CT series of ``case`` as float32 HU in canonical RAS.

    Raises :class:`DatasetError` naming a file and the problem (absent series, missing or
    duplicate slices, uneven spacing, gantry tilt, undecodable pixel data).
    """
    if case.geometry is None:
        raise DatasetError(case.problem or f'case "{case.case_id}": no CT series found')
    geometry = case.geometry
    data, slices, affine = canonical_buffer(geometry, np.float32)
    read_pixels(geometry, slices)
    spacing = tuple(float(v) for v in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
    return DicomVolume(array=data, affine=affine, spacing=spacing, path=case.image,
                       geometry=geometry)  # type: ignore[arg-type]


def read_dicom_mask(label: DicomLabel, image: Volume, *, cache: dict | None = None
                    ) -> np.ndarray:
    """ROI or segment ``label`` as a bool array of ``image.array``'s shape, canonical RAS.

    ``cache`` (any dict) keeps each structure set or SEG decoded once per case. Raises
    :class:`LabelProblem` (``missing``, ``unreadable``, ``affine_mismatch``, ``outside_image``).
    """
    geometry = getattr(image, "geometry", None)
    if geometry is None:
        raise LabelProblem(f'"{label.path}": a DICOM label needs its CT series as the image',
                           status="affine_mismatch")
    if not label.path.exists():
        raise LabelProblem(f'"{label.path}": label file not found', status="missing")
    source = _cached(label, geometry, {} if cache is None else cache)
    mask, slices, _ = canonical_buffer(geometry, bool)
    if label.kind == "seg":
        segment_mask(source, label.path, int(label.value), label.name, geometry, slices)
    else:
        rasterise_roi(source, int(label.value), label.name, geometry, slices)
    return mask


def parse_labels_early(case: DicomCase, cache: dict) -> Callable[[], None]:
    """Start parsing the structure sets and SEGs of ``case`` into ``cache`` (as
    :func:`read_dicom_mask` would) on a thread, while the caller decodes the CT; returns the
    function that waits for it. Only pays off when the CT's decoder releases the GIL (JPEG 2000),
    so other series return a no-op."""
    import threading

    from qsaudit.datasets.dicom import j2k

    geometry = case.geometry
    labels = {str(label.path): label for label in case.labels if label.path.exists()}
    if geometry is None or not labels or not geometry.slices or j2k.threads_for(
            _syntax(geometry.slices[0])) <= 1:
        return lambda: None

    def parse() -> None:
        for label in labels.values():
            try:
                _cached_or_problem(label, geometry, cache)
            except Exception:  # noqa: BLE001 - read_dicom_mask parses it again and reports
                return

    thread = threading.Thread(target=parse, name="qsaudit-dicom-labels", daemon=True)
    thread.start()
    return thread.join


def _syntax(path: Path) -> str:
    """The transfer syntax of the DICOM file at ``path`` (header only), or ""."""
    import pydicom

    try:
        meta = pydicom.filereader.read_file_meta_info(path)
    except (OSError, ValueError, TypeError, EOFError, pydicom.errors.InvalidDicomError):
        return ""
    return str(meta.get("TransferSyntaxUID", ""))


def _cached_or_problem(label: DicomLabel, geometry: SeriesGeometry, cache: dict) -> None:
    key = ("dicom", str(label.path))
    if key not in cache:
        try:
            cache[key] = (read_segmentation(label.path, geometry) if label.kind == "seg"
                          else read_structure_set(label.path))
        except LabelProblem as problem:
            cache[key] = problem


def _cached(label: DicomLabel, geometry: SeriesGeometry, cache: dict) -> Any:
    _cached_or_problem(label, geometry, cache)
    found = cache[("dicom", str(label.path))]
    if isinstance(found, LabelProblem):
        raise found
    return found
