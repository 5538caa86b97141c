"""Index a folder tree of DICOM files by their headers, without reading any pixel data.

Any depth, any file names: a file counts as DICOM when it carries the Part 10 preamble (``DICM``
at byte 128) or ends in ``.dcm``. Each file's header is parsed by pydicom up to the pixel data
and only for the attributes listed in :data:`_INDEX_TAGS`. Headers are cached per process by
(path, size, mtime), so detecting a layout, listing it and listing it again read each file once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2.1"
RT_STRUCTURE_SET = "1.2.840.10008.5.1.4.1.1.481.3"
SEGMENTATION = "1.2.840.10008.5.1.4.1.1.66.4"

_PREAMBLE_BYTES = 132
_INDEX_TAGS = (
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
    "FrameOfReferenceUID", "PatientID", "StudyDate", "SeriesNumber", "SeriesDescription",
    "InstanceNumber", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
    "Rows", "Columns", "StructureSetROISequence", "ReferencedFrameOfReferenceSequence",
    "SegmentSequence", "ReferencedSeriesSequence",
)


@dataclass(frozen=True)
class RoiEntry:
    """One ROI of a structure set (``number``: ROI Number) or segment of a SEG (Segment Number).

    ``coded``: for a SEG segment, the meaning of its segmented property type, prefixed by its
    modifier (``"Left Kidney"``); ``None`` for an ROI.
    """

    number: int
    name: str
    coded: str | None = None


@dataclass(frozen=True)
class Header:
    """What the index keeps of one DICOM file (all UIDs as strings, ``""`` when absent)."""

    path: Path
    sop_class: str
    sop_instance: str
    study_uid: str
    series_uid: str
    frame_of_reference: str
    patient_id: str
    study_date: str
    series_number: str
    series_description: str
    position: tuple[float, ...] | None = None
    orientation: tuple[float, ...] | None = None
    pixel_spacing: tuple[float, ...] | None = None
    rows: int = 0
    columns: int = 0
    rois: tuple[RoiEntry, ...] = ()
    referenced_series: tuple[str, ...] = ()
    referenced_instances: frozenset[str] = frozenset()

    @property
    def series_key(self) -> str:
        """The series UID, or for a file without one (blanked by some anonymisers) its folder,
        frame of reference, series number and description."""
        return self.series_uid or "|".join((
            "no-uid", str(self.path.parent), self.frame_of_reference, self.series_number,
            self.series_description))

    @property
    def kind(self) -> str:
        """``"ct"``, ``"enhanced_ct"``, ``"rtstruct"``, ``"seg"`` or ``"other"``."""
        return {CT_IMAGE: "ct", ENHANCED_CT_IMAGE: "enhanced_ct", RT_STRUCTURE_SET: "rtstruct",
                SEGMENTATION: "seg"}.get(self.sop_class, "other")


_CACHE: dict[str, tuple[tuple[int, int], Header | None]] = {}


def dicom_files(root: Path, *, first_only: bool = False) -> list[Path]:
    """Files under ``root`` (any depth, hidden entries skipped) that look like DICOM files."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or name.upper() == "DICOMDIR":
                continue
            path = Path(folder, name)
            if name.lower().endswith(".dcm") or _has_preamble(path):
                found.append(path)
                if first_only:
                    return found
    return found


def index_headers(root: Path) -> list[Header]:
    """Headers of every readable DICOM file under ``root``; unreadable files are skipped."""
    headers = []
    for path in dicom_files(root):
        header = read_header(path)
        if header is not None:
            headers.append(header)
    return headers


def read_header(path: Path) -> Header | None:
    """The cached :class:`Header` of ``path``, or None for a file pydicom cannot parse."""
    try:
        stat = path.stat()
    except OSError:
        return None
    key, signature = str(path), (stat.st_size, stat.st_mtime_ns)
    cached = _CACHE.get(key)
    if cached is not None and cached[0] == signature:
        return cached[1]
    header = _parse(path)
    _CACHE[key] = (signature, header)
    return header


def _has_preamble(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(_PREAMBLE_BYTES)
    except OSError:
        return False
    return len(head) == _PREAMBLE_BYTES and head[128:] == b"DICM"


def _parse(path: Path) -> Header | None:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(_INDEX_TAGS),
                             force=True)
        return _header(path, ds)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError,
            AttributeError, IndexError, NotImplementedError):
        return None


