"""Batch augmentation, the train-margin range and refitting a model file's calibration."""

from __future__ import annotations

import numpy as np
import torch

from qsaudit.training.augment import AugmentConfig, augment_batch


def test_augment_is_seeded_registered_and_identity_when_off():
    x = torch.rand(4, 2, 16, 16) * 2 - 1
    a = augment_batch(x, torch.Generator().manual_seed(1))
    b = augment_batch(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.allclose(a, x)
    off = AugmentConfig(intensity_scale=0, intensity_offset=0, noise=0, zoom=0, shift=0)
    torch.testing.assert_close(augment_batch(x, torch.Generator(), config=off), x)
    only_ct = AugmentConfig(zoom=0, shift=0)
    c = augment_batch(x, torch.Generator().manual_seed(2), config=only_ct)
    torch.testing.assert_close(c[:, 1], x[:, 1])  # geometry untouched: mask channel intact


def test_train_margin_range_is_centred_on_the_scan_margin():
    from qsaudit.model.config import ModelConfig
    from qsaudit.training.build import train_margins
    from qsaudit.training.config import SampleConfig

    lo, hi = train_margins(SampleConfig(), ModelConfig(margin=20))
    assert lo < 20 < hi and (lo + hi) / 2 == 20
    assert train_margins(SampleConfig(margin_range=(2, 6)), ModelConfig()) == (2, 6)


def test_recalibrate_writes_a_calibration_the_scan_reads(tmp_path):
    from qsaudit.inference.aggregate import model_calibration
    from qsaudit.model.checkpoint import load_checkpoint, save_checkpoint
    from qsaudit.model.config import ModelConfig
    from qsaudit.model.network import QualityNet
    from qsaudit.training.calibrate import main
    from tests.training.conftest import ORGANS, write_dataset

    data = write_dataset(tmp_path / "ds", [31, 32, 33, 34])
    config = ModelConfig(backbone="resnet10", width=8, input_size=32, margin=4, hidden=16,
                         embed_dim=8)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    vocab = {n: rng.normal(size=8).astype(np.float32) for n in ORGANS}
    model = save_checkpoint(tmp_path / "m.pt", QualityNet(config), config, encoder_spec="x",
                            vocabulary=vocab, meta={"excluded_cases": ["case_34"]})
    out = tmp_path / "cal.pt"
    table = tmp_path / "table.npz"
    code = main([str(model), "--data", str(data), "--out", str(out), "--workers", "1",
                 "--snapshot-steps", "", "--table", str(table)])
    assert code == 0
    meta = load_checkpoint(out, device="cpu").meta
    cal = model_calibration(meta)
    assert cal is not None and meta["calibration_metrics"]["n_patients"] == 3  # case_34 excluded
    assert "largest_share" in cal.names  # the mask's shape features are part of the fit
    saved = np.load(table)
    assert saved["features"].shape == (meta["calibration_metrics"]["n_labels"],
                                       len(saved["names"]))
    assert not np.isnan(saved["features"]).any()
    assert set(saved["patients"]) == {"case_31", "case_32", "case_33"}
    assert set(saved["structures"]) == set(ORGANS)  # per-structure studies need the names
    # refit from the table alone: no data, same patients recorded
    again = tmp_path / "again.pt"
    assert main([str(model), "--from-table", str(table), "--out", str(again)]) == 0
    meta_again = load_checkpoint(again, device="cpu").meta
    assert model_calibration(meta_again) is not None
    assert meta_again["calibration_patients"] == meta["calibration_patients"]
    assert meta_again["calibration_metrics"]["n_labels"] == saved["true"].size
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a table")
    assert main([str(model), "--from-table", str(junk), "--out", str(again)]) == 2
    assert meta["excluded_cases"] == ["case_34"]
    assert model_calibration(load_checkpoint(model, device="cpu").meta) is None
    assert main([str(model), "--out", str(out)]) == 2  # no data
    # the structures read off the real CT: the model's own by default, or those asked for
    assert meta["calibration"]["info"]["derived"] == ["lungs"]  # the training default
    assert main([str(model), "--data", str(data), "--out", str(out), "--derived", "bones"]) == 2
    assert main([str(model), "--data", str(data), "--out", str(out), "--workers", "1",
                 "--snapshot-steps", "", "--derived", "lungs,ribs"]) == 0
    assert load_checkpoint(out, device="cpu").meta["calibration"]["info"]["derived"] == [
        "lungs", "ribs"]


def test_a_models_sample_settings_are_read_back_with_other_derived_structures():
    import pytest

    from qsaudit.errors import UsageError
    from qsaudit.training.config import SampleConfig

    meta = {"train_config": {"samples": {"snapshot_steps": [5, 30], "derived": True,
                                         "derived_sources": ["lungs", "humeri"],
                                         "setting_of_a_newer_version": 1}}}
    samples = SampleConfig.of_model(meta)
    assert samples.snapshot_steps == (5, 30) and samples.derived_sources == ("lungs", "humeri")
    assert SampleConfig.of_model({}) == SampleConfig()  # a model that records none
    other = SampleConfig.of_model(meta, derived="lungs,ribs", snapshot_steps=())
    assert other.derived_sources == ("lungs", "ribs") and other.snapshot_steps == ()
    assert not SampleConfig.of_model(meta, derived="").derived
    with pytest.raises(UsageError, match="unknown source 'bones'"):
        SampleConfig.of_model(meta, derived="lungs,bones")
