"""Phantoms: CT numbers of real tissues, anatomy that touches, no overlaps, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from qsaudit.phantoms import make_phantom
from qsaudit.phantoms.patient import draw_body

REQUIRED = ("liver", "spleen", "kidney_left", "kidney_right", "gallbladder", "stomach",
            "pancreas", "aorta", "inferior_vena_cava", "small_bowel", "colon", "vertebrae_T12",
            "vertebrae_L1", "vertebrae_L2", "vertebrae_L3", "lung_lower_lobe_left",
            "lung_lower_lobe_right")


@pytest.fixture(scope="module", params=[("M", 45, 0), ("F", 70, 1)], ids=["male", "female"])
def phantom(request):
    sex, age, seed = request.param
    return make_phantom(np.random.default_rng(seed), sex=sex, age=age)


def _touch(a: np.ndarray, b: np.ndarray, voxels: int) -> bool:
    return bool((ndi.binary_dilation(a, iterations=voxels) & b).any())


def test_grid_affine_and_types(phantom):
    ph = phantom
    assert ph.ct.dtype == np.float32 and ph.ct.ndim == 3
    assert 96 <= ph.ct.shape[0] <= 128 and ph.ct.shape[2] <= 80
    assert 2.0 <= ph.spacing[2] <= 6.0
    assert np.allclose(np.diag(ph.affine)[:3], ph.spacing)
    assert all(m.shape == ph.ct.shape and m.dtype == bool for m in ph.masks.values())
    assert ph.ct.min() >= -1024 and ph.ct.max() <= 3071


def test_structures_present_and_never_overlapping(phantom):
    masks = phantom.masks
    assert len(masks) >= 14
    for name in REQUIRED:
        assert name in masks and masks[name].sum() > 0, name
    stack = np.sum([m.astype(np.uint8) for m in masks.values()], axis=0)
    assert stack.max() == 1


def test_hounsfield_values_are_those_of_real_tissue(phantom):
    ct, m = phantom.ct, phantom.masks
    med = {name: float(np.median(ct[mask])) for name, mask in m.items()}
    assert abs(med["liver"] - 60) <= 20
    assert abs(med["spleen"] - 50) <= 20
    assert med["lung_lower_lobe_left"] < -700 and med["lung_lower_lobe_right"] < -700
    assert med["aorta"] > 150
    assert med["inferior_vena_cava"] > 80
    assert med["kidney_left"] > 90
    assert med["gallbladder"] < 35
    assert med["colon"] < -50  # gas and stool
    vertebrae = np.any([v for k, v in m.items() if k.startswith("vertebrae_")], axis=0)
    assert np.median(ct[vertebrae]) > 200
    outside = ~phantom.body
    assert np.median(ct[outside]) < -900
    body_fat = phantom.body & (ct < -50) & (ct > -200)
    assert body_fat.sum() > 0.05 * phantom.body.sum()


def test_neighbouring_organs_touch(phantom):
    m = phantom.masks
    vertebrae = np.any([v for k, v in m.items() if k.startswith("vertebrae_")], axis=0)
    lungs = m["lung_lower_lobe_right"] | m["lung_lower_lobe_left"]
    assert _touch(m["liver"], m["kidney_right"], 1)
    assert _touch(m["spleen"], m["kidney_left"], 1)
    assert _touch(m["liver"], lungs, 2)
    assert _touch(m["aorta"], vertebrae, 2)
    assert _touch(m["stomach"], m["spleen"], 2)
    # anatomical sides in RAS: +x is the patient's right
    x = {k: np.argwhere(v)[:, 0].mean() for k, v in m.items()}
    assert x["liver"] > x["spleen"] and x["kidney_right"] > x["kidney_left"]


def test_same_seed_same_phantom_and_grid_arguments():
    a = make_phantom(np.random.default_rng(5), sex="F", age=40, shape=(48, 48, 24))
    b = make_phantom(np.random.default_rng(5), sex="F", age=40, shape=(48, 48, 24))
    assert a.ct.shape == (48, 48, 24)
    assert np.array_equal(a.ct, b.ct) and a.masks.keys() == b.masks.keys()
    assert all(np.array_equal(a.masks[k], b.masks[k]) for k in a.masks)
    c = make_phantom(np.random.default_rng(5), sex="F", age=40, spacing=(4.0, 4.0, 6.0))
    assert c.spacing == (4.0, 4.0, 6.0)
    with pytest.raises(ValueError, match="sex"):
        make_phantom(np.random.default_rng(0), sex="X", age=40)


def test_body_size_depends_on_sex_and_age():
    rng = np.random.default_rng(0)
    men = [draw_body(rng, sex="M", age=50) for _ in range(200)]
    women = [draw_body(rng, sex="F", age=50) for _ in range(200)]
    old = [draw_body(rng, sex="F", age=85) for _ in range(200)]
    assert np.mean([b.a - b.fat for b in men]) > np.mean([b.a - b.fat for b in women]) + 5
    assert np.mean([b.fat for b in old]) > np.mean([b.fat for b in women]) + 4


def test_a_tube_stretched_along_z_is_a_flat_band_on_edge():
    from qsaudit.phantoms.canvas import SID, Canvas
    from qsaudit.phantoms.tissue import T

    axis = np.arange(-20.0, 20.5, 0.5)
    canvas = Canvas(axis, axis, axis)
    line = np.array([(-15.0, 0.0, 0.0), (15.0, 0.0, 0.0)])
    painted = canvas.paint_tube(line, np.array([3.0, 3.0]), struct="liver", tissue=T["liver"],
                                z_scale=2.0)
    ys, zs = np.flatnonzero(painted.any(axis=(0, 2))), np.flatnonzero(painted.any(axis=(0, 1)))
    # 6 mm across in-plane, 12 mm tall, and labelled as asked
    assert (ys[-1] - ys[0]) * 0.5 == pytest.approx(6.0, abs=0.6)
    assert (zs[-1] - zs[0]) * 0.5 == pytest.approx(12.0, abs=0.6)
    assert (canvas.struct[painted] == SID["liver"]).all()
