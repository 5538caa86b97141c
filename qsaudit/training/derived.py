"""Structures that a real CT defines by itself: extra trusted labels for training.

Clinical datasets label only what their task needs (OpenKBP: organs at risk of the head and
neck), yet their CT shows more. Some structures can be read off the CT with no annotator: the
lungs are the large air-filled regions inside the body, one on each side. Masks made this way
follow real edges on real texture, which the phantoms cannot give, and extend the real-CT
vocabulary towards the trunk. They are made only where they are unambiguous (a component that
lies wholly on one side of the midline, large enough to be a lung, not touching the volume's
in-plane border); anything else is left out.
"""

from __future__ import annotations

import numpy as np

LUNG_HU = -400.0        # below this, inside the body: air (lung parenchyma, airway)
BODY_HU = -500.0        # above this: the patient (and the table)
MIN_LUNG_ML = 15.0      # smaller air regions are airway, sinuses or bowel gas
MIN_SIDE_SHARE = 0.97   # a lung lies (almost) wholly on its own side of the midline
MIN_OFFSET_MM = 25.0    # its centroid sits at least this far from the midline


def derived_structures(ct: np.ndarray, spacing: tuple[float, float, float], *,
                       existing: set[str] | frozenset[str] = frozenset()) -> dict[str, np.ndarray]:
    """Masks of structures found from HU and connectivity alone, keyed by registry name.

    Args:
        ct: CT in HU, (X, Y, Z) in RAS (x increases towards the patient's right).
        spacing: voxel size in mm.
        existing: structures the case already has; those are never replaced.

    Returns ``{"lung_left": mask, "lung_right": mask}`` (bool, the CT's shape) for each lung
    that is found unambiguously; an empty dict when none is.
    """
    from scipy import ndimage as ndi

    ct = np.asarray(ct)
    body = _body(ct)
    if not body.any():
        return {}
    air = (ct < LUNG_HU) & body
    labels, n = ndi.label(air)
    if n == 0:
        return {}
    voxel_ml = float(np.prod(spacing)) / 1000.0
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    midline = _midline(body)
    x = np.arange(ct.shape[0], dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    for comp in np.flatnonzero(sizes * voxel_ml >= MIN_LUNG_ML):
        if comp == 0:
            continue
        mask = labels == comp
        box = ndi.find_objects(mask.astype(np.int8))[0]
        if box[0].start == 0 or box[1].start == 0 or box[0].stop == ct.shape[0] \
                or box[1].stop == ct.shape[1]:
            continue  # cut by the in-plane field of view: not a whole cross-section
        per_x = mask.sum(axis=(1, 2), dtype=np.int64).astype(np.float64)
        right_share = float(per_x[x > midline].sum() / per_x.sum())
        centre = float((per_x * x).sum() / per_x.sum())
        if abs(centre - midline) * float(spacing[0]) < MIN_OFFSET_MM:
            continue
        if right_share >= MIN_SIDE_SHARE:
            name = "lung_right"
        elif right_share <= 1.0 - MIN_SIDE_SHARE:
            name = "lung_left"
        else:
            continue
        if name in existing or name in out:  # two candidates for one lung: ambiguous
            out.pop(name, None)
            existing = set(existing) | {name}
            continue
        out[name] = _fill_slices(mask)
    return out


def _body(ct: np.ndarray) -> np.ndarray:
    """The patient: the largest component above :data:`BODY_HU`, its holes filled per slice."""
    from scipy import ndimage as ndi

    solid = ct > BODY_HU
    labels, n = ndi.label(solid)
    if n == 0:
        return solid
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    body = labels == int(np.argmax(sizes))
    return _fill_slices(body)


def _fill_slices(mask: np.ndarray) -> np.ndarray:
    """``mask`` with the holes of every axial slice filled (vessels inside a lung, lungs
    inside the body)."""
    from scipy import ndimage as ndi

    out = np.zeros_like(mask, dtype=bool)
    for z in np.flatnonzero(mask.any(axis=(0, 1))):
        out[:, :, z] = ndi.binary_fill_holes(mask[:, :, z])
    return out


def _midline(body: np.ndarray) -> float:
    """x index of the body's left-right centre (mean of the body voxels' x)."""
    per_x = body.sum(axis=(1, 2), dtype=np.int64).astype(np.float64)
    return float((per_x * np.arange(per_x.size)).sum() / per_x.sum())
