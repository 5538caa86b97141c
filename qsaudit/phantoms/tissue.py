"""Tissue classes and their CT numbers, and the step from tissue map to a noisy CT volume.

Values are Hounsfield units of a portal-venous contrast CT: air -1000, fat about -100, muscle
about 45, liver 60, spleen 50, enhanced kidney cortex 170, aorta 200, cortical bone 800.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from qsaudit.degrade.fields import smooth_noise

# name: (mean HU, texture std HU, texture length mm)
TISSUES: tuple[tuple[str, float, float, float], ...] = (
    ("air", -1000, 0, 10),
    ("subcutaneous_fat", -105, 12, 6),
    ("muscle", 45, 6, 5),
    ("visceral_fat", -95, 18, 4),
    ("lung", -860, 25, 4),
    ("blood_heart", 125, 8, 10),
    ("liver", 62, 5, 6),
    ("hepatic_vessel", 135, 8, 6),
    ("spleen", 52, 5, 6),
    ("kidney_cortex", 170, 10, 4),
    ("kidney_medulla", 95, 10, 4),
    ("renal_sinus_fat", -80, 15, 4),
    ("renal_pelvis", 15, 5, 5),
    ("gallbladder_bile", 10, 3, 8),
    ("stomach_wall", 55, 6, 4),
    ("stomach_content", 22, 8, 8),
    ("gas", -1000, 8, 5),
    ("pancreas", 45, 10, 3),
    ("bowel_wall", 60, 8, 4),
    ("bowel_fluid", 22, 12, 5),
    ("stool", -170, 160, 4),
    ("aorta", 220, 6, 10),
    ("ivc", 120, 8, 10),
    ("iliac_artery", 210, 6, 10),
    ("iliac_vein", 110, 8, 10),
    ("cortical_bone", 850, 120, 3),
    ("marrow", 250, 40, 4),
    ("disc", 85, 8, 5),
    ("csf", 18, 5, 6),
    ("urine", 8, 3, 8),
    ("adrenal", 35, 5, 4),
    # trunk phantoms only
    ("cartilage", 110, 25, 3),
    ("myocardium", 95, 8, 5),
    ("yellow_marrow", -40, 30, 4),
    ("spinal_cord", 35, 4, 6),
    ("pulmonary_blood", 160, 8, 10),
    ("esophagus_wall", 45, 6, 4),
    ("oral_contrast", 250, 30, 6),
)
T = {name: i for i, (name, *_rest) in enumerate(TISSUES)}


def render_ct(tissue: np.ndarray, spacing: tuple[float, float, float], rng: np.random.Generator,
              *, noise_hu: float, blur_vox: float) -> np.ndarray:
    """CT values (float32 HU) from a tissue map: mean + texture, partial-volume blur, noise.

    ``noise_hu`` is the std of the scanner noise (slightly correlated, ~0.6 voxel); ``blur_vox``
    the Gaussian sigma (voxels, in-plane; less across thick slices) of partial-volume blur.
    """
    means = np.array([t[1] for t in TISSUES], dtype=np.float32)
    ct = means[tissue]
    present = np.unique(tissue)
    by_length: dict[float, list[int]] = {}
    for t in present:
        _, _, std, length = TISSUES[t]
        if std > 0:
            by_length.setdefault(length, []).append(int(t))
    amp = np.array([t[2] for t in TISSUES], dtype=np.float32)
    for length, classes in by_length.items():
        field = smooth_noise(tissue.shape, spacing, length, rng)
        sel = np.isin(tissue, classes)
        ct[sel] += amp[tissue[sel]] * field[sel]
    lung = tissue == T["lung"]
    if lung.any():  # pulmonary vessels: bright threads and dots in the lung
        vessels = smooth_noise(tissue.shape, spacing, 5.0, rng)
        ct[lung & (np.abs(vessels) < 0.09)] = -120.0
    sigma = [blur_vox, blur_vox, blur_vox * min(1.0, spacing[0] / spacing[2]) + 0.3]
    ct = ndi.gaussian_filter(ct, sigma)
    noise = rng.standard_normal(tissue.shape).astype(np.float32)
    noise = ndi.gaussian_filter(noise, [0.6, 0.6, 0.3])
    noise *= noise_hu / max(float(noise.std()), 1e-6)
    return np.clip(ct + noise, -1024, 3071).astype(np.float32)
