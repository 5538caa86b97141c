"""Structure priors: the network's typical score of a structure's correct labels."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from qsaudit.inference.priors import (
    PRIORS_KEY,
    SHRINK_PATIENTS,
    StructurePriors,
    calibration_priors,
    leave_patient_out,
)


def _arrays(rows: list[tuple[str, str, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s, p, v = zip(*rows, strict=True)
    return np.array(s, dtype=object), np.array(p, dtype=object), np.array(v, dtype=float)


def test_a_patient_counts_once_however_many_copies_it_has():
    # patient a's liver three times (resolution and field-of-view copies), b's once, c's once
    s, p, v = _arrays([("liver", "a", 0.2), ("liver", "a", 0.2), ("liver", "a", 0.2),
                       ("liver", "b", 0.8), ("liver", "c", 0.9)])
    priors = StructurePriors.fit(s, p, v)
    assert priors.names["liver"] == (pytest.approx(0.8), 3)  # median of 0.2, 0.8, 0.9
    assert priors.value("liver") == pytest.approx(0.8)  # no series: its own median


def test_a_series_member_shrinks_towards_its_series():
    s, p, v = _arrays([("left rib 12", "a", 0.3),
                       ("left rib 5", "a", 0.8), ("left rib 5", "b", 0.9),
                       ("left rib 6", "b", 0.7), ("left rib 6", "c", 0.8)])
    priors = StructurePriors.fit(s, p, v)
    series = float(np.median([0.3, 0.8, 0.9, 0.7, 0.8]))
    assert priors.value("left rib 12") == pytest.approx(
        (1 * 0.3 + SHRINK_PATIENTS * series) / (1 + SHRINK_PATIENTS))
    assert priors.value("left rib 3") == pytest.approx(series)  # unseen member: the series
    assert math.isnan(priors.value("right rib 3"))  # the right ribs are another series
    assert math.isnan(priors.value("spleen")) and math.isnan(priors.value(None))


def test_leave_patient_out_never_reads_the_labels_own_patient():
    s, p, v = _arrays([("liver", "a", 0.2), ("liver", "b", 0.8), ("liver", "c", 0.9),
                       ("spleen", "a", 0.5), ("liver", "a", 0.1), ("liver", "d", 0.4)])
    correct = np.array([True, True, True, True, False, False])
    prior = leave_patient_out(s, p, v, correct)
    assert prior[0] == pytest.approx(0.85) and prior[4] == pytest.approx(0.85)  # b, c
    assert prior[1] == pytest.approx(0.55)  # a, c
    assert prior[5] == pytest.approx(0.8)  # d has no correct label: a, b, c
    assert math.isnan(prior[3])  # only patient a has a correct spleen


def test_priors_survive_json_and_reject_damage():
    s, p, v = _arrays([("liver", "a", 0.75), ("left rib 5", "a", 0.5)])
    priors = StructurePriors.fit(s, p, v)
    again = StructurePriors.from_json(priors.to_json())
    assert again.value("liver") == pytest.approx(0.75)
    assert again.value("left rib 5") == pytest.approx(0.5)
    with pytest.raises(ValueError):
        StructurePriors.from_json({"format": "other"})
    with pytest.raises(ValueError):
        StructurePriors.from_json({"format": priors.to_json()["format"],
                                   "names": {"liver": ["x", 1]}})

    stored = SimpleNamespace(info={PRIORS_KEY: priors.to_json()})
    assert calibration_priors(stored).value("liver") == pytest.approx(0.75)
    assert calibration_priors(object()) is None


def test_label_features_hold_the_prior_and_the_gap():
    from qsaudit.inference.aggregate import FEATURES, label_features

    scores, areas = np.array([0.4, 0.6]), np.array([1.0, 3.0])
    f = label_features(scores, areas, prior=0.7)
    assert f.size == len(FEATURES)
    assert f[FEATURES.index("name_prior")] == pytest.approx(0.7)
    assert f[FEATURES.index("prior_gap")] == pytest.approx(0.55 - 0.7)
    unknown = label_features(scores, areas)
    assert np.isnan(unknown[[FEATURES.index("name_prior"), FEATURES.index("prior_gap")]]).all()


def test_calibration_fills_the_priors_from_other_patients_and_stores_them():
    from qsaudit.inference.aggregate import FEATURES
    from qsaudit.training.calibration import LabelTable, calibrate_table

    rng = np.random.default_rng(0)
    rows = []
    for i in range(8):
        for structure, good in (("liver", 0.9), ("portal vein and splenic vein", 0.4)):
            for source, true in (("perfect", 1.0), ("erosion", 0.6)):
                rows.append((f"pt{i}", structure, source, true,
                             good * true + rng.normal(0, 0.02)))
    # phantoms: their correct labels score higher and must not enter any prior
    for i in range(2):
        for structure in ("liver", "spleen"):
            rows.append((f"phantom_{i}", structure, "perfect", 1.0, 0.97 - 0.01 * i))
    patients, structures, sources, true, score = (np.array(c, dtype=object) for c in zip(*rows))
    true, score = true.astype(float), score.astype(float)
    features = np.full((len(rows), len(FEATURES)), np.nan)
    features[:, FEATURES.index("area_mean")] = score
    features[:, FEATURES.index("mean")] = score
    table = LabelTable(features, true, score, patients, sources, structures, patients.copy())
    calibration, _ = calibrate_table(table, method="ridge", errors=False)
    prior = table.features[:, FEATURES.index("name_prior")]
    for i, (p, s) in enumerate(zip(patients, structures, strict=True)):
        others = [score[j] for j in range(len(rows)) if patients[j] != p
                  and structures[j] == s and sources[j] == "perfect"
                  and not patients[j].startswith("phantom")]
        if others:
            assert prior[i] == pytest.approx(np.median(others))
        else:  # the spleen is only on phantoms
            assert s == "spleen" and np.isnan(prior[i])
    gap = table.features[:, FEATURES.index("prior_gap")]
    assert np.allclose(gap, score - prior, equal_nan=True)
    stored = calibration_priors(calibration)
    real = np.array([not p.startswith("phantom") for p in patients])
    assert stored.value("liver") == pytest.approx(
        np.median(score[(structures == "liver") & (sources == "perfect") & real]))
    assert math.isnan(stored.value("spleen"))
    # a correct portal vein scores as low as an eroded liver; the prior tells them apart
    vein = calibration.apply(table.features[(structures == "portal vein and splenic vein")
                                            & (sources == "perfect")])
    eroded = calibration.apply(table.features[(structures == "liver") & (sources != "perfect")])
    assert vein.mean() > eroded.mean() + 0.2


def test_scan_reads_the_structures_prior(tmp_path):
    from qsaudit.inference import ScanSettings, scan_dataset
    from qsaudit.progress import set_quiet
    from qsaudit.registry import canonical_name
    from tests.inference.conftest import write_calibrated_model, write_dataset

    set_quiet(True)
    data = write_dataset(tmp_path / "ds", cases=1)
    priors = StructurePriors(names={canonical_name("liver"): (0.625, 3)})
    model = write_calibrated_model(tmp_path / "cal.pt", {"name_prior": 1.0},
                                   info={PRIORS_KEY: priors.to_json()})
    settings = ScanSettings(model=model, workers=0, device="cpu", batch_size=16, slices=4)
    scan_dataset(data, tmp_path / "out", settings=settings)
    rows = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert (rows.status == "ok").all()
    liver = rows.structure == canonical_name("liver")
    assert liver.sum() == 1
    assert rows.loc[liver, "predicted_dsc"].iloc[0] == pytest.approx(0.625, abs=1e-6)
    # the others have no prior: unknown, read as the calibration's centre (0 here)
    assert (rows.loc[~liver, "predicted_dsc"] == 0.0).all()


def test_with_priors_fills_a_tables_features_as_the_scan_reads_them():
    from qsaudit.inference.aggregate import FEATURES, LabelCalibration, with_priors

    def calibration(names):
        f = len(names)
        priors = StructurePriors(names={"liver": (0.8, 4)})
        return LabelCalibration(center=np.zeros(f), scale=np.ones(f), coef=np.ones(f),
                                intercept=0.0, knots_x=np.array([0.0, 1.0]),
                                knots_y=np.array([0.0, 1.0]), names=names,
                                info={PRIORS_KEY: priors.to_json()})

    features = np.full((2, len(FEATURES)), np.nan)
    features[:, FEATURES.index("area_mean")] = [0.5, 0.6]
    filled = with_priors(features, ["liver", "spleen"], calibration(FEATURES))
    prior, gap = FEATURES.index("name_prior"), FEATURES.index("prior_gap")
    assert filled[0, prior] == pytest.approx(0.8) and filled[0, gap] == pytest.approx(-0.3)
    assert np.isnan(filled[1, [prior, gap]]).all()  # no prior for the spleen
    assert np.isnan(features[:, prior]).all()  # the input is left as it was
    older = calibration(tuple(n for n in FEATURES if n not in ("name_prior", "prior_gap")))
    assert np.isnan(with_priors(features, ["liver", "spleen"], older)[:, prior]).all()


def test_priors_are_keyed_by_registry_name():
    # the table knows a derived lung as "lung_left"; a scan names it "left lung"
    s, p, v = _arrays([("lung_left", "a", 0.9), ("lung_left", "b", 0.95)])
    priors = StructurePriors.fit(s, p, v)
    assert priors.value("left lung") == pytest.approx(0.925)
    assert priors.value("lung_left") == pytest.approx(0.925)
    stored = priors.to_json()
    stored["names"] = {"lung_left": [0.925, 2]}  # a file written before names were keyed so
    assert StructurePriors.from_json(stored).value("left lung") == pytest.approx(0.925)


def _table(rows):
    from qsaudit.inference.aggregate import FEATURES
    from qsaudit.training.calibration import LabelTable

    patients, structures, sources, true, score = (np.array(c, dtype=object) for c in zip(*rows))
    features = np.full((len(rows), len(FEATURES)), np.nan)
    features[:, FEATURES.index("area_mean")] = score.astype(float)
    return LabelTable(features, true.astype(float), score.astype(float), patients, sources,
                      structures, patients.copy())


def test_a_cross_validation_fold_reads_priors_of_its_training_patients_alone():
    from qsaudit.inference.aggregate import FEATURES
    from qsaudit.training.calibration import _fold_features, add_priors

    rows = [(f"pt{i}", "liver", "perfect", 1.0, 0.5 + 0.1 * i) for i in range(5)]
    rows += [(f"pt{i}", "liver", "erosion", 0.6, 0.3) for i in range(5)]
    table = _table(rows)
    add_priors(table)
    train = np.array([p in ("pt0", "pt1", "pt2") for p in table.patients])
    features = _fold_features(table, train)
    prior = features[:, FEATURES.index("name_prior")]
    held = ~train
    assert np.allclose(prior[held], 0.6)  # the median of pt0..pt2's 0.5, 0.6, 0.7
    pt0 = (table.patients == "pt0")
    assert np.allclose(prior[pt0], 0.65)  # pt1 and pt2 only: its own patient left out
    # the table's own (leave-patient-out over everyone) stays as it was
    assert table.features[pt0, FEATURES.index("name_prior")] == pytest.approx([0.75, 0.75])


def test_add_priors_can_take_another_tables_priors():
    from qsaudit.inference.aggregate import FEATURES
    from qsaudit.training.calibration import add_priors

    table = _table([("x", "liver", "perfect", 1.0, 0.2), ("x", "spleen", "perfect", 1.0, 0.3)])
    given = StructurePriors(names={"liver": (0.8, 5)})
    assert add_priors(table, given) is given
    prior = table.features[:, FEATURES.index("name_prior")]
    assert prior[0] == pytest.approx(0.8) and np.isnan(prior[1])
    assert table.features[0, FEATURES.index("prior_gap")] == pytest.approx(-0.6)


def test_with_priors_reads_no_structures_as_unknown():
    from qsaudit.inference.aggregate import FEATURES, with_priors

    features = np.full((2, len(FEATURES)), np.nan)
    features[:, FEATURES.index("area_mean")] = 0.5
    stored = StructurePriors(names={"liver": (0.8, 5)})
    cal = SimpleNamespace(names=FEATURES, info={PRIORS_KEY: stored.to_json()})
    out = with_priors(features, None, cal)
    assert np.isnan(out[:, FEATURES.index("name_prior")]).all()
