"""Part probes: is each separate piece of a label the structure, or something else?

A label in several 3D pieces may be right (a structure cut by the field of view, the costal
cartilages, a colon that leaves and re-enters a slab) or hold a piece that is not the structure
at all: a stray blob in another organ, a neighbour's fragment. The scan scores ``K`` evenly spaced
slices, which often miss a piece that spans a few slices, and ``largest_share`` alone cannot tell
a true piece from a false one. A *part probe* asks the network about the slice where each
sizeable piece besides the largest has the most voxels, with the label's whole mask on that slice
(as every scored slice is shown): a false piece on slices of its own scores low, as the
false-positive slices of training did. The label calibration reads the lowest part-probe score
(``part_min``; 1 for a label in one piece: nothing speaks against it).

Scan and calibration build their part probes here, so they always ask the same question.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PART_MIN_SHARE = 0.01  # a piece with less of the label's voxels cannot move its Dice by 0.01
MAX_PARTS = 2  # the largest pieces besides the main one that are probed


def label_pieces(mask: np.ndarray, *, offset: int = 0) -> list[tuple[int, int, int]]:
    """The pieces of a label that part probes show: ``(first, last, peak)`` axial indices of
    each (its first and last slice, and the slice where it has the most voxels, the lower one
    on a tie), largest piece first.

    Args:
        mask: the label (X, Y, Z) or a box cut from it, boolean or 0/1.
        offset: the box's first axial index in the volume (added to the returned indices).

    The pieces are the 26-connected components holding at least :data:`PART_MIN_SHARE` of the
    label's voxels, the largest left out, at most :data:`MAX_PARTS` of them. Empty for a label
    in one piece.
    """
    from qsaudit.checks.mask import component_labels, masked_values

    m = np.asarray(mask, dtype=bool)
    total = int(np.count_nonzero(m))
    if total == 0:
        return []
    labels, n = component_labels(m)
    if n < 2:
        return []
    sizes = np.bincount(masked_values(labels, m), minlength=n + 1)[1:]
    keep = np.flatnonzero(sizes >= PART_MIN_SHARE * total)
    found = []
    for k in keep.tolist():
        piece = labels == k + 1
        per_slice = np.count_nonzero(piece, axis=(0, 1))
        on = np.flatnonzero(per_slice)
        # components are numbered in memory order, which differs between a scan's NIfTI box and
        # a calibration case: pieces of one size are ordered by where they lie instead (their
        # first voxel in C order is unique to each)
        first_voxel = int(np.argmax(np.ascontiguousarray(piece).ravel()))
        found.append((-int(sizes[k]), first_voxel, (int(on[0]) + offset, int(on[-1]) + offset,
                                                    int(np.argmax(per_slice)) + offset)))
    found.sort()
    return [piece for *_key, piece in found[1:MAX_PARTS + 1]]  # the largest left out


def part_slices(mask: np.ndarray, *, offset: int = 0,
                pieces: list[tuple[int, int, int]] | None = None) -> np.ndarray:
    """Axial indices (ascending, unique int64) of the slices the part probes show: the peak
    slice of each of :func:`label_pieces` (pass ``pieces`` when already known)."""
    pieces = label_pieces(mask, offset=offset) if pieces is None else pieces
    return np.unique(np.asarray([p[2] for p in pieces], dtype=np.int64))


def part_probes(ct: np.ndarray, mask: np.ndarray, slices: np.ndarray, *, model_config: Any,
                spacing: tuple[float, ...] | None = None) -> np.ndarray:
    """The part-probe model inputs (p, 2, S, S) float32 of one label: each of ``slices``
    (:func:`part_slices`) cropped as the scan crops a scored slice, CT with the whole mask."""
    from qsaudit.model.preprocess import crop_slice

    size = model_config.input_size
    crops = [crop_slice(ct[:, :, int(z)], mask[:, :, int(z)], config=model_config,
                        spacing=spacing) for z in np.asarray(slices).tolist()]
    if not crops:
        return np.zeros((0, 2, size, size), np.float32)
    return np.stack(crops).astype(np.float32, copy=False)


def part_summary(scores: np.ndarray | None) -> float:
    """``part_min``: the lowest part-probe score of a label (clipped to [0, 1]); 1 for a label
    in one piece (no piece speaks against it: empty ``scores``); NaN when part probes were not
    computed (None) or none could be scored."""
    if scores is None:
        return float("nan")
    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size == 0:
        return 1.0
    s = s[~np.isnan(s)]
    if s.size == 0:
        return float("nan")
    return float(np.clip(s, 0.0, 1.0).min())
