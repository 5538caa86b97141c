"""The error classifier (JSON round trip, refusal of damaged ones) and where an error lies."""

import json
from dataclasses import replace

import numpy as np
import pytest

from qsaudit.inference.aggregate import FEATURES
from qsaudit.inference.error_model import (
    CLASSIFIER_FEATURES,
    ErrorClassifier,
    calibrate_probabilities,
    calibration_errors,
    classifier_rows,
    decide,
    locate_error,
)
from qsaudit.inference.probes import HIGH, LOW
from qsaudit.inference.trees import Tree


def _rows(n: int, seed: int = 0) -> np.ndarray:
    return classifier_rows(np.random.default_rng(seed).random((n, len(FEATURES))),
                           ["Parotid_L"] * n)


def _softmax() -> ErrorClassifier:
    f = len(CLASSIFIER_FEATURES)
    coef = np.zeros((3, f))
    coef[1, CLASSIFIER_FEATURES.index("probe_max")] = 5.0   # cut_short when the probe is high
    coef[2, CLASSIFIER_FEATURES.index("fill")] = -5.0       # missing_slices when fill is low
    return ErrorClassifier(kinds=("none", "cut_short", "missing_slices"),
                           names=CLASSIFIER_FEATURES, fill=np.full(f, 0.5), method="softmax",
                           center=np.full(f, 0.5), scale=np.ones(f), coef=coef,
                           intercept=np.zeros(3))


def _trees() -> ErrorClassifier:
    j = CLASSIFIER_FEATURES.index("probe_max")
    split = Tree(feature=np.array([j, -1, -1]), threshold=np.array([0.5, 0.0, 0.0]),
                 left=np.array([1, -1, -1]), right=np.array([2, -1, -1]),
                 value=np.array([0.0, -1.0, 1.0]))
    mirror = Tree(**{**split.__dict__, "value": -split.value})
    return ErrorClassifier(kinds=("none", "cut_short"), names=CLASSIFIER_FEATURES,
                           fill=np.zeros(len(CLASSIFIER_FEATURES)), method="trees",
                           base=np.array([0.5, 0.5]), rate=0.4, trees=((mirror,), (split,)))


def test_name_features_know_twins_and_target_volumes():
    rows = classifier_rows(np.zeros((3, len(FEATURES))), ["Parotid_L", "PTV70", "Brainstem"])
    paired, target = (CLASSIFIER_FEATURES.index(n) for n in ("paired", "target_volume"))
    assert rows[:, paired].tolist() == [1.0, 0.0, 0.0]
    assert rows[:, target].tolist() == [0.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="structure names"):
        classifier_rows(np.zeros((2, len(FEATURES))), ["liver"])


def test_probabilities_follow_the_planted_evidence_and_sum_to_one():
    clf = _softmax()
    rows = _rows(3)
    rows[:, CLASSIFIER_FEATURES.index("fill")] = 1.0
    rows[:, CLASSIFIER_FEATURES.index("probe_max")] = [0.0, 1.0, 0.0]
    rows[2, CLASSIFIER_FEATURES.index("fill")] = 0.0
    p = clf.probabilities(rows)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    kinds, prob = clf.predict(rows)
    assert kinds.tolist() == ["none", "cut_short", "missing_slices"]
    assert np.all(prob > 0.5)


@pytest.mark.parametrize("make", [_softmax, _trees])
def test_json_round_trip_predicts_the_same(make):
    clf = make()
    back = ErrorClassifier.from_json(json.loads(json.dumps(clf.to_json())))
    rows = _rows(20, 1)
    rows[::3, 5] = np.nan  # unknown features count as the stored fill
    np.testing.assert_allclose(back.probabilities(rows), clf.probabilities(rows), atol=1e-5)
    assert back.predict(rows)[0].tolist() == clf.predict(rows)[0].tolist()


