"""Structures a real CT defines by itself: lungs from HU and connectivity."""

from __future__ import annotations

import numpy as np

from qsaudit.training.derived import derived_structures


def _chest(shape=(80, 64, 30), spacing=(4.0, 4.0, 3.0), bridge=False):
    """A body (soft tissue) with two air-filled lungs, a vessel inside the right one (x high)."""
    x, y, z = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    ct = np.full(shape, -1000.0, np.float32)
    body = ((x - 40) / 36.0) ** 2 + ((y - 32) / 26.0) ** 2 <= 1
    ct[body] = 40.0
    right = (((x - 58) / 12.0) ** 2 + ((y - 32) / 14.0) ** 2 <= 1) & (z < 24)
    left = (((x - 22) / 12.0) ** 2 + ((y - 32) / 14.0) ** 2 <= 1) & (z < 22)
    ct[right | left] = -850.0
    vessel = ((x - 58) ** 2 + (y - 32) ** 2 <= 4)
    ct[vessel & right] = 50.0
    if bridge:  # an airway joining both lungs: no longer one lung per side
        ct[22:58, 30:34, 10:12] = -900.0
    return ct, right, left, spacing


def test_both_lungs_are_found_with_their_vessels_inside():
    ct, right, left, spacing = _chest()
    found = derived_structures(ct, spacing)
    assert set(found) == {"lung_left", "lung_right"}
    # the right lung is at high x (RAS); its vessel is part of it (holes filled per slice)
    assert found["lung_right"][58, 32, 5] and found["lung_right"].sum() >= right.sum()
    inter = (found["lung_right"] & right).sum()
    assert inter / right.sum() > 0.98
    assert (found["lung_left"] & left).sum() / left.sum() > 0.98
    assert not (found["lung_left"] & found["lung_right"]).any()


def test_ambiguous_or_existing_lungs_are_left_out():
    ct, _, _, spacing = _chest(bridge=True)
    assert derived_structures(ct, spacing) == {}
    ct, _, _, spacing = _chest()
    assert set(derived_structures(ct, spacing, existing={"lung_left"})) == {"lung_right"}
    # no body, no air inside it: nothing
    assert derived_structures(np.full((20, 20, 5), -1000.0, np.float32), spacing) == {}


def _neck(spacing=(1.0, 1.0, 2.5), levels=5, height_mm=17.5, disc_mm=5.0):
    """A neck: soft tissue, a spinal cord, and a column of vertebrae (a body in front of the
    cord, an arch around it) separated by discs; the skull's base above the top one."""
    nz = round(levels * (height_mm + disc_mm) / spacing[2]) + 8
    shape = (90, 90, nz)
    x, y = np.meshgrid(np.arange(90) * spacing[0], np.arange(90) * spacing[1], indexing="ij")
    ct = np.full(shape, -1000.0, np.float32)
    ct[((x - 45) / 44) ** 2 + ((y - 45) / 44) ** 2 <= 1] = 40.0
    cord = np.zeros(shape, bool)
    cord_2d = (x - 45) ** 2 + (y - 35) ** 2 <= 4 ** 2
    ring = ((x - 45) ** 2 + (y - 35) ** 2 <= 9 ** 2) & ~((x - 45) ** 2 + (y - 35) ** 2 <= 6 ** 2)
    body = (x - 45) ** 2 + (y - 52) ** 2 <= 8 ** 2
    truth = np.zeros(shape, bool)
    period = height_mm + disc_mm
    top = levels * period
    for k in range(nz):
        zmm = k * spacing[2]
        cord[:, :, k] = cord_2d
        if zmm >= top:  # the skull's base: bone far from the cord
            ct[:, :, k][((x - 45) / 43) ** 2 + ((y - 45) / 43) ** 2 <= 1] = 700.0
            ct[:, :, k][cord_2d] = 20.0
        elif zmm % period >= disc_mm:
            ct[:, :, k][ring | body] = 500.0
            truth[:, :, k] = ring | body
        else:
            ct[:, :, k][ring] = 500.0  # the arch goes on past the disc
            truth[:, :, k] = ring
        ct[:, :, k][cord_2d] = 20.0
    return ct, cord, truth, spacing, levels


