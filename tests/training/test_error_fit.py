"""The error classifier learns planted error kinds from the calibration table, is measured on
patients it has not seen and travels in the calibration's info."""

import json

import numpy as np
import pytest

from qsaudit.inference.aggregate import FEATURES
from qsaudit.inference.error_model import calibration_errors, classifier_rows
from qsaudit.training.calibration import LabelTable
from qsaudit.training.error_fit import confusion, fit_error_classifier, fit_errors, kind_metrics

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


@pytest.mark.parametrize("method", ["trees", "softmax"])
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
