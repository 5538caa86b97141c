"""The error classifier learns planted error kinds from the calibration table, is measured on
patients it has not seen and travels in the calibration's info."""

import json
from dataclasses import replace

import numpy as np
import pytest

from qsaudit.inference.aggregate import FEATURES
from qsaudit.inference.error_model import (
    CLASSIFIER_FEATURES,
    ErrorClassifier,
    calibration_errors,
    classifier_rows,
)
from qsaudit.training.calibration import LabelTable
from qsaudit.training.error_fit import (
    DOMAIN_NONE_FLOOR,
    _group_factor,
    calibration_gap,
    confusion,
    fit_error_classifier,
    fit_errors,
    fit_probability_calibration,
    kind_metrics,
    none_factor_for,
    ruled_kinds,
    table_rows,
)

PLANTS = {"perfect": None, "truncation": ("probe_max", 0.9), "slice_drop": ("fill", 0.6),
          "spurious_blob": ("largest_share", 0.5), "erosion": ("surface_ratio", 3.0),
          "dilation": ("surface_ratio", 0.5), "snapshot-30": ("area_mean", 0.3)}


def planted_table(n_patients: int = 8, per_kind: int = 4, seed: int = 0) -> LabelTable:
    """Labels whose features carry their kind (a truncated label's probe scores high, a
    label with dropped slices has a low fill, ...); half the patients are phantoms."""
    rng = np.random.default_rng(seed)
    i = {n: k for k, n in enumerate(FEATURES)}
    feats, true, pats, sources = [], [], [], []
    for p in range(n_patients):
        for source, plant in PLANTS.items():
            for _ in range(per_kind if plant else 2 * per_kind):
                f = rng.normal(1.0, 0.05, len(FEATURES))
                f[i["probe_max"]], f[i["surface_ratio"]] = 0.2, 1.5
                if plant is not None:
                    f[i[plant[0]]] = plant[1] + rng.normal(0, 0.05)
                    f[i["area_mean"]] = min(f[i["area_mean"]], 0.6)
                feats.append(f)
                true.append(1.0 if plant is None else rng.uniform(0.3, 0.75))
                pats.append(f"pt{p}" if p % 2 else f"phantom_{p}")
                sources.append(source)
    feats = np.array(feats)
    return LabelTable(feats, np.array(true), feats[:, i["area_mean"]],
                      np.array(pats, dtype=object), np.array(sources, dtype=object),
                      np.array(["Parotid_L"] * len(true), dtype=object))


def test_kinds_are_learnt_on_patients_the_fit_has_not_seen():
    clf, m = fit_errors(planted_table())
    assert clf is not None and m["errors_method"] in ("trees", "softmax")
    assert m["errors_top1_bad"] > 0.9 and m["errors_none_perfect"] > 0.9
    assert m["errors_top1_bad_real"] > 0.9 and m["errors_top1_bad_phantoms"] > 0.9
    assert m["errors_kind_counts"]["cut_short"] == 32 and m["errors_kind_counts"]["leak"] == 0
    assert "snapshot" not in str(clf.kinds)  # snapshots have no kind: never a class
    assert m["errors_confusion"]["cut_short"]["cut_short"] >= 28


@pytest.mark.parametrize("method", ["boosted", "trees", "softmax"])
def test_both_fits_separate_the_planted_kinds(method):
    table = planted_table(n_patients=8, seed=1)
    kinds = np.array(["none" if s == "perfect" else {"truncation": "cut_short",
                      "slice_drop": "missing_slices", "spurious_blob": "extra_blob",
                      "erosion": "too_small", "dilation": "too_large"}.get(s)
                      for s in table.sources], dtype=object)
    known = np.array([k is not None for k in kinds])
    rows = classifier_rows(table.features, table.structures)
    clf = fit_error_classifier(rows[known], kinds[known], method=method)
    test = planted_table(n_patients=2, seed=2)
    pred, _ = clf.predict(classifier_rows(test.features, test.structures))
    truth = {"perfect": "none", "truncation": "cut_short", "slice_drop": "missing_slices"}
    for source, kind in truth.items():
        assert np.mean(pred[test.sources == source] == kind) > 0.9
    with pytest.raises(ValueError, match="method"):
        fit_error_classifier(rows[known], kinds[known], method="magic")


