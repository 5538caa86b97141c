"""Model-free descriptors of one 3D mask and the CT under it, for the label calibration.

The network scores sampled slices one at a time, so it cannot see what only the whole volume
shows: a label cut off flat at one end, slices missing from its middle, a rim of specks, a blob
far from the organ, a boundary that no longer follows an edge of the CT. These numbers describe
exactly that, scale-free, so that the label calibration (``qsaudit.inference.aggregate``) can
weigh them beside the slice scores, with the HU a correct mask of the structure could not hold
(the registry's ranges and what a structure may hold inside: a bowel's gas, a bone's fatty
marrow) and, the one absolute number, the structure's cross-section in mm². The others are
ratios, comparable across organ sizes; given the
voxel size they are also comparable across pixel sizes and slice spacings, since the mask's box
is then first read on a grid of :data:`CANONICAL_MM`: along an axis whose voxels are finer than
3 mm by the nearest voxel (interpolating would read nearly the same from many more voxels), along
one whose voxels are coarser by linear interpolation (the mask as the 0.5 level of its
interpolated indicator, the CT linearly), which reads the smooth shape the blocks stand for, not
their staircase, so a 4 mm label and its finer copy describe one shape alike (nearest reading,
which the descriptors used before, copied the staircase onto the grid: a 4 mm label's
``closing_gain`` sat two label-to-label spreads above its 2 mm copy's). numpy/scipy only; the
work is done on the mask's box.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from qsaudit.checks.mask import largest_component_share, mask_stats, masked_values
from qsaudit.checks.morphology import CROSS_IN_PLANE, dilate, erode, opening

SHAPE_FEATURES = ("largest_share", "opening_loss", "closing_gain", "surface_ratio",
                  "end_area", "area_jump", "hu_outside", "hu_spread", "edge_contrast",
                  "hu_implausible", "log_area")
"""Names of :func:`shape_features`' values, in order (see its docstring)."""

HU_CLIP = (-1000.0, 1000.0)  # HU statistics ignore metal and beyond-air padding
HU_OUTSIDE_MARGIN = 100.0    # a voxel is implausible this far outside the structure's range
LUMEN_HU = (-1000.0, 600.0)  # a digestive-tract lumen may hold gas, fluid or oral contrast
MARROW_HU_MIN = -150.0       # a bone's marrow space may be fatty (yellow) marrow
PAD = 2                      # voxels of context around the bounding box (shells, closing)
MAX_VOXELS = 3_000_000       # larger bounding boxes are subsampled in-plane
CANONICAL_MM = (3.0, 3.0, 3.0)  # the grid the descriptors are read on, when the spacing is known
MAX_GRID_SPACING_MM = 20.0   # coarser (or non-finite) voxels: described voxel by voxel instead
SHAPE_READING = 4  # raised whenever the descriptors' values change (cached training units key on it),
# the registry's HU ranges and contents included


