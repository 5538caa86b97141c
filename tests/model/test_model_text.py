"""Text encoders: MiniLM offline, open_clip with random weights, clear missing-weights errors."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from qsaudit.errors import ModelError
from qsaudit.model.text import OpenClipEncoder, encoder_dim, get_text_encoder


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_minilm_unit_vectors_and_synonyms(no_network):
    enc = get_text_encoder("minilm")
    assert enc.spec == "minilm" and enc.dim == 384
    vec = enc.encode(["kidney_left", "Left Kidney", "kidney-L", "liver"])
    assert vec.shape == (4, 384) and vec.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vec[0], vec[1], atol=1e-6)
    np.testing.assert_allclose(vec[0], vec[2], atol=1e-6)
    assert float(vec[0] @ vec[3]) < 0.99
    assert enc.encode([]).shape == (0, 384)


def test_minilm_loads_without_a_progress_bar():
    """The loader's tqdm bar ("Loading weights: 100%|…") would break --quiet and the scan's bar."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("from qsaudit.model.text import get_text_encoder\n"
            "print(get_text_encoder('minilm').encode(['spleen']).shape)")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=root, check=True)
    assert proc.stdout.strip() == "(1, 384)"
    assert "Loading" not in proc.stderr and "%|" not in proc.stderr, proc.stderr


def test_open_clip_random_init_is_512_d_and_reproducible(no_network):
    spec = "open_clip:ViT-B-32:none"
    assert encoder_dim(spec) == 512
    vec = get_text_encoder(spec).encode(["liver", "spleen"])
    assert vec.shape == (2, 512)
    np.testing.assert_allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-5)
    again = OpenClipEncoder(spec).encode(["liver", "spleen"])  # a fresh, seeded model
    np.testing.assert_allclose(vec, again, atol=1e-5)


def test_open_clip_missing_local_file_says_how_to_supply(no_network, tmp_path):
    missing = tmp_path / "nowhere" / "clip.bin"
    with pytest.raises(ModelError) as info:
        get_text_encoder(f"open_clip:ViT-B-32:{missing}")
    msg = str(info.value)
    assert str(missing) in msg and "not found" in msg
    assert "open_clip:ViT-B-32:/path/to/weights" in msg


def test_open_clip_tag_not_cached_says_how_to_supply(no_network, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HOME", str(tmp_path))
    get_text_encoder.cache_clear()
    with pytest.raises(ModelError) as info:
        get_text_encoder("open_clip:ViT-B-32:openai")
    msg = str(info.value)
    assert "not available offline" in msg and "download" in msg
    assert "open_clip:ViT-B-32:/path/to/weights" in msg


def test_unknown_specs_and_tags():
    with pytest.raises(ModelError, match="unknown"):
        get_text_encoder("word2vec")
    with pytest.raises(ModelError, match="unknown pretrained tag"):
        get_text_encoder("open_clip:ViT-B-32:no_such_tag")
    with pytest.raises(ModelError, match="expected"):
        get_text_encoder("open_clip:ViT-B-32")
