"""``qsaudit train --engine ray`` on a real Ray instance started here (2 CPUs): samples built
by Ray tasks equal the local build's, and Ray Train trains a usable model on 2 CPU workers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from qsaudit.cli import app
from tests.training.conftest import write_dataset

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--backbone", "resnet10", "--width", "8", "--input-size", "32", "--snapshot-steps",
        "3,20", "--slices-per-candidate", "4", "--batch-size", "16", "--device", "cpu",
        "--holdout-fraction", "0.34", "--quiet"]


@pytest.fixture(scope="module")
def ray_local():
    """A Ray instance of 2 CPUs started in this process (stopped after the module)."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.train")
    os.environ.setdefault("PYTHONPATH", str(ROOT))  # the workers import this checkout
    ray.init(address="local", num_cpus=2, object_store_memory=200 * 1024 ** 2,
             include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("raytrain") / "ds", [21, 22, 23, 24])


@pytest.mark.slow
def test_samples_built_on_ray_equal_the_local_build(ray_local, dataset):
    from qsaudit.model.config import get_preset
    from qsaudit.training.build import build_samples
    from qsaudit.training.cases import split_patients
    from qsaudit.training.config import SampleConfig
    from qsaudit.training.ray_train import RayTraining
    from qsaudit.training.run import collect_specs

    model_config = get_preset("default").replace(backbone="resnet10", width=8, input_size=32)
    samples = SampleConfig(snapshot_steps=(3, 20), slices_per_candidate=4, snapshot_group=2)
    specs = collect_specs([dataset], phantoms=0, seed=0)
    held_out = split_patients(sorted({s.patient_id for s in specs}), fraction=0.34, seed=0)
    done: list[tuple[int, int]] = []
    on_ray = RayTraining().build_samples(specs, held_out, model_config=model_config,
                                         sample_config=samples, seed=0,
                                         on_unit=lambda d, t: done.append((d, t)))
    local = build_samples(specs, held_out, model_config=model_config, sample_config=samples,
                          seed=0, workers=2)  # single-threaded workers, like Ray's
    assert done[-1][0] == done[-1][1] >= 2
    for ray_set, local_set in zip(on_ray, local, strict=True):
        assert len(ray_set) > 0
        np.testing.assert_array_equal(ray_set.inputs, local_set.inputs)
        np.testing.assert_array_equal(ray_set.targets, local_set.targets)
        assert ray_set.names.tolist() == local_set.names.tolist()


@pytest.mark.slow
def test_train_with_ray_train_writes_a_usable_model(ray_local, dataset, tmp_path):
    from qsaudit.model.checkpoint import load_checkpoint

    out = tmp_path / "m.pt"
    run = CliRunner().invoke(app, ["train", "--data", str(dataset), "--out", str(out),
                                   "--epochs", "2", "--engine", "ray", "--ray-workers", "2",
                                   *TINY])
    assert run.exit_code == 0, run.output
    assert "validation: label r" in run.output
    records = [json.loads(line) for line in (tmp_path / "m.log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(r["ray_workers"] == 2 for r in records)
    assert all(np.isfinite(r["label_r"]) and r["steps"] >= 1 for r in records)
    predictor = load_checkpoint(out, device="cpu")
    assert {"label_r", "label_mae"} <= set(predictor.meta["validation"])
    crops = np.zeros((3, 2, 32, 32), np.float32)
    scores, _ = predictor.predict(crops, ["liver"] * 3)
    assert np.all((scores >= 0) & (scores <= 1))


@pytest.mark.parametrize("extra, message", [
    (["--engine", "ray", "--resume"], "--resume"),
    (["--engine", "ray", "--max-minutes", "5"], "--max-minutes"),
    (["--ray-workers", "2"], "only with --engine ray"),
])
def test_train_refuses_what_ray_cannot_do(tmp_path, extra, message):
    pytest.importorskip("ray")
    run = CliRunner().invoke(app, ["train", "--phantoms", "1", "--out", str(tmp_path / "m.pt"),
                                   *extra])
    assert run.exit_code == 2, run.output
    assert message in run.output
    assert not (tmp_path / "m.samples").exists()
