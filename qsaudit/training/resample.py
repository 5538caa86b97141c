"""Resolution augmentation: a trusted case seen at another in-plane pixel size.

The CT our users scan has 0.6-1.5 mm pixels; the real CT we can train on has 3.9-5 mm. The
model's view is defined in millimetres (``ModelConfig.margin_mm``), so a label looks alike at any
pixel size, but what differs still matters: staircase edges of coarse masks against smooth fine
ones, partial-volume blur, and noise that a fine grid resolves. Training therefore shows some
cases resampled in-plane to a pixel size drawn log-uniformly in :data:`PIXEL_MM`: the CT
linearly (plus a little white noise on finer grids, as a fine reconstruction would have), each
mask as the 0.5 level of its linearly interpolated indicator (a smooth boundary, not blocks).
"""

from __future__ import annotations

import math

import numpy as np

from qsaudit.training.cases import TrustedCase

PIXEL_MM = (0.6, 5.0)        # range of the drawn in-plane pixel size
MAX_MATRIX = 384             # in-plane voxels per axis after resampling, at most
MIN_MASK_VOXELS = 20


def draw_pixel_size(rng: np.random.Generator) -> float:
    """An in-plane pixel size in mm, log-uniform over :data:`PIXEL_MM`."""
    lo, hi = (math.log(v) for v in PIXEL_MM)
    return float(math.exp(rng.uniform(lo, hi)))


def zoom_volume(array: np.ndarray, zoom: tuple[float, float, float], *,
                mask: bool) -> np.ndarray:
    """``array`` on a grid ``zoom`` times as fine per axis: a CT linearly (float32), a mask as
    the 0.5 level of its linearly interpolated indicator (bool: a smooth boundary, not blocks)."""
    from scipy import ndimage as ndi

    if mask:
        return ndi.zoom(np.asarray(array, dtype=np.float32), zoom, order=1,
                        mode="grid-constant", grid_mode=True) >= 0.5
    return ndi.zoom(np.asarray(array, dtype=np.float32), zoom, order=1, mode="nearest",
                    grid_mode=True)


def resample_inplane(case: TrustedCase, pixel_mm: float, rng: np.random.Generator, *,
                     noise_hu: float = 12.0) -> TrustedCase:
    """``case`` resampled in-plane to ``pixel_mm`` (slices untouched); masks that shrink
    below :data:`MIN_MASK_VOXELS` are dropped. The grid is capped at :data:`MAX_MATRIX`.

    ``noise_hu``: the largest standard deviation (HU) of the white noise added on a finer
    grid (drawn uniformly up to it, scaled by how much finer the grid is).
    """
    sx, sy, sz = case.spacing
    nx, ny, _nz = case.ct.shape
    factor = min(float(sx) / pixel_mm, MAX_MATRIX / max(nx, ny))
    out_x, out_y = max(8, round(nx * factor)), max(8, round(ny * factor))
    zoom = (out_x / nx, out_y / ny, 1.0)
    ct = zoom_volume(case.ct, zoom, mask=False)
    if zoom[0] > 1.0 and noise_hu > 0:
        sigma = rng.uniform(0.0, noise_hu) * min(1.0, (zoom[0] - 1.0) / 2.0)
        ct += rng.normal(0.0, sigma, size=ct.shape).astype(np.float32)
    masks: dict[str, np.ndarray] = {}
    dropped = list(case.dropped)
    for name, mask in case.masks.items():
        up = zoom_volume(mask, zoom, mask=True)
        if int(up.sum()) < MIN_MASK_VOXELS:
            dropped.append(name)
            continue
        masks[name] = up
    spacing = (float(sx) * nx / out_x, float(sy) * ny / out_y, float(sz))
    return TrustedCase(case_id=case.case_id, patient_id=case.patient_id,
                       ct=np.ascontiguousarray(ct), masks=masks, spacing=spacing,
                       z_range=case.z_range, dropped=dropped)
