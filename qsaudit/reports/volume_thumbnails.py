"""Thumbnails rebuilt from the CT and label files named in a results table.

A scan draws thumbnails from the volumes it has in memory; ``qsaudit merge`` and re-rendering a
results folder do not have them, so this module reads the files again (``image_path``,
``label_path``, ``label_value``), brings them to canonical RAS orientation (the orientation of
``slice_index``) and cuts the worst slices and the coronal and sagittal planes through each label.
With reference masks (a truth table's ``reference_path``) their outlines are cut too. Each CT and
label file is read once.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from qsaudit.reports.thumbnails import (
    ThumbnailInputs,
    cut_planes,
    plane_view,
    select_thumbnail_slices,
)

PLANE_SIZE = 160  # samples on the longer side of a stored coronal/sagittal plane


def thumbnails_from_volumes(
    results: pd.DataFrame,
    slices: pd.DataFrame | None,
    keys: Sequence[tuple[str, str]],
    *,
    k: int = 3,
    references: dict[tuple[str, str], tuple[str, object]] | None = None,
) -> dict[tuple[str, str], ThumbnailInputs]:
    """``ThumbnailInputs`` for the labels ``keys`` (``(case_id, label)``), read from their files.

    The worst ``k`` slices come from ``slices`` (``SLICE_COLUMNS``), or the row's ``worst_slice``
    when the label has no slice rows. Labels whose files are missing, unreadable or inconsistent
    are left out of the returned mapping (the report then shows them without a thumbnail).
    ``references``: ``(case_id, label)`` -> (reference mask file, value in it or None); a
    reference that cannot be read, or lies on another grid, is simply not drawn.
    """
    import nibabel as nib

    wanted = set(keys)
    rows = results[[(str(c), str(lab)) in wanted
                    for c, lab in zip(results["case_id"], results["label"], strict=True)]]
    per_label = _slice_tables(slices, wanted)
    out: dict[tuple[str, str], ThumbnailInputs] = {}
    for image_path, group in rows.groupby("image_path", sort=False, dropna=True):
        ct = _load_canonical(nib, Path(str(image_path)))
        if ct is None:
            continue
        ct_data, spacing3 = ct
        spacing = spacing3[:2]
        label_cache: dict[str, np.ndarray | None] = {}
        for _, row in group.iterrows():
            key = (str(row["case_id"]), str(row["label"]))
            z = _worst_slices(per_label.get(key), row.get("worst_slice"), k)
            label_path = row.get("label_path")
            if not z or label_path is None or pd.isna(label_path):
                continue
            if label_path not in label_cache:
                loaded = _load_canonical(nib, Path(str(label_path)))
                label_cache[label_path] = None if loaded is None else loaded[0]
            labels = label_cache[label_path]
            if labels is None or labels.shape[:3] != ct_data.shape[:3]:
                continue
            z = [i for i in z if 0 <= i < ct_data.shape[2]]
            if not z:
                continue
            value = row.get("label_value")
            volume = _mask(labels, value)
            reference = _reference(nib, (references or {}).get(key), ct_data.shape[:3])
            planes = {}
            shown = volume if reference is None else volume | reference  # both in view
            if volume.any():
                bbox = tuple((int(h[0]), int(h[-1]) + 1) for h in
                             (np.flatnonzero(shown.any(axis=a)) for a in ((1, 2), (0, 2), (0, 1))))
                planes = cut_planes(ct_data, volume, spacing3, bbox, size=PLANE_SIZE,
                                    reference=reference)
            out[key] = ThumbnailInputs(
                [np.asarray(ct_data[:, :, i], dtype=np.float32) for i in z],
                [volume[:, :, i] for i in z], z, spacing,
                coronal=plane_view(planes["coronal"]) if planes else None,
                sagittal=plane_view(planes["sagittal"]) if planes else None,
                reference_slices=None if reference is None else [reference[:, :, i] for i in z])
    return out


def _reference(nib, source: tuple[str, object] | None, shape: tuple[int, ...]
               ) -> np.ndarray | None:
    """The reference mask on the CT's grid (RAS), or None when unknown or unusable."""
    if source is None or source[0] is None or pd.isna(source[0]):
        return None
    loaded = _load_canonical(nib, Path(str(source[0])))
    if loaded is None or loaded[0].shape[:3] != shape:
        return None
    return _mask(loaded[0], source[1])


def _slice_tables(slices: pd.DataFrame | None, wanted: set) -> dict:
    if slices is None or slices.empty or not {"slice_index", "slice_dsc"} <= set(slices.columns):
        return {}
    keys = [(str(c), str(lab)) for c, lab in zip(slices["case_id"], slices["label"], strict=True)]
    frame = slices.assign(_key=keys)
    frame = frame[frame["_key"].isin(wanted)]
    return {key: group for key, group in frame.groupby("_key", sort=False)}


def _worst_slices(table: pd.DataFrame | None, worst_slice: object, k: int) -> list[int]:
    if table is not None and len(table):
        chosen = select_thumbnail_slices(table, k)
        if chosen:
            return chosen
    if worst_slice is None or pd.isna(worst_slice):
        return []
    return [int(worst_slice)]


def _load_canonical(nib, path: Path) -> tuple[np.ndarray, tuple[float, float, float]] | None:
    """Array in RAS orientation and voxel spacing (mm), or ``None`` when it can't be read."""
    from nibabel.filebasedimages import ImageFileError

    # A thumbnail is optional: an unreadable file (missing, truncated gzip, not NIfTI) goes without.
    try:
        img = nib.as_closest_canonical(nib.load(str(path)))
        data = np.asanyarray(img.dataobj)
        zooms = img.header.get_zooms()
    except (OSError, EOFError, ValueError, ImageFileError, zlib.error):
        return None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        return None
    return data, (float(zooms[0]), float(zooms[1]), float(zooms[2]))


def _mask(label_slice: np.ndarray, value: object) -> np.ndarray:
    if value is None or pd.isna(value):
        return np.asarray(label_slice) > 0
    return np.asarray(label_slice) == int(value)
