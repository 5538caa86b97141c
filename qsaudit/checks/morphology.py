"""Binary erosion and dilation with small cross-shaped structuring elements, by shifted views.

``scipy.ndimage.binary_erosion`` visits every voxel with a generic structuring element; for the
crosses the shape features use (the 6-neighbour 3D cross, the 4-neighbour in-plane cross) the
same result is a handful of whole-array ANDs / ORs of shifted views, about 10x faster on a
mask's bounding box. Results equal scipy's, border handling included (``border_value``: what
lies outside the array).
"""

from __future__ import annotations

import numpy as np

CROSS_3D = ((0, 0, 0), (1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))
"""Offsets of the 6-neighbour cross (``ndimage.generate_binary_structure(3, 1)``)."""
CROSS_IN_PLANE = ((0, 0, 0), (1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0))
"""Offsets of the 4-neighbour cross in the (x, y) plane, one slice thick."""


def _combine(mask: np.ndarray, offsets: tuple[tuple[int, int, int], ...], *, border: bool,
             erode: bool) -> np.ndarray:
    a = np.asarray(mask, dtype=bool)
    if a.ndim != 3:
        raise ValueError(f"morphology: need a 3D mask, got shape {a.shape}")
    if a.flags.f_contiguous and not a.flags.c_contiguous:
        # NIfTI's Fortran order: work on the C-ordered transpose (2.5x faster than mixing orders)
        flipped = tuple(offset[::-1] for offset in offsets)
        return _combine(a.T, flipped, border=border, erode=erode).T
    padded = np.pad(a, 1, constant_values=border)
    nx, ny, nz = a.shape
    out = a.copy()
    for dx, dy, dz in offsets:
        if dx == dy == dz == 0:
            continue
        view = padded[1 + dx:1 + dx + nx, 1 + dy:1 + dy + ny, 1 + dz:1 + dz + nz]
        if erode:
            out &= view
        else:
            out |= view
    return out


def erode(mask: np.ndarray, offsets: tuple[tuple[int, int, int], ...] = CROSS_3D, *,
          border_value: bool = False) -> np.ndarray:
    """Binary erosion of a 3D mask by a symmetric structuring element given as ``offsets``
    (each within -1..1, the centre included): a voxel stays when every neighbour is set."""
    return _combine(mask, offsets, border=border_value, erode=True)


def dilate(mask: np.ndarray, offsets: tuple[tuple[int, int, int], ...] = CROSS_3D) -> np.ndarray:
    """Binary dilation of a 3D mask by a symmetric structuring element (``offsets`` as for
    :func:`erode`); nothing outside the array is set."""
    return _combine(mask, offsets, border=False, erode=False)


def opening(mask: np.ndarray, offsets: tuple[tuple[int, int, int], ...] = CROSS_3D
            ) -> np.ndarray:
    """Erosion then dilation (``scipy.ndimage.binary_opening`` with the same element)."""
    return dilate(erode(mask, offsets), offsets)
