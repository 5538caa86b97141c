"""Trunk phantoms' belly: packed with bowel loops of mixed content, mesenteric vessels in the fat."""

from __future__ import annotations

import numpy as np
import pytest

from qsaudit.phantoms.anatomy import Anatomy, level_z
from qsaudit.phantoms.canvas import SID, Canvas
from qsaudit.phantoms.patient import draw_body
from qsaudit.phantoms.tissue import T
from qsaudit.phantoms.trunk import TrunkAnatomy


def _belly(cls, seed: int):
    rng = np.random.default_rng(seed)
    body = draw_body(rng, sex="M", age=60)
    sp = 2.0
    canvas = Canvas(np.arange(-body.a - 4, body.a + 4, sp), np.arange(-body.b - 4, body.b + 4, sp),
                    np.arange(level_z(body, "L5") - 40, level_z(body, "L1"), 3.0))
    anatomy = (cls(canvas, body, rng, arms_down=False) if cls is TrunkAnatomy
               else cls(canvas, body, rng))
    anatomy.paint()
    slab = (canvas.z > level_z(body, "L4")) & (canvas.z < level_z(body, "L2"))
    cavity = (anatomy.depth >= anatomy.inner + 5)[:, :, None] & slab[None, None, :]
    fat = (canvas.tissue == T["visceral_fat"]) & cavity
    return canvas, fat.sum() / cavity.sum()


@pytest.fixture(scope="module")
def trunk_belly():
    return _belly(TrunkAnatomy, 5)


def test_the_belly_is_packed_not_organs_floating_in_fat(trunk_belly):
    # the abdominal phantom (the model's first training data) leaves half its mid-abdomen as
    # clear fat; a real belly is packed with bowel, and so is the trunk phantom's
    canvas, fat_share = trunk_belly
    _, sparse_share = _belly(Anatomy, 5)
    assert fat_share < 0.34 < sparse_share
    assert (canvas.struct == SID["small_bowel"]).sum() * 2.0 * 2.0 * 3.0 / 1000 > 500  # ml


def test_bowel_loops_hold_fluid_gas_or_oral_contrast(trunk_belly):
    canvas, _ = trunk_belly
    content = set(np.unique(canvas.tissue[canvas.struct == SID["small_bowel"]]).tolist())
    assert {T["bowel_fluid"], T["gas"], T["oral_contrast"], T["bowel_wall"]} <= content


def test_mesenteric_vessels_thread_the_fat_unlabelled(trunk_belly):
    canvas, _ = trunk_belly
    threads = np.isin(canvas.tissue, [T["iliac_artery"], T["iliac_vein"]]) & (canvas.struct == 0)
    assert threads.sum() > 200
