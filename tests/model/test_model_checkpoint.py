"""Model files: save -> load gives identical predictions; unknown names embedded on demand."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from qsaudit.errors import ModelError
from qsaudit.model.checkpoint import (
    cpu_has_bf16,
    default_weights_path,
    load_checkpoint,
    resolve_device,
    resolve_precision,
    save_checkpoint,
)
from qsaudit.model.config import ModelConfig
from qsaudit.model.network import QualityNet
from qsaudit.model.text import get_text_encoder

CFG = ModelConfig(backbone="resnet10", width=4, input_size=32, embed_dim=384, hidden=8)


def _randomise_batchnorm(net: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    net = QualityNet(CFG)
    _randomise_batchnorm(net, 0)
    net.eval()
    enc = get_text_encoder("minilm")
    vocab = dict(zip(["liver", "kidney_left"], enc.encode(["liver", "kidney_left"]), strict=True))
    path = save_checkpoint(tmp_path / "m.pt", net, CFG, encoder_spec="minilm", vocabulary=vocab,
                           meta={"seed": 0, "note": "test"})
    return path, net, enc


def test_round_trip_identical_predictions(saved):
    path, net, enc = saved
    pred = load_checkpoint(path, device="cpu", precision="fp32")
    assert pred.config == CFG and pred.encoder_spec == "minilm"
    assert pred.meta == {"seed": 0, "note": "test"}
    assert sorted(pred.vocabulary) == ["left kidney", "liver"]
    assert pred.fingerprint == hashlib.sha256(Path(path).read_bytes()).hexdigest()
    x = np.random.default_rng(0).normal(size=(5, 2, 32, 32)).astype(np.float32)
    names = ["liver", "Kidney-L", "liver", "spleen", "left kidney"]
    clipped, raw = pred.predict(x, names, batch_size=2)
    with torch.no_grad():
        ref = net(torch.from_numpy(x), torch.from_numpy(enc.encode(names))).numpy()
    assert clipped.dtype == np.float64 and raw.shape == (5,)
    np.testing.assert_allclose(raw, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(clipped, raw)  # bounded model
    again = load_checkpoint(path, device="cpu", precision="fp32").predict(x, names)[1]
    np.testing.assert_array_equal(raw, again)


def test_bf16_on_cpu_is_close_to_fp32_and_repeatable(saved):
    path, _, _ = saved
    x = np.random.default_rng(1).normal(size=(6, 2, 32, 32)).astype(np.float32)
    names = ["liver"] * 3 + ["left kidney"] * 3
    exact = load_checkpoint(path, device="cpu", precision="fp32")
    fast = load_checkpoint(path, device="cpu", precision="bf16")
    assert (exact.precision, exact.use_amp) == ("fp32", False)
    assert (fast.precision, fast.use_amp) == ("bf16", True)
    a, b = exact.predict(x, names)[1], fast.predict(x, names)[1]
    assert not np.array_equal(a, b)  # bf16 really ran
    np.testing.assert_allclose(a, b, atol=0.02)
    np.testing.assert_array_equal(b, fast.predict(x, names)[1])  # same batch, same numbers


def test_precision_policy():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    auto_cpu = resolve_precision("auto", cpu, bounded=True)
    assert auto_cpu == ("bf16" if cpu_has_bf16() else "fp32")
    assert resolve_precision("auto", cpu, bounded=False) == "fp32"  # the paper's model: exact
    assert resolve_precision("auto", cuda, bounded=False) == "fp32"
    assert resolve_precision("bf16", cpu, bounded=False) == "bf16"  # asked for: obeyed
    with pytest.raises(ModelError, match="fp16"):
        resolve_precision("fp16", cpu, bounded=True)
    with pytest.raises(ModelError, match="choose from"):
        resolve_precision("int8", cpu, bounded=True)


def test_unknown_name_is_embedded_on_demand(saved):
    path, _, enc = saved
    pred = load_checkpoint(path, device="cpu")
    assert "spleen" not in pred.vocabulary
    np.testing.assert_allclose(pred.embeddings(["spleen"])[0], enc.encode(["spleen"])[0],
                               atol=1e-6)
    np.testing.assert_array_equal(pred.embeddings(["kidney_left"]),
                                  pred.embeddings(["left kidney"]))
    assert pred.embeddings([]).shape == (0, 384)


def test_unbounded_model_raw_and_clipped(tmp_path):
    cfg = CFG.replace(bounded=False, embed_dim=4)
    net = QualityNet(cfg)
    with torch.no_grad():
        net.fc2.bias.fill_(50.0)
    path = save_checkpoint(tmp_path / "u.pt", net, cfg, encoder_spec="minilm",
                           vocabulary={"liver": np.ones(4)}, meta={})
    x = np.zeros((2, 2, 32, 32), dtype=np.float32)
    clipped, raw = load_checkpoint(path, device="cpu").predict(x, ["liver", "liver"])
    assert np.all(raw > 1) and np.all(clipped == 1.0)


def test_bad_inputs_and_files(saved, tmp_path):
    path, _, _ = saved
    pred = load_checkpoint(path, device="cpu")
    with pytest.raises(ModelError, match="inputs must be"):
        pred.predict(np.zeros((1, 2, 16, 16), np.float32), ["liver"])
    with pytest.raises(ModelError, match="names"):
        pred.predict(np.zeros((2, 2, 32, 32), np.float32), ["liver"])
    with pytest.raises(ModelError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="junk.pt"):
        load_checkpoint(junk)
    raw_state = tmp_path / "paper.pth"
    torch.save({"attention1.weight": torch.zeros(2, 2)}, raw_state)
    with pytest.raises(ModelError, match="import-paper"):
        load_checkpoint(raw_state)
    with pytest.raises(ModelError, match="384"):
        save_checkpoint(tmp_path / "x.pt", QualityNet(CFG), CFG, encoder_spec="minilm",
                        vocabulary={"liver": np.ones(3)}, meta={})


def test_devices_and_default_path():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ModelError, match="device"):
        resolve_device("abacus")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA"):
            resolve_device("cuda")
    path = default_weights_path()
    assert path.name == "qsaudit-default.pt" and path.parent.name == "weights"
    assert path.is_file() and path.parents[1].name == "qsaudit"


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_scores_do_not_depend_on_the_thread_count(saved, precision):
    # the scan changes torch's thread count as it goes (qsaudit.inference.engine.ModelThreads)
    path, _, _ = saved
    pred = load_checkpoint(path, device="cpu", precision=precision)
    x = np.random.default_rng(2).normal(size=(8, 2, 32, 32)).astype(np.float32)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = pred.predict(x, ["liver"] * 8)[1]
        torch.set_num_threads(2)
        two = pred.predict(x, ["liver"] * 8)[1]
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(one, two)


def test_batch_size_and_memory_layout_by_device_and_model_size(saved):
    # benchmarks/forward_speed.py: on the CPU channels-last is faster in fp32 as in bf16; the
    # paper's 256 px ResNet-50 is fastest per crop at batch 4, the 96 px default at 32-64
    from qsaudit.model.checkpoint import default_batch_size, largest_activation, memory_layout
    from qsaudit.model.config import PRESETS
    from qsaudit.model.network import QualityNet

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert memory_layout(cpu, "fp32") == torch.channels_last
    assert memory_layout(cpu, "bf16") == torch.channels_last
    assert memory_layout(gpu, "fp32") == torch.contiguous_format
    paper = QualityNet(PRESETS["paper"]).eval()
    assert largest_activation(paper, 256) == 256 * 64 * 64  # the first bottleneck stage
    assert default_batch_size(cpu, 256 * 64 * 64) == 4
    assert default_batch_size(cpu, 73728) == 32  # the shipped default model
    assert default_batch_size(cpu, 10) == 64 and default_batch_size(cpu, 10 ** 8) == 4
    assert default_batch_size(gpu, 256 * 64 * 64) == 128
    path, _, _ = saved
    small = load_checkpoint(path, device="cpu")
    assert small.batch_size == default_batch_size(
        cpu, largest_activation(small.model, small.config.input_size))


def test_forward_seconds_count_the_network_only(saved):
    path, _, _ = saved
    pred = load_checkpoint(path, device="cpu", precision="fp32")
    assert pred.forward_seconds == 0.0
    x = np.random.default_rng(3).normal(size=(4, 2, 32, 32)).astype(np.float32)
    pred.predict(x, ["liver"] * 4, batch_size=2)
    first = pred.forward_seconds
    assert first > 0.0
    pred.predict(x, ["liver"] * 4)
    assert pred.forward_seconds > first  # accumulates over calls


def test_a_large_cpu_batch_runs_as_equal_smaller_passes(saved, monkeypatch):
    from qsaudit.model.checkpoint import largest_divisor

    assert [largest_divisor(n, 4) for n in (64, 6, 7, 3, 1)] == [4, 3, 1, 3, 1]
    path, _, _ = saved
    pred = load_checkpoint(path, device="cpu", precision="fp32")
    shapes = []
    pred.model.register_forward_hook(lambda _m, inputs, _o: shapes.append(inputs[0].shape[0]))
    monkeypatch.setattr(type(pred), "batch_size", property(lambda self: 4))
    x = np.random.default_rng(4).normal(size=(12, 2, 32, 32)).astype(np.float32)
    split = pred.predict(x, ["liver"] * 12, batch_size=12)[1]
    assert shapes == [4, 4, 4]
    monkeypatch.setattr(type(pred), "batch_size", property(lambda self: 64))
    shapes.clear()
    whole = pred.predict(x, ["liver"] * 12, batch_size=12)[1]
    assert shapes == [12]
    np.testing.assert_allclose(split, whole, rtol=1e-5, atol=1e-6)