def test_vertebrae_are_read_around_the_spinal_cord_and_split_at_the_discs():
    ct, cord, truth, spacing, levels = _neck()
    found = derived_structures(ct, spacing, masks={"spinal cord": cord},
                               sources=("vertebrae",))
    names = [f"vertebra C{i}" for i in range(2, 2 + levels, 2)]  # every second level
    assert sorted(found) == sorted(names)
    period = round((17.5 + 5.0) / spacing[2])
    union = np.zeros_like(cord)
    for k, name in enumerate(names):
        assert not (union & found[name]).any()  # each voxel in one vertebra
        union |= found[name]
        # each vertebra holds one whole body: the cuts fall in the discs
        z_body = np.flatnonzero(found[name][45, 52, :])
        assert z_body.size and np.all(np.diff(z_body) == 1)
        body_truth = np.flatnonzero(truth[45, 52, :])
        level_top = truth.shape[2] - 8 - 2 * k * period  # C2 just below the skull's base
        assert set(body_truth[(body_truth < level_top) & (body_truth >= level_top - period)]) \
            <= set(z_body)
    in_levels = union.any(axis=(0, 1))
    assert (union & truth)[:, :, in_levels].sum() / truth[:, :, in_levels].sum() > 0.97
    assert not (union & cord).any() and (union & ~truth).sum() == 0  # no skull, no canal


def test_no_vertebrae_without_a_spinal_cord_or_when_not_asked():
    ct, cord, _, spacing, _ = _neck()
    assert derived_structures(ct, spacing, masks={}, sources=("vertebrae",)) == {}
    assert derived_structures(ct, spacing, masks={"spinal cord": cord}) == {}  # lungs only
    import pytest

    with pytest.raises(ValueError, match="unknown derived source"):
        derived_structures(ct, spacing, sources=("scapulae",))


def _airway(spacing=(2.0, 2.0, 2.5), stoma=False, eso_air=False):
    """A neck and upper chest: a larynx (labelled) over a trachea (air, 16 mm wide) that divides
    into two bronchi at the carina, 80 mm below it; an oesophagus (labelled) behind it."""
    shape = (80, 70, 60)
    x, y = np.meshgrid(np.arange(80) * spacing[0], np.arange(70) * spacing[1], indexing="ij")
    ct = np.full(shape, -1000.0, np.float32)
    ct[((x - 80) / 70) ** 2 + ((y - 70) / 60) ** 2 <= 1] = 40.0
    larynx = np.zeros(shape, bool)
    trachea = np.zeros(shape, bool)
    esophagus = np.zeros(shape, bool)
    lumen = (x - 80) ** 2 + (y - 90) ** 2 <= 8 ** 2
    eso = (x - 80) ** 2 + (y - 70) ** 2 <= 6 ** 2
    top, carina = 44, 12  # the larynx's lowest slice; the trachea's last slice
    for k in range(shape[2]):
        esophagus[:, :, k] = eso
        if k >= top:
            larynx[:, :, k] = (x - 80) ** 2 + (y - 90) ** 2 <= 14 ** 2
            ct[:, :, k][lumen] = -900.0
        elif k >= carina:
            ct[:, :, k][lumen] = -900.0
            trachea[:, :, k] = lumen
        else:  # two bronchi, apart
            ct[:, :, k][((x - 66) ** 2 + (y - 90) ** 2 <= 5 ** 2)
                        | ((x - 94) ** 2 + (y - 90) ** 2 <= 5 ** 2)] = -900.0
    if stoma:  # an opening from the trachea through the skin, in front
        ct[38:42, 45:, 28:32] = -900.0
    if eso_air:  # a distended oesophagus full of air, joined to the airway over a few slices
        wide = (x - 80) ** 2 + (y - 70) ** 2 <= 10 ** 2
        ct[:, :, 24:30][wide | ((np.abs(x - 80) <= 3) & (y > 70) & (y < 90))] = -900.0
    return ct, larynx, trachea, esophagus, spacing


