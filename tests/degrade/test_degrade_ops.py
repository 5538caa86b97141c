"""Every degradation: exact Dice, severity ordering, Dice coverage, spacing invariance."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from qsaudit.degrade import ERRORS, degrade, dice, random_degradation

SHAPE = (64, 64, 32)
SPACING = (2.0, 2.0, 3.0)


def _ellipsoid(centre, radii, shape=SHAPE, spacing=SPACING):
    g = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((gi - c) * s / r) ** 2 for gi, c, r, s in zip(g, centre, radii, spacing)) <= 1


@pytest.fixture(scope="module")
def scene():
    body = _ellipsoid((32, 32, 16), (60, 50, 1000))
    organ = _ellipsoid((20, 30, 15), (18, 22, 30))  # left of the midline (axis 0)
    neighbour = _ellipsoid((20, 48, 15), (14, 12, 25)) & ~organ
    return organ, {"neighbour": neighbour}, body


@pytest.mark.parametrize("error", ERRORS)
def test_reported_dice_is_exact_and_severity_orders_dice(error, scene):
    organ, neighbours, body = scene
    mild, bad = [], []
    for seed in range(3):
        for sev, store in ((0.05, mild), (0.95, bad)):
            out = degrade(organ, error, sev, np.random.default_rng(seed), spacing=SPACING,
                          neighbours=neighbours, body=body)
            assert out.mask.shape == organ.shape and out.mask.dtype == bool
            assert out.dsc == pytest.approx(dice(out.mask, organ), abs=1e-12)
            assert out.error == error and out.severity == sev
            store.append(out.dsc)
    if error == "empty":
        assert max(mild + bad) == 0.0
    else:
        assert np.mean(mild) > np.mean(bad) + 0.2
        assert np.mean(mild) > 0.75


def test_none_unknown_and_bad_severity(scene):
    organ, _, _ = scene
    rng = np.random.default_rng(0)
    out = degrade(organ, "none", 0.7, rng)
    assert out.dsc == 1.0 and np.array_equal(out.mask, organ)
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade(organ, "melt", 0.5, rng)
    with pytest.raises(ValueError, match="severity"):
        degrade(organ, "erosion", 1.5, rng)


def test_same_seed_same_mask(scene):
    organ, neighbours, body = scene
    for error in ("boundary_noise", "leakage", "spurious_blob"):
        a = degrade(organ, error, 0.6, np.random.default_rng(7), spacing=SPACING,
                    neighbours=neighbours, body=body)
        b = degrade(organ, error, 0.6, np.random.default_rng(7), spacing=SPACING,
                    neighbours=neighbours, body=body)
        assert np.array_equal(a.mask, b.mask)


def test_leakage_spills_into_the_neighbour(scene):
    organ, neighbours, body = scene
    out = degrade(organ, "leakage", 0.1, np.random.default_rng(1), spacing=SPACING,
                  neighbours=neighbours, body=body)
    added = out.mask & ~organ
    assert added.sum() > 50
    assert (added & neighbours["neighbour"]).sum() / added.sum() > 0.8


def test_spurious_blob_is_disconnected_and_lr_swap_mirrors(scene):
    organ, _, body = scene
    blob = degrade(organ, "spurious_blob", 0.5, np.random.default_rng(2), spacing=SPACING,
                   body=body)
    assert ndi.label(blob.mask)[1] == 2
    swap = degrade(organ, "lr_swap", 1.0, np.random.default_rng(2), spacing=SPACING, body=body)
    assert swap.dsc < 0.05
    x_before = np.argwhere(organ)[:, 0].mean()
    x_after = np.argwhere(swap.mask)[:, 0].mean()
    assert x_before < 31 < x_after


def test_severity_means_the_same_at_other_spacings():
    fine = _ellipsoid((40, 40, 24), (30, 24, 40), shape=(80, 80, 48), spacing=(1.5, 1.5, 2.0))
    coarse = _ellipsoid((20, 20, 12), (30, 24, 40), shape=(40, 40, 24), spacing=(3.0, 3.0, 4.0))
    for error in ("erosion", "dilation", "holes", "boundary_noise", "shift", "oversmooth"):
        a = np.mean([degrade(fine, error, 0.5, np.random.default_rng(i),
                             spacing=(1.5, 1.5, 2.0)).dsc for i in range(3)])
        b = np.mean([degrade(coarse, error, 0.5, np.random.default_rng(i),
                             spacing=(3.0, 3.0, 4.0)).dsc for i in range(3)])
        assert abs(a - b) < 0.12, (error, a, b)


def test_random_degradations_cover_the_whole_dice_range(scene):
    organ, neighbours, body = scene
    small = _ellipsoid((44, 30, 15), (8, 10, 12))
    rng = np.random.default_rng(3)
    dscs = [random_degradation(m, rng, spacing=SPACING, neighbours=neighbours, body=body).dsc
            for _ in range(120) for m in (organ, small)]
    counts, _ = np.histogram(dscs, bins=5, range=(0, 1))
    assert counts.min() >= 0.08 * len(dscs), counts
