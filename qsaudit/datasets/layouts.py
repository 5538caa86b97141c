"""Turn a dataset folder into a list of cases: layout detection and one lister per layout.

Listing only stats and lists folders and reads small JSON/CSV files: no volume is opened.
For label-map layouts the values present in a map are only known once it is read, so every
label of the table (background excluded) is listed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from qsaudit.datasets.cases import (
    LAYOUTS,
    NIFTI_ENDINGS,
    Case,
    LabelRef,
    find_nifti,
    natural_key,
    nifti_stem,
)
from qsaudit.datasets.dicom.index import dicom_files
from qsaudit.datasets.label_tables import (
    find_adjacent_table,
    labels_from_json,
    preset_table,
    read_json,
    read_label_table,
)
from qsaudit.errors import DatasetError, UsageError

LABEL_MAP_STEMS: tuple[str, ...] = ("combined_labels", "segmentations")
"""Label-map file names used in a case folder when it has no per-structure masks."""

PAIRED_FOLDERS: tuple[tuple[str, str], ...] = (
    ("img", "label"), ("images", "labels"), ("imagesTr", "labelsTr"),
)

_PAIR_PREFIX = re.compile(r"^(?:images?|img|labels?|label|segs?|segmentations?|masks?)[_-]?(?=\d)",
                          re.IGNORECASE)


def detect_layout(root: Path) -> str:
    """Return the layout of the dataset folder ``root``, one of :data:`LAYOUTS`.

    Order of checks: a ``dataset.json`` (nnU-Net v2 or MSD), a single case folder, paired
    image/label folders, a folder of per-structure case folders, then a tree holding DICOM
    files (stops at the first one; no header is parsed).
    """
    root = _check_folder(root)
    kind = _dataset_json_kind(root)
    if kind is not None:
        return kind
    if _is_case_folder(root):
        return "single"
    if _paired_folders(root) is not None:
        return "paired"
    if any(_is_case_folder(entry) for entry in _subfolders(root)):
        return "per-structure"
    if dicom_files(root, first_only=True):
        return "dicom"
    raise DatasetError(
        f'"{root}": no known dataset layout (expected case folders with ct.nii.gz and '
        "segmentations/, an nnU-Net or MSD dataset.json, img/ + label/ folders, or DICOM "
        "files)")


def list_cases(root: str | Path, *, layout: str | None = None,
               labels_table: str | Path | None = None,
               preset: str | None = None) -> list[Case]:
    """List the cases of the dataset folder ``root``, sorted by case id (numbers by value).

    ``layout`` forces one of :data:`LAYOUTS` instead of detecting it. Names of label-map
    values come from ``labels_table`` (CSV ``value,name`` or JSON), else ``preset``
    (``"btcv"``, ``"amos"``), else the dataset's own ``dataset.json``, else a table next to the
    label map (``labels.csv``/``labels.json``/``label_names.*``/``dataset.json``).
    Raises :class:`DatasetError` when the folder holds no case.
    """
    root = _check_folder(Path(root))
    if layout is not None and layout not in LAYOUTS:
        raise UsageError(f'unknown layout "{layout}" (choose from {", ".join(LAYOUTS)})')
    if labels_table is not None and preset is not None:
        raise UsageError("give either a label table or a preset, not both")
    names: dict[int, str] | None = None
    if labels_table is not None:
        names = read_label_table(labels_table)
    elif preset is not None:
        names = preset_table(preset)
    layout = layout or detect_layout(root)
    lister = {
        "per-structure": _list_per_structure,
        "nnunet": _list_nnunet,
        "msd": _list_msd,
        "paired": _list_paired,
        "single": _list_single,
        "dicom": _list_dicom,
    }[layout]
    cases = lister(root, names)
    if not cases:
        raise DatasetError(f'"{root}": no cases found (layout "{layout}")')
    return sorted(cases, key=lambda case: natural_key(case.case_id))


# -- per-structure and single ------------------------------------------------------------------

def _list_per_structure(root: Path, names: dict[int, str] | None) -> list[Case]:
    root_table = _LazyTable(names, root)
    return [_case_from_folder(folder, folder.name, "per-structure", root_table)
            for folder in _subfolders(root) if _is_case_folder(folder)]


def _list_single(root: Path, names: dict[int, str] | None) -> list[Case]:
    if not _is_case_folder(root):
        raise DatasetError(f'"{root}": not a case folder (no ct.nii.gz, segmentations/ or '
                           "label map)")
    return [_case_from_folder(root, root.name, "single", _LazyTable(names, None))]


def _case_from_folder(folder: Path, case_id: str, layout: str, table: _LazyTable) -> Case:
    image = find_nifti(folder, "ct")
    labels: list[LabelRef] = []
    seg_dir = folder / "segmentations"
    if seg_dir.is_dir():
        for entry in _nifti_files(seg_dir):
            labels.append(LabelRef(name=nifti_stem(entry.name) or entry.name,
                                   path=entry, value=None))
    if not labels:
        label_map = next((found for stem in LABEL_MAP_STEMS
                          if (found := find_nifti(folder, stem)) is not None), None)
        if label_map is not None:
            mapping = table.get(folder)
            if mapping is None:
                raise DatasetError(f'"{label_map}": label map without label names (give a '
                                   "label table (--labels value,name CSV) or a preset)")
            labels = [LabelRef(name=name, path=label_map, value=value)
                      for value, name in mapping.items()]
    return Case(case_id=case_id, image=image, labels=tuple(labels), layout=layout)


class _LazyTable:
    """Label names for label maps: the given table, else one found next to the map."""

    def __init__(self, names: dict[int, str] | None, root: Path | None) -> None:
        self._names = names
        self._root = root
        self._root_table: dict[int, str] | None = None
        self._root_searched = False

    def get(self, folder: Path) -> dict[int, str] | None:
        if self._names is not None:
            return self._names
        found = find_adjacent_table(folder)
        if found is not None:
            return found
        if self._root is not None and not self._root_searched:
            self._root_table = find_adjacent_table(self._root)
            self._root_searched = True
        return self._root_table


# -- nnU-Net v2 ---------------------------------------------------------------------------------

def _list_nnunet(root: Path, names: dict[int, str] | None) -> list[Case]:
    meta_path = root / "dataset.json"
    meta = _dataset_json(root)
    ending = meta.get("file_ending", ".nii.gz")
    if ending not in NIFTI_ENDINGS:
        raise DatasetError(f'"{meta_path}": file_ending "{ending}" is not supported '
                           "(NIfTI only: .nii.gz or .nii)")
    if names is None:
        if "labels" not in meta:
            raise DatasetError(f'"{meta_path}": no "labels" mapping')
        names = labels_from_json(meta["labels"], source=meta_path)
    cases: dict[str, Case] = {}
    for images_name, labels_name in (("imagesTr", "labelsTr"), ("imagesTs", "labelsTs")):
        images_dir, labels_dir = root / images_name, root / labels_name
        if images_name == "imagesTs" and not labels_dir.is_dir():
            continue  # test images without labels have nothing to audit
        image_ids = {name[: -len("_0000" + ending)]: path for name, path in
                     _files_ending(images_dir, "_0000" + ending).items()}
        label_ids = {name[: -len(ending)] for name in _files_ending(labels_dir, ending)}
        for case_id in image_ids.keys() | label_ids:
            if case_id in cases:
                continue
            label_path = labels_dir / f"{case_id}{ending}"
            cases[case_id] = Case(
                case_id=case_id, image=image_ids.get(case_id),
                labels=tuple(LabelRef(name, label_path, value) for value, name in names.items()),
                layout="nnunet")
    return list(cases.values())


# -- Medical Segmentation Decathlon -------------------------------------------------------------

def _list_msd(root: Path, names: dict[int, str] | None) -> list[Case]:
    meta_path = root / "dataset.json"
    meta = _dataset_json(root)
    training = meta.get("training")
    if not isinstance(training, list):
        raise DatasetError(f'"{meta_path}": no "training" list')
    if names is None:
        if "labels" not in meta:
            raise DatasetError(f'"{meta_path}": no "labels" mapping')
        names = labels_from_json(meta["labels"], source=meta_path)
    cases: list[Case] = []
    for number, entry in enumerate(training):
        if not isinstance(entry, dict) or not isinstance(entry.get("label"), str):
            raise DatasetError(f'"{meta_path}": training entry {number} has no "label" path')
        label_path = root / entry["label"]
        image_rel = entry.get("image")
        image_path = root / image_rel if isinstance(image_rel, str) else None
        case_id = nifti_stem(label_path.name)
        if case_id is None:
            raise DatasetError(f'"{meta_path}": training entry {number}: "{entry["label"]}" '
                               "is not a NIfTI file")
        cases.append(Case(
            case_id=case_id,
            image=image_path if image_path is not None and image_path.is_file() else None,
            labels=tuple(LabelRef(name, label_path, value) for value, name in names.items()),
            layout="msd"))
    return cases


# -- paired img/ + label/ -----------------------------------------------------------------------

def _list_paired(root: Path, names: dict[int, str] | None) -> list[Case]:
    folders = _paired_folders(root)
    if folders is None:
        raise DatasetError(f'"{root}": no image/label folder pair '
                           f'({", ".join(f"{i}/ + {lab}/" for i, lab in PAIRED_FOLDERS)})')
    if names is None:
        names = find_adjacent_table(root)
    if names is None:
        raise DatasetError(f'"{root}": paired layout needs label names: give a label table '
                           "(--labels value,name CSV) or a preset (--preset btcv|amos)")
    images = {_pair_key(path.name): path for path in _nifti_files(folders[0])}
    labels = {_pair_key(path.name): path for path in _nifti_files(folders[1])}
    return [Case(case_id=key, image=images.get(key),
                 labels=tuple(LabelRef(name, labels[key], value)
                              for value, name in names.items()) if key in labels else (),
                 layout="paired")
            for key in images.keys() | labels.keys()]


def _pair_key(file_name: str) -> str:
    stem = nifti_stem(file_name) or file_name
    stem = stem.removesuffix("_0000")
    return _PAIR_PREFIX.sub("", stem) or stem


def _paired_folders(root: Path) -> tuple[Path, Path] | None:
    for images_name, labels_name in PAIRED_FOLDERS:
        images_dir, labels_dir = root / images_name, root / labels_name
        if images_dir.is_dir() and labels_dir.is_dir():
            return images_dir, labels_dir
    return None


# -- DICOM ------------------------------------------------------------------------------------

def _list_dicom(root: Path, names: dict[int, str] | None) -> list[Case]:
    from qsaudit.datasets.dicom import list_dicom_cases

    return list_dicom_cases(root)


# -- shared helpers -----------------------------------------------------------------------------

def _check_folder(root: Path | str) -> Path:
    root = Path(root)
    if not root.exists():
        raise DatasetError(f'"{root}": no such folder')
    if not root.is_dir():
        raise DatasetError(f'"{root}": not a folder')
    return root


def _dataset_json(root: Path) -> dict[str, Any]:
    path = root / "dataset.json"
    if not path.is_file():
        raise DatasetError(f'"{root}": no dataset.json')
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise DatasetError(f'"{path}": expected a JSON object')
    return meta


def _dataset_json_kind(root: Path) -> str | None:
    if not (root / "dataset.json").is_file():
        return None
    meta = _dataset_json(root)
    if "file_ending" in meta:
        return "nnunet"
    training = meta.get("training")
    if isinstance(training, list) and any(isinstance(e, dict) and "label" in e for e in training):
        return "msd"
    if isinstance(meta.get("labels"), dict) and (root / "labelsTr").is_dir():
        return "nnunet"
    return None


def _is_case_folder(folder: Path) -> bool:
    return (find_nifti(folder, "ct") is not None or (folder / "segmentations").is_dir()
            or any(find_nifti(folder, stem) is not None for stem in LABEL_MAP_STEMS))


def _entries(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return sorted((e for e in it if not e.name.startswith(".")),
                          key=lambda e: natural_key(e.name))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise DatasetError(f'"{folder}": cannot list folder ({exc.strerror})') from None


def _subfolders(folder: Path) -> list[Path]:
    return [Path(e.path) for e in _entries(folder) if e.is_dir()]


def _nifti_files(folder: Path) -> list[Path]:
    return [Path(e.path) for e in _entries(folder)
            if e.is_file() and nifti_stem(e.name) is not None]


def _files_ending(folder: Path, ending: str) -> dict[str, Path]:
    return {e.name: Path(e.path) for e in _entries(folder)
            if e.is_file() and e.name.endswith(ending) and len(e.name) > len(ending)}
