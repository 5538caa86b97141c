"""Read a DICOM case as the NIfTI layouts are read: a RAS :class:`Volume` and bool masks on it."""

from __future__ import annotations

from dataclasses import dataclass
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


def _cached(label: DicomLabel, geometry: SeriesGeometry, cache: dict) -> Any:
    key = ("dicom", str(label.path))
    if key not in cache:
        try:
            cache[key] = (read_segmentation(label.path, geometry) if label.kind == "seg"
                          else read_structure_set(label.path))
        except LabelProblem as problem:
            cache[key] = problem
    found = cache[key]
    if isinstance(found, LabelProblem):
        raise found
    return found
