"""All per-label checks on a small phantom: silent on perfect labels, firing on planted errors."""

import numpy as np
import pytest

from qsaudit.checks import body_profile, check_label, mask_stats, swapped_pairs
from qsaudit.degrade import degrade
from qsaudit.phantoms import make_phantom
from qsaudit.registry import lookup


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(np.random.default_rng(3), sex="M", age=50, shape=(64, 64, 32))


def _check(phantom, name, mask):
    midline = body_profile(phantom.ct, phantom.spacing).midline_x
    return check_label(mask, phantom.ct, phantom.spacing, structure=lookup(name),
                       midline_x=midline)


def test_perfect_phantom_raises_no_flag(phantom):
    raised = {name: [f for f, on in _check(phantom, name, mask).flags().items() if on]
              for name, mask in phantom.masks.items()}
    assert {name: flags for name, flags in raised.items() if flags} == {}


def test_lr_swap_flags_side(phantom):
    mask = phantom.masks["kidney_left"]
    swapped = degrade(mask, "lr_swap", 1.0, np.random.default_rng(0), spacing=phantom.spacing,
                      body=phantom.body).mask
    result = _check(phantom, "kidney_left", swapped)
    assert result.flag_side and result.side_offset_mm > 0


def test_partial_lr_swap_flags_side(phantom):
    mask = phantom.masks["kidney_right"]
    part = degrade(mask, "lr_swap", 0.1, np.random.default_rng(2), spacing=phantom.spacing,
                   body=phantom.body).mask
    result = _check(phantom, "kidney_right", part)
    assert result.flag_side and result.wrong_side_share > 0.15


def test_swapped_pair_flags_both(phantom):
    midline = body_profile(phantom.ct, phantom.spacing).midline_x
    x = {key: (mask_stats(phantom.masks[key]).centroid[0] - midline) * phantom.spacing[0]
         for key in ("kidney_left", "kidney_right")}
    sides = {"kidney_left": "left", "kidney_right": "right"}
    pairs = {"kidney_left": "kidney_right", "kidney_right": "kidney_left"}
    assert swapped_pairs(x, sides, pairs) == set()
    crossed = {"kidney_left": x["kidney_right"], "kidney_right": x["kidney_left"]}
    assert swapped_pairs(crossed, sides, pairs) == {"kidney_left", "kidney_right"}


def test_spurious_blob_flags_components(phantom):
    blob = degrade(phantom.masks["spleen"], "spurious_blob", 0.3, np.random.default_rng(1),
                   spacing=phantom.spacing, body=phantom.body).mask
    result = _check(phantom, "spleen", blob)
    assert result.flag_components and result.components >= 2


def test_air_leak_flags_hu(phantom):
    mask = phantom.masks["pancreas"]
    air = phantom.ct < -900
    out = air & ~phantom.body
    assert out.sum() > mask.sum()
    leaked = mask | (out & (np.cumsum(out.ravel()).reshape(out.shape) <= mask.sum()))
    assert _check(phantom, "pancreas", leaked).flag_hu


def test_edge_in_plane_and_z_for_compact_organs(phantom):
    liver = phantom.masks["liver"]
    shifted = np.zeros_like(liver)
    shifted[30:] = liver[:-30]        # moved towards the right border until cut by it
    assert _check(phantom, "liver", shifted).flag_edge
    cut = liver.copy()
    z0, z1 = np.flatnonzero(liver.any(axis=(0, 1)))[[0, -1]]
    cut_z = cut[:, :, (z0 + z1) // 2:]   # the liver's lower half dropped: cut by the scan's z-end
    ct_z = phantom.ct[:, :, (z0 + z1) // 2:]
    midline = body_profile(phantom.ct, phantom.spacing).midline_x
    assert check_label(cut_z, ct_z, phantom.spacing, structure=lookup("liver"),
                       midline_x=midline).flag_edge
    aorta_z = phantom.masks["aorta"][:, :, (z0 + z1) // 2:]
    assert not check_label(aorta_z, ct_z, phantom.spacing, structure=lookup("aorta"),
                           midline_x=midline).flag_edge


def test_check_label_rejects_empty_and_mismatched(phantom):
    empty = np.zeros_like(phantom.masks["liver"])
    with pytest.raises(ValueError, match="empty"):
        _check(phantom, "liver", empty)
    with pytest.raises(ValueError, match="shape"):
        check_label(phantom.masks["liver"][:-1], phantom.ct, phantom.spacing, structure=None,
                    midline_x=32.0)
