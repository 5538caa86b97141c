"""Precomputed name embeddings: file round trip and lookup by canonical name."""

from __future__ import annotations

import numpy as np
import pytest

from qsaudit.errors import UsageError
from qsaudit.training.embeddings import ENCODER_KEY, lookup_embeddings, read_embeddings


def test_file_round_trip_and_lookup(tmp_path):
    from qsaudit.model.text import canonical

    path = tmp_path / "vocab.npz"
    key = canonical("LeftKidney")
    np.savez(path, **{key: np.ones(4, np.float32), ENCODER_KEY: np.array("minilm")})
    encoder, table = read_embeddings(path)
    assert encoder == "minilm" and set(table) == {key}
    found = lookup_embeddings(["LeftKidney"], table=table)
    assert np.array_equal(found["LeftKidney"], np.ones(4))
    with pytest.raises(UsageError, match="lacks 1 name"):
        lookup_embeddings(["LeftKidney", "PTV70"], table=table)
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    with pytest.raises(UsageError, match="not an embeddings file"):
        read_embeddings(tmp_path / "other.npz")