def test_probability_calibration_undoes_planted_overconfidence():
    from qsaudit.inference.error_model import calibrate_probabilities, softmax

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 1.5, (4000, 4))
    truth = softmax(logits)
    y = np.array([rng.choice(4, p=row) for row in truth])
    raw = softmax(2.0 * logits + np.array([1.0, 0.0, 0.0, 0.0]))  # too sure, and of kind 0
    power, bias = fit_probability_calibration(raw, y, np.ones(y.size))
    assert abs(power - 0.5) < 0.06
    fixed = calibrate_probabilities(raw, power, bias)
    best = fixed.argmax(axis=1)
    gap_raw = calibration_gap(raw.max(axis=1), raw.argmax(axis=1) == y)
    gap = calibration_gap(fixed.max(axis=1), best == y)
    assert gap < 0.03 < gap_raw


def test_none_factor_is_the_smallest_that_calls_enough_perfect_labels_none():
    # p(none) and the best other kind of five perfect labels
    p = np.array([[0.8, 0.2], [0.6, 0.4], [0.4, 0.6], [0.3, 0.7], [0.1, 0.9]])
    assert none_factor_for(p, np.ones(5), target=0.6) == pytest.approx(1.5)  # 0.6 / 0.4
    assert none_factor_for(p, np.ones(5), target=0.4) == 1.0  # already called none
    assert none_factor_for(p, np.ones(5), target=1.0) == 5.0  # capped (9 needed)
    assert none_factor_for(p, np.ones(5), target=1.0, cap=20.0) == pytest.approx(9.0)
    heavy = np.array([1.0, 1.0, 1.0, 5.0, 1.0])  # a patient with one label counts more
    assert none_factor_for(p, heavy, target=0.6) == pytest.approx(0.7 / 0.3)


def test_target_volumes_get_their_own_none_factor():
    """A correct PTV looks less right to the classifier than a correct organ (its edge is a
    margin): one factor for all lets the organs carry the target while many PTVs miss it.
    Apart, both reach it."""
    rng = np.random.default_rng(3)
    n = 240
    perfect = np.arange(n) < 120
    kinds = np.where(perfect, "none", "too_small").astype(object)
    target = (np.arange(n) % 4) == 0  # a quarter of the labels are target volumes
    p_none = np.where(target, 0.25, 0.8) + rng.uniform(-0.1, 0.1, n)
    p_none[~perfect] = rng.uniform(0.02, 0.2, 120)
    p = np.zeros((n, 11))
    p[:, 0], p[:, 1] = p_none, 1.0 - p_none
    which, w = np.arange(n) % 5, np.ones(n)
    pooled, _, _ = ruled_kinds(p, which, kinds, perfect, w)
    apart, _, _ = ruled_kinds(p, which, kinds, perfect, w, target)
    assert np.mean(pooled[perfect & target] == "none") < 0.9
    assert np.mean(apart[perfect & target] == "none") >= 0.9
    assert np.mean(apart[perfect & ~target] == "none") >= 0.9
    assert np.mean(apart[~perfect] == "too_small") >= 0.9  # bad labels are still named