def test_the_trachea_is_the_airway_from_the_larynx_down_to_the_carina():
    ct, larynx, trachea, esophagus, spacing = _airway()
    found = derived_structures(ct, spacing, masks={"larynx": larynx, "esophagus": esophagus},
                               sources=("trachea",))
    assert set(found) == {"trachea"}
    t = found["trachea"]
    assert (t & trachea).sum() / trachea.sum() > 0.98 and not (t & ~trachea).any()
    assert not (t & larynx).any() and not (t & esophagus).any()
    # the other sources leave it out; a case that has one keeps its own
    assert "trachea" not in derived_structures(ct, spacing, masks={"larynx": larynx})
    assert derived_structures(ct, spacing, masks={"larynx": larynx}, sources=("trachea",),
                              existing={"trachea"}) == {}


def test_the_trachea_ends_where_the_scanned_block_ends():
    """Slices padded with air below the scanned block (as OpenKBP stores them, a thin margin of
    patient left): the trachea stops there, it does not read as a stoma."""
    ct, larynx, trachea, _, spacing = _airway()
    ct[:, :, :20] = -1024.0
    ct[78:82, 50:54, :20] = 40.0  # the margin of a contour kept in the padding
    found = derived_structures(ct, spacing, masks={"larynx": larynx}, sources=("trachea",))
    assert set(found) == {"trachea"}
    levels = np.flatnonzero(found["trachea"].any(axis=(0, 1)))
    assert levels.min() == 20 and levels.max() == 43
    assert not (found["trachea"] & ~trachea).any()


def test_no_trachea_without_a_larynx_through_a_stoma_or_into_the_oesophagus():
    ct, larynx, _, esophagus, spacing = _airway()
    assert derived_structures(ct, spacing, masks={}, sources=("trachea",)) == {}
    ct, larynx, _, esophagus, spacing = _airway(stoma=True)
    assert derived_structures(ct, spacing, masks={"larynx": larynx}, sources=("trachea",)) == {}
    ct, larynx, _, esophagus, spacing = _airway(eso_air=True)
    masks = {"larynx": larynx, "esophagus": esophagus}
    assert derived_structures(ct, spacing, masks=masks, sources=("trachea",)) == {}
    # unlabelled, the oesophagus' air widens the airway: the trachea stops above it
    found = derived_structures(ct, spacing, masks={"larynx": larynx}, sources=("trachea",))
    assert set(found) == {"trachea"}
    levels = np.flatnonzero(found["trachea"].any(axis=(0, 1)))
    assert levels.min() >= 30 and not (found["trachea"] & esophagus).any()


def _shoulders(spacing=(2.0, 2.0, 3.0), joined=False, twin=False):
    """The base of the neck: a spinal cord, a vertebra round it, a clavicle on each side in
    front (a bar 110 mm long, rising laterally), a rib on the right at the cord's depth.
    ``joined``: the left clavicle runs into a scapula; ``twin``: a second clavicle-shaped bone
    in front on the right."""
    shape = (160, 110, 40)
    x, y, z = np.meshgrid(*(np.arange(n) * s for n, s in zip(shape, spacing)), indexing="ij")
    ct = np.full(shape, -1000.0, np.float32)
    ct[((x - 160) / 150) ** 2 + ((y - 110) / 100) ** 2 <= 1] = 40.0
    cord = ((x - 160) ** 2 + (y - 90) ** 2 <= 5 ** 2) & (z > 3) & (z < 114)
    ct[((x - 160) ** 2 + (y - 100) ** 2 <= 16 ** 2) & ~cord] = 600.0  # the vertebra
    truth = {}
    for side, sign in (("right clavicle", 1), ("left clavicle", -1)):
        lateral = sign * (x - 160)
        rise = 40 + 0.15 * (lateral - 30)  # the bar rises towards the shoulder
        bar = (lateral >= 30) & (lateral <= 140) & (np.abs(y - 160) <= 7) \
            & (np.abs(z - rise) <= 7)
        ct[bar] = 700.0
        truth[side] = bar
    ct[(x - 160 >= 30) & (x - 160 <= 140) & (np.abs(y - 90) <= 7) & (np.abs(z - 70) <= 7)] = 650.0
    if joined:  # a scapula block behind the left clavicle's lateral end, joined to it
        ct[(160 - x >= 120) & (160 - x <= 145) & (y >= 80) & (y <= 165) & (z >= 20)
           & (z <= 100)] = 650.0
    if twin:
        ct[(x - 160 >= 30) & (x - 160 <= 140) & (np.abs(y - 185) <= 6) & (np.abs(z - 90) <= 6)] \
            = 700.0
    return ct, cord, truth, spacing