def shape_features(mask: np.ndarray, ct: np.ndarray, *, structure: Any | None = None,
                   bbox: tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None = None,
                   largest_share: float | None = None,
                   spacing: tuple[float, ...] | None = None) -> np.ndarray:
    """Descriptors of a non-empty boolean mask (X, Y, Z) on its CT (HU, same shape).

    Args:
        mask: the candidate label, canonical axes (z = axial slices).
        ct: the CT in HU.
        structure: the registry entry of the label (its ``hu_range`` and ``contents`` are used),
            or None.
        bbox: the mask's bounding box if known (``MaskStats.bbox``), half-open per axis.
        largest_share: the share of voxels in the largest 26-connected component if known
            (``LabelChecks.largest_share``; the scan's checks have labelled the components).
        spacing: voxel size in mm (X, Y, Z). Given, the box is read on the
            :data:`CANONICAL_MM` grid (resolution-free descriptors); without it, or with a
            spacing that is not finite or not in (0, :data:`MAX_GRID_SPACING_MM`] (a corrupt
            header), voxel by voxel.

    Returns (len(SHAPE_FEATURES),) float64:

    * ``largest_share``: voxels in the largest 3D component / all voxels (1 = one piece);
    * ``opening_loss``: share of voxels removed by an in-plane opening (4-neighbour cross):
      specks, spikes, one-voxel-thin leakage;
    * ``closing_gain``: voxels a 3D closing adds / voxels: holes and a ragged boundary;
    * ``surface_ratio``: boundary voxels / voxels^(2/3) (compactness; rough = high);
    * ``end_area``: mean area of the first and last mask slice / the largest slice area (an organ
      tapers; a label cut off flat does not);
    * ``area_jump``: largest change of area between neighbouring slices / largest area (0-1;
      a slice missing from the middle of the label brings it near 1; 0 for a one-slice label);
    * ``hu_outside``: share of voxels more than 100 HU outside the structure's plausible range
      (0 for structures without one);
    * ``hu_spread``: standard deviation of HU inside / 100;
    * ``edge_contrast``: |mean HU of the mask's outer boundary layer - mean HU of the layer just
      outside| / 100: a boundary on an edge of the CT has contrast, a shifted or swollen one less;
    * ``hu_implausible``: share of voxels a correct mask could not hold (0 for structures
      without an HU range): ``hu_outside`` with the range widened by what the structure may hold
      (its registry ``contents``): a digestive-tract lumen's gas and oral contrast
      (:data:`LUMEN_HU`) anywhere, a bone's fatty marrow (:data:`MARROW_HU_MIN`) inside its
      outer layer only (one voxel of the reading grid; a face on the volume's edge is the scan's
      cut and counts as inside), so that a bone label spilling into fat still counts.
      ``hu_outside`` reads the mean-HU range voxel by voxel and so calls a good colon full of
      gas or a humerus with fatty marrow partly wrong; it is kept for calibrations fitted before
      this feature;
    * ``log_area``: log1p of the mask's mean cross-section in mm² (its slices with mask, at the
      native voxel size; NaN without a usable ``spacing``): how large the structure is in the plane the
      network sees, whose scores are less sure and whose Dice is more fragile the smaller it is
      (a rib, a vein or an adrenal beside a liver).

    Raises ValueError for an empty mask or mismatched shapes.
    """
    if mask.shape != ct.shape or mask.ndim != 3:
        raise ValueError(f"shape_features: mask {mask.shape} and CT {ct.shape} must be one 3D shape")
    if bbox is None:
        bbox = mask_stats(mask).bbox
    if bbox is None:
        raise ValueError("shape_features: empty mask")
    usable = spacing is not None and all(math.isfinite(float(sp)) and 0 < float(sp)
                                         <= MAX_GRID_SPACING_MM for sp in tuple(spacing)[:3])
    usable_spacing = tuple(float(sp) for sp in spacing[:3]) if usable else None  # type: ignore[index]
    return np.append(_box_features(mask, ct, bbox, structure, largest_share, usable_spacing),
                     _log_area(mask, bbox, usable_spacing))


def _log_area(mask: np.ndarray, bbox: Any, spacing: tuple[float, ...] | None) -> float:
    """``log_area``: log1p of the mask's mean cross-section in mm² over its slices with mask
    (NaN when the voxel size is unknown)."""
    if spacing is None:
        return float("nan")
    areas = mask[tuple(slice(*b) for b in bbox)].sum(axis=(0, 1), dtype=np.int64)
    slices = int(np.count_nonzero(areas))
    return math.log1p(float(areas.sum()) * spacing[0] * spacing[1] / max(slices, 1))


