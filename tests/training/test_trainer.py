"""Building samples from a tiny dataset, training on them, validating and resuming."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from qsaudit.analyses.evaluate import pearson
from qsaudit.training.config import SampleConfig, TrainConfig
from tests.training.conftest import write_dataset

SAMPLES = SampleConfig(degraded_per_label=4, snapshot_steps=(3, 40), snapshot_size=32,
                       snapshot_group=3, slices_per_candidate=6, eval_slices=5,
                       margin_range=(2, 6))


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_model_config_module):
    from qsaudit.training.build import build_samples
    from qsaudit.training.cases import dataset_specs

    torch.set_num_threads(1)
    root = write_dataset(tmp_path_factory.mktemp("ds"), [11, 12, 13, 14])
    specs = dataset_specs(root)
    train, val = build_samples(specs, {"case_14"}, model_config=tiny_model_config_module,
                               sample_config=SAMPLES, seed=0, workers=1)
    return train, val


@pytest.fixture(scope="module")
def tiny_model_config_module():
    from qsaudit.model.config import ModelConfig

    return ModelConfig(backbone="resnet10", width=8, input_size=32, margin=4, hidden=16,
                       embed_dim=8)


def _embeddings(names) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(len(names), 8)).astype(np.float32)
    return {n: v / np.linalg.norm(v) for n, v in zip(sorted(names), vecs, strict=True)}


def test_built_samples_are_split_by_patient_and_cover_the_range(built):
    train, val = built
    assert {g["patient_id"] for g in val.group_table} == {"case_14"}
    assert "case_14" not in {train.group_table[g]["patient_id"] for g in set(train.groups)}
    assert len(train) > 100 and len(val) > 20
    hist = np.histogram(train.targets, bins=5, range=(0, 1))[0]
    assert (hist > 0).all()
    sources = {g["source"] for g in train.group_table}
    assert "perfect" in sources and "snapshot-40" in sources
    assert len(sources - {"perfect", "snapshot-3", "snapshot-40"}) >= 2  # degradations
    assert 0.0 <= train.targets.min() and train.targets.max() <= 1.0


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_lowers_loss_and_correlates(built, tiny_model_config_module, precision):
    from qsaudit.model.network import QualityNet
    from qsaudit.training.trainer import fit, predict_samples

    train, val = built
    emb = _embeddings(set(train.names) | set(val.names))
    torch.manual_seed(0)
    model = QualityNet(tiny_model_config_module)
    cfg = TrainConfig(epochs=4, batch_size=32, lr=3e-3, device="cpu", samples=SAMPLES,
                      precision=precision)
    result = fit(model, train, val, config=cfg, embeddings=emb)
    losses = [r["train_loss"] for r in result.history]
    assert losses[-1] < losses[0]
    assert {r["precision"] for r in result.history} == {precision}
    # The kept weights are plain fp32 tensors in the default layout, whatever trained them.
    assert all(v.dtype != torch.bfloat16 and (v.ndim != 4 or v.is_contiguous())
               for v in result.best_state.values())
    model.load_state_dict(result.best_state)
    vocab = sorted(emb)
    idx = np.array([vocab.index(n) for n in train.names])
    table = torch.from_numpy(np.stack([emb[n] for n in vocab]))
    pred = predict_samples(model, train.inputs, idx, table, device=torch.device("cpu"))
    assert pearson(pred, train.targets) > 0.3
    assert {"slice_r", "slice_mae", "label_r", "label_mae"} <= set(result.history[-1])
    assert 1 <= result.best_epoch <= 4


def test_resume_continues_from_the_state_file(built, tiny_model_config_module, tmp_path):
    from qsaudit.model.network import QualityNet
    from qsaudit.training.trainer import fit

    train, val = built
    small_train = train.subset(np.arange(0, len(train), 3))
    emb = _embeddings(set(train.names) | set(val.names))
    cfg = TrainConfig(epochs=3, batch_size=32, device="cpu", samples=SAMPLES)
    state = tmp_path / "m.state.pt"

    torch.manual_seed(0)
    full = fit(QualityNet(tiny_model_config_module), small_train, val, config=cfg,
               embeddings=emb)
    torch.manual_seed(0)
    first = fit(QualityNet(tiny_model_config_module), small_train, val,
                config=replace(cfg, max_minutes=1e-9), embeddings=emb, state_path=state)
    assert first.stopped_early and first.epochs_done == 1 and state.is_file()
    resumed = fit(QualityNet(tiny_model_config_module), small_train, val, config=cfg,
                  embeddings=emb, state_path=state, resume=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    assert resumed.epochs_done == 3
    # epochs 2 and 3 drew the batches an uninterrupted run draws; epoch 1 stopped after a step
    assert resumed.history[0]["steps"] == 1
    assert full.history[-1]["steps"] == resumed.history[-1]["steps"]
    with pytest.raises(Exception, match="other data or settings"):
        fit(QualityNet(tiny_model_config_module), small_train, val, config=cfg, embeddings=emb,
            state_path=state, resume=True, fingerprint={"other": 1})


def test_fp16_training_on_the_cpu_is_refused():
    from qsaudit.errors import ModelError, UsageError
    from qsaudit.model.checkpoint import resolve_precision

    with pytest.raises(UsageError, match="--precision"):
        TrainConfig().with_overrides(precision="half")
    with pytest.raises(ModelError, match="only on CUDA"):
        resolve_precision("fp16", torch.device("cpu"), bounded=True)


def test_another_sample_draw_changes_training_samples_only(tmp_path, tiny_model_config_module):
    """``--sample-draw``: fresh training candidates for a fine-tune, the same validation set."""
    from qsaudit.training.build import build_samples
    from qsaudit.training.cases import dataset_specs

    specs = dataset_specs(write_dataset(tmp_path, [21, 22, 23]))
    quick = replace(SAMPLES, snapshot_steps=())
    built = [build_samples(specs, {"case_23"}, model_config=tiny_model_config_module,
                           sample_config=replace(quick, draw=draw), seed=0, workers=1)
             for draw in (0, 0, 1)]
    (train0, val0), (train0b, _), (train1, val1) = built
    np.testing.assert_array_equal(train0.targets, train0b.targets)  # a draw is reproducible
    np.testing.assert_array_equal(val0.inputs, val1.inputs)
    np.testing.assert_array_equal(val0.targets, val1.targets)
    assert val0.group_table == val1.group_table
    assert {g["patient_id"] for g in train1.group_table} == {"case_21", "case_22"}
    severities = [[g["severity"] for g in t.group_table] for t in (train0, train1)]
    assert severities[0] != severities[1]  # other degradations were drawn


def test_built_units_are_kept_and_reused(tmp_path, tiny_model_config_module, monkeypatch):
    """A build that adds cases to another's (or resumes) builds only the units it lacks."""
    from qsaudit.training import build
    from qsaudit.training.cases import dataset_specs

    specs = dataset_specs(write_dataset(tmp_path / "ds", [31, 32, 33, 34]))
    quick = replace(SAMPLES, snapshot_steps=())
    cache = tmp_path / "units"
    first = build.build_samples(specs, {"case_34"}, model_config=tiny_model_config_module,
                                sample_config=quick, seed=0, workers=1, unit_cache=cache)
    assert len(list(cache.glob("*.npz"))) == 2  # one training unit (3 cases), one validation

    def refuse(*_args, **_kwargs):
        raise AssertionError("a cached unit was rebuilt")

    monkeypatch.setattr(build, "build_unit", refuse)
    again = build.build_samples(specs, {"case_34"}, model_config=tiny_model_config_module,
                                sample_config=quick, seed=0, workers=1, unit_cache=cache)
    np.testing.assert_array_equal(first[0].targets, again[0].targets)
    np.testing.assert_array_equal(first[1].inputs, again[1].inputs)
    # other settings are other units: never served from the cache
    with pytest.raises(AssertionError, match="rebuilt"):
        build.build_samples(specs, {"case_34"}, model_config=tiny_model_config_module,
                            sample_config=replace(quick, degraded_per_label=1), seed=0,
                            workers=1, unit_cache=cache)
