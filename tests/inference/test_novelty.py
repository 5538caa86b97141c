"""Labels unlike the training data get a wider interval and say why."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from qsaudit.inference.aggregate import Aggregate
from qsaudit.inference.novelty import (
    MIN_HALF_WIDTH,
    FeatureRanges,
    NoveltyCheck,
    assess,
    calibration_ranges,
    feature_ranges,
    name_similarity,
    widen,
)


def test_ranges_flag_only_features_far_outside_the_calibration_labels():
    rng = np.random.default_rng(0)
    table = rng.normal(0.0, 1.0, size=(2000, 3))
    table[:, 2] = np.nan  # a feature never measured is never an outlier
    ranges = feature_ranges(table, ("a", "b", "c"))
    assert ranges.outliers(np.array([0.1, -0.5, 7.0])) == []
    assert ranges.outliers(np.array([9.0, 0.0, np.nan])) == ["a"]
    assert ranges.outliers(np.array([np.nan, -9.0, 0.0])) == ["b"]
    again = FeatureRanges.from_json(ranges.to_json())
    np.testing.assert_array_equal(again.low[:2], ranges.low[:2])
    assert np.isnan(again.low[2])
    with pytest.raises(ValueError):
        ranges.outliers(np.zeros(2))
    with pytest.raises(ValueError):
        FeatureRanges.from_json({"format": "other"})


def test_ranges_stored_before_a_feature_existed_read_the_full_vector_by_name():
    from qsaudit.inference.aggregate import FEATURES

    known = FEATURES[:-1]  # a calibration fitted before the last feature was added
    rng = np.random.default_rng(1)
    ranges = feature_ranges(rng.uniform(0.0, 1.0, size=(500, len(known))), known)
    f = np.full(len(FEATURES), 0.5)
    f[-1] = 99.0  # the new feature: unknown to these ranges, never an outlier
    assert ranges.outliers(f) == []
    f[FEATURES.index("mean")] = 9.0
    assert ranges.outliers(f) == ["mean"]


def test_name_similarity_is_one_for_a_trained_name_and_lower_for_others():
    vocab = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert name_similarity(np.array([2.0, 0.0, 0.0]), vocab) == pytest.approx(1.0)
    assert name_similarity(np.array([0.0, 0.0, 1.0]), vocab) == pytest.approx(0.0)
    assert np.isnan(name_similarity(np.ones(3), np.zeros((0, 3))))


def test_a_novel_label_gets_a_wider_interval_that_still_holds_its_prediction():
    low, high = widen(0.7, 0.6, 0.8)
    assert low == pytest.approx(0.5) and high == pytest.approx(0.9)
    low, high = widen(0.95, 0.94, 0.99)  # narrow bands widen to at least MIN_HALF_WIDTH
    assert low == pytest.approx(0.95 - MIN_HALF_WIDTH) and high == 1.0
    assert np.isnan(widen(0.5, float("nan"), 0.6)[0])
    # a bin whose own errors are tiny says nothing about a novel label: the widest band counts
    assert widen(0.02, 0.0, 0.07, widest=(0.4, 0.45)) == (0.0, pytest.approx(0.47))
    found = assess(0.3, np.array([0.0, 50.0]), FeatureRanges(("a", "b"), np.zeros(2),
                                                              np.ones(2)))
    assert found.reasons == ("name", "image") and found.label == "name+image"
    assert assess(1.0, None, None).label == ""


class _Predictor:
    """Two trained names; any other name embeds to an unrelated vector."""

    vocabulary: ClassVar[list[str]] = ["liver", "spleen"]

    def embeddings(self, names):
        table = {"liver": [1.0, 0.0, 0.0], "spleen": [0.0, 1.0, 0.0]}
        return np.array([table.get(n, [0.0, 0.0, 1.0]) for n in names])


class _Calibration:
    info: ClassVar[dict] = {"feature_ranges": FeatureRanges(("a",), np.zeros(1), np.ones(1)).to_json()}


def test_the_scan_check_widens_only_novel_labels():
    check = NoveltyCheck(_Predictor(), _Calibration())
    assert calibration_ranges(_Calibration()) is not None
    usual = Aggregate(0.8, 0.7, 0.9, 0.05, np.array([0.5]))
    agg, label, sim = check.apply(usual, "liver")
    assert (agg.low, agg.high, label, sim) == (0.7, 0.9, "", pytest.approx(1.0))
    agg, label, _ = check.apply(usual, "femur_left")
    assert label == "name" and agg.low < 0.7 and agg.high == 1.0
    low_score = Aggregate(0.2, 0.15, 0.25, 0.05, np.array([0.5]))
    agg, label, _ = check.apply(low_score, "rib_left_7")  # unmeasured: low may still be good
    assert label == "name" and agg.high == 1.0 and agg.low == pytest.approx(0.2 - MIN_HALF_WIDTH)
    agg, label, _ = check.apply(low_score, "liver")  # measured: its own bands stand
    assert (agg.low, agg.high, label) == (0.15, 0.25, "")
    odd = Aggregate(0.8, 0.7, 0.9, 0.05, np.array([5.0]))
    agg, label, _ = check.apply(odd, "spleen")
    assert label == "image" and agg.high - agg.low > 0.2
    odd_low = Aggregate(0.2, 0.15, 0.25, 0.05, np.array([5.0]))  # a known name: no reach to 1
    agg, label, _ = check.apply(odd_low, "spleen")
    assert label == "image" and agg.high == pytest.approx(0.2 + MIN_HALF_WIDTH)