def _box_features(mask: np.ndarray, ct: np.ndarray, bbox: Any, structure: Any,
                  largest_share: float | None, spacing: tuple[float, ...] | None) -> np.ndarray:
    """Every shape feature but ``log_area``: on the :data:`CANONICAL_MM` grid when the voxel
    size is known, else voxel by voxel."""
    if spacing is not None:
        return _canonical_features(mask, ct, bbox, spacing, structure, largest_share)
    lo = [max(0, b[0] - PAD) for b in bbox]  # lists: widened in-plane below when subsampled
    hi = [min(n, b[1] + PAD) for b, n in zip(bbox, mask.shape, strict=True)]
    # The slice areas are counted at full resolution; the morphology of a box over MAX_VOXELS
    # (a muscle spanning the body) is read at every step-th voxel in-plane, approximately.
    areas = mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].sum(axis=(0, 1), dtype=np.int64)
    step = max(1, math.ceil(math.sqrt(float(np.prod(np.subtract(hi, lo))) / MAX_VOXELS)))
    if step > 1:  # keep PAD samples of context beyond the box on every side
        lo[:2] = [max(0, b[0] - PAD * step) for b in bbox[:2]]
        hi[:2] = [min(n, b[1] + PAD * step)
                  for b, n in zip(bbox[:2], mask.shape[:2], strict=True)]
    window = (slice(lo[0], hi[0], step), slice(lo[1], hi[1], step), slice(lo[2], hi[2]))
    sub = np.array(mask[window], order="K")  # a copy in the volume's own layout
    hu = np.clip(ct[window], *HU_CLIP)
    if largest_share is None:
        largest_share = largest_component_share(mask[tuple(slice(*b) for b in bbox)])
    return _describe(sub, hu, areas, structure, largest_share)


def _canonical_features(mask: np.ndarray, ct: np.ndarray, bbox: Any, spacing: tuple[float, ...],
                        structure: Any, largest_share: float | None) -> np.ndarray:
    """:func:`shape_features` but ``log_area``, read on the :data:`CANONICAL_MM` grid (linearly,
    see the module docstring)."""
    axes = [_grid_axis(b0, b1, n, float(sp), canon)
            for (b0, b1), n, sp, canon in zip(bbox, mask.shape, spacing[:3], CANONICAL_MM,
                                              strict=True)]
    needed = np.ix_(*(used for used, _, _, _ in axes))
    sub = _interpolate(np.asarray(mask[needed], dtype=np.float32), axes) >= 0.5
    hu = _interpolate(np.clip(np.asarray(ct[needed], dtype=np.float32), *HU_CLIP), axes)
    areas = sub.sum(axis=(0, 1), dtype=np.int64)
    if not areas.any():  # a sliver thinner than the grid: describe it voxel by voxel
        return _box_features(mask, ct, bbox, structure, largest_share, None)
    if largest_share is None:
        largest_share = largest_component_share(mask[tuple(slice(*b) for b in bbox)])
    return _describe(sub, hu, areas, structure, largest_share)


