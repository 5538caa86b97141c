"""Aggregation of slice scores into one predicted Dice and its interval."""

import json
import math

import numpy as np
import pytest

from qsaudit.inference import aggregate


def test_methods_by_hand():
    s = np.array([0.2, 0.6, 0.9])
    w = np.array([1.0, 1.0, 2.0])
    assert aggregate(s, method="mean").dsc == pytest.approx(1.7 / 3)
    assert aggregate(s, method="median").dsc == 0.6
    assert aggregate(s, w, method="area_weighted").dsc == pytest.approx((0.2 + 0.6 + 1.8) / 4)
    assert aggregate(s, np.zeros(3), method="area_weighted").dsc == pytest.approx(1.7 / 3)
    assert aggregate(s).std == pytest.approx(s.std())


def test_area_weighted_equals_3d_dice_when_slices_have_equal_sizes():
    rng = np.random.default_rng(0)
    a = rng.random((12, 12, 6)) > 0.5
    b = a.copy()
    for z in range(6):  # move some voxels within each slice: same area, lower overlap
        flat = b[:, :, z].ravel()
        on, off = np.flatnonzero(flat), np.flatnonzero(~flat)
        k = z * 3
        flat[on[:k]], flat[off[:k]] = False, True
        b[:, :, z] = flat.reshape(12, 12)
    inter = (a & b).sum(axis=(0, 1))
    slice_dice = 2 * inter / (a.sum(axis=(0, 1)) + b.sum(axis=(0, 1)))
    dice_3d = 2 * (a & b).sum() / (a.sum() + b.sum())
    result = aggregate(slice_dice, b.sum(axis=(0, 1)), method="area_weighted")
    assert result.dsc == pytest.approx(dice_3d)


def test_interval():
    s = np.array([0.5, 0.7, 0.6, 0.8, 0.4])
    r = aggregate(s, method="mean", population=40)
    assert 0 <= r.low < r.dsc < r.high <= 1
    wider = aggregate(np.array([0.1, 0.9, 0.3, 0.8, 0.5]), method="mean", population=40)
    assert wider.high - wider.low > r.high - r.low
    full = aggregate(s, method="mean", population=5)   # every slice scored
    assert full.low == pytest.approx(full.dsc) and full.high == pytest.approx(full.dsc)
    one = aggregate(np.array([0.7]))
    assert one.dsc == 0.7 and math.isnan(one.low) and math.isnan(one.high)
    assert math.isnan(aggregate(np.array([])).dsc)


def test_bad_arguments():
    with pytest.raises(ValueError, match="aggregation"):
        aggregate(np.ones(3), method="max")
    with pytest.raises(ValueError, match="shape"):
        aggregate(np.ones(3), np.ones(2))


def _half_up_calibration():
    """A calibration that maps the area-weighted mean m to 0.5 + 0.5 m."""
    from qsaudit.inference.aggregate import FEATURES, LabelCalibration

    f = len(FEATURES)
    coef = np.zeros(f)
    coef[FEATURES.index("area_mean")] = 1.0
    return LabelCalibration(center=np.zeros(f), scale=np.ones(f), coef=coef, intercept=0.0,
                            knots_x=np.array([0.0, 1.0]), knots_y=np.array([0.5, 1.0]))


def test_calibrated_aggregate_maps_value_and_interval():
    from qsaudit.inference.aggregate import calibrated_aggregate

    cal = _half_up_calibration()
    s, w = np.array([0.5, 0.7, 0.6, 0.8, 0.4]), np.array([1.0, 2.0, 2.0, 1.0, 1.0])
    plain = aggregate(s, w, population=40)
    r = calibrated_aggregate(s, w, cal, population=40, slice_indices=np.arange(5) * 8)
    assert r.dsc == pytest.approx(0.5 + 0.5 * plain.dsc)
    assert r.low == pytest.approx(0.5 + 0.5 * plain.low)
    assert r.high == pytest.approx(0.5 + 0.5 * plain.high)
    assert r.std == plain.std
    one = calibrated_aggregate(np.array([0.2]), np.array([3.0]), cal)
    assert one.dsc == pytest.approx(0.6) and math.isnan(one.low)


