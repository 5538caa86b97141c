"""One synthetic CT (abdomen, or the whole trunk) with its correct masks: :func:`make_phantom`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from qsaudit.degrade.fields import smooth_noise
from qsaudit.phantoms.anatomy import Anatomy, diaphragm_top, level_z
from qsaudit.phantoms.canvas import STRUCTURES, Canvas
from qsaudit.phantoms.domain import PHASES, render_trunk_ct, trunk_grid, vary_body
from qsaudit.phantoms.patient import draw_body
from qsaudit.phantoms.tissue import T, render_ct
from qsaudit.phantoms.trunk import TrunkAnatomy, arm

DEFAULT_INPLANE = (112, 129)  # in-plane matrix size is drawn from this range (end excluded)
MAX_SLICES = 80
MIN_VOXELS = 50  # structures clipped by the field of view to fewer voxels are left out


@dataclass
class Phantom:
    """A synthetic CT and its correct masks, in canonical RAS orientation.

    ``ct``: float32 HU, shape (X, Y, Z) with Z axial; ``masks``: TotalSegmentator v2 name ->
    bool mask of the same shape (non-overlapping); ``spacing``: voxel size in mm; ``affine``:
    4x4 RAS affine; ``body``: bool mask of the patient (everything that is not outside air).
    """

    ct: np.ndarray
    masks: dict[str, np.ndarray]
    spacing: tuple[float, float, float]
    affine: np.ndarray
    sex: str
    age: int
    body: np.ndarray | None = field(default=None, repr=False)
    fov: str = "abdomen"
    phase: str = "portal_venous"


def _grid(rng: np.random.Generator, body, shape, spacing):
    top = diaphragm_top(body) + rng.uniform(10, 45)
    if rng.random() < 0.6:  # abdomen and pelvis
        bottom = level_z(body, "L5") - rng.uniform(95, 130)
    else:  # abdomen only
        bottom = level_z(body, "L4") - rng.uniform(0, 30)
    fov_xy = 2 * body.a * rng.uniform(1.06, 1.16)
    if spacing is None:
        n_xy = shape[0] if shape is not None else int(rng.integers(*DEFAULT_INPLANE))
        sxy = fov_xy / n_xy
        if shape is not None:
            sz = (top - bottom) / shape[2]
        else:
            sz = max(float(rng.choice([2.0, 2.5, 3.0, 4.0, 5.0])), (top - bottom) / MAX_SLICES)
        spacing = (sxy, sxy, sz)
    spacing = tuple(float(s) for s in spacing)
    if shape is None:
        shape = (int(np.ceil(fov_xy / spacing[0])), int(np.ceil(fov_xy / spacing[1])),
                 int(np.ceil((top - bottom) / spacing[2])))
    shape = tuple(int(n) for n in shape)
    centre_y = rng.uniform(-0.04, 0.04) * body.b
    x = (np.arange(shape[0]) - (shape[0] - 1) / 2) * spacing[0]
    y = (np.arange(shape[1]) - (shape[1] - 1) / 2) * spacing[1] + centre_y
    z = bottom + (np.arange(shape[2]) + 0.5) * spacing[2]
    return x, y, z, spacing


def _warp(canvas: Canvas, spacing, rng: np.random.Generator, amplitude_mm: float) -> None:
    """Bend the painted anatomy with a smooth random displacement (shape variation)."""
    coords = np.indices(canvas.shape, dtype=np.float32)
    for axis in range(3):
        coords[axis] += (amplitude_mm / spacing[axis]) * smooth_noise(canvas.shape, spacing,
                                                                     80.0, rng)
    packed = canvas.struct.astype(np.uint16) * 256 + canvas.tissue
    warped = ndi.map_coordinates(packed, coords, order=0, mode="nearest")
    canvas.struct = (warped // 256).astype(np.uint8)
    canvas.tissue = (warped % 256).astype(np.uint8)


def make_phantom(rng: np.random.Generator, *, sex: str, age: int,
                 shape: tuple[int, int, int] | None = None,
                 spacing: tuple[float, float, float] | None = None,
                 region: str = "abdomen", fov: str | None = None,
                 max_voxels: int | None = None) -> Phantom:
    """A random CT phantom for a patient of ``sex`` ("M"/"F") and ``age`` (years).

    Body size depends on sex and age (men larger, subcutaneous fat grows with age).
    ``region="abdomen"`` (the default): in-plane matrix 112-128 voxels (spacing follows from the
    body width, about 2.5-3 mm), at most 80 slices of 2-5 mm, field of view from above the
    diaphragm to L4 or the pelvis, ~37 structures, portal-venous phase.
    ``region="trunk"``: the whole trunk vocabulary (ribs, sternum, shoulder girdle, lung lobes,
    mediastinum, femurs, gluteals, C7-L5), a random field of view (chest .. pelvis), pixel size
    0.6-3.5 mm and slices 0.6-5 mm, and heavy domain randomisation (contrast phase, tissue CT
    numbers, texture, noise, blur, habitus, arms up or down); see
    :mod:`qsaudit.phantoms.domain`. At most 20 M voxels. ``fov`` (trunk only) names the field
    of view instead (one of :data:`qsaudit.phantoms.domain.FOVS`; same random draws).
    ``shape`` and/or ``spacing`` fix the grid (the body may then be cropped). ``max_voxels``
    (trunk only) lowers the grid's voxel cap (training keeps memory bounded with it).
    Deterministic for a given generator state.
    """
    if sex not in ("M", "F"):
        raise ValueError(f"sex must be 'M' or 'F', got {sex!r}")
    if region not in ("abdomen", "trunk"):
        raise ValueError(f"region must be 'abdomen' or 'trunk', got {region!r}")
    body = draw_body(rng, sex=sex, age=age)
    if region == "trunk":
        return _trunk_phantom(rng, body, sex=sex, age=age, shape=shape, spacing=spacing,
                              fov=fov, max_voxels=max_voxels)
    if fov is not None:
        raise ValueError("fov applies to region='trunk' only")
    x, y, z, sp = _grid(rng, body, shape, spacing)
    canvas = Canvas(x, y, z)
    Anatomy(canvas, body, rng).paint()
    _warp(canvas, sp, rng, amplitude_mm=rng.uniform(3.0, 7.0))
    ct = render_ct(canvas.tissue, sp, rng, noise_hu=rng.uniform(10, 20),
                   blur_vox=rng.uniform(0.6, 1.0))
    return _phantom(canvas, ct, sp, (x[0], y[0], z[0]), sex=sex, age=age)


def _trunk_phantom(rng, body, *, sex, age, shape, spacing, fov, max_voxels=None) -> Phantom:
    body = vary_body(rng, body)
    arms_down = bool(rng.random() < 0.5)
    phase = PHASES[int(rng.integers(len(PHASES)))]
    half = body.a
    if arms_down:
        half = sum(arm(body))  # both arms in the image
    x, y, z, sp, fov = trunk_grid(rng, body, half, shape, spacing, fov,
                                  **({} if max_voxels is None else {"max_voxels": max_voxels}))
    canvas = Canvas(x, y, z)
    TrunkAnatomy(canvas, body, rng, arms_down=arms_down).paint()
    _warp(canvas, sp, rng, amplitude_mm=rng.uniform(2.0, 6.0))
    ct = render_trunk_ct(canvas.tissue, sp, rng, phase)
    return _phantom(canvas, ct, sp, (x[0], y[0], z[0]), sex=sex, age=age, fov=fov, phase=phase)


def _phantom(canvas: Canvas, ct: np.ndarray, sp, origin, *, sex: str, age: int,
             **extra) -> Phantom:
    masks = {}
    counts = np.bincount(canvas.struct.ravel(), minlength=len(STRUCTURES))
    boxes = ndi.find_objects(canvas.struct, max_label=len(STRUCTURES) - 1)
    for sid, name in enumerate(STRUCTURES):
        if sid and counts[sid] >= MIN_VOXELS:  # compare inside the structure's box only
            box = boxes[sid - 1]
            masks[name] = np.zeros(canvas.shape, dtype=bool)
            masks[name][box] = canvas.struct[box] == sid
    affine = np.diag([sp[0], sp[1], sp[2], 1.0])
    affine[:3, 3] = origin
    return Phantom(ct=ct, masks=masks, spacing=sp, affine=affine, sex=sex, age=int(age),
                   body=canvas.tissue != T["air"], **extra)
