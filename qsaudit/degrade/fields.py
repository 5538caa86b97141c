"""Geometry helpers shared by the degradations: crops, distance maps in mm and smooth noise.

All distances are in millimetres (``spacing`` is the voxel size in mm along each axis), so a
degradation of a given severity does the same thing at any voxel size.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

Spacing = tuple[float, float, float]


def bbox(mask: np.ndarray, *, margin: tuple[int, int, int] | int = 0) -> tuple[slice, ...]:
    """Slices of the bounding box of ``mask`` grown by ``margin`` voxels (clipped to the volume)."""
    if np.isscalar(margin):
        margin = (int(margin),) * mask.ndim
    out = []
    for ax in range(mask.ndim):
        other = tuple(i for i in range(mask.ndim) if i != ax)
        idx = np.flatnonzero(mask.any(axis=other))
        lo = max(int(idx[0]) - margin[ax], 0)
        hi = min(int(idx[-1]) + margin[ax] + 1, mask.shape[ax])
        out.append(slice(lo, hi))
    return tuple(out)


def margin_voxels(mm: float, spacing: Spacing) -> tuple[int, int, int]:
    """A margin of ``mm`` millimetres expressed in voxels along each axis (at least 1)."""
    return tuple(max(1, int(np.ceil(mm / s))) for s in spacing)  # type: ignore[return-value]


def inside_distance(mask: np.ndarray, spacing: Spacing) -> np.ndarray:
    """Distance (mm) from each mask voxel to the nearest background voxel; 0 outside."""
    padded = np.pad(mask, 1)
    d = ndi.distance_transform_edt(padded, sampling=spacing)
    return d[1:-1, 1:-1, 1:-1]


def outside_distance(mask: np.ndarray, spacing: Spacing) -> np.ndarray:
    """Distance (mm) from each background voxel to the nearest mask voxel; 0 inside."""
    return ndi.distance_transform_edt(~mask, sampling=spacing)


def fast_distance(mask: np.ndarray, spacing: Spacing, *, outside: bool,
                  limit: int = 250_000) -> np.ndarray:
    """Inside or outside distance (mm); above ``limit`` voxels it is computed on a 2x coarser grid
    and repeated back (errors about a voxel, which the degradations' jitter hides)."""
    if mask.size <= limit:
        return outside_distance(mask, spacing) if outside else inside_distance(mask, spacing)
    coarse = mask[::2, ::2, ::2]
    csp = tuple(2 * s for s in spacing)
    d = outside_distance(coarse, csp) if outside else inside_distance(coarse, csp)
    up = fit_shape(d.repeat(2, 0).repeat(2, 1).repeat(2, 2), mask.shape)
    return np.where(mask, 0.0, up) if outside else np.where(mask, up, 0.0)


def fit_shape(arr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    arr = arr[tuple(slice(0, n) for n in shape)]
    if arr.shape != tuple(shape):
        arr = np.pad(arr, [(0, n - f) for n, f in zip(shape, arr.shape, strict=True)], mode="edge")
    return arr


def depth_mm(mask: np.ndarray, spacing: Spacing) -> float:
    """The organ's half-thickness: the largest inside distance (mm); 0 for an empty mask."""
    if not mask.any():
        return 0.0
    box = bbox(mask)
    return float(inside_distance(mask[box], spacing).max())


def smooth_noise(shape: tuple[int, ...], spacing: Spacing, length_mm: float,
                 rng: np.random.Generator) -> np.ndarray:
    """A smooth random field of unit standard deviation and correlation length ``length_mm``.

    White noise on a coarse lattice (one node per ``length_mm``) is interpolated with Gaussian
    weights, axis by axis (three small matrix products: fast and free of facets); float32.
    """
    length = max(float(length_mm), 1e-3)
    mats = []
    for n, sp in zip(shape, spacing, strict=True):
        nodes = int(np.ceil(n * sp / length)) + 3
        pos = np.arange(n) * sp / length + 1.0  # voxel positions in lattice units
        w = np.exp(-0.5 * ((pos[:, None] - np.arange(nodes)[None, :]) / 0.6) ** 2)
        w[w < 1e-4] = 0.0  # tiny weights would be float32 subnormals: very slow
        mats.append((w / w.sum(axis=1, keepdims=True)).astype(np.float32))
    grid = rng.standard_normal(tuple(m.shape[1] for m in mats)).astype(np.float32)
    (n0, c0), (n1, c1), (n2, c2) = (m.shape for m in mats)
    field = (mats[0] @ grid.reshape(c0, c1 * c2)).reshape(n0, c1, c2)  # plain 2-D products
    field = mats[1] @ np.ascontiguousarray(field.transpose(1, 0, 2)).reshape(c1, n0 * c2)
    field = (field.reshape(n1 * n0, c2) @ mats[2].T).reshape(n1, n0, n2)
    field = np.ascontiguousarray(field.transpose(1, 0, 2))
    field -= field.mean()
    sd = float(field.std())
    return field / (sd if sd > 0 else 1.0)


def shifted(mask: np.ndarray, offset: tuple[int, int, int]) -> np.ndarray:
    """``mask`` translated by an integer voxel ``offset``, filled with False (no wrap-around)."""
    out = np.zeros_like(mask)
    src, dst = [], []
    for n, o in zip(mask.shape, offset, strict=True):
        if abs(o) >= n:
            return out
        src.append(slice(max(0, -o), n - max(0, o)))
        dst.append(slice(max(0, o), n - max(0, -o)))
    out[tuple(dst)] = mask[tuple(src)]
    return out


def take_nearest(candidates: np.ndarray, score: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the ``k`` candidate voxels with the smallest ``score``."""
    out = np.zeros(candidates.shape, dtype=bool)
    idx = np.flatnonzero(candidates)
    if k <= 0 or idx.size == 0:
        return out
    if k >= idx.size:
        out.flat[idx] = True
        return out
    vals = score.ravel()[idx]
    chosen = idx[np.argpartition(vals, k - 1)[:k]]
    out.flat[chosen] = True
    return out