def test_scan_applies_the_models_calibration(tiny_dataset, tmp_path):
    import pandas as pd
    import torch

    from qsaudit.inference import ScanSettings, scan_dataset
    from qsaudit.progress import set_quiet
    from tests.inference.conftest import write_tiny_model

    set_quiet(True)
    plain_model = write_tiny_model(tmp_path / "plain.pt")
    payload = torch.load(plain_model, weights_only=True)
    payload["meta_json"] = json.dumps({"calibration": _half_up_calibration().to_json()})
    cal_model = tmp_path / "cal.pt"
    torch.save(payload, cal_model)
    tables = {}
    for name, model, method in (("plain", plain_model, "area_weighted"),
                                ("cal", cal_model, "area_weighted"),
                                ("cal_mean", cal_model, "mean")):
        settings = ScanSettings(model=model, workers=0, device="cpu", batch_size=16, slices=4,
                                aggregation=method)
        scan_dataset(tiny_dataset, tmp_path / name, settings=settings)
        tables[name] = pd.read_parquet(tmp_path / name / "results.parquet")
    plain, cal = tables["plain"], tables["cal"]
    np.testing.assert_allclose(cal["raw_score"], plain["raw_score"])
    np.testing.assert_allclose(cal["predicted_dsc"], 0.5 + 0.5 * plain["predicted_dsc"])
    assert (cal["dsc_low"] <= cal["predicted_dsc"]).all()
    assert (cal["predicted_dsc"] <= cal["dsc_high"]).all()
    # another aggregation than the calibrated one: the calibration is not applied
    mean_plain = tables["cal_mean"]["raw_score"]
    np.testing.assert_allclose(tables["cal_mean"]["predicted_dsc"], mean_plain)


def _scan_with(calibration, dataset, tmp_path, out: str = "out"):
    """Scan ``dataset`` with the tiny model carrying ``calibration``: (model file, settings,
    the result rows that have a prediction)."""
    import pandas as pd
    import torch

    from qsaudit.inference import ScanSettings, scan_dataset
    from qsaudit.progress import set_quiet
    from tests.inference.conftest import write_tiny_model

    set_quiet(True)
    payload = torch.load(write_tiny_model(tmp_path / "plain.pt"), weights_only=True)
    payload["meta_json"] = json.dumps({"calibration": calibration.to_json()})
    model = tmp_path / "banded.pt"
    torch.save(payload, model)
    settings = ScanSettings(model=model, workers=0, device="cpu", batch_size=16, slices=4)
    scan_dataset(dataset, tmp_path / out, settings=settings)
    rows = pd.read_parquet(tmp_path / out / "results.parquet").dropna(subset=["predicted_dsc"])
    return model, settings, rows


def test_scan_intervals_come_from_the_calibrations_error_bands(tiny_dataset, tmp_path):
    import torch

    from qsaudit.errors import ModelError
    from qsaudit.inference import scan_dataset
    from qsaudit.inference.intervals import ErrorBands

    cal = _half_up_calibration()
    bands = ErrorBands(edges=np.array([0.75]), low=np.array([-0.4, -0.1]),
                       high=np.array([0.3, 0.02]), counts=np.array([60, 60]))
    cal.info["intervals"] = bands.to_json()
    model, settings, rows = _scan_with(cal, tiny_dataset, tmp_path)
    assert len(rows)
    p = rows["predicted_dsc"].to_numpy()
    low = np.where(p > 0.75, p - 0.1, p - 0.4).clip(0, 1)
    high = np.where(p > 0.75, p + 0.02, p + 0.3).clip(0, 1)
    np.testing.assert_allclose(rows["dsc_low"], low, atol=1e-9)
    np.testing.assert_allclose(rows["dsc_high"], high, atol=1e-9)

    cal.info["intervals"] = {"format": "qsaudit-error-bands", "low": [0.2]}  # damaged
    payload = torch.load(model, weights_only=True)
    payload["meta_json"] = json.dumps({"calibration": cal.to_json()})
    torch.save(payload, model)
    with pytest.raises(ModelError, match="interval bands"):
        scan_dataset(tiny_dataset, tmp_path / "out2", settings=settings)


def test_scan_gives_target_volumes_their_own_bands(tiny_dataset, tmp_path, monkeypatch):
    # the tiny model knows no PTV: the aorta stands in for one, so that the scan's choice of
    # bands by each label's structure is what is tested
    import qsaudit.registry
    from qsaudit.inference.intervals import ErrorBands

    monkeypatch.setattr(qsaudit.registry, "is_target_volume", lambda name: name == "aorta")
    cal = _half_up_calibration()
    one_bin = {"edges": np.array([]), "counts": np.array([300])}
    cal.info["intervals"] = ErrorBands(low=np.array([-0.05]), high=np.array([0.05]),
                                       **one_bin).to_json()
    cal.info["intervals_targets"] = ErrorBands(low=np.array([-0.3]), high=np.array([0.2]),
                                               **one_bin).to_json()
    _model, _settings, rows = _scan_with(cal, tiny_dataset, tmp_path)
    target = (rows["structure"] == "aorta").to_numpy()
    assert target.any() and (~target).any()
    p = rows["predicted_dsc"].to_numpy()
    np.testing.assert_allclose(rows["dsc_low"], np.clip(p - np.where(target, 0.3, 0.05), 0, 1),
                               atol=1e-9)
    np.testing.assert_allclose(rows["dsc_high"], np.clip(p + np.where(target, 0.2, 0.05), 0, 1),
                               atol=1e-9)
