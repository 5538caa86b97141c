"""Label calibration: PAV, the fit, its JSON round trip and the metrics on a planted bias."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qsaudit.inference.aggregate import (
    FEATURES,
    SLICE_FEATURES,
    LabelCalibration,
    label_features,
)
from qsaudit.inference.intervals import calibration_bands
from qsaudit.training.calibration import calibrate, fit_calibration, interval_bands, isotonic
from qsaudit.training.samples import SampleSet


def test_isotonic_pools_violators_by_hand():
    kx, ky = isotonic(np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0, 4.0]))
    np.testing.assert_allclose(ky, [1.0, 2.5, 4.0])
    np.testing.assert_allclose(kx, [0.0, 1.5, 3.0])
    rng = np.random.default_rng(0)
    x = rng.random(200)
    _, y_fit = isotonic(x, np.sin(3 * x) + rng.normal(0, 0.3, 200))
    assert np.all(np.diff(y_fit) > 0)


def test_features_see_missing_slices_and_flat_ends():
    scores, areas = np.full(5, 0.9), np.array([10.0, 40, 50, 40, 10])
    whole = label_features(scores, areas, mask_slices=20, z_extent=20)
    holes = label_features(scores, areas, mask_slices=10, z_extent=20)
    flat = label_features(scores, np.array([50.0, 50, 50, 50, 50]), mask_slices=20)
    i = {n: k for k, n in enumerate(FEATURES)}
    assert whole[i["area_mean"]] == pytest.approx(0.9)
    assert whole[i["fill"]] == 1.0 and holes[i["fill"]] == 0.5
    assert holes[i["gap_mean"]] == pytest.approx(0.9 * 2 * 0.5 / 1.5)
    assert whole[i["edge_area"]] == pytest.approx(0.2) and flat[i["edge_area"]] == 1.0


def _biased_labels(n: int, seed: int):
    """Labels whose slice predictions are 0.25 too low near 1 and which may lose slices."""
    rng = np.random.default_rng(seed)
    feats, true = [], []
    for _ in range(n):
        dsc = rng.uniform(0.2, 1.0)
        kept = 1.0 if rng.random() < 0.6 else rng.uniform(0.4, 1.0)  # fraction of slices kept
        true_3d = dsc * 2 * kept / (1 + kept)
        pred = np.clip(dsc - 0.25 * dsc ** 2 + rng.normal(0, 0.04, 10), 0, 1)
        feats.append(label_features(pred, rng.uniform(20, 60, 10), mask_slices=int(30 * kept),
                                    z_extent=30))
        true.append(true_3d)
    return np.array(feats), np.array(true)


def test_fit_removes_a_planted_bias_on_new_labels():
    x, y = _biased_labels(300, 1)
    cal = fit_calibration(x, y)
    x_new, y_new = _biased_labels(200, 2)
    plain = x_new[:, FEATURES.index("area_mean")]
    fixed = cal.apply(x_new)
    assert np.abs(fixed - y_new).mean() < 0.5 * np.abs(plain - y_new).mean()
    assert np.corrcoef(fixed, y_new)[0, 1] > np.corrcoef(plain, y_new)[0, 1] + 0.05
    assert fixed.min() >= 0 and fixed.max() <= 1
    again = LabelCalibration.from_json(json.loads(json.dumps(cal.to_json())))
    np.testing.assert_allclose(again.apply(x_new), fixed)
    with pytest.raises(ValueError, match="format"):
        LabelCalibration.from_json({**cal.to_json(), "features": ["volume_z_score"]})
    with pytest.raises(ValueError, match="sizes"):
        LabelCalibration.from_json({**cal.to_json(), "features": ["mean"]})


def test_shape_features_unknown_at_fit_are_left_out_and_old_calibrations_still_apply():
    x, y = _biased_labels(200, 3)  # no shape features: NaN
    assert np.isnan(x[:, len(SLICE_FEATURES):]).all()
    cal = fit_calibration(x, y)
    assert cal.names == SLICE_FEATURES  # all-NaN columns dropped
    slice_only = fit_calibration(x, y, names=SLICE_FEATURES)
    np.testing.assert_allclose(cal.apply(x), slice_only.apply(x))
    # a calibration stored with fewer features reads full vectors, shape features included
    stored = LabelCalibration.from_json(json.loads(json.dumps(cal.to_json())))
    full = x.copy()
    full[:, len(SLICE_FEATURES):] = 0.5
    np.testing.assert_allclose(stored.apply(full), cal.apply(x))


def test_shape_features_help_where_slice_scores_are_blind():
    """Labels whose slice scores are all alike but whose 'largest_share' carries the truth."""
    rng = np.random.default_rng(4)
    def labels(n):
        feats, true = [], []
        for _ in range(n):
            share = rng.uniform(0.5, 1.0)  # a blob holding 1 - share of the voxels
            shape = np.array([share, 0.02, 0.01, 5.0, 0.2, 0.2, 0.0, 0.3, 1.0, 0.0, 6.0])
            pred = np.clip(0.9 + rng.normal(0, 0.03, 8), 0, 1)
            feats.append(label_features(pred, np.full(8, 40.0), mask_slices=20, z_extent=20,
                                        shape=shape))
            true.append(2 * share / (1 + share))
        return np.array(feats), np.array(true)
    x, y = labels(200)
    x_new, y_new = labels(100)
    with_shape = fit_calibration(x, y).apply(x_new)
    without = fit_calibration(x, y, names=SLICE_FEATURES).apply(x_new)
    assert np.corrcoef(with_shape, y_new)[0, 1] > 0.95
    assert np.abs(with_shape - y_new).mean() < 0.5 * np.abs(without - y_new).mean()


def _sample_set(n_groups: int, seed: int) -> tuple[SampleSet, np.ndarray]:
    """Groups of 6 slices; predictions = true slice Dice * 0.75 (a model biased low)."""
    rng = np.random.default_rng(seed)
    targets, groups, table = [], [], []
    for g in range(n_groups):
        level = 1.0 if g % 4 == 0 else rng.uniform(0.1, 1.0)
        t = np.clip(level + rng.normal(0, 0.03, 6), 0, 1)
        targets.append(t)
        groups.append(np.full(6, g))
        table.append({"case_id": f"c{g % 7}", "patient_id": f"p{g % 7}", "structure": "liver",
                      "source": "perfect" if g % 4 == 0 else "blur", "severity": 0.5,
                      "true_dsc": float(t.mean()), "mask_slices": 12, "z_extent": 12})
    targets = np.concatenate(targets).astype(np.float32)
    n = targets.size
    samples = SampleSet(np.zeros((n, 2, 4, 4), np.float16), targets,
                        np.array(["liver"] * n, dtype=object), np.concatenate(groups),
                        np.full(n, 30.0, np.float32), table)
    return samples, targets * 0.75


def test_calibrate_reports_cross_validated_gain_and_bias():
    samples, pred = _sample_set(80, 3)
    cal, m = calibrate(samples, pred)
    assert cal is not None and m["n_labels"] == 80 and m["n_patients"] == 7
    assert m["label_mae"] > 0.1 and m["label_mae_calibrated"] < 0.05
    assert m["perfect_mae_calibrated"] < m["perfect_mae"]
    assert m["slice_bias"] < -0.1 and m["slice_bias_dsc_ge_0.95"] < -0.2
    assert cal.info["label_mae_calibrated"] == m["label_mae_calibrated"]
    # the kept fit's held-out errors size its prediction intervals (few real labels: all)
    bands = calibration_bands(cal)
    assert bands is not None and bands.targets is None
    assert bands.default.reference == "all calibration labels"
    width = float(np.mean(bands.default.high - bands.default.low))
    assert m["interval_mean_width"] == pytest.approx(width)
    assert 0 < m["interval_mean_width"] < 0.3


def test_intervals_are_sized_on_real_ct_labels_when_there_are_enough():
    rng = np.random.default_rng(5)
    true = rng.uniform(0, 1, 600)
    real = np.arange(600) < 300
    pred = true + np.where(real, rng.normal(0, 0.2, 600), rng.normal(0, 0.02, 600))
    bands = interval_bands(pred, true, real=real).default
    assert bands.reference == "real CT" and np.mean(bands.high - bands.low) > 0.4
    assert bands.counts.sum() == 300
    few = interval_bands(pred, true, real=np.arange(600) < 50).default
    assert few.reference == "all calibration labels"
    # real target volumes and real organs, 200+ each: every kind sized on its own errors
    real = np.ones(600, bool)
    target = np.arange(600) >= 300
    pred = true + np.where(target, rng.normal(0, 0.2, 600), rng.normal(0, 0.02, 600))
    split = interval_bands(pred, true, real=real, target=target)
    assert split.targets is not None and split.targets.reference.endswith("target volumes")
    assert np.mean(split.targets.high - split.targets.low) > \
        4 * np.mean(split.default.high - split.default.low)
    assert interval_bands(pred, true, real=real, target=np.arange(600) >= 500).targets is None


def test_calibrate_skips_tiny_validation_sets():
    samples, pred = _sample_set(8, 4)
    cal, m = calibrate(samples, pred)
    assert cal is None and m["calibration"].startswith("skipped")


@pytest.mark.slow  # cross-validates the boosted trees on 420 labels (~20 s)
def test_calibrate_table_sizes_target_volume_bands_from_the_structure_names():
    # 420 real-CT labels of 7 patients, half PTVs (larger errors)
    from qsaudit.training.calibration import LabelTable, calibrate_table

    rng = np.random.default_rng(5)
    n = 420
    true = rng.uniform(0.2, 1.0, n)
    structures = np.array(["PTV70" if i % 2 else "Parotid_L" for i in range(n)], dtype=object)
    noise = np.where(structures == "PTV70", 0.15, 0.02)
    plain = np.clip(true + rng.normal(0, 1, n) * noise, 0, 1)
    features = np.zeros((n, len(FEATURES)))
    features[:, FEATURES.index("area_mean")] = plain
    patients = np.array([f"pt{i % 7}" for i in range(n)], dtype=object)
    table = LabelTable(features, true, plain, patients, np.array(["blur"] * n, dtype=object),
                       structures)
    cal, m = calibrate_table(table, method="ridge")
    bands = calibration_bands(cal)
    assert bands.targets is not None and bands.default.reference.endswith("anatomical structures")
    assert m["interval_mean_width_targets"] > 2 * m["interval_mean_width"]
    assert bands.for_structure("PTV 70") is bands.targets
    assert bands.for_structure("parotid left") is bands.default


@pytest.mark.slow  # cross-validates the boosted trees on 630 labels (~20 s)
def test_resolution_copies_teach_the_trees_but_do_not_size_the_intervals():
    """A resolution copy is a real label resampled, not a new patient's label: counted in the
    bands, copies predicted closely would narrow them below their level on real scans."""
    from qsaudit.training.calibration import LabelTable, calibrate_table

    rng = np.random.default_rng(8)
    n = 210
    true = rng.uniform(0.2, 1.0, n)
    plain = np.clip(true + rng.normal(0, 0.12, n), 0, 1)
    patients = np.array([f"pt{i % 7}" for i in range(n)], dtype=object)
    cases = np.array([f"case{i % 7}" for i in range(n)], dtype=object)
    # each label twice more, from copies whose slice scores hit the truth closely
    copy_plain = np.clip(np.concatenate([true, true]) + rng.normal(0, 0.01, 2 * n), 0, 1)
    all_plain = np.concatenate([plain, copy_plain])
    features = np.zeros((3 * n, len(FEATURES)))
    features[:, FEATURES.index("area_mean")] = all_plain
    table = LabelTable(features, np.tile(true, 3), all_plain, np.tile(patients, 3),
                       np.array(["blur"] * (3 * n), dtype=object),
                       np.array(["Parotid_L"] * (3 * n), dtype=object),
                       np.concatenate([cases, [f"{c}@0.80mm" for c in cases],
                                       [f"{c}@2.10mm" for c in cases]]))
    assert table.copies().sum() == 2 * n
    _, with_copies = calibrate_table(table, method="ridge", errors=False)
    unmarked = LabelTable(*(getattr(table, f) for f in
                            ("features", "true", "plain", "patients", "sources", "structures")),
                          np.array(["case"] * (3 * n), dtype=object))
    _, counted = calibrate_table(unmarked, method="ridge", errors=False)
    # the originals' errors (~0.12) size the bands, not the copies' (~0.01)
    assert with_copies["interval_mean_width"] > 1.25 * counted["interval_mean_width"]
    assert with_copies["interval_mean_width"] > 0.3


def test_novelty_reference_is_the_real_ct_labels_when_there_are_enough():
    from qsaudit.inference.novelty import FeatureRanges
    from qsaudit.training.calibration import (
        MIN_REAL_FOR_INTERVALS,
        LabelTable,
        reference_population,
    )

    n = MIN_REAL_FOR_INTERVALS + 50
    rng = np.random.default_rng(0)
    feats = rng.normal(0.0, 1.0, size=(2 * n, len(FEATURES)))
    feats[n:] += 10.0  # the phantom half lies far away
    patients = np.array([f"pt_{i % 7}" for i in range(n)] + [f"phantom_{i % 5}" for i in range(n)])
    structures = np.array(["spinal cord"] * n + ["left rib 7"] * n)
    table = LabelTable(feats, rng.uniform(size=2 * n), rng.uniform(size=2 * n), patients,
                       np.array(["perfect"] * (2 * n)), structures)
    real = np.array([not p.startswith("phantom") for p in patients])
    ref = reference_population(table, real=real)
    assert ref["reference_structures"] == ["spinal cord"]
    ranges = FeatureRanges.from_json(ref["feature_ranges"])
    assert ranges.outliers(feats[-1])  # a phantom-like label is outside the real range
    few = reference_population(table, real=np.arange(2 * n) < 10)  # too few real: all labels
    assert few["reference_structures"] == ["left rib 7", "spinal cord"]
