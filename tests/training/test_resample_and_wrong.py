"""Resolution augmentation and wrong-structure candidates of the training data."""

from __future__ import annotations

import numpy as np
import pytest

from qsaudit.degrade import dice
from qsaudit.training.candidates import degraded_candidates, wrong_structure_candidates
from qsaudit.training.resample import PIXEL_MM, draw_pixel_size, resample_inplane


def test_resampled_case_keeps_its_anatomy_in_mm(trusted_cases):
    case = trusted_cases[0]
    rng = np.random.default_rng(0)
    fine = resample_inplane(case, 1.0, rng)
    assert fine.spacing[0] == pytest.approx(1.0, rel=0.05)
    assert fine.spacing[2] == case.spacing[2] and fine.ct.shape[2] == case.ct.shape[2]
    assert fine.ct.shape[0] == pytest.approx(case.ct.shape[0] * 2, abs=1)
    for name, mask in case.masks.items():
        ml = mask.sum() * np.prod(case.spacing)
        assert fine.masks[name].sum() * np.prod(fine.spacing) == pytest.approx(ml, rel=0.15)
    coarse = resample_inplane(case, 3.0, rng)
    assert coarse.spacing[0] == pytest.approx(3.0, rel=0.05)
    # masks that vanish on a coarse grid are dropped, never kept empty
    assert all(m.sum() >= 20 for m in coarse.masks.values())


def test_pixel_sizes_are_drawn_over_the_whole_range():
    rng = np.random.default_rng(1)
    sizes = np.array([draw_pixel_size(rng) for _ in range(400)])
    assert sizes.min() >= PIXEL_MM[0] and sizes.max() <= PIXEL_MM[1]
    assert (sizes < 1.5).mean() > 0.3 and (sizes > 3.0).mean() > 0.1


def test_wrong_structure_candidates_carry_another_structures_mask(trusted_cases):
    case = trusted_cases[0]
    cands = wrong_structure_candidates(case, np.random.default_rng(0), per_label=2)
    assert len(cands) == 2 * len(case.masks)
    for cand in cands:
        assert cand.source == "wrong_structure"
        assert not np.array_equal(cand.mask, case.masks[cand.structure])
        assert any(np.array_equal(cand.mask, m) for n, m in case.masks.items()
                   if n != cand.structure)
        assert cand.true_dsc == pytest.approx(dice(cand.mask, case.masks[cand.structure]))
        assert cand.true_dsc < 0.5
    both = degraded_candidates(case, np.random.default_rng(0), per_label=1, wrong_per_label=1)
    assert sum(c.source == "wrong_structure" for c in both) == len(case.masks)


def test_wrong_structure_never_draws_another_member_of_the_labels_series(trusted_cases):
    from dataclasses import replace

    case = trusted_cases[0]
    shape = next(iter(case.masks.values())).shape
    ribs = {}
    for k, name in enumerate(("left rib 4", "left rib 5", "left rib 6")):
        m = np.zeros(shape, bool)
        m[2 + 3 * k:4 + 3 * k, 2:6, 1:4] = True
        ribs[name] = m
    liver = np.zeros(shape, bool)
    liver[-8:-2, -8:-2, -5:-1] = True
    case = replace(case, masks={**ribs, "liver": liver})
    cands = wrong_structure_candidates(case, np.random.default_rng(0), per_label=40)
    for cand in cands:
        if "rib" in cand.structure:  # only the liver is left to stand in for a rib
            assert np.array_equal(cand.mask, liver)
    # a series with nothing else in the case gives no candidate rather than a rib
    only_ribs = replace(case, masks=ribs)
    assert wrong_structure_candidates(only_ribs, np.random.default_rng(0)) == []
