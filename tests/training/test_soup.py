"""Averaging sibling fine-tunes into one model file (qsaudit.training.soup)."""

from __future__ import annotations

import json

import numpy as np
import pytest

NAMES = ("liver", "spleen", "aorta")


def _model(tmp_path, name: str, seed: int, *, meta: dict | None = None, names=NAMES,
           width: int = 8, encoder: str = "x"):
    import torch

    from qsaudit.model.checkpoint import save_checkpoint
    from qsaudit.model.config import ModelConfig
    from qsaudit.model.network import QualityNet

    config = ModelConfig(backbone="resnet10", width=width, input_size=32, margin=4, hidden=16,
                         embed_dim=8)
    torch.manual_seed(seed)
    net = QualityNet(config)
    with torch.no_grad():  # distinct running statistics too, so they are averaged visibly
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
    rng = np.random.default_rng(0)  # one vocabulary for every model
    vocab = {n: rng.normal(size=8).astype(np.float32) for n in names}
    base = {"validation_patients": ["p1", "p2"], "excluded_cases": [], "command": f"train {name}",
            "train_patients": ["p3", f"p{seed + 10}"], "validation": {"label_r": seed / 10},
            "calibration": {"kind": "stale"}, "calibration_metrics": {"r": 0.9}}
    return save_checkpoint(tmp_path / name, net, config, encoder_spec=encoder, vocabulary=vocab,
                           meta={**base, **(meta or {})})


def _state(path):
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_the_soup_is_the_weighted_mean_of_the_networks_and_drops_the_calibration(tmp_path):
    from qsaudit.model.checkpoint import load_checkpoint
    from qsaudit.training.soup import average_checkpoints

    a, b = _model(tmp_path, "a.pt", 1), _model(tmp_path, "b.pt", 2)
    out = tmp_path / "soup.pt"
    average_checkpoints([a, b], out, weights=[3, 1])
    sa, sb, so = _state(a), _state(b), _state(out)
    assert set(so) == set(sa)
    moved = 0
    for key, value in so.items():
        if value.is_floating_point():
            expected = 0.75 * sa[key].double() + 0.25 * sb[key].double()
            assert np.allclose(value.double().numpy(), expected.numpy(), atol=1e-6), key
            moved += not np.allclose(value.numpy(), sa[key].numpy())
    assert moved > 10  # the weights really are mixed, running statistics included
    predictor = load_checkpoint(out, device="cpu", precision="fp32")  # a usable model file
    meta = predictor.meta
    assert "calibration" not in meta and "calibration_metrics" not in meta
    # one run's figures are not the average's: they stay with their input
    assert "validation" not in meta
    sources = meta["averaged_from"]
    assert [s["file"] for s in sources] == [str(a), str(b)]
    assert [s["weight"] for s in sources] == [0.75, 0.25]
    assert [s["command"] for s in sources] == ["train a.pt", "train b.pt"]
    assert [s["validation"]["label_r"] for s in sources] == [0.1, 0.2]
    assert all(len(s["sha256"]) == 64 for s in sources)
    assert meta["validation_patients"] == ["p1", "p2"]  # the split is kept
    assert meta["train_patients"] == ["p11", "p12", "p3"]  # every input's


def test_a_soup_that_weighs_one_network_alone_scores_like_that_network(tmp_path):
    from qsaudit.model.checkpoint import load_checkpoint
    from qsaudit.training.soup import average_checkpoints

    a, b = _model(tmp_path, "a.pt", 1), _model(tmp_path, "b.pt", 2)
    out = tmp_path / "s.pt"
    average_checkpoints([a, b], out, weights=[1, 0])
    x = np.random.default_rng(3).normal(size=(4, 2, 32, 32)).astype(np.float32)
    names = ["liver", "spleen", "aorta", "liver"]
    want = load_checkpoint(a, device="cpu", precision="fp32").predict(x, names)
    got = load_checkpoint(out, device="cpu", precision="fp32").predict(x, names)
    other = load_checkpoint(b, device="cpu", precision="fp32").predict(x, names)
    assert np.allclose(got[0], want[0], atol=1e-5) and np.allclose(got[1], want[1], atol=1e-5)
    assert not np.allclose(other[0], want[0], atol=1e-3)  # the weights decided it


def test_models_that_cannot_be_averaged_are_refused_naming_the_file(tmp_path):
    from qsaudit.errors import ModelError, UsageError
    from qsaudit.training.soup import average_checkpoints

    a = _model(tmp_path, "a.pt", 1)
    other_split = _model(tmp_path, "split.pt", 2, meta={"validation_patients": ["p1", "p9"]})
    other_names = _model(tmp_path, "names.pt", 3, names=("liver", "spleen", "kidney"))
    wider = _model(tmp_path, "wide.pt", 4, width=16)
    other_text = _model(tmp_path, "text.pt", 5, encoder="minilm")
    leak = _model(tmp_path, "leak.pt", 6, meta={"train_patients": ["p2"]})
    out = tmp_path / "s.pt"
    with pytest.raises(ModelError, match=r'wide\.pt.*network configuration'):
        average_checkpoints([a, wider], out)
    with pytest.raises(ModelError, match=r'text\.pt.*text encoder'):
        average_checkpoints([a, other_text], out)
    with pytest.raises(ModelError, match=r'leak\.pt.*trained on p2, a held-out patient'):
        average_checkpoints([a, leak], out)
    with pytest.raises(ModelError, match=r'split\.pt.*patient split'):
        average_checkpoints([a, other_split], out)
    with pytest.raises(ModelError, match=r'names\.pt.*vocabulary'):
        average_checkpoints([a, other_names], out)
    with pytest.raises(ModelError, match=r'missing\.pt.*not found'):
        average_checkpoints([a, tmp_path / "missing.pt"], out)
    with pytest.raises(UsageError, match="at least two"):
        average_checkpoints([a], out)
    with pytest.raises(UsageError, match="2 weights for 3"):
        average_checkpoints([a, a, a], out, weights=[1, 1])
    for bad in ([float("inf"), 1], [float("nan"), 1], [-1, 2], [0, 0]):
        with pytest.raises(UsageError, match="finite, non-negative"):
            average_checkpoints([a, a], out, weights=bad)
    assert not out.exists()  # nothing half-written
    big = tmp_path / "big.pt"
    average_checkpoints([a, a], big, weights=[1e308, 1e308])  # no overflow to nan or zero
    import torch

    meta = json.loads(torch.load(big, weights_only=True)["meta_json"])
    assert [s["weight"] for s in meta["averaged_from"]] == [0.5, 0.5]


def test_the_command_line_writes_the_soup_or_one_error_line(tmp_path, capsys):
    from qsaudit.training.soup import main

    a, b = _model(tmp_path, "a.pt", 1), _model(tmp_path, "b.pt", 2)
    out = tmp_path / "s.pt"
    assert main([str(out), str(a), str(b)]) == 0
    assert "calibrate it before use" in capsys.readouterr().out
    import torch

    meta = json.loads(torch.load(out, weights_only=True)["meta_json"])
    assert [s["weight"] for s in meta["averaged_from"]] == [0.5, 0.5]
    assert main([str(tmp_path / "t.pt"), str(a), str(b), "--weights", "1,x"]) == 2
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and printed[0].startswith("Error:") and "1,x" in printed[0]
    assert not (tmp_path / "t.pt").exists()