def test_the_none_rule_reaches_its_floor_on_real_ct_and_phantoms_apart():
    """Perfect real-CT labels look less right to a classifier than phantom ones: a factor
    fitted on all together lets the many phantom labels carry the target while real CT, what
    users scan, misses even the floor; bounded per domain, both reach it."""
    rng = np.random.default_rng(3)
    n = 240
    perfect = np.arange(n) < 120
    kinds = np.where(perfect, "none", "too_small").astype(object)
    domains = np.where(np.arange(n) % 4 == 0, "real", "phantoms").astype(object)
    p_none = np.where(domains == "real", 0.35, 0.8) + rng.uniform(-0.1, 0.1, n)
    p_none[~perfect] = rng.uniform(0.02, 0.3, 120)  # overlaps the real perfect labels'
    p = np.zeros((n, 11))
    p[:, 0], p[:, 1] = p_none, 1.0 - p_none
    which, w = np.arange(n) % 5, np.ones(n)
    real = perfect & (domains == "real")
    pooled, _, _ = ruled_kinds(p, which, kinds, perfect, w)
    apart, _, _ = ruled_kinds(p, which, kinds, perfect, w, domains=domains)
    assert np.mean(pooled[real] == "none") < 0.75
    # nested (each fold decided by a rule fitted on the others): the floor, within a label or so
    assert np.mean(apart[real] == "none") >= DOMAIN_NONE_FLOOR - 0.05
    assert np.mean(apart[perfect & (domains == "phantoms")] == "none") >= 0.9
    assert np.mean(apart[~perfect] == "too_small") >= 0.3  # the price: fewer bad labels named


def test_the_domain_floor_does_not_make_one_domain_set_the_factor_for_all():
    """The factor reaches the target over all perfect labels and only the floor per domain:
    a domain that needs a large factor for the full target no longer drags every domain's
    bad labels to ``none``."""
    rng = np.random.default_rng(5)
    n_real, n_ph = 40, 200
    domains = np.array(["real"] * n_real + ["phantoms"] * n_ph, dtype=object)
    # p(none) of perfect labels: phantoms clearly right, real CT a spread with a low tail
    p_none = np.concatenate([np.linspace(0.05, 0.7, n_real), rng.uniform(0.5, 0.9, n_ph)])
    p = np.stack([p_none, 1.0 - p_none], axis=1)
    w = np.ones(n_real + n_ph)
    real = domains == "real"
    floor = 0.85  # a floor below the 90% target
    factor = _group_factor(p, w, domains, cap=50.0, floor=floor)
    full_real = none_factor_for(p[real], w[real], cap=50.0)
    floor_real = none_factor_for(p[real], w[real], cap=50.0, target=floor)
    assert factor == pytest.approx(max(floor_real, none_factor_for(p, w, cap=50.0)))
    assert factor < full_real
    called = factor * p[:, 0] >= p[:, 1]
    assert called.mean() >= 0.9 and called[real].mean() >= floor
    # the shipped floor: every domain at least DOMAIN_NONE_FLOOR
    shipped = _group_factor(p, w, domains, cap=50.0)
    assert (shipped * p[real, 0] >= p[real, 1]).mean() >= DOMAIN_NONE_FLOOR


def test_a_classifier_applies_the_target_factor_to_target_volume_rows_only():
    clf, _ = fit_errors(planted_table(n_patients=6), method="softmax")
    clf = replace(clf, none_factor=1.0, none_factor_targets=50.0)
    rows = table_rows(planted_table(n_patients=2))
    organ, ptv = rows[:3].copy(), rows[:3].copy()
    ptv[:, CLASSIFIER_FEATURES.index("target_volume")] = 1.0
    np.testing.assert_array_equal(clf.row_factors(np.vstack([organ, ptv])), [1.0] * 3 + [50.0] * 3)
    again = ErrorClassifier.from_json(json.loads(json.dumps(clf.to_json())))
    assert again.none_factor_targets == 50.0
    assert list(again.predict(ptv)[0]) == ["none"] * 3  # p(none) x 50 wins


def test_the_none_rule_is_fitted_and_measured_without_the_fold_it_decides():
    clf, m = fit_errors(planted_table(n_patients=6), method="softmax")
    assert len(m["errors_none_factors"]) == 5 and clf.none_factor >= 1.0
    assert 0 <= m["errors_p_gap"] <= 1 and clf.bias is not None
    assert m["errors_none_perfect"] >= 0.9


