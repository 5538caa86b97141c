"""Structures read off real OpenKBP CT (shared data; skipped when absent): the trachea below the
larynx and in front of the oesophagus, the clavicles in front of the spinal cord."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qsaudit.training.derived import derived_structures

OPENKBP = Path(__file__).resolve().parents[3] / "shared" / "data" / "openkbp"

pytestmark = pytest.mark.skipif(not OPENKBP.is_dir(), reason=f"{OPENKBP} not present")


def _case(patient: str, *labels: str):
    import nibabel as nib

    image = nib.load(OPENKBP / patient / "ct.nii.gz")
    ct = np.asarray(image.dataobj, dtype=np.float32)
    spacing = tuple(float(v) for v in image.header.get_zooms()[:3])
    masks = {name: np.asarray(nib.load(OPENKBP / patient / "segmentations"
                                       / f"{file}.nii.gz").dataobj) > 0
             for name, file in labels}
    return ct, spacing, masks


def test_the_trachea_runs_down_from_the_larynx_in_front_of_the_oesophagus():
    ct, spacing, masks = _case("train_pt_112", ("larynx", "Larynx"), ("esophagus", "Esophagus"))
    trachea = derived_structures(ct, spacing, masks=masks, sources=("trachea",))["trachea"]
    levels = np.flatnonzero(trachea.any(axis=(0, 1)))
    larynx_bottom = np.flatnonzero(masks["larynx"].any(axis=(0, 1))).min()
    assert levels.max() == larynx_bottom - 1 and levels.size * spacing[2] >= 60.0
    assert (ct[trachea] < -500).all() and not (trachea & masks["esophagus"]).any()
    for z in levels[::4]:  # RAS: y grows to the front
        if masks["esophagus"][:, :, z].any():
            front = np.argwhere(trachea[:, :, z])[:, 1].mean()
            assert front > np.argwhere(masks["esophagus"][:, :, z])[:, 1].mean()


def test_both_clavicles_lie_in_front_of_the_cord_one_on_each_side():
    ct, spacing, masks = _case("train_pt_10", ("spinal cord", "SpinalCord"))
    found = derived_structures(ct, spacing, masks=masks, sources=("clavicles",))
    assert set(found) == {"left clavicle", "right clavicle"}
    cord_y = np.argwhere(masks["spinal cord"])[:, 1].mean()
    right = np.argwhere(found["right clavicle"]).mean(axis=0)
    left = np.argwhere(found["left clavicle"]).mean(axis=0)
    assert right[0] > left[0]  # RAS: x grows to the patient's right
    for c in (right, left):
        assert (c[1] - cord_y) * spacing[1] > 25.0
    for mask in found.values():
        assert 8.0 <= mask.sum() * np.prod(spacing) / 1000.0 <= 45.0


def test_the_humeri_are_read_where_the_scan_reaches_the_arms():
    ct, spacing, _ = _case("train_pt_113")
    found = derived_structures(ct, spacing, sources=("humeri",))
    assert set(found) == {"left humerus", "right humerus"}
    right = np.argwhere(found["right humerus"]).mean(axis=0)
    left = np.argwhere(found["left humerus"]).mean(axis=0)
    assert (right[0] - left[0]) * spacing[0] > 280.0  # far apart, beside the chest
    for mask in found.values():
        assert (ct[mask] > 150).mean() > 0.6  # bone, its marrow filled in
