"""``qsaudit train`` end to end on a tiny dataset: model file, log, meta, resume."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from qsaudit.cli import app
from tests.training.conftest import write_dataset

TINY = ["--backbone", "resnet10", "--width", "8", "--input-size", "32", "--workers", "1",
        "--snapshot-steps", "3,20", "--slices-per-candidate", "4", "--batch-size", "16",
        "--device", "cpu", "--quiet"]


def test_train_writes_a_loadable_model_and_resumes(tmp_path):
    from qsaudit.model.checkpoint import load_checkpoint

    data = write_dataset(tmp_path / "ds", [21, 22, 23, 24])
    (tmp_path / "exclude.txt").write_text("case_24  # benchmark patient\n")
    out = tmp_path / "m.pt"
    args = ["train", "--data", str(data), "--out", str(out), "--epochs", "2",
            "--exclude-cases", str(tmp_path / "exclude.txt"), "--holdout-fraction", "0.34",
            *TINY]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    assert "wrote" in run.output and "validation: label r" in run.output
    predictor = load_checkpoint(out, device="cpu")
    meta = predictor.meta
    assert meta["excluded_cases"] == ["case_24"]
    assert len(meta["validation_patients"]) == 1
    assert "case_24" not in meta["train_patients"] + meta["validation_patients"]
    assert meta["seed"] == 0 and meta["command"].startswith("qsaudit train")
    assert {"label_r", "label_mae", "slice_r"} <= set(meta["validation"])
    assert {"liver", "spleen"} <= set(predictor.vocabulary)
    log = tmp_path / "m.log.jsonl"
    assert [json.loads(line)["epoch"] for line in log.read_text().splitlines()] == [1, 2]
    assert (tmp_path / "m.state.pt").is_file()

    again = CliRunner().invoke(app, [*args[:-len(TINY)], *TINY, "--resume"]
                               + ["--epochs", "3"])
    assert again.exit_code == 0, again.output
    assert [json.loads(line)["epoch"] for line in log.read_text().splitlines()] == [1, 2, 3]


@pytest.mark.parametrize("extra, message", [
    (["--epochs", "0"], "--epochs"),
    (["--no-mse", "--no-opr"], "no loss"),
    (["--preset", "huge"], "unknown preset"),
    (["--sample-draw", "-1"], "--sample-draw"),
    (["--derived", "lungs,scapulae"], "unknown source 'scapulae'"),
])
def test_train_rejects_bad_options(tmp_path, extra, message):
    run = CliRunner().invoke(app, ["train", "--phantoms", "1", "--out", str(tmp_path / "m.pt"),
                                   *extra])
    assert run.exit_code == 2
    assert message in run.output


def test_train_without_data_is_a_usage_error(tmp_path):
    run = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "m.pt")])
    assert run.exit_code == 2 and "no training data" in run.output


def test_train_can_start_from_a_model_file(tmp_path):
    import torch

    from qsaudit.model.checkpoint import load_checkpoint, read_network

    data = write_dataset(tmp_path / "ds", [31, 32, 33])
    first = tmp_path / "first.pt"
    base = ["train", "--data", str(data), "--epochs", "1", "--holdout-fraction", "0.34", *TINY]
    assert CliRunner().invoke(app, [*base, "--out", str(first)]).exit_code == 0
    # a vanishing learning rate: the fine-tuned network keeps the weights it started from
    tuned = tmp_path / "tuned.pt"
    run = CliRunner().invoke(app, [*base, "--out", str(tuned), "--init", str(first),
                                   "--lr", "1e-12", "--seed", "5"])
    assert run.exit_code == 0, run.output
    start, _, _ = read_network(first)
    end, _, _ = read_network(tuned)
    for key in ("conv1.weight", "net.layer1.0.conv1.weight", "fc2.weight"):
        torch.testing.assert_close(end.state_dict()[key], start.state_dict()[key],
                                   rtol=0, atol=1e-6)
    assert load_checkpoint(tuned, device="cpu").meta["init"] == str(first)

    other = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "w.pt"), "--init",
                                     str(first), "--width", "16"])
    assert other.exit_code == 2 and "another architecture" in other.output


def test_max_minutes_counts_the_sample_build_and_calibration_can_wait(tmp_path, monkeypatch):
    import types

    import qsaudit.training.run as run_mod
    import qsaudit.training.trainer as trainer_mod

    seen = {}
    real_fit = trainer_mod.fit
    readings = iter([0.0])  # the run's clock: 0 at its start, 90 s from then on

    def fit(*args, config, **kwargs):
        seen["max_minutes"] = config.max_minutes
        return real_fit(*args, config=config, **kwargs)

    def calibrate(*args, **kwargs):
        seen["calibrated"] = True
        return None, {}

    monkeypatch.setattr(trainer_mod, "fit", fit)
    monkeypatch.setattr(run_mod, "validation_calibration", calibrate)
    monkeypatch.setattr(run_mod, "time",
                        types.SimpleNamespace(monotonic=lambda: next(readings, 90.0)))
    data = write_dataset(tmp_path / "ds", [41, 42, 43])
    args = ["train", "--data", str(data), "--out", str(tmp_path / "m.pt"), "--epochs", "1",
            "--holdout-fraction", "0.34", "--max-minutes", "10", "--no-calibrate", *TINY]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    assert "calibrated" not in seen  # --no-calibrate: no label calibration is fitted
    # building the samples took 90 s of the run's clock: 8.5 of the 10 minutes are left
    assert seen["max_minutes"] == pytest.approx(8.5)


def test_the_calibration_also_sees_validation_cases_cut_by_a_window(tmp_path):
    from qsaudit.model.checkpoint import load_checkpoint

    data = write_dataset(tmp_path / "ds", [31, 32, 33, 34, 35, 36])
    metas = {}
    for windows in (0, 2):
        out = tmp_path / f"m{windows}.pt"
        run = CliRunner().invoke(app, ["train", "--data", str(data), "--out", str(out),
                                       "--epochs", "1", "--holdout-fraction", "0.34",
                                       "--calibration-windows", str(windows), *TINY])
        assert run.exit_code == 0, run.output
        metas[windows] = load_checkpoint(out, device="cpu").meta
    plain, cut = metas[0]["validation"], metas[2]["validation"]
    # the epoch is picked on the validation labels alone: training and its log are the same,
    # and the validation's own label r keeps its name
    logs = [[json.loads(line) for line in (tmp_path / f"m{w}.log.jsonl").read_text().splitlines()]
            for w in (0, 2)]
    assert [r["label_r"] for r in logs[0]] == pytest.approx([r["label_r"] for r in logs[1]])
    assert cut["label_r"] == pytest.approx(logs[1][-1]["label_r"])
    assert cut["calibration_window_cases"] == 2 * len(metas[2]["validation_patients"])
    # the calibration saw the windows' labels as well, and its figures say so by their names
    assert cut["calibration_n_labels"] > plain["n_labels"]
    assert not any(k.startswith("calibration_") for k in plain)
    assert "label_r_calibrated" not in cut
    assert metas[2]["train_config"]["calibration_windows"] == 2
