"""What a dataset listing is made of: cases, each with a CT image and its labels.

A listing is built from folder names and small metadata files only; no volume is decompressed
until :func:`qsaudit.datasets.read_image` or :func:`qsaudit.datasets.read_mask` is called.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

LAYOUTS: tuple[str, ...] = ("per-structure", "nnunet", "msd", "paired", "single", "dicom")
"""Dataset layouts that :func:`qsaudit.datasets.list_cases` understands."""

NIFTI_ENDINGS: tuple[str, ...] = (".nii.gz", ".nii")


@dataclass(frozen=True)
class LabelRef:
    """One label of a case, found but not read.

    ``name`` is the label as named in the dataset (file name or label table), ``path`` the
    per-structure mask file or the label-map file, and ``value`` the integer value of the
    label inside a label map (``None`` for a per-structure binary mask file).
    """

    name: str
    path: Path
    value: int | None


@dataclass(frozen=True)
class Case:
    """One CT volume and its labels.

    ``image`` is ``None`` when the CT file is missing: the case is still listed, and reading its
    image raises :class:`qsaudit.errors.DatasetError`. ``layout`` is one of :data:`LAYOUTS`.
    """

    case_id: str
    image: Path | None
    labels: tuple[LabelRef, ...]
    layout: str


def nifti_stem(name: str) -> str | None:
    """Return ``name`` without its NIfTI ending (``.nii.gz`` or ``.nii``), or ``None``."""
    for ending in NIFTI_ENDINGS:
        if name.endswith(ending) and len(name) > len(ending):
            return name[: -len(ending)]
    return None


def find_nifti(folder: Path, stem: str) -> Path | None:
    """Return ``folder/stem.nii.gz`` or ``folder/stem.nii``, whichever is a file, else ``None``."""
    for ending in NIFTI_ENDINGS:
        candidate = folder / f"{stem}{ending}"
        if candidate.is_file():
            return candidate
    return None


_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple:
    """Sort key that orders embedded numbers by value (``pt_2`` before ``pt_10``)."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part)
                 for part in _DIGITS.split(text) if part)
