"""Model-free descriptors of one 3D mask and the CT under it, for the label calibration.

The network scores sampled slices one at a time, so it cannot see what only the whole volume
shows: a label cut off flat at one end, slices missing from its middle, a rim of specks, a blob
far from the organ, a boundary that no longer follows an edge of the CT. These numbers describe
exactly that, scale-free, so that the label calibration (``qsaudit.inference.aggregate``) can
weigh them beside the slice scores. They are ratios, comparable across organ sizes; given the
voxel size they are also comparable across pixel sizes and slice spacings, since the mask's box
is then first sampled onto a grid of :data:`CANONICAL_MM` (nearest voxel), so a 0.7 mm CT and its
3 mm copy describe one shape alike. numpy/scipy only; the work is done on the mask's box.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from qsaudit.checks.mask import largest_component_share, mask_stats, masked_values
from qsaudit.checks.morphology import CROSS_IN_PLANE, dilate, erode, opening

SHAPE_FEATURES = ("largest_share", "opening_loss", "closing_gain", "surface_ratio",
                  "end_area", "area_jump", "hu_outside", "hu_spread", "edge_contrast")
"""Names of :func:`shape_features`' values, in order (see its docstring)."""

HU_CLIP = (-1000.0, 1000.0)  # HU statistics ignore metal and beyond-air padding
HU_OUTSIDE_MARGIN = 100.0    # a voxel is implausible this far outside the structure's range
PAD = 2                      # voxels of context around the bounding box (shells, closing)
MAX_VOXELS = 3_000_000       # larger bounding boxes are subsampled in-plane
CANONICAL_MM = (3.0, 3.0, 3.0)  # the grid the descriptors are read on, when the spacing is known


def shape_features(mask: np.ndarray, ct: np.ndarray, *, structure: Any | None = None,
                   bbox: tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None = None,
                   largest_share: float | None = None,
                   spacing: tuple[float, ...] | None = None) -> np.ndarray:
    """Descriptors of a non-empty boolean mask (X, Y, Z) on its CT (HU, same shape).

    Args:
        mask: the candidate label, canonical axes (z = axial slices).
        ct: the CT in HU.
        structure: the registry entry of the label (its ``hu_range`` is used), or None.
        bbox: the mask's bounding box if known (``MaskStats.bbox``), half-open per axis.
        largest_share: the share of voxels in the largest 26-connected component if known
            (``LabelChecks.largest_share``; the scan's checks have labelled the components).
        spacing: voxel size in mm (X, Y, Z). Given, the box is read on the
            :data:`CANONICAL_MM` grid (resolution-free descriptors); without it, voxel by voxel.

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
      outside| / 100: a boundary on an edge of the CT has contrast, a shifted or swollen one less.

    Raises ValueError for an empty mask or mismatched shapes.
    """
    if mask.shape != ct.shape or mask.ndim != 3:
        raise ValueError(f"shape_features: mask {mask.shape} and CT {ct.shape} must be one 3D shape")
    if bbox is None:
        bbox = mask_stats(mask).bbox
    if bbox is None:
        raise ValueError("shape_features: empty mask")
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
    """:func:`shape_features` read on the :data:`CANONICAL_MM` grid (nearest voxel)."""
    index = [_grid_index(b0, b1, n, float(sp), canon)
             for (b0, b1), n, sp, canon in zip(bbox, mask.shape, spacing[:3], CANONICAL_MM,
                                               strict=True)]
    grid = np.ix_(*index)
    sub = np.asarray(mask[grid], dtype=bool)
    hu = np.clip(np.asarray(ct[grid], dtype=np.float32), *HU_CLIP)
    areas = sub.sum(axis=(0, 1), dtype=np.int64)
    if not areas.any():  # a sliver thinner than the grid: describe it voxel by voxel
        return shape_features(mask, ct, structure=structure, bbox=bbox,
                              largest_share=largest_share)
    if largest_share is None:
        largest_share = largest_component_share(mask[tuple(slice(*b) for b in bbox)])
    return _describe(sub, hu, areas, structure, largest_share)


def _grid_index(b0: int, b1: int, n: int, spacing: float, canon: float) -> np.ndarray:
    """Voxel indices (nearest) of grid points every ``canon`` mm, centred on the box
    ``[b0, b1)`` and reaching :data:`PAD` grid steps beyond it, inside ``[0, n)``."""
    # spacings read from float32 headers (1.2000000477) must sample as the exact ones (1.2)
    spacing = round(spacing, 4)
    step = canon / spacing if spacing > 0 else 1.0
    centre = 0.5 * (b0 + b1 - 1)
    half = math.ceil(0.5 * (b1 - b0) / step) + PAD
    pos = np.rint(centre + np.arange(-half, half + 1) * step).astype(np.int64)
    pos = pos[(pos >= 0) & (pos < n)]
    return np.unique(pos)


def _describe(sub: np.ndarray, hu: np.ndarray, areas: np.ndarray, structure: Any,
              largest_share: float) -> np.ndarray:
    """The :data:`SHAPE_FEATURES` of the boolean box ``sub`` and its HU ``hu`` (clipped);
    ``areas`` per slice of the box (mask voxels)."""
    voxels = int(np.count_nonzero(sub))
    if voxels == 0:  # a mask of a few scattered voxels the in-plane step skipped
        return np.array([1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0])

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
    ], dtype=np.float64)
