"""Trunk phantoms' arms near the elbow: flared humeral condyles, unlabelled forearm bones."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from qsaudit.phantoms.anatomy import level_z
from qsaudit.phantoms.canvas import SID, Canvas
from qsaudit.phantoms.limbs import FLARE_MM, HUMERUS_LENGTH_MM
from qsaudit.phantoms.patient import draw_body
from qsaudit.phantoms.tissue import T
from qsaudit.phantoms.trunk import TrunkAnatomy, arm


@pytest.fixture(scope="module")
def arms():
    rng = np.random.default_rng(3)
    body = draw_body(rng, sex="F", age=50)
    elbow = level_z(body, "T1") - HUMERUS_LENGTH_MM
    half = sum(arm(body)) + 10
    sp = 1.5
    canvas = Canvas(np.arange(-half, half, sp), np.arange(-body.b - 10, body.b + 10, sp),
                    np.arange(elbow - 60, elbow + 2 * FLARE_MM, 3.0))
    anatomy = TrunkAnatomy(canvas, body, rng, arms_down=True)
    anatomy.paint()
    return canvas, anatomy, elbow, sp


@pytest.mark.parametrize("side", ["left", "right"])
def test_the_humerus_flares_into_flat_condyles_at_the_elbow(arms, side):
    # an abdominal CT cuts the arm near the elbow: the humerus is 5-6 cm wide there, not the
    # 2-2.5 cm round shaft higher up
    canvas, _anatomy, elbow, sp = arms
    hum = canvas.struct == SID[f"humerus_{side}"]
    zs = np.flatnonzero(hum.any(axis=(0, 1)))
    assert canvas.z[zs[0]] >= elbow - 15  # it ends at the elbow

    def span(k):  # the longest in-plane extent (mm) of the slice's cross-section
        xy = np.argwhere(hum[:, :, k]) * sp
        centred = xy - xy.mean(axis=0)
        return 2 * np.sqrt(np.linalg.eigvalsh(np.cov(centred.T)).max()) * 2

    near = [span(k) for k in zs if canvas.z[k] < elbow + 15]
    shaft = [span(k) for k in zs if canvas.z[k] > elbow + FLARE_MM + 10]
    assert max(near) > 40.0
    assert shaft and max(shaft) < 32.0
    cortex = hum & (canvas.tissue == T["cortical_bone"])
    assert cortex.sum() > 0.15 * hum.sum()  # bone with a cortex, not a filled blob


def test_forearm_bones_lie_below_the_elbow_unlabelled(arms):
    canvas, anatomy, elbow, _sp = arms
    below = canvas.z < elbow - 25
    bone = (canvas.tissue == T["cortical_bone"]) & (canvas.struct == 0)
    xa = anatomy.arm[0]
    for s in (-1, 1):
        in_arm = (s * canvas.x > xa - 45)[:, None]
        k = int(np.flatnonzero(below)[len(np.flatnonzero(below)) // 2])
        pieces = ndi.label(bone[:, :, k] & in_arm)[1]
        assert pieces == 2, s  # the ulna and the radius
    labelled = canvas.struct[:, :, below] != 0
    arm_x = np.abs(canvas.x) > anatomy.b.a + 6
    assert not labelled[arm_x].any()  # no label reaches below the elbow in the arms