def test_metrics_count_only_bad_labels_of_known_kind():
    true_kind = np.array(["cut_short", "leak", None, "none"], dtype=object)
    pred = np.array(["cut_short", "too_large", "none", "none"], dtype=object)
    m = kind_metrics(true_kind, pred, np.array([0.5, 0.6, 0.2, 1.0]),
                     np.array([False, False, False, True]))
    assert m == {"n_bad": 2, "top1_bad": 0.5, "none_perfect": 1.0}
    table = confusion(true_kind, pred)
    assert table["leak"]["too_large"] == 1 and "too_small" not in table


@pytest.mark.slow  # cross-validates the calibration trees too (~30 s)
def test_calibrate_table_stores_the_classifier_with_the_calibration():
    from qsaudit.training.calibration import calibrate_table

    cal, m = calibrate_table(planted_table(), method="ridge")
    stored = json.loads(json.dumps(cal.to_json()))
    from qsaudit.inference.aggregate import LabelCalibration

    back = calibration_errors(LabelCalibration.from_json(stored))
    assert back is not None and m["errors_top1_bad"] > 0.9
    cal_off, m_off = calibrate_table(planted_table(), method="ridge", errors=False)
    assert calibration_errors(cal_off) is None and "errors_top1_bad" not in m_off


def test_errors_only_refit_keeps_the_dice_calibration(tmp_path):
    import torch

    from qsaudit.inference.aggregate import model_calibration
    from qsaudit.model.checkpoint import load_checkpoint, save_checkpoint
    from qsaudit.model.config import ModelConfig
    from qsaudit.model.network import QualityNet
    from qsaudit.training.calibrate import main
    from qsaudit.training.calibration import fit_method

    table = planted_table(n_patients=4)
    table.save(tmp_path / "table.npz")
    dice = fit_method("ridge", table.features, table.true, info={"n_labels": len(table)})
    config = ModelConfig(backbone="resnet10", width=8, input_size=32, margin=4, hidden=16,
                         embed_dim=8)
    torch.manual_seed(0)
    vocab = {"Parotid_L": np.zeros(8, dtype=np.float32)}
    kw = {"encoder_spec": "x", "vocabulary": vocab}
    model = save_checkpoint(tmp_path / "m.pt", QualityNet(config), config,
                            meta={"calibration": dice.to_json(),
                                  "calibration_metrics": {"label_mae": 0.1,
                                                          "errors_top1_bad": 0.0}}, **kw)
    out = tmp_path / "out.pt"
    assert main([str(model), "--from-table", str(tmp_path / "table.npz"), "--errors-only",
                 "--out", str(out)]) == 0
    meta = load_checkpoint(out, device="cpu").meta
    assert calibration_errors(model_calibration(meta)) is not None
    stored = json.loads(json.dumps(meta["calibration"]))
    assert stored["info"].pop("errors")["none_factor"] >= 1
    assert stored == json.loads(json.dumps(dice.to_json()))  # predicted_dsc cannot change
    assert meta["calibration_metrics"]["label_mae"] == 0.1  # the Dice metrics are kept
    assert meta["calibration_metrics"]["errors_top1_bad"] > 0.9  # the error ones replaced
    bare = save_checkpoint(tmp_path / "bare.pt", QualityNet(config), config, meta={}, **kw)
    assert main([str(bare), "--from-table", str(tmp_path / "table.npz"), "--errors-only"]) == 2
    assert main([str(model), "--errors-only"]) == 2  # needs a table


def test_too_few_kinds_is_its_own_error_and_a_fit_without_them_is_skipped():
    from qsaudit.inference.error_model import CLASSIFIER_FEATURES
    from qsaudit.training.error_fit import TooFewKinds, fit_error_classifier

    rows = np.random.default_rng(0).normal(size=(20, len(CLASSIFIER_FEATURES)))
    kinds = np.array(["too_small"] * 20, dtype=object)
    with pytest.raises(TooFewKinds):
        fit_error_classifier(rows, kinds)
    assert issubclass(TooFewKinds, ValueError)  # callers that catch ValueError still do
