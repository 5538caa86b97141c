"""Structures read off real OpenKBP CT (shared data; skipped when absent): the trachea below the
larynx and in front of the oesophagus, the clavicles in front of the spinal cord, the humeri; their
sides checked against the clinical parotid contours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qsaudit.training.derived import derived_structures

OPENKBP = Path(__file__).resolve().parents[3] / "shared" / "data" / "openkbp"

pytestmark = pytest.mark.skipif(not OPENKBP.is_dir(), reason=f"{OPENKBP} not present")


def _case(patient: str, *labels: tuple[str, str]):
    """The CT (HU, canonical RAS), its spacing and the named labels (registry name, the
    dataset's label name) of one OpenKBP patient, read as qsaudit reads any dataset."""
    from qsaudit.datasets import read_image, read_mask
    from qsaudit.training.cases import dataset_specs

    case = next(s.case for s in dataset_specs(OPENKBP) if s.patient_id == patient)
    image = read_image(case)
    by_name = {label.name: label for label in case.labels}
    masks = {name: read_mask(by_name[file], image) for name, file in labels}
    return image.array, tuple(float(v) for v in image.spacing), masks


_PAROTIDS = (("right parotid", "RightParotid"), ("left parotid", "LeftParotid"))


def _on_the_parotids_sides(found: dict, masks: dict, what: str) -> None:
    """Each side's structure lies on the side of the clinician's parotid of that side."""
    centre = {side: np.argwhere(masks[f"{side} parotid"])[:, 0].mean()
              for side in ("right", "left")}
    for side, other in (("right", "left"), ("left", "right")):
        x = np.argwhere(found[f"{side} {what}"])[:, 0].mean()
        assert abs(x - centre[side]) < abs(x - centre[other])


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
    ct, spacing, masks = _case("train_pt_10", ("spinal cord", "SpinalCord"),
                               *_PAROTIDS)
    found = derived_structures(ct, spacing, masks=masks, sources=("clavicles",))
    assert set(found) == {"left clavicle", "right clavicle"}
    _on_the_parotids_sides(found, masks, "clavicle")
    cord_y = np.argwhere(masks["spinal cord"])[:, 1].mean()
    for mask in found.values():
        assert (np.argwhere(mask)[:, 1].mean() - cord_y) * spacing[1] > 25.0
        assert 8.0 <= mask.sum() * np.prod(spacing) / 1000.0 <= 45.0
        assert (ct[mask] > 150).mean() > 0.6  # bone, its marrow filled in


def test_the_humeri_are_read_where_the_scan_reaches_the_arms():
    ct, spacing, masks = _case("train_pt_113", *_PAROTIDS)
    found = derived_structures(ct, spacing, sources=("humeri",))
    assert set(found) == {"left humerus", "right humerus"}
    _on_the_parotids_sides(found, masks, "humerus")
    right = np.argwhere(found["right humerus"]).mean(axis=0)
    left = np.argwhere(found["left humerus"]).mean(axis=0)
    assert abs(right[0] - left[0]) * spacing[0] > 280.0  # far apart, beside the chest
    for mask in found.values():
        assert (ct[mask] > 150).mean() > 0.6  # bone, its marrow filled in



def test_the_ribs_wrap_the_lungs_from_the_spine_down_the_chest():
    from scipy import ndimage as ndi

    ct, spacing, masks = _case("train_pt_112", ("spinal cord", "SpinalCord"), *_PAROTIDS)
    found = derived_structures(ct, spacing, masks=masks, sources=("ribs",))
    assert {"left rib 1", "left rib 3", "right rib 1", "right rib 3"} <= set(found)
    assert all(int(name.split()[-1]) % 2 for name in found)  # every second one
    _on_the_parotids_sides(found, masks, "rib 1")
    _on_the_parotids_sides(found, masks, "rib 3")
    for side in ("left", "right"):  # rib 1 above rib 3 (z grows towards the head)
        tops = [np.flatnonzero(found[f"{side} rib {k}"].any(axis=(0, 1))).max() for k in (1, 3)]
        assert tops[0] > tops[1]
    lungs = derived_structures(ct, spacing, sources=("lungs",))
    assert lungs  # this patient's scan reaches well into the chest
    near_lung = ndi.distance_transform_edt(~np.logical_or.reduce(list(lungs.values())),
                                           sampling=spacing) <= 15.0
    cord_x = np.argwhere(masks["spinal cord"])[:, 0].mean()
    for mask in found.values():
        assert (ct[mask] > 150).mean() > 0.9 and 1.0 <= mask.sum() * np.prod(spacing) / 1e3 <= 25.0
        assert abs(np.argwhere(mask)[:, 0].mean() - cord_x) * spacing[0] > 40.0  # not the column
    for side in [s for s in ("left", "right") if f"lung_{s}" in lungs]:
        assert near_lung[found[f"{side} rib 1"]].all()  # against its lung
