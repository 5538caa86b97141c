"""Boosted trees: they learn an interaction a linear score cannot, reproducibly."""

import numpy as np
import pytest

from qsaudit.inference.aggregate import FEATURES, SLICE_FEATURES
from qsaudit.training.boosting import BoostConfig, fit_tree_calibration, fit_trees
from qsaudit.training.calibration import fit_calibration


def test_a_single_split_finds_a_step():
    x = np.linspace(0, 1, 200)[:, None]
    y = np.where(x[:, 0] <= 0.3, 0.2, 0.9)
    base, trees = fit_trees(x, y, BoostConfig(trees=1, rate=1.0, depth=1, min_leaf=5,
                                              subsample=1.0, bins=50))
    tree = trees[0]
    assert base == pytest.approx(y.mean())
    assert tree.feature[0] == 0 and abs(tree.threshold[0] - 0.3) < 0.03
    fitted = base + tree.predict(x)
    assert np.abs(fitted - y).max() < 0.05


def _interaction(n: int, seed: int):
    """True Dice = slice score only when the mask is in one piece; a blob halves it."""
    rng = np.random.default_rng(seed)
    x = np.full((n, len(FEATURES)), np.nan)
    x[:, :len(SLICE_FEATURES)] = rng.random((n, len(SLICE_FEATURES)))
    area = x[:, FEATURES.index("area_mean")]
    share = np.where(rng.random(n) < 0.5, 1.0, rng.uniform(0.3, 0.6, n))
    x[:, FEATURES.index("largest_share")] = share
    x[:, FEATURES.index("end_area")] = rng.random(n)  # noise feature
    y = np.where(share == 1.0, area, 0.5 * area * share)
    return x, y


def test_trees_beat_ridge_on_an_interaction_and_are_seeded():
    x, y = _interaction(1500, 0)
    x_new, y_new = _interaction(500, 1)
    trees = fit_tree_calibration(x, y)
    assert set(trees.names) == set(SLICE_FEATURES) | {"largest_share", "end_area"}
    ridge = fit_calibration(x, y)
    err_trees = np.abs(trees.apply(x_new) - y_new).mean()
    err_ridge = np.abs(ridge.apply(x_new) - y_new).mean()
    assert err_trees < 0.04 and err_trees < 0.6 * err_ridge
    again = fit_tree_calibration(x, y)
    np.testing.assert_array_equal(again.apply(x_new), trees.apply(x_new))
    other = fit_tree_calibration(x, y, config=BoostConfig(seed=1))
    assert not np.array_equal(other.apply(x_new), trees.apply(x_new))


def test_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        fit_trees(np.array([[np.nan]]), np.array([1.0]))
    with pytest.raises(ValueError, match="features"):
        fit_tree_calibration(np.zeros((3, 2)), np.zeros(3))


def test_weights_pull_the_fit_towards_heavy_rows():
    x = np.zeros((100, 1))
    y = np.r_[np.zeros(50), np.ones(50)]
    w = np.r_[np.full(50, 3.0), np.ones(50)]
    base, _ = fit_trees(x, y, BoostConfig(trees=5, subsample=1.0), weights=w)
    assert base == pytest.approx(0.25)  # the weighted mean; no split exists on a constant
    with pytest.raises(ValueError, match="positive"):
        fit_trees(x, y, weights=np.zeros(100))


def test_patient_weights_count_every_patient_once():
    from qsaudit.training.calibration import patient_weights

    patients = np.array(["phantom_1"] * 30 + ["kbp_1"] * 10 + ["kbp_2"] * 20)
    w = patient_weights(patients)
    assert w.mean() == pytest.approx(1.0)
    totals = {p: w[patients == p].sum() for p in set(patients)}
    assert max(totals.values()) == pytest.approx(min(totals.values()))


def test_softmax_trees_learn_three_classes_and_refuse_bad_input():
    from qsaudit.inference.error_model import softmax
    from qsaudit.training.boosting import fit_softmax_trees

    rng = np.random.default_rng(3)
    x = rng.random((600, 3))
    y = np.where(x[:, 0] < 0.3, 0, np.where(x[:, 1] < 0.5, 1, 2))  # an interaction of two
    config = BoostConfig(trees=30, rate=0.3, depth=3, min_leaf=10, seed=0)
    base, trees = fit_softmax_trees(x, y, 3, config)
    assert base.shape == (3,) and [len(t) for t in trees] == [30, 30, 30]
    test = rng.random((300, 3))
    truth = np.where(test[:, 0] < 0.3, 0, np.where(test[:, 1] < 0.5, 1, 2))
    scores = np.stack([b + config.rate * sum(t.predict(test) for t in ts)
                       for b, ts in zip(base, trees, strict=True)], axis=1)
    p = softmax(scores)
    assert np.mean(p.argmax(axis=1) == truth) > 0.95
    assert np.mean(p.max(axis=1)) > 0.8  # Newton leaves move the scores far enough
    again, _ = fit_softmax_trees(x, y, 3, config)
    np.testing.assert_array_equal(again, base)
    for bad in ((x, y, 2), (x[:5], y, 3), (np.full_like(x, np.nan), y, 3)):
        with pytest.raises(ValueError, match="fit_softmax_trees"):
            fit_softmax_trees(*bad, config)