def test_clavicles_are_the_long_bones_in_front_one_on_each_side():
    ct, cord, truth, spacing = _shoulders()
    found = derived_structures(ct, spacing, masks={"spinal cord": cord}, sources=("clavicles",))
    assert set(found) == {"left clavicle", "right clavicle"}
    for name, mask in found.items():
        assert (mask & truth[name]).sum() / truth[name].sum() > 0.97
        assert not (mask & ~truth[name]).any()  # no vertebra, no rib
    assert "left clavicle" not in derived_structures(
        ct, spacing, masks={"spinal cord": cord}, sources=("clavicles",),
        existing={"left clavicle"})
    assert derived_structures(ct, spacing, masks={}, sources=("clavicles",)) == {}


def test_a_clavicle_joined_to_the_scapula_or_with_a_twin_is_left_out():
    ct, cord, _, spacing = _shoulders(joined=True)
    masks = {"spinal cord": cord}
    assert set(derived_structures(ct, spacing, masks=masks, sources=("clavicles",))) \
        == {"right clavicle"}
    ct, cord, _, spacing = _shoulders(twin=True)
    assert set(derived_structures(ct, spacing, masks=masks, sources=("clavicles",))) \
        == {"left clavicle"}


def _arms(spacing=(4.0, 4.0, 3.0), joined=False):
    """Shoulders with the arms down: a humerus shaft in each arm (a cortical tube, marrow
    inside) that ends at the scan's lower edge, a rib beside the chest. ``joined``: the left
    humerus runs into a scapula block."""
    shape = (120, 60, 40)
    x, y, z = np.meshgrid(*(np.arange(n) * s for n, s in zip(shape, spacing)), indexing="ij")
    ct = np.full(shape, -1000.0, np.float32)
    ct[((x - 240) / 230) ** 2 + ((y - 120) / 100) ** 2 <= 1] = 40.0
    truth = {}
    for side, sign in (("right humerus", 1), ("left humerus", -1)):
        r = np.hypot(x - (240 + sign * 190), y - 120)
        shaft = (r <= 13) & (z < 90)
        ct[shaft & (r > 8)] = 900.0
        ct[shaft & (r <= 8)] = 100.0  # marrow: filled into the mask per slice
        truth[side] = shaft
    ct[(np.hypot(x - 340, y - 120) <= 10) & (z >= 20) & (z < 100)] = 700.0  # beside the chest
    if joined:
        ct[(x >= 20) & (x <= 60) & (y >= 100) & (y <= 180) & (z >= 60) & (z < 110)] = 600.0
    return ct, truth, spacing


def test_humeri_are_the_shafts_far_out_on_each_side():
    ct, truth, spacing = _arms()
    found = derived_structures(ct, spacing, sources=("humeri",))
    assert set(found) == {"left humerus", "right humerus"}
    for name, mask in found.items():
        assert (mask & truth[name]).sum() / truth[name].sum() > 0.95
        assert not (mask & ~truth[name]).any()
    assert set(derived_structures(ct, spacing, sources=("humeri",),
                                  existing={"right humerus"})) == {"left humerus"}
    ct, _, spacing = _arms(joined=True)
    assert set(derived_structures(ct, spacing, sources=("humeri",))) == {"right humerus"}


