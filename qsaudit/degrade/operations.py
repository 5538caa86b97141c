"""The degradations themselves: each turns a correct 3D mask into a plausible wrong one.

Every operation takes the mask (bool, shape (X, Y, Z), RAS: axis 0 = left-right, axis 2 = axial)
and a severity in [0, 1] (0 = nearly perfect, 1 = very bad) and returns a new bool mask of the
same shape. Sizes are set in millimetres or as fractions of the organ's own volume / extent, so a
severity means the same thing at any voxel spacing. Most operations aim at a target Dice that
falls roughly linearly with severity, which spreads the true Dice of a training set evenly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from qsaudit.degrade.fields import (
    Spacing,
    bbox,
    depth_mm,
    fast_distance,
    fit_shape,
    inside_distance,
    margin_voxels,
    shifted,
    smooth_noise,
    take_nearest,
)


@dataclass(frozen=True)
class Context:
    """What an operation may use besides the mask: voxel size, randomness, surroundings."""

    spacing: Spacing
    rng: np.random.Generator
    neighbours: dict[str, np.ndarray] | None = None
    body: np.ndarray | None = None


def _target_dsc(severity: float, *, worst: float) -> float:
    """Target Dice for a severity: 0.995 at severity 0, ``worst`` at severity 1."""
    return 0.995 - (0.995 - worst) * severity


def _keep_fraction(target: float) -> float:
    """Fraction of the organ to keep so that removing the rest gives Dice ``target``."""
    return target / (2.0 - target)


def _grow_fraction(target: float) -> float:
    """Volume to add (as a fraction of the organ) so that adding it gives Dice ``target``."""
    return 2.0 / target - 2.0


def erosion(mask: np.ndarray, s: float, ctx: Context) -> np.ndarray:
    """Peel the surface inwards (an under-segmentation by an uneven depth in mm)."""
    box = bbox(mask, margin=1)
    sub = mask[box]
    depth = inside_distance(sub, ctx.spacing)
    depth = depth * (1.0 + 0.3 * smooth_noise(sub.shape, ctx.spacing, 20.0, ctx.rng))
    keep = _keep_fraction(_target_dsc(s, worst=0.02))
    vals = depth[sub]
    cut = np.quantile(vals, 1.0 - keep) if vals.size else 0.0
    out = np.zeros_like(mask)
    out[box] = sub & (depth > cut)
    return out


def _grow(mask: np.ndarray, added: int, ctx: Context, *, seed: np.ndarray | None = None,
          allowed: np.ndarray | None = None) -> np.ndarray:
    """Add ``added`` voxels nearest the mask (or nearest ``seed``, a point in voxels)."""
    radius = depth_mm(mask, ctx.spacing)
    vol_mm = added * float(np.prod(ctx.spacing))
    reach = 2.5 * max(radius, (3 * vol_mm / (4 * np.pi)) ** (1 / 3)) + 3 * max(ctx.spacing)
    box = bbox(mask, margin=margin_voxels(reach, ctx.spacing))
    sub = mask[box]
    if seed is None:
        dist = fast_distance(sub, ctx.spacing, outside=True)
    else:
        grids = np.ogrid[tuple(slice(0, n) for n in sub.shape)]
        local = [seed[i] - box[i].start for i in range(3)]
        dist = np.sqrt(sum(((g - c) * sp) ** 2 for g, c, sp in
                           zip(grids, local, ctx.spacing, strict=True)))
    dist = dist * (1.0 + 0.25 * smooth_noise(sub.shape, ctx.spacing, 15.0, ctx.rng))
    cand = ~sub
    if allowed is not None:
        cand &= allowed[box]
    out = mask.copy()
    out[box] |= take_nearest(cand, dist, added)
    return out


def dilation(mask: np.ndarray, s: float, ctx: Context) -> np.ndarray:
    """Grow the surface outwards by an uneven depth (an over-segmentation)."""
    added = round(_grow_fraction(_target_dsc(s, worst=0.25)) * mask.sum())
    return _grow(mask, max(added, 1), ctx, allowed=ctx.body)


def boundary_noise(mask: np.ndarray, s: float, ctx: Context) -> np.ndarray:
    """Jitter the boundary in and out with a smooth random field (a sloppy outline)."""
    radius = depth_mm(mask, ctx.spacing)
    amp = (0.04 + 0.9 * s) * radius + 0.3 * min(ctx.spacing)
    box = bbox(mask, margin=margin_voxels(amp + 2 * max(ctx.spacing), ctx.spacing))
    sub = mask[box]
    sdf = (fast_distance(sub, ctx.spacing, outside=True)
           - fast_distance(sub, ctx.spacing, outside=False))
    length = max(2.5 * max(ctx.spacing), 0.6 * radius)
    noisy = sdf + amp * smooth_noise(sub.shape, ctx.spacing, length, ctx.rng) < 0
    if ctx.body is not None:
        noisy &= ctx.body[box] | sub
    out = np.zeros_like(mask)
    out[box] = noisy
    return out


def holes(mask: np.ndarray, s: float, ctx: Context) -> np.ndarray:
    """Punch blob-shaped holes into the mask (missed parts inside the organ)."""
    box = bbox(mask)
    sub = mask[box]
    radius = depth_mm(sub, ctx.spacing)
    field = smooth_noise(sub.shape, ctx.spacing, max(2.5 * max(ctx.spacing), 0.5 * radius), ctx.rng)
    field = field + inside_distance(sub, ctx.spacing) / max(radius, 1e-6)  # holes favour the core
    remove = 1.0 - _keep_fraction(_target_dsc(s, worst=0.05))
    vals = field[sub]
    cut = np.quantile(vals, 1.0 - remove) if vals.size else np.inf
    out = np.zeros_like(mask)
    out[box] = sub & ~(field > cut)
    return out


def _z_range(mask: np.ndarray) -> tuple[int, int]:
    zs = np.flatnonzero(mask.any(axis=(0, 1)))
    return int(zs[0]), int(zs[-1])


def slice_drop(mask: np.ndarray, s: float, ctx: Context) -> np.ndarray:
    """Blank a band of consecutive axial slices inside the organ (slices never labelled)."""
    z0, z1 = _z_range(mask)
    n = z1 - z0 + 1
    band = min(n, max(1, round((0.04 + 0.9 * s) * n)))
    start = z0 + int(ctx.rng.integers(0, n - band + 1))
    out = mask.copy()
    out[:, :, start:start + band] = False
    return out


def truncation(mask: np.ndarray, s: float, ctx: Context) -> np.ndarray:
    """Cut the organ off above or below some axial level (labelling stopped too early)."""
    z0, z1 = _z_range(mask)
    n = z1 - z0 + 1
    cut = min(n, max(1, round((0.04 + 0.96 * s) * n)))
    out = mask.copy()
    if ctx.rng.random() < 0.5:
        out[:, :, z1 - cut + 1:z1 + 1] = False
    else:
        out[:, :, z0:z0 + cut] = False
    return out


def leakage(mask: np.ndarray, s: float, ctx: Context) -> np.ndarray:
    """Spill into a neighbouring structure from the point where they are closest.

    A spill larger than the neighbour goes on into the tissue beyond it, from the same point.

    Without neighbours (or none within 15 mm) the spill grows into the surrounding tissue from
    a random point of the surface.
    """
    added = max(1, round(_grow_fraction(_target_dsc(s, worst=0.25)) * mask.sum()))
    near = margin_voxels(15.0, ctx.spacing)
    box = bbox(mask, margin=near)
    sub = mask[box]
    best = None
    if ctx.neighbours:
        dist = fast_distance(sub, ctx.spacing, outside=True)
        for name in sorted(ctx.neighbours):
            other = ctx.neighbours[name][box] & ~sub
            if not other.any():
                continue
            gap = float(dist[other].min())
            if gap <= 15.0 and (best is None or gap < best[0]):
                best = (gap, other, dist)
    if best is None:
        surface = sub & ~ndi.binary_erosion(sub)
        pts = np.argwhere(surface)
        seed = pts[ctx.rng.integers(len(pts))] + [b.start for b in box]
        return _grow(mask, added, ctx, seed=seed, allowed=ctx.body)
    gap, other, dist = best
    contact = np.argwhere(other & (dist <= gap + 1e-6))
    seed = contact[ctx.rng.integers(len(contact))] + [b.start for b in box]
    full_other = np.zeros_like(mask)
    full_other[box] = other
    grids = np.ogrid[tuple(slice(b.start, b.stop) for b in box)]
    to_seed = np.sqrt(sum(((g - c) * sp) ** 2 for g, c, sp in
                          zip(grids, seed, ctx.spacing, strict=True)))
    bridge = np.zeros_like(mask)  # across the gap, near the seed only
    bridge[box] = (dist <= gap + max(ctx.spacing)) & (to_seed <= gap + 3 * max(ctx.spacing))
    out = _grow(mask, added, ctx, seed=seed, allowed=full_other | bridge)
    rest = added - int(out.sum() - mask.sum())
    if rest > 0:  # the neighbour is full: the leak carries on into the tissue around it
        out = _grow(out, rest, ctx, seed=seed, allowed=ctx.body)
    return out


def shift(mask: np.ndarray, s: float, ctx: Context) -> np.ndarray:
    """Translate the mask along a random direction (a misregistered label).

    The distance (mm) is found by bisection so that the Dice falls linearly with severity; this
    gives long thin organs (shifted across) and round ones the same meaning of severity.
    """
    direction = ctx.rng.standard_normal(3)
    direction[2] *= 0.6  # in-plane misregistration is more common than axial
    direction /= np.linalg.norm(direction)
    sp = np.asarray(ctx.spacing)
    box = bbox(mask)
    sub = mask[box]
    total = 2 * int(sub.sum())
    target = _target_dsc(s, worst=0.0)

    def offset_for(dist: float) -> tuple[int, int, int]:
        off = np.round(direction * dist / sp).astype(int)
        if not off.any():
            ax = int(np.argmax(np.abs(direction)))
            off[ax] = 1 if direction[ax] >= 0 else -1
        return tuple(int(o) for o in off)

    def overlap_dsc(off: tuple[int, int, int]) -> float:
        return 2 * int(np.count_nonzero(sub & shifted(sub, off))) / total

    lo, hi = 0.0, float(np.sum(np.asarray(sub.shape) * sp))
    for _ in range(12):
        mid = (lo + hi) / 2
        if overlap_dsc(offset_for(mid)) > target:
            lo = mid
        else:
            hi = mid
    return shifted(mask, offset_for(hi if target <= 0.0 else lo))


def _midline(mask: np.ndarray, body: np.ndarray | None) -> float:
    if body is not None and body.any():
        xs = np.flatnonzero(body.any(axis=(1, 2)))
        return (xs[0] + xs[-1]) / 2.0
    return (mask.shape[0] - 1) / 2.0


def lr_swap(mask: np.ndarray, s: float, ctx: Context) -> np.ndarray:
    """Mirror (part of) the mask across the body's left-right midline (axis 0).

    Severity sets the share of the organ's axial slices that are mirrored, from one end: 0.2 at
    severity 0, the whole organ at 1 (e.g. a left kidney labelled on the right).
    """
    centre = _midline(mask, ctx.body)
    n = mask.shape[0]
    src = np.round(2 * centre - np.arange(n)).astype(int)
    valid = (src >= 0) & (src < n)
    mirrored = np.zeros_like(mask)
    mirrored[valid] = mask[src[valid]]
    z0, z1 = _z_range(mask)
    count = z1 - z0 + 1
    k = min(count, max(1, round((0.2 + 0.8 * s) * count)))
    zs = slice(z0, z0 + k) if ctx.rng.random() < 0.5 else slice(z1 - k + 1, z1 + 1)
    out = mask.copy()
    out[:, :, zs] = mirrored[:, :, zs]
    return out


def spurious_blob(mask: np.ndarray, s: float, ctx: Context) -> np.ndarray:
    """Add a disconnected false-positive blob elsewhere in the body."""
    size = max(1, round((0.02 + 1.6 * s ** 1.3) * mask.sum()))
    vol_mm = size * float(np.prod(ctx.spacing))
    blob_r = (3 * vol_mm / (4 * np.pi)) ** (1 / 3)
    step = tuple(max(1, round(4.0 / sp)) for sp in ctx.spacing)  # coarse grid for placement
    coarse = mask[::step[0], ::step[1], ::step[2]]
    csp = tuple(sp * st for sp, st in zip(ctx.spacing, step, strict=True))
    away = fast_distance(coarse, csp, outside=True)
    ok = away > blob_r + 8.0
    if ctx.body is not None:
        ok &= ctx.body[::step[0], ::step[1], ::step[2]]
    if not ok.any():
        ok = away >= away.max()
    pts = np.argwhere(ok)
    centre = pts[ctx.rng.integers(len(pts))] * np.asarray(step)
    reach = margin_voxels(2.5 * blob_r + 3 * max(ctx.spacing), ctx.spacing)
    box = tuple(slice(max(0, c - r), min(n, c + r + 1))
                for c, r, n in zip(centre, reach, mask.shape, strict=True))
    grids = np.ogrid[tuple(slice(b.start, b.stop) for b in box)]
    dist = np.sqrt(sum(((g - c) * sp) ** 2 for g, c, sp in
                       zip(grids, centre, ctx.spacing, strict=True)))
    dist = dist * (1.0 + 0.3 * smooth_noise(dist.shape, ctx.spacing, max(blob_r, 4.0), ctx.rng))
    sub = mask[box]
    cand = ~ndi.binary_dilation(sub, iterations=2)  # keep it disconnected from the organ
    if ctx.body is not None:
        cand &= ctx.body[box]
    out = mask.copy()
    out[box] |= take_nearest(cand, dist, size)
    return out


def oversmooth(mask: np.ndarray, s: float, ctx: Context) -> np.ndarray:
    """Blur away detail: thin parts and tips vanish, concavities fill (a too-coarse label)."""
    radius = depth_mm(mask, ctx.spacing)
    sigma_mm = (0.05 + 0.55 * s) * radius + 0.5 * min(ctx.spacing)
    box = bbox(mask, margin=margin_voxels(3 * sigma_mm, ctx.spacing))
    sub = mask[box].astype(np.float32)
    level = 0.5 + 0.1 * s  # heavy smoothing also shrinks, as coarse labels do
    sigma = np.array([sigma_mm / sp for sp in ctx.spacing])
    if sub.size > 250_000 and sigma.min() >= 3:  # blur a 2x coarser copy: same result, faster
        small = ndi.gaussian_filter(sub[::2, ::2, ::2], sigma / 2, mode="constant")
        smooth = fit_shape(ndi.zoom(small, 2, order=1, grid_mode=True, mode="nearest"), sub.shape)
    else:
        smooth = ndi.gaussian_filter(sub, sigma, mode="constant")
    out = np.zeros_like(mask)
    out[box] = smooth > level
    return out


def empty(mask: np.ndarray, s: float, ctx: Context) -> np.ndarray:
    """No voxel at all (the structure was never labelled)."""
    return np.zeros_like(mask)


OPERATIONS = {
    "erosion": erosion,
    "dilation": dilation,
    "boundary_noise": boundary_noise,
    "holes": holes,
    "slice_drop": slice_drop,
    "truncation": truncation,
    "leakage": leakage,
    "shift": shift,
    "lr_swap": lr_swap,
    "spurious_blob": spurious_blob,
    "oversmooth": oversmooth,
    "empty": empty,
}
