"""Domain randomisation for trunk phantoms: field of view, grid, body habitus and CT rendering.

A network that judges whether a mask follows the image must not learn what one phantom looks
like, so every trunk phantom draws its own field of view (chest .. pelvis), pixel size
(0.6-3.5 mm, mostly 0.7-1.5 mm) and slice spacing (0.6-5 mm), contrast phase, CT number of every
tissue, texture, noise level and grain, blur and a slow intensity drift. Only the rendering
changes with these draws; the masks are the painted structures themselves.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage as ndi

from qsaudit.degrade.fields import bbox, smooth_noise
from qsaudit.phantoms.anatomy import diaphragm_top, level_z
from qsaudit.phantoms.patient import Body
from qsaudit.phantoms.tissue import TISSUES, T

FOVS = ("chest", "chest_abdomen", "abdomen", "abdomen_pelvis", "chest_abdomen_pelvis")
# the chest is favoured: crops to the voxel budget cut long fields, and the abdominal default
# phantoms already cover the abdomen
FOV_P = (0.25, 0.2, 0.15, 0.15, 0.25)
PHASES = ("native", "arterial", "portal_venous")
MAX_VOXELS = 20_000_000  # larger grids are cropped along z (about 4 s of one core per phantom)
MAX_MATRIX = 512  # in-plane matrix of a scanner
MIN_Z_MM = 150.0  # a crop keeps at least this much of the field of view (slices <= 5 mm)

# mean HU per phase (native, arterial, portal venous) of the tissues that enhance;
# the others keep their value in TISSUES
PHASE_HU = {
    "aorta": (45, 330, 180), "iliac_artery": (45, 310, 170), "ivc": (40, 85, 135),
    "iliac_vein": (40, 75, 125), "blood_heart": (45, 260, 140),
    "pulmonary_blood": (45, 300, 150), "hepatic_vessel": (40, 70, 165), "liver": (58, 72, 112),
    "spleen": (48, 115, 118), "kidney_cortex": (35, 210, 175), "kidney_medulla": (35, 75, 155),
    "pancreas": (42, 115, 90), "myocardium": (45, 115, 100), "bowel_wall": (40, 85, 80),
    "stomach_wall": (40, 80, 75), "adrenal": (30, 60, 70), "renal_pelvis": (15, 15, 20),
}
SOFT_JITTER = 0.12  # relative sd of soft-tissue CT numbers
ABS_JITTER = 8.0  # and an absolute one, HU
KERNEL_SD_MM = (0.25, 0.8)  # in-plane blur (Gaussian sd, mm) of the reconstruction kernel


def draw_fov(rng: np.random.Generator, body: Body, fov: str | None = None
             ) -> tuple[str, float, float]:
    """A random field of view (or the named one): its name, top and bottom heights (mm)."""
    drawn = FOVS[int(rng.choice(len(FOVS), p=FOV_P))]
    if fov is None:
        fov = drawn
    elif fov not in FOVS:
        raise ValueError(f"fov must be one of {', '.join(FOVS)}, got {fov!r}")
    chest_top = level_z(body, "T1") + rng.uniform(15, 60)
    abdomen_top = diaphragm_top(body) + rng.uniform(10, 45)
    chest_bottom = diaphragm_top(body) - rng.uniform(20, 70)
    abdomen_bottom = level_z(body, "L4") - rng.uniform(0, 40)
    pelvis_bottom = level_z(body, "L5") - rng.uniform(150, 230)
    top = chest_top if fov.startswith("chest") else abdomen_top
    bottom = {"chest": chest_bottom, "chest_abdomen": abdomen_bottom,
              "abdomen": abdomen_bottom}.get(fov, pelvis_bottom)
    return fov, float(top), float(bottom)


def draw_spacing(rng: np.random.Generator) -> tuple[float, float, float]:
    """Pixel size 0.6-3.5 mm (70% in 0.7-1.5 mm), slice spacing 0.6-5 mm (log-uniform)."""
    u = rng.random()
    if u < 0.7:
        sxy = rng.uniform(0.7, 1.5)
    elif u < 0.8:
        sxy = rng.uniform(0.6, 0.7)
    else:
        sxy = rng.uniform(1.5, 3.5)
    sz = float(np.exp(rng.uniform(np.log(0.6), np.log(5.0))))
    return float(sxy), float(sxy), sz


def trunk_grid(rng: np.random.Generator, body: Body, half_width: float, shape, spacing,
               fov: str | None = None, max_voxels: int = MAX_VOXELS):
    """1-D mm coordinates x, y, z, the spacing and the field-of-view name of a trunk grid.

    ``half_width``: half the width to image (body, or arms when they are down); ``fov``: a
    field of view from :data:`FOVS` (None: drawn at random). Without
    ``shape`` the in-plane matrix is at most 512 (fine pixels see a smaller field, as on a
    scanner) and the grid holds at most ``max_voxels`` (:data:`MAX_VOXELS`): a longer field of view is cropped
    to a random window along z (slices made thicker, up to 5 mm, only when the window would be
    under :data:`MIN_Z_MM`).
    """
    fov, top, bottom = draw_fov(rng, body, fov)
    fov_xy = 2 * half_width * rng.uniform(1.04, 1.14)
    drawn = draw_spacing(rng)
    if spacing is None:
        if shape is not None:
            sxy = fov_xy / shape[0]
            spacing = (sxy, sxy, (top - bottom) / shape[2])
        else:
            spacing = drawn
    spacing = tuple(float(s) for s in spacing)
    if shape is None:
        # a scanner's matrix is 512: fine pixels image a smaller field (the body may be cut)
        nx = min(int(np.ceil(fov_xy / spacing[0])), MAX_MATRIX)
        ny = min(int(np.ceil(fov_xy / spacing[1])), MAX_MATRIX)
        max_nz = max(1, int(max_voxels) // (nx * ny))
        if max_nz * spacing[2] < MIN_Z_MM:  # thicker slices, up to 5 mm, to keep some length
            spacing = (spacing[0], spacing[1], min(5.0, MIN_Z_MM / max_nz))
        nz = int(np.ceil((top - bottom) / spacing[2]))
        shift = rng.uniform(0, 1)
        if nz > max_nz:  # crop a window of the field of view
            bottom += shift * (nz - max_nz) * spacing[2]
            nz = max_nz
        shape = (nx, ny, nz)
    shape = tuple(int(n) for n in shape)
    centre_y = rng.uniform(-0.04, 0.04) * body.b
    x = (np.arange(shape[0]) - (shape[0] - 1) / 2) * spacing[0]
    y = (np.arange(shape[1]) - (shape[1] - 1) / 2) * spacing[1] + centre_y
    z = bottom + (np.arange(shape[2]) + 0.5) * spacing[2]
    return x, y, z, spacing, fov


def vary_body(rng: np.random.Generator, body: Body) -> Body:
    """Wider spread of habitus than :func:`draw_body`: overall size and fat rescaled."""
    size = rng.uniform(0.85, 1.15)
    fat = float(np.clip(body.fat * rng.uniform(0.4, 1.7), 3, 70))
    core_a, core_b = (body.a - body.fat) * size, (body.b - body.fat) * size
    return dataclasses.replace(body, a=float(core_a + fat), b=float(core_b + fat), fat=fat)


def tissue_hu(rng: np.random.Generator, phase: str) -> tuple[np.ndarray, np.ndarray]:
    """Randomised mean and texture amplitude (HU) of every tissue class for one phantom."""
    p = PHASES.index(phase)
    means = np.array([PHASE_HU[name][p] if name in PHASE_HU else mean
                      for name, mean, _std, _len in TISSUES], dtype=np.float64)
    soft = (means > -300) & (means < 400)
    means[soft] += rng.normal(0, 1, soft.sum()) * (SOFT_JITTER * np.abs(means[soft]) + ABS_JITTER)
    for name, lo, hi in (("cortical_bone", 700, 1600), ("lung", -920, -740), ("gas", -1000, -900),
                         ("subcutaneous_fat", -130, -70), ("visceral_fat", -125, -65),
                         ("marrow", 140, 380), ("cartilage", 60, 250),
                         ("oral_contrast", 120, 450)):
        means[T[name]] = rng.uniform(lo, hi)
    # compact bone is far denser than the trabecular bone it wraps (at least 400 HU more); its
    # own CT number, before the blur that thin cortices get on any scanner
    means[T["cortical_bone"]] = max(means[T["cortical_bone"]], means[T["marrow"]] + 400.0)
    amp = np.array([std for _n, _m, std, _l in TISSUES]) * rng.uniform(0.4, 2.0, len(TISSUES))
    return means.astype(np.float32), amp.astype(np.float32)


def render_trunk_ct(tissue: np.ndarray, spacing, rng: np.random.Generator, phase: str
                    ) -> np.ndarray:
    """CT (float32 HU) of a tissue map with randomised intensities, texture, blur and noise."""
    means, amp = tissue_hu(rng, phase)
    ct = means[tissue]
    lengths = np.array([rng.uniform(1.5, 3.0), rng.uniform(3.5, 7.0), rng.uniform(8.0, 14.0)])
    own = np.array([length for *_r, length in TISSUES])
    nearest = np.abs(own[:, None] - lengths[None, :]).argmin(axis=1)
    present = np.unique(tissue)
    lung = tissue == T["lung"]
    for i, length in enumerate(lengths):  # three texture grains shared by all tissues
        classes = [int(t) for t in present if nearest[t] == i and amp[t] > 0]
        if not classes:
            continue
        field = smooth_noise(tissue.shape, spacing, float(length), rng)
        sel = np.isin(tissue, classes)
        ct[sel] += amp[tissue[sel]] * field[sel]
        if T["lung"] in classes:  # pulmonary vessels: bright threads along the lung's texture
            ct[lung & (np.abs(field) < rng.uniform(0.03, 0.08))] = rng.uniform(-200, 60)
    ivc = tissue == T["ivc"]
    if phase != "native" and ivc.any() and rng.random() < 0.5:
        # inflow: unenhanced blood from the legs and bright blood from the renal veins mix in
        # the IVC in swirls; the vein reads patchy and often no brighter than the liver
        box = bbox(ivc)
        swirl = smooth_noise(ct[box].shape, spacing, float(rng.uniform(4.0, 10.0)), rng)
        inside = ivc[box]
        ct[box][inside] += (rng.uniform(15.0, 50.0) * swirl[inside] - rng.uniform(0.0, 50.0))
    drift = rng.uniform(0, 15)  # beam hardening and scatter: a slow drift over the volume
    if drift > 0:
        ct += drift * smooth_noise(tissue.shape, spacing, 150.0, rng)
    # the scanner's point spread (a sharp bone kernel ~0.3 mm, a smooth soft-tissue one ~0.8 mm)
    # on top of each voxel's own averaging (a box of one voxel: sd 0.29 of its size)
    kernel_mm = rng.uniform(*KERNEL_SD_MM)
    sigma = [float(np.hypot(kernel_mm, 0.29 * s)) / s for s in spacing]
    ct = ndi.gaussian_filter(ct, sigma)
    noise_hu = float(np.exp(rng.uniform(np.log(4.0), np.log(60.0))))
    grain = rng.uniform(0.3, 1.5)  # reconstruction kernel: sharp (fine grain) to smooth
    noise = rng.standard_normal(tissue.shape, dtype=np.float32)
    noise = ndi.gaussian_filter(noise, [grain, grain, 0.3])
    noise *= noise_hu / max(float(noise[::3, ::3, ::3].std()), 1e-6)
    return np.clip(ct + noise, -1024, 3071).astype(np.float32)