def _grid_axis(b0: int, b1: int, n: int, spacing: float, canon: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One axis of the reading grid: points every ``canon`` mm, centred on the box ``[b0, b1)``
    and reaching :data:`PAD` grid steps beyond it, inside ``[0, n - 1]`` (voxel coordinates).

    Where the voxels are finer than the grid, a point takes its nearest voxel: linear
    interpolation would then read nearly the same (a point's value passes 0.5 where its nearest
    voxel is inside) from up to eight times the voxels. Where they are coarser, a point lies
    between two voxels and is interpolated: that is what smooths a coarse label's staircase.

    Returns ``(used, lower, upper, weight)``: the voxel indices the points need (sorted), and per
    point the positions in ``used`` of the voxels below and above it and the upper one's weight.
    """
    # spacings read from float32 headers (1.2000000477) must sample as the exact ones (1.2)
    spacing = round(spacing, 4)
    step = canon / spacing if spacing > 0 else 1.0
    centre = 0.5 * (b0 + b1 - 1)
    half = math.ceil(0.5 * (b1 - b0) / step) + PAD
    pos = centre + np.arange(-half, half + 1) * step
    pos = pos[(pos >= 0) & (pos <= n - 1)]  # never empty: the box's centre is a grid point
    if step >= 1.0:  # a grid no finer than the voxels: the nearest voxel (see the docstring)
        low = np.rint(pos).astype(np.int64)
        weight = np.zeros(pos.size, np.float32)
        high = low
    else:  # voxels coarser than the grid: between the two around each point
        low = np.floor(pos).astype(np.int64)
        weight = (pos - low).astype(np.float32)
        high = np.minimum(low + 1, n - 1)
    used = np.unique(np.concatenate([low, high]))
    return used, np.searchsorted(used, low), np.searchsorted(used, high), weight


def _interpolate(block: np.ndarray, axes: list[tuple[np.ndarray, ...]]) -> np.ndarray:
    """``block`` (the voxels ``used`` per axis) linearly interpolated at the grid points of
    ``axes`` (:func:`_grid_axis`), one axis at a time; an axis read by nearest voxel (all
    weights 0) is only indexed (the blend would give the same values at twice the work)."""
    for axis, (_used, lower, upper, weight) in enumerate(axes):
        if not weight.any():
            block = np.take(block, lower, axis=axis)
            continue
        shape = [1, 1, 1]
        shape[axis] = weight.size
        w = weight.reshape(shape)
        block = (np.take(block, lower, axis=axis) * (1.0 - w)
                 + np.take(block, upper, axis=axis) * w)
    return block


def _describe(sub: np.ndarray, hu: np.ndarray, areas: np.ndarray, structure: Any,
              largest_share: float) -> np.ndarray:
    """The :data:`SHAPE_FEATURES` but ``log_area`` of the boolean box ``sub`` and its HU ``hu``
    (clipped); ``areas`` per slice of the box (mask voxels)."""
    voxels = int(np.count_nonzero(sub))
    if voxels == 0:  # a mask of a few scattered voxels the in-plane step skipped
        return np.array([1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])

    eroded = erode(sub)
    # in-plane cross for the opening: a 3D one would erase every label one or two slices thick
    opened = opening(sub, CROSS_IN_PLANE)
    dilated = dilate(sub)
    closed = erode(dilated, border_value=True)
    outer = dilated & ~sub
    rim = sub & ~eroded

    z = np.flatnonzero(areas)
    areas = areas[z[0]:z[-1] + 1].astype(np.float64)
    top = float(areas.max())
    jump = float(np.abs(np.diff(areas)).max() / top) if areas.size > 1 else 0.0

    inside = masked_values(hu, sub)
    outside = 0.0
    hu_range = getattr(structure, "hu_range", None) if structure is not None else None
    if hu_range is not None:
        low, high = float(hu_range[0]) - HU_OUTSIDE_MARGIN, float(hu_range[1]) + HU_OUTSIDE_MARGIN
        outside = float(np.count_nonzero((inside < low) | (inside > high)) / voxels)
    contrast = (abs(float(masked_values(hu, rim).mean())
                    - float(masked_values(hu, outer).mean())) / 100.0
                if outer.any() and rim.any() else 0.0)
    return np.array([
        float(largest_share),
        1.0 - float(np.count_nonzero(opened)) / voxels,
        float(np.count_nonzero(closed & ~sub)) / voxels,
        float(np.count_nonzero(rim)) / voxels ** (2.0 / 3.0),
        (areas[0] + areas[-1]) / (2.0 * top),
        jump,
        outside,
        float(inside.std()) / 100.0,
        contrast,
        # without contents the widened range is the mean-HU one: the same count as hu_outside
        _implausible(hu, sub, structure) / voxels if getattr(structure, "contents", None)
        else outside,
    ], dtype=np.float64)


def _implausible(hu: np.ndarray, sub: np.ndarray, structure: Any) -> int:
    """Voxels of ``sub`` that a correct mask of ``structure`` could not hold (see
    ``hu_implausible`` in :func:`shape_features`); 0 for a structure without an HU range."""
    hu_range = getattr(structure, "hu_range", None) if structure is not None else None
    if hu_range is None:
        return 0
    low, high = float(hu_range[0]), float(hu_range[1])
    contents = getattr(structure, "contents", None)
    if contents == "lumen":
        low, high = min(low, LUMEN_HU[0]), max(high, LUMEN_HU[1])
    inner_low = min(low, MARROW_HU_MIN) if contents == "marrow" else low
    # the outer layer facing the volume's edge is where the scan cut the structure, not its
    # boundary: there the bone's marrow shows (and a cut femur is the usual case, not a flaw)
    inner = erode(sub, border_value=True)
    edge, core = masked_values(hu, sub & ~inner), masked_values(hu, inner)
    m = HU_OUTSIDE_MARGIN
    return (int(np.count_nonzero((edge < low - m) | (edge > high + m)))
            + int(np.count_nonzero((core < inner_low - m) | (core > high + m))))