def _header(path: Path, ds: Any) -> Header | None:
    meta = getattr(ds, "file_meta", None)
    meta = meta if meta is not None else {}
    # some anonymisers blank the dataset's UIDs; the file meta keeps the SOP class and instance
    sop_class = _text(ds, "SOPClassUID") or _text(meta, "MediaStorageSOPClassUID")
    if not sop_class:
        return None
    header = {
        "path": path, "sop_class": sop_class,
        "sop_instance": _text(ds, "SOPInstanceUID") or _text(meta, "MediaStorageSOPInstanceUID"),
        "study_uid": _text(ds, "StudyInstanceUID"),
        "series_uid": _text(ds, "SeriesInstanceUID"),
        "frame_of_reference": _text(ds, "FrameOfReferenceUID"), "patient_id": _text(ds, "PatientID"),
        "study_date": _text(ds, "StudyDate"), "series_number": _text(ds, "SeriesNumber"),
        "series_description": _text(ds, "SeriesDescription"),
        "position": _floats(ds, "ImagePositionPatient"),
        "orientation": _floats(ds, "ImageOrientationPatient"),
        "pixel_spacing": _floats(ds, "PixelSpacing"), "rows": int(ds.get("Rows", 0) or 0),
        "columns": int(ds.get("Columns", 0) or 0)}
    if sop_class == RT_STRUCTURE_SET:
        header.update(_structure_set_refs(ds))
    elif sop_class == SEGMENTATION:
        header.update(_segmentation_refs(ds))
    return Header(**header)


def _structure_set_refs(ds: Any) -> dict[str, Any]:
    rois = tuple(RoiEntry(int(item.ROINumber), str(item.get("ROIName", "") or "").strip())
                 for item in ds.get("StructureSetROISequence", []) if "ROINumber" in item)
    series, instances, frames = [], set(), []
    for frame in ds.get("ReferencedFrameOfReferenceSequence", []):
        frames.append(_text(frame, "FrameOfReferenceUID"))
        for study in frame.get("RTReferencedStudySequence", []):
            for item in study.get("RTReferencedSeriesSequence", []):
                series.append(_text(item, "SeriesInstanceUID"))
                instances.update(_text(image, "ReferencedSOPInstanceUID")
                                 for image in item.get("ContourImageSequence", []))
    out: dict[str, Any] = {"rois": rois, "referenced_series": tuple(s for s in series if s),
                           "referenced_instances": frozenset(i for i in instances if i)}
    if not _text(ds, "FrameOfReferenceUID") and frames:
        out["frame_of_reference"] = next((f for f in frames if f), "")
    return out


def _segmentation_refs(ds: Any) -> dict[str, Any]:
    rois = []
    for item in ds.get("SegmentSequence", []):
        if "SegmentNumber" not in item:
            continue
        rois.append(RoiEntry(int(item.SegmentNumber),
                             str(item.get("SegmentLabel", "") or "").strip(), _coded(item)))
    series, instances = [], set()
    for item in ds.get("ReferencedSeriesSequence", []):
        series.append(_text(item, "SeriesInstanceUID"))
        instances.update(_text(image, "ReferencedSOPInstanceUID")
                         for image in item.get("ReferencedInstanceSequence", []))
    return {"rois": tuple(rois), "referenced_series": tuple(s for s in series if s),
            "referenced_instances": frozenset(i for i in instances if i)}


def _coded(segment: Any) -> str | None:
    """The segmented property type's meaning with its modifier ("Left Kidney"), if any."""
    types = segment.get("SegmentedPropertyTypeCodeSequence", [])
    if not types:
        return None
    meaning = _text(types[0], "CodeMeaning")
    modifiers = types[0].get("SegmentedPropertyTypeModifierCodeSequence", [])
    modifier = _text(modifiers[0], "CodeMeaning") if modifiers else ""
    text = f"{modifier} {meaning}".strip()
    return text or None


def _text(ds: Any, keyword: str) -> str:
    value = ds.get(keyword, "")
    return "" if value is None else str(value).strip()


def _floats(ds: Any, keyword: str) -> tuple[float, ...] | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    values = list(value) if isinstance(value, list | tuple) or type(value).__name__ == \
        "MultiValue" else [value]
    try:
        return tuple(float(v) for v in values)
    except (TypeError, ValueError):
        return None
