"""Prediction intervals sized by a calibration's held-out errors."""

from __future__ import annotations

import numpy as np
import pytest

from qsaudit.inference.aggregate import FEATURES, calibrated_aggregate
from qsaudit.inference.intervals import (
    ErrorBands,
    calibration_bands,
    coverage,
    fit_error_bands,
)


def _noisy(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and true Dice whose errors grow as the prediction falls."""
    rng = np.random.default_rng(seed)
    pred = rng.uniform(0, 1, n)
    true = np.clip(pred + rng.normal(0, 0.03 + 0.15 * (1 - pred)), 0, 1)
    return pred, true


def test_bands_cover_new_labels_at_their_level_and_follow_the_error_size():
    pred, true = _noisy(0, 3000)
    bands = fit_error_bands(pred, true, level=0.9)
    new_pred, new_true = _noisy(1, 5000)
    low, high = bands.interval(new_pred)
    assert 0.87 <= coverage(low, high, new_true) <= 0.94
    width = high - low
    assert width[new_pred < 0.3].mean() > 1.5 * width[new_pred > 0.8].mean()
    assert np.all(low <= np.clip(new_pred, 0, 1)) and np.all(np.clip(new_pred, 0, 1) <= high)
    assert np.all((low >= 0) & (high <= 1))
    tighter = fit_error_bands(pred, true, level=0.5)
    lo50, hi50 = tighter.interval(new_pred)
    assert 0.45 <= coverage(lo50, hi50, new_true) <= 0.56


def test_conformal_order_statistic_on_a_hand_made_bin():
    # 9 errors -0.4..+0.4 in 0.1 steps, one bin: at level 0.8, k = ceil(10 * 0.9) = 9 -> extremes
    pred = np.full(9, 0.5)
    true = pred + np.linspace(-0.4, 0.4, 9)
    bands = fit_error_bands(pred, true, level=0.8, min_per_bin=40)
    assert bands.edges.size == 0
    assert bands.low[0] == pytest.approx(-0.4) and bands.high[0] == pytest.approx(0.4)
    half = fit_error_bands(pred, true, level=0.5, min_per_bin=40)  # k = ceil(7.5) = 8
    assert half.low[0] == pytest.approx(-0.3) and half.high[0] == pytest.approx(0.3)


def test_bands_round_trip_and_reject_damage():
    bands = fit_error_bands(*_noisy(2, 500), reference="real CT")
    again = ErrorBands.from_json(bands.to_json())
    np.testing.assert_array_equal(again.high, bands.high)
    assert again.reference == "real CT" and again.level == bands.level
    broken = bands.to_json()
    broken["low"] = [0.1] * len(broken["low"])  # a lower end above the prediction
    with pytest.raises(ValueError, match="signs"):
        ErrorBands.from_json(broken)
    with pytest.raises(ValueError, match="format"):
        ErrorBands.from_json({"format": "other"})
    with pytest.raises(ValueError):
        fit_error_bands([0.5], [0.4])


def test_tied_predictions_never_leave_a_bin_too_small_to_size():
    # a third of the labels predicted exactly 1.0: the quantile edges there merge
    rng = np.random.default_rng(3)
    pred = np.concatenate([rng.uniform(0, 1, 200), np.ones(100)])
    true = np.clip(pred - np.abs(rng.normal(0, 0.1, 300)), 0, 1)
    bands = fit_error_bands(pred, true, min_per_bin=40)
    assert bands.counts.sum() == 300 and np.all(bands.counts >= 40)
    assert bands.edges.size == bands.counts.size - 1


def test_too_few_labels_give_the_whole_range_not_a_false_bound():
    # 10 errors cannot bound a 90% interval (k = ceil(11 * 0.95) = 11 > 10): the honest
    # interval is all of [0, 1]
    pred = np.linspace(0.3, 0.7, 10)
    bands = fit_error_bands(pred, pred + 0.01, level=0.9)
    low, high = bands.interval(np.array([0.5]))
    assert low[0] == 0.0 and high[0] == 1.0


@pytest.mark.parametrize("field, value", [("low", float("nan")), ("high", float("inf")),
                                          ("edges", float("nan")), ("counts", -3),
                                          ("counts", 2.5)])
def test_damaged_values_are_rejected(field, value):
    broken = fit_error_bands(*_noisy(4, 400)).to_json()
    broken[field] = [value] * len(broken[field])
    with pytest.raises(ValueError, match="interval bands"):
        ErrorBands.from_json(broken)


class _Flat:
    """A calibration that returns the area-weighted mean feature and carries bands."""

    names = ("area_mean",)

    def __init__(self, bands: ErrorBands | None):
        self.info = {} if bands is None else {"intervals": bands.to_json()}

    def apply(self, features: np.ndarray) -> np.ndarray:
        return np.atleast_2d(features)[:, FEATURES.index("area_mean")]


def test_calibrated_aggregate_uses_the_bands_when_the_calibration_has_them():
    bands = ErrorBands(edges=np.array([0.5]), low=np.array([-0.3, -0.1]),
                       high=np.array([0.2, 0.05]), counts=np.array([50, 50]))
    cal = _Flat(bands)
    stored = calibration_bands(cal).for_structure("liver")
    scores, areas = np.array([0.8, 0.82, 0.78]), np.ones(3)
    agg = calibrated_aggregate(scores, areas, cal, bands=stored)
    assert agg.dsc == pytest.approx(0.8)
    assert (agg.low, agg.high) == (pytest.approx(0.7), pytest.approx(0.85))
    plain = calibrated_aggregate(scores, areas, _Flat(None))  # no bands: the slices' spread
    assert calibration_bands(_Flat(None)) is None
    assert plain.low < 0.8 < plain.high and plain.high - plain.low < 0.15


def test_target_volumes_get_their_own_bands_when_stored():
    wide = fit_error_bands(*_noisy(3, 400), reference="targets")
    narrow = ErrorBands(edges=np.array([]), low=np.array([-0.05]), high=np.array([0.05]),
                        counts=np.array([400]))
    cal = _Flat(narrow)
    cal.info["intervals_targets"] = wide.to_json()
    bands = calibration_bands(cal)
    assert bands.for_structure("PTV70").reference == "targets"
    assert bands.for_structure("planning target volume 56 Gy") is bands.targets
    assert bands.for_structure("Liver") is bands.default and bands.for_structure(None) is bands.default
    low, high = bands.interval(np.array([0.5, 0.5]), ["liver", "PTV63"])
    assert high[0] - low[0] == pytest.approx(0.1) and high[1] - low[1] > 0.2
