"""Read CT images and masks as arrays in one canonical orientation (RAS).

Every file is reoriented by its own affine to the closest canonical RAS orientation (as nibabel's
``as_closest_canonical`` does), then a mask's shape and affine are compared with the image's
(atol :data:`AFFINE_ATOL_MM`). Files are only ever opened for reading. A gzipped file is
inflated in one call by ISA-L (``isal``; 2x faster than zlib on CT, 4x on masks) and parsed
from memory by nibabel.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from isal import igzip, isal_zlib
from nibabel import orientations

from qsaudit.datasets.cases import Case, LabelRef
from qsaudit.errors import DatasetError

AFFINE_ATOL_MM = 1e-3
"""Largest difference (mm) allowed between a mask's affine and its CT's affine."""

LABEL_STATUSES: tuple[str, ...] = ("missing", "unreadable", "shape_mismatch", "affine_mismatch",
                                   "outside_image")

_RAS = orientations.axcodes2ornt(("R", "A", "S"))


@dataclass
class Volume:
    """A CT volume in canonical RAS orientation.

    ``array``: float32 HU, shape (X, Y, Z) with Z the axial slices (index 0 = most inferior),
    Fortran-ordered as NIfTI stores it, so an axial slice or a run of slices is one contiguous
    block (like the masks :func:`read_mask` returns, which keep the file's order too).
    ``affine``: 4x4 voxel-to-world (mm) affine of ``array``. ``spacing``: voxel size in mm, in
    array axis order. ``path``: the CT file.
    """

    array: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    path: Path


class LabelProblem(DatasetError):
    """A label that cannot be used; ``status`` is one of :data:`LABEL_STATUSES`."""

    def __init__(self, message: str, *, status: str) -> None:
        if status not in LABEL_STATUSES:
            raise ValueError(f"unknown label status {status!r}")
        super().__init__(message)
        self.status = status

    def __reduce__(self):  # keyword-only status: keep it picklable for worker processes
        return _make_label_problem, (str(self), self.status)


def _make_label_problem(message: str, status: str) -> LabelProblem:
    return LabelProblem(message, status=status)


def read_image(case: Case) -> Volume:
    """Read the CT of ``case`` as float32 HU (scl_slope/intercept applied), canonical RAS.

    Raises :class:`DatasetError` naming the file when it is missing or unreadable. A ``dicom``
    case is decoded from its CT series (:mod:`qsaudit.datasets.dicom`).
    """
    if case.layout == "dicom":
        from qsaudit.datasets.dicom import read_dicom_image

        return read_dicom_image(case)
    if case.image is None:
        raise DatasetError(f'case "{case.case_id}": no CT image found')
    path = Path(case.image)
    if not path.is_file():
        raise DatasetError(f'"{path}": CT image not found')
    try:
        image = load_nifti(path)
        data = image.get_fdata(dtype=np.float32, caching="unchanged")
        affine = np.asarray(image.affine, dtype=np.float64)
    except _READ_ERRORS as exc:
        raise DatasetError(f'"{path}": cannot read NIfTI ({_reason(exc, path)})') from None
    data = _as_3d(data, path, DatasetError)
    _check_affine(affine, path, DatasetError)
    data, affine = to_canonical(data, affine)
    spacing = tuple(float(v) for v in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
    return Volume(array=np.asfortranarray(data, dtype=np.float32), affine=affine,
                  spacing=spacing, path=path)  # type: ignore[arg-type]


def read_mask(label: LabelRef, image: Volume, *, label_maps: dict | None = None) -> np.ndarray:
    """Read ``label`` as a bool array of ``image.array``'s shape, in canonical RAS.

    A per-structure file is ``value > 0.5``; a label-map value ``v`` is ``rint(value) == v``.
    ``label_maps`` is an optional per-case cache (any dict, initially empty) so a label map
    shared by many labels is decoded once. Raises :class:`LabelProblem` (status ``missing``,
    ``unreadable``, ``shape_mismatch`` or ``affine_mismatch``; a DICOM ROI or segment also
    ``outside_image``). Empty masks are returned.
    """
    if getattr(label, "kind", None) in ("rtstruct", "seg"):
        from qsaudit.datasets.dicom import read_dicom_mask

        return read_dicom_mask(label, image, cache=label_maps)
    if label.value is None:
        return _inside(_read_label_file(label.path, image))
    key = str(label.path)
    cache = label_maps if label_maps is not None else {}
    if key not in cache:
        try:
            data = _read_label_file(label.path, image)
            if not np.issubdtype(data.dtype, np.integer):
                data = np.rint(data)
                low, high = (float(data.min()), float(data.max())) if data.size else (0, 0)
                small = -32768 <= low and high <= 32767
                data = data.astype(np.int16 if small else np.int32)
            cache[key] = data
        except LabelProblem as problem:
            cache[key] = problem
    cached = cache[key]
    if isinstance(cached, LabelProblem):
        raise cached
    return cached == label.value


def parse_labels_early(case: Case, label_maps: dict) -> Callable[[], None]:
    """Let a layout parse its label files into ``label_maps`` (the cache :func:`read_mask` takes)
    while the CT decodes; returns the function to call before the first :func:`read_mask`.
    Only the ``dicom`` layout does so (its structure sets and SEGs, beside a JPEG 2000 CT)."""
    if case.layout != "dicom":
        return lambda: None
    from qsaudit.datasets.dicom.reading import parse_labels_early as dicom_early

    return dicom_early(case, label_maps)


def read_case(case: Case) -> tuple[Volume, dict[str, np.ndarray | LabelProblem]]:
    """Read the CT of ``case`` and every label: name -> bool mask or the :class:`LabelProblem`.

    Raises :class:`DatasetError` when the CT itself cannot be read.
    """
    label_maps: dict = {}
    ready = parse_labels_early(case, label_maps)
    try:
        volume = read_image(case)
    finally:
        ready()
    masks: dict[str, np.ndarray | LabelProblem] = {}
    for label in case.labels:
        try:
            masks[label.name] = read_mask(label, volume, label_maps=label_maps)
        except LabelProblem as problem:
            masks[label.name] = problem
    return volume, masks


def _inside(data: np.ndarray) -> np.ndarray:
    """``data > 0.5`` as bool, without converting integer data to float (15x faster)."""
    if data.dtype == np.bool_:
        return data
    if np.issubdtype(data.dtype, np.integer):
        return data > 0  # integers: > 0.5 is >= 1 is > 0
    return data > 0.5


def _read_label_file(path: Path, image: Volume) -> np.ndarray:
    """Raw label data in canonical orientation, checked against the image grid."""
    path = Path(path)
    if not path.exists():
        raise LabelProblem(f'"{path}": label file not found', status="missing")
    try:
        label_image = load_nifti(path)
        data = np.asanyarray(label_image.dataobj)
        affine = np.asarray(label_image.affine, dtype=np.float64)
    except _READ_ERRORS as exc:
        raise LabelProblem(f'"{path}": cannot read NIfTI ({_reason(exc, path)})',
                           status="unreadable") from None
    data = _as_3d(data, path, _unreadable)
    _check_affine(affine, path, _unreadable)
    data, affine = to_canonical(data, affine)
    if data.shape != image.array.shape:
        raise LabelProblem(f'"{path}": mask shape {tuple(data.shape)} differs from the CT '
                           f"shape {tuple(image.array.shape)}", status="shape_mismatch")
    difference = float(np.abs(affine - image.affine).max())
    if not difference <= AFFINE_ATOL_MM:
        raise LabelProblem(f'"{path}": mask affine differs from the CT affine by up to '
                           f"{difference:.3g} mm", status="affine_mismatch")
    return data


def load_nifti(path: str | Path) -> nib.Nifti1Image | nib.Nifti2Image:
    """The NIfTI image at ``path``, fully read (no memory map, the file is closed).

    ``.gz`` files are inflated by ISA-L in memory; others are read by nibabel. Raises what the
    readers raise (``OSError``, ``EOFError``, ISA-L/zlib errors, nibabel's ``ImageFileError``)
    for :func:`_reason` to explain.
    """
    path = Path(path)
    if not path.name.lower().endswith(".gz"):
        return nib.load(str(path), mmap=False)
    raw = igzip.decompress(path.read_bytes())
    return _nifti_class(raw, path).from_bytes(raw)


def _nifti_class(raw: bytes, path: Path) -> type:
    """NIfTI-1 or NIfTI-2 from the header size field (either byte order)."""
    if len(raw) >= 4:
        for order in ("little", "big"):
            size = int.from_bytes(raw[:4], order)
            if size == 348:
                return nib.Nifti1Image
            if size == 540:
                return nib.Nifti2Image
    raise nib.filebasedimages.ImageFileError(f"Cannot work out file type of {path}")


def _unreadable(message: str) -> LabelProblem:
    return LabelProblem(message, status="unreadable")


def _as_3d(data: np.ndarray, path: Path, error) -> np.ndarray:
    """Drop trailing singleton axes (e.g. a 4D file with one volume); anything else but 3D fails."""
    shape = data.shape
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) != 3:
        raise error(f'"{path}": expected a 3D volume, got shape {tuple(data.shape)}')
    return data.reshape(shape)


def _check_affine(affine: np.ndarray, path: Path, error) -> None:
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)) \
            or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise error(f'"{path}": invalid affine (not finite or singular)')


def to_canonical(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flip/permute ``data`` to the closest RAS orientation; return it with its new affine."""
    transform = orientations.ornt_transform(orientations.io_orientation(affine), _RAS)
    if np.array_equal(transform, [[0, 1], [1, 1], [2, 1]]):
        return data, affine
    oriented = orientations.apply_orientation(data, transform)
    return oriented, affine @ orientations.inv_ornt_aff(transform, data.shape)


_READ_ERRORS = (OSError, EOFError, zlib.error, isal_zlib.error, ValueError, TypeError,
                nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError)


def _reason(exc: BaseException, path: Path) -> str:
    """A short, human reason for a failed NIfTI read."""
    if isinstance(exc, EOFError):
        return "truncated file"
    if exc.__class__.__name__ == "BadGzipFile" and "Not a gzipped file" in str(exc):
        return "not a gzip stream"
    if isinstance(exc, zlib.error | isal_zlib.error) or exc.__class__.__name__ == "BadGzipFile":
        return "corrupt gzip stream"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, nib.filebasedimages.ImageFileError):
        if "gzip" in str(exc):
            return "not a gzip stream"
        return _header_problem(path)
    short = _SHORT_DATA.search(str(exc))
    if short:
        return f"truncated file ({short.group(2)} of {short.group(1)} data bytes)"
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _header_problem(path: Path) -> str:
    """Tell a truncated file from one that is not NIfTI (only called after a failed read)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            head = handle.read(_NIFTI1_HEADER_BYTES)
            while handle.read(1 << 20):  # a truncated gzip stream shows at its end
                pass
    except EOFError:
        return "truncated file"
    except (OSError, zlib.error):
        return "corrupt gzip stream"
    if len(head) < _NIFTI1_HEADER_BYTES:
        return "truncated file (incomplete header)"
    return "not a NIfTI file"


_NIFTI1_HEADER_BYTES = 348
_SHORT_DATA = re.compile(r"Expected (\d+) bytes, got (\d+) bytes")