def _ribcage(spacing=(2.0, 2.0, 3.0), ribs=4, cord=True, joined=False):
    """A chest: two lungs either side of a spinal cord (y grows to the front, x to the right),
    ``ribs`` ribs a side against the lungs, each from beside the spine round the lung's side
    (three slices tall, the topmost highest), a scapula on the back of each side well outside the
    ribs, a sternum on the midline in front and a clavicle against the front of each lung's
    apex, which does not reach the spine. ``joined``: a plate of bone against the right lung's
    side joins its ribs. Returns the CT, the cord, each rib by name and the spacing."""
    shape = (160, 120, 6 * ribs + 6)
    x, y = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    ct = np.full(shape, -1000.0, np.float32)
    ct[((x - 80) / 76) ** 2 + ((y - 60) / 56) ** 2 <= 1] = 40.0
    cord_mask = np.zeros(shape, bool)
    truth: dict[str, np.ndarray] = {}
    for side, cx in (("left", 44), ("right", 116)):  # RAS: the right lung at high x
        lung = ((x - cx) / 22) ** 2 + ((y - 60) / 32) ** 2 <= 1
        ct[:, :, 1:-1][lung] = -850.0
        outer = ((x - cx) / 26) ** 2 + ((y - 60) / 36) ** 2 <= 1
        inner = ((x - cx) / 23) ** 2 + ((y - 60) / 33) ** 2 <= 1
        toward = 1 if cx < 80 else -1  # towards the midline
        # from beside the column (its head, in the column's box, left out) round the side
        arc = outer & ~inner & (y <= 70) & ((toward * (x - cx) <= 0) | (y <= 40)) \
            & (toward * (x - 80) <= -12)
        scapula = (np.abs(x - (cx - 30 * toward)) <= 1) & (y >= 14) & (y <= 40)
        clavicle = outer & ~inner & (y >= 84)  # against the lung's front, far from the spine
        for k in range(ribs):  # rib 1 at the top (z grows towards the head)
            z0 = shape[2] - 4 - 6 * (k + 1)
            rib = np.zeros(shape, bool)
            rib[:, :, z0:z0 + 3] = arc[:, :, None]
            truth[f"{side} rib {k + 1}"] = rib
            ct[rib] = 600.0
        ct[:, :, 3:-3][scapula] = 500.0
        ct[:, :, -5:-3][clavicle] = 700.0
        if joined and side == "right":
            ct[(x >= cx + 23) & (x <= cx + 25) & (y >= 40) & (y <= 80)] = 500.0
    ct[:, :, 3:-3][(np.abs(x - 80) <= 6) & (y >= 104) & (y <= 110)] = 600.0  # the sternum
    if cord:
        cord_mask[(x - 80) ** 2 + (y - 26) ** 2 <= 9] = True
    return ct, cord_mask, truth, spacing


def test_ribs_are_the_bone_against_the_lungs_that_starts_at_the_spine():
    ct, cord, truth, spacing = _ribcage()
    found = derived_structures(ct, spacing, masks={"spinal cord": cord}, sources=("ribs",))
    # numbered from the top on each side, every second one kept
    assert set(found) == {"left rib 1", "left rib 3", "right rib 1", "right rib 3"}
    for name, mask in found.items():
        assert not (mask & ~truth[name]).any()  # no scapula, sternum, clavicle or other rib
        assert (mask & truth[name]).sum() / truth[name].sum() > 0.95
        assert (ct[mask] > 150).all()


def test_no_ribs_without_a_cord_nor_where_bone_joins_them_into_more_than_a_rib():
    ct, cord, _, spacing = _ribcage(cord=False)
    assert derived_structures(ct, spacing, masks={"spinal cord": cord}, sources=("ribs",)) == {}
    assert derived_structures(ct, spacing, sources=("ribs",)) == {}
    ct, cord, _, spacing = _ribcage(joined=True)
    found = derived_structures(ct, spacing, masks={"spinal cord": cord}, sources=("ribs",))
    assert set(found) == {"left rib 1", "left rib 3"}  # the right side is one piece of bone
