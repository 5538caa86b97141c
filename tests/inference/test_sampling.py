"""Slice choice is seeded per (seed, case, label)."""

import numpy as np

from qsaudit.inference import choose_slices, label_seed


def _mask():
    m = np.zeros((4, 4, 40), bool)
    m[1:3, 1:3, 5:35] = True
    return m


def test_label_seed_is_stable_and_distinct():
    assert label_seed(0, "c1", "liver") == label_seed(0, "c1", "liver")
    assert len({label_seed(0, "c1", "liver"), label_seed(1, "c1", "liver"),
                label_seed(0, "c2", "liver"), label_seed(0, "c1", "spleen")}) == 4


def test_choose_slices_modes():
    even = choose_slices(_mask(), 4, seed=0, case_id="c", label="x")
    assert even.tolist() == [5, 15, 24, 34]
    a = choose_slices(_mask(), 6, seed=0, case_id="c", label="x", mode="random")
    b = choose_slices(_mask(), 6, seed=0, case_id="c", label="x", mode="random")
    c = choose_slices(_mask(), 6, seed=0, case_id="c", label="y", mode="random")
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()
    assert np.all((a >= 5) & (a < 35))
    assert choose_slices(_mask(), 100, seed=0, case_id="c", label="x").size == 30