def test_calibration_and_none_rule_travel_in_the_json():
    clf = replace(_softmax(), power=0.5, bias=np.array([0.2, 0.0, -0.1]), none_factor=2.0)
    back = ErrorClassifier.from_json(json.loads(json.dumps(clf.to_json())))
    assert back.power == 0.5 and back.none_factor == 2.0
    rows = _rows(10, 2)
    np.testing.assert_allclose(back.probabilities(rows), clf.probabilities(rows), atol=1e-5)
    np.testing.assert_allclose(clf.probabilities(rows),
                               calibrate_probabilities(_softmax().probabilities(rows), 0.5,
                                                       clf.bias))
    for change in ({"none_factor": 0.0}, {"calibration": {"power": 1.0, "bias": [0.0]}}):
        with pytest.raises(ValueError, match="error classifier"):
            ErrorClassifier.from_json({**clf.to_json(), **change})


def test_none_rule_names_none_when_it_is_close_enough_and_reports_its_probability():
    p = np.array([[0.35, 0.65, 0.0], [0.30, 0.70, 0.0], [0.60, 0.40, 0.0]])
    kinds = ("none", "too_small", "cut_short")
    assert decide(p, kinds).tolist() == [1, 1, 0]
    assert decide(p, kinds, 2.0).tolist() == [0, 1, 0]  # 0.70 > 2 x 0.30
    assert decide(p[:, 1:], kinds[1:], 5.0).tolist() == [0, 0, 0]  # no none: plain argmax
    clf = replace(_softmax(), none_factor=50.0)
    rows = _rows(3)
    rows[:, CLASSIFIER_FEATURES.index("probe_max")] = 1.0  # cut_short most probable
    kinds_named, prob = clf.predict(rows)
    assert kinds_named.tolist() == ["none"] * 3
    np.testing.assert_allclose(prob, clf.probabilities(rows)[:, 0])
    assert np.all(prob < 0.5)


def test_tree_classifier_reads_the_probe():
    rows = _rows(2)
    rows[:, CLASSIFIER_FEATURES.index("probe_max")] = [0.1, 0.9]
    assert _trees().predict(rows)[0].tolist() == ["none", "cut_short"]


def test_damaged_classifiers_are_refused():
    good = _softmax().to_json()
    for change in ({"format": "other"}, {"kinds": ["none", "broken_kind", "x"]},
                   {"features": ["not_a_feature"]}, {"coef": [[0.0]]}, {"method": "magic"}):
        with pytest.raises(ValueError, match="error classifier"):
            ErrorClassifier.from_json({**good, **change})

    from types import SimpleNamespace

    with pytest.raises(ValueError):
        calibration_errors(SimpleNamespace(info={"errors": {**good, "format": "other"}}))
    assert calibration_errors(SimpleNamespace(info={})) is None


def _locate(kind, **kw):
    z = np.array([10, 13, 16, 19, 22, 25])
    s = np.array([0.9, 0.9, 0.2, 0.3, 0.9, 0.9])
    args = {"slice_indices": z, "scores": s, "z_range": (10, 26), "z_size": 60,
            "slice_mm": 3.0} | kw
    return locate_error(kind, **args)


def test_cut_short_points_beyond_the_end_whose_probe_scores_high():
    assert _locate("cut_short", probe_sides=np.array([LOW, HIGH]),
                   probe_scores=np.array([0.1, 0.9])) == "26-29"
    assert _locate("cut_short", probe_sides=np.array([LOW, HIGH]),
                   probe_scores=np.array([0.9, 0.1])) == "6-9"
    assert _locate("cut_short", probe_sides=np.array([HIGH]), probe_scores=np.array([0.9]),
                   z_size=28) == "26-27"  # stops at the volume's edge


def test_missing_slices_finds_the_gap_or_the_largest_jump():
    areas = np.full(16, 50)
    areas[5:8] = 0
    assert _locate("missing_slices", z_areas=areas) == "15-17"
    areas = np.full(16, 50)
    areas[9:] = 10
    assert _locate("missing_slices", z_areas=areas) == "18-19"


def test_local_errors_lie_between_the_good_slices_around_the_worst():
    assert _locate("extra_blob") == "14-21"
    assert _locate("too_large") == "10-25"  # the whole label
    assert _locate("none") == ""
