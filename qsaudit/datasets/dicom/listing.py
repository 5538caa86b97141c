"""Turn an indexed DICOM tree into cases: one per CT series, labels from RTSTRUCTs and SEGs.

Files are grouped by Series Instance UID, wherever they lie (files whose UID an anonymiser
blanked: by folder, frame of reference, series number and description). A structure set or SEG belongs to
the CT series it references (Referenced Series, else the series holding the instances it
references, else the one CT series of its frame of reference), never to its folder. One that
references no CT series in the dataset becomes a case of its own without an image, so its
labels get a status row. Series problems found in the headers (missing or duplicate slices,
uneven spacing, gantry tilt) are kept on the case and raised when its image is read, so they
too become status rows and the scan goes on.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from qsaudit.datasets.cases import Case, LabelRef
from qsaudit.datasets.dicom.index import Header, index_headers
from qsaudit.datasets.dicom.series import SeriesGeometry, series_geometry
from qsaudit.errors import DatasetError

_UNSAFE = re.compile(r"[^A-Za-z0-9.+-]+")


@dataclass(frozen=True)
class DicomCase(Case):
    """A CT series (``image`` is its folder) with the labels of the objects referencing it.

    ``geometry`` is None when the series is absent or broken; ``problem`` then says why.
    """

    study_uid: str | None = None
    series_uid: str | None = None
    geometry: SeriesGeometry | None = None
    problem: str | None = None


@dataclass(frozen=True)
class DicomLabel(LabelRef):
    """An ROI of a structure set (``kind`` "rtstruct", ``value`` its ROI Number) or a segment
    of a SEG (``kind`` "seg", ``value`` its Segment Number); ``path`` is that object's file.

    ``structure_name`` is the name to resolve through the registry: the name as written, or
    for a SEG segment whose label the registry does not know, its coded property type.
    """

    kind: str = "rtstruct"
    sop_instance_uid: str | None = None
    structure_name: str | None = None


def list_dicom_cases(root: Path) -> list[Case]:
    """Every CT series under ``root`` as a :class:`DicomCase` (unsorted)."""
    headers = index_headers(root)
    by_series: dict[str, list[Header]] = defaultdict(list)
    objects: list[Header] = []
    for header in headers:
        if header.kind in ("ct", "enhanced_ct"):
            by_series[header.series_key].append(header)
        elif header.kind in ("rtstruct", "seg"):
            objects.append(header)
    instance_series = {h.sop_instance: uid for uid, group in by_series.items() for h in group}
    attached: dict[str, list[Header]] = defaultdict(list)
    orphans: list[tuple[Header, str]] = []
    for obj in sorted(objects, key=lambda h: str(h.path)):
        uid, why = _referenced_series(obj, by_series, instance_series)
        if uid is None:
            orphans.append((obj, why))
        else:
            attached[uid].append(obj)
    ids = _case_ids({uid: group[0] for uid, group in by_series.items()})
    cases: list[Case] = []
    for uid, group in by_series.items():
        geometry, problem = None, None
        if any(h.kind == "enhanced_ct" for h in group):
            problem = (f'"{group[0].path}": enhanced (multi-frame) CT is not supported; export '
                       "the series as one file per slice")
        else:
            try:
                geometry = series_geometry(group)
            except DatasetError as exc:
                problem = str(exc)
        folder = Path(os.path.commonpath([str(h.path.parent) for h in group]))
        cases.append(DicomCase(
            case_id=ids[uid], image=folder, labels=_labels(attached.get(uid, [])),
            layout="dicom", study_uid=group[0].study_uid or None,
            series_uid=group[0].series_uid or None,
            geometry=geometry, problem=problem))
    taken = {case.case_id for case in cases}
    for obj, why in orphans:
        case_id = _unique(f"{_readable(obj)}_no-ct", obj.sop_instance, taken)
        cases.append(DicomCase(
            case_id=case_id, image=None, labels=_labels([obj]), layout="dicom",
            study_uid=obj.study_uid or None,
            series_uid=obj.referenced_series[0] if obj.referenced_series else None,
            problem=f'"{obj.path}": {why}'))
    return cases


def _referenced_series(obj: Header, by_series: dict[str, list[Header]],
                       instance_series: dict[str, str]) -> tuple[str | None, str]:
    """The CT series ``obj`` belongs to, or None and why not."""
    for uid in obj.referenced_series:
        if uid in by_series:
            return uid, ""
    found = {instance_series[i] for i in obj.referenced_instances if i in instance_series}
    if len(found) == 1:
        return found.pop(), ""
    if obj.frame_of_reference:
        same_frame = [uid for uid, group in by_series.items()
                      if group[0].frame_of_reference == obj.frame_of_reference]
        if len(same_frame) == 1:
            return same_frame[0], ""
        if len(same_frame) > 1:
            return None, (f"{len(same_frame)} CT series share its frame of reference and it "
                          "references none of them")
    what = "structure set" if obj.kind == "rtstruct" else "DICOM-SEG"
    if obj.referenced_series:
        return None, (f"the {what} references CT series {obj.referenced_series[0]}, which is "
                      "not in the dataset")
    return None, f"the {what} references no CT series of the dataset"


def _labels(objects: list[Header]) -> tuple[LabelRef, ...]:
    """One label per ROI/segment; a repeated name gets " (2)", " (3)", ... after it."""
    from qsaudit.registry import lookup

    labels: list[LabelRef] = []
    seen: dict[str, int] = {}
    for obj in objects:
        for roi in sorted(obj.rois, key=lambda r: r.number):
            written = roi.name or roi.coded or f"{obj.kind} {roi.number}"
            structure = written
            if obj.kind == "seg" and roi.coded and lookup(written) is None:
                structure = roi.coded
            seen[written] = seen.get(written, 0) + 1
            name = written if seen[written] == 1 else f"{written} ({seen[written]})"
            labels.append(DicomLabel(name=name, path=obj.path, value=roi.number, kind=obj.kind,
                                     sop_instance_uid=obj.sop_instance or None,
                                     structure_name=structure))
    return tuple(labels)


def _case_ids(first: dict[str, Header]) -> dict[str, str]:
    """Readable, stable ids: patient_studydate_series; the series UID's hash breaks a tie."""
    readable = {uid: _readable(header) for uid, header in first.items()}
    counts: dict[str, int] = defaultdict(int)
    for text in readable.values():
        counts[text] += 1
    return {uid: text if counts[text] == 1 else f"{text}_{_digest(uid)}"
            for uid, text in readable.items()}


def _readable(header: Header) -> str:
    series = (f"s{header.series_number}" if header.series_number
              else header.series_description)
    parts = [_UNSAFE.sub("-", part).strip("-.") for part in
             (header.patient_id, header.study_date, series)]
    text = "_".join(part for part in parts if part)
    return text or f"series-{_digest(header.series_key)}"


def _unique(text: str, uid: str, taken: set[str]) -> str:
    if text in taken:
        text = f"{text}_{_digest(uid)}"
    taken.add(text)
    return text


def _digest(uid: str) -> str:
    return hashlib.sha1(uid.encode()).hexdigest()[:6]
