"""Tree calibrations: evaluation by hand, JSON round trip, refusal of malformed trees."""

import dataclasses
import json

import numpy as np
import pytest

from qsaudit.inference.aggregate import FEATURES, calibrated_aggregate, model_calibration
from qsaudit.inference.trees import Tree, TreeCalibration, predict_sum


def _stump(feature: int, threshold: float, low: float, high: float) -> Tree:
    return Tree(feature=np.array([feature, -1, -1]), threshold=np.array([threshold, 0.0, 0.0]),
                left=np.array([1, -1, -1]), right=np.array([2, -1, -1]),
                value=np.array([0.0, low, high]))


def test_trees_by_hand():
    x = np.array([[0.1, 5.0], [0.9, 5.0], [0.9, -1.0]])
    a, b = _stump(0, 0.5, -1.0, 1.0), _stump(1, 0.0, 10.0, 20.0)
    np.testing.assert_array_equal(a.predict(x), [-1.0, 1.0, 1.0])
    np.testing.assert_array_equal(b.predict(x), [20.0, 20.0, 10.0])
    np.testing.assert_allclose(predict_sum([a, b], x, base=0.5, rate=0.1),
                               [0.5 + 0.1 * 19, 0.5 + 0.1 * 21, 0.5 + 0.1 * 11])


def _calibration() -> TreeCalibration:
    names = ("area_mean", "largest_share")
    return TreeCalibration(names=names, fill=np.array([0.7, 0.95]), base=0.5, rate=1.0,
                           trees=(_stump(0, 0.6, -0.3, 0.2), _stump(1, 0.9, -0.2, 0.1)),
                           info={"n_labels": 2})


def test_apply_selects_its_features_fills_unknowns_and_clips():
    cal = _calibration()
    row = np.zeros(len(FEATURES))
    row[FEATURES.index("area_mean")] = 0.8
    row[FEATURES.index("largest_share")] = 0.5
    assert cal.apply(row) == pytest.approx(0.5 + 0.2 - 0.2)
    row[FEATURES.index("largest_share")] = np.nan  # unknown: its training mean 0.95
    assert cal.apply(row) == pytest.approx(0.5 + 0.2 + 0.1)
    rows = np.stack([row, row])
    rows[1, FEATURES.index("area_mean")] = 0.1
    np.testing.assert_allclose(cal.apply(rows), [0.8, 0.3])
    big = dataclasses.replace(cal, base=5.0)
    assert big.apply(row) == 1.0


def test_json_round_trip_through_a_model_files_meta():
    cal = _calibration()
    meta = {"calibration": json.loads(json.dumps(cal.to_json()))}
    again = model_calibration(meta)
    assert isinstance(again, TreeCalibration) and again.names == cal.names
    rows = np.random.default_rng(0).random((20, len(FEATURES)))
    np.testing.assert_array_equal(again.apply(rows), cal.apply(rows))
    # the scan's entry point takes tree calibrations too
    agg = calibrated_aggregate(np.array([0.9, 0.8, 0.9]), np.array([10.0, 20, 10]), again,
                               population=3, slice_indices=np.array([4, 5, 6]))
    assert 0.0 <= agg.low <= agg.dsc <= agg.high <= 1.0


@pytest.mark.parametrize("damage", [
    {"format": "other"},
    {"features": ["area_mean", "no_such_feature"]},
    {"fill": [0.5]},
    {"trees": []},
])
def test_malformed_calibrations_are_refused(damage):
    d = {**_calibration().to_json(), **damage}
    with pytest.raises(ValueError):
        TreeCalibration.from_json(d)


def test_malformed_trees_are_refused():
    good = _stump(0, 0.5, 0.0, 1.0).to_json()
    with pytest.raises(ValueError, match="feature"):
        Tree.from_json({**good, "feature": [7, -1, -1]}, n_features=2)
    with pytest.raises(ValueError, match="child"):  # a loop back to the root
        Tree.from_json({**good, "left": [0, -1, -1]}, n_features=2)
    with pytest.raises(ValueError, match="sizes"):
        Tree.from_json({**good, "value": [0.0]}, n_features=2)


def test_packed_forest_equals_tree_by_tree():
    from qsaudit.inference.trees import Forest

    rng = np.random.default_rng(3)
    trees = [_stump(int(rng.integers(2)), float(rng.random()), float(rng.normal()),
                    float(rng.normal())) for _ in range(20)]
    deep = Tree(feature=np.array([0, 1, -1, -1, -1]), threshold=np.array([0.5, 0.2, 0, 0, 0]),
                left=np.array([1, 2, -1, -1, -1]), right=np.array([4, 3, -1, -1, -1]),
                value=np.array([0.0, 0.0, 1.0, 2.0, 3.0]))
    trees.append(deep)
    x = rng.random((50, 2))
    one_by_one = np.stack([t.predict(x) for t in trees], axis=1)
    np.testing.assert_array_equal(Forest.pack(trees).predict(x), one_by_one)
