"""Text embeddings of structure names, precomputed into a file for machines without the encoder.

A training machine may lack the text encoder's package (MiniLM weights are ~90 MB). Embed the
registry's whole vocabulary where the encoder is installed, carry the small ``.npz``, and give it
to ``qsaudit train --embeddings FILE``::

    python -m qsaudit.training.embeddings vocab.npz [extra names ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from qsaudit.errors import UsageError

ENCODER_KEY = "__encoder__"


def vocabulary_names(extra: list[str] | None = None) -> list[str]:
    """Canonical names of every registry structure plus ``extra`` names, sorted, unique."""
    from qsaudit.model.text import canonical
    from qsaudit.registry import all_structures

    names = {s.name for s in all_structures()} | {canonical(n) for n in extra or []}
    return sorted(names)


def write_embeddings(path: str | Path, names: list[str], *, encoder: str = "minilm") -> Path:
    """Embed ``names`` with ``encoder`` and save name -> (E,) float32 to ``path`` (.npz)."""
    from qsaudit.atomic import write_with
    from qsaudit.model.text import get_text_encoder

    vectors = get_text_encoder(encoder).encode(names)
    arrays = {n: vectors[i] for i, n in enumerate(names)}
    arrays[ENCODER_KEY] = np.array(encoder)

    def writer(p: Path) -> None:
        with open(p, "wb") as fh:
            np.savez(fh, **arrays)

    return write_with(Path(path), writer)


def read_embeddings(path: str | Path) -> tuple[str, dict[str, np.ndarray]]:
    """(encoder spec, canonical name -> embedding) from a file of :func:`write_embeddings`."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f'"{path}": no such embeddings file')
    with np.load(path, allow_pickle=False) as z:
        if ENCODER_KEY not in z.files:
            raise UsageError(f'"{path}": not an embeddings file of qsaudit')
        encoder = str(z[ENCODER_KEY])
        return encoder, {k: z[k].astype(np.float32) for k in z.files if k != ENCODER_KEY}


def lookup_embeddings(names: list[str], *, encoder: str = "minilm",
                      table: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """name -> embedding for ``names``: from ``table`` when given (every name must be there,
    looked up by canonical name), else computed with ``encoder``."""
    if table is None:
        from qsaudit.model.text import get_text_encoder

        vectors = get_text_encoder(encoder).encode(names)
        return {n: vectors[i] for i, n in enumerate(names)}
    from qsaudit.model.text import canonical

    missing = [n for n in names if canonical(n) not in table and n not in table]
    if missing:
        raise UsageError(f"embeddings file lacks {len(missing)} name(s), e.g. {missing[0]!r}: "
                         "write it again with those names as extra arguments")
    return {n: table.get(canonical(n), table.get(n)) for n in names}


if __name__ == "__main__":  # pragma: no cover - thin command-line wrapper
    if len(sys.argv) < 2:
        sys.exit("usage: python -m qsaudit.training.embeddings OUT.npz [extra names ...]")
    out = write_embeddings(sys.argv[1], vocabulary_names(sys.argv[2:]))
    print(f"wrote {out}")
