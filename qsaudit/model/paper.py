"""Import the released Quality Sentinel checkpoint (Chen, Zhou & Yuille 2024) as a qsaudit model.

The release has two files: a state dict (``best_resnet50_model_40_samples.pth``) whose keys are
``net.*`` (a torchvision ResNet-50), ``conv1``/``bn1`` (its 2-channel stem), ``fc1``, ``fc2``,
``attention1``, ``attention2``; and ``label_embedding.pkl``, a pickled dict of DAP Atlas class
id -> CLIP ViT-B/32 text embedding (tensor ``(1, 512)``). The paper's forward pass never uses the
torchvision stem and classifier inside ``net`` (``net.conv1``, ``net.bn1``, ``net.fc``), so those
keys are dropped; every other key must match :class:`QualityNet` exactly (strict loading).

Its inference script maps two TotalSegmentator names to other DAP classes' embeddings
(urinary bladder -> prostate, face -> left cheek); :data:`PAPER_ALIASES` keeps that choice so
that qsaudit reproduces the paper's numbers.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qsaudit.errors import ModelError
from qsaudit.model.checkpoint import load_torch_file, save_checkpoint
from qsaudit.model.config import PRESETS, ModelConfig
from qsaudit.model.network import QualityNet
from qsaudit.model.text import PAPER_ENCODER, canonical

UNUSED_PREFIXES = ("net.conv1.", "net.bn1.", "net.fc.")
NON_STRUCTURE_IDS = (0, 1)  # background, "left to annotate"
PAPER_ALIASES: dict[str, int] = {"urinary_bladder": 19, "face": 128}
_BACKBONES = {
    ("basic", (2, 2, 2, 2)): "resnet18",
    ("basic", (3, 4, 6, 3)): "resnet34",
    ("bottleneck", (3, 4, 6, 3)): "resnet50",
}


def read_paper_state_dict(checkpoint: str | Path) -> dict[str, torch.Tensor]:
    """The paper's state dict, unwrapped from ``{"model"|"state_dict": ...}`` and ``module.``.

    Only tensors are read (``weights_only``); ModelError if the file is missing or unreadable.
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise ModelError(f'"{checkpoint}": checkpoint file not found')
    obj = load_torch_file(checkpoint, what="PyTorch state dict")
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise ModelError(f'"{checkpoint}": expected a state dict of tensors')
    return {k.removeprefix("module."): v for k, v in obj.items()}


def paper_config(state: dict[str, torch.Tensor]) -> ModelConfig:
    """The :class:`ModelConfig` that fits a paper-format state dict (ResNet depth, widths)."""
    try:
        width = int(state["conv1.weight"].shape[0])
        hidden = int(state["fc1.weight"].shape[0])
        feature = int(state["fc1.weight"].shape[1])
        embed = int(state["attention1.weight"].shape[1]) - feature
    except KeyError as exc:
        raise ModelError(f"paper checkpoint: key {exc} missing; not a Quality Sentinel "
                         "state dict") from None
    block = "bottleneck" if any(".conv3." in k for k in state) else "basic"
    counts = []
    for layer in range(1, 5):
        idx = {int(m.group(1)) for k in state
               if (m := re.match(rf"net\.layer{layer}\.(\d+)\.", k))}
        counts.append(max(idx) + 1 if idx else 0)
    backbone = _BACKBONES.get((block, tuple(counts)))
    if backbone is None:
        raise ModelError(f"paper checkpoint: a {block}-block ResNet with {counts} blocks per "
                         "stage is not supported (ResNet-18/34/50 are)")
    return PRESETS["paper"].replace(backbone=backbone, width=width, hidden=hidden,
                                    embed_dim=embed)


def read_paper_embeddings(path: str | Path) -> dict[int, np.ndarray]:
    """The embedding pickle as ``{DAP id: float32 vector (E,)}``.

    The file is a Python pickle: read only files from a source you trust.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f'"{path}": embedding file not found')
    try:
        with open(path, "rb") as fh:
            obj = pickle.load(fh)  # the paper ships a pickle: see docstring
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError,
            ValueError, TypeError, RuntimeError) as exc:
        raise ModelError(f'"{path}": not a readable embedding pickle ({exc})') from None
    if not isinstance(obj, dict) or not obj:
        raise ModelError(f'"{path}": expected a dict of class id -> embedding tensor')
    out: dict[int, np.ndarray] = {}
    for key, value in obj.items():
        try:
            arr = (value.detach().cpu().float().numpy() if torch.is_tensor(value)
                   else np.asarray(value, dtype=np.float32))
            out[int(key)] = arr.reshape(-1).astype(np.float32)
        except (TypeError, ValueError):
            raise ModelError(f'"{path}": entry {key!r} is not an id -> vector pair') from None
    dims = {v.size for v in out.values()}
    if len(dims) != 1:
        raise ModelError(f'"{path}": embeddings of different sizes {sorted(dims)}')
    return out


def paper_vocabulary(embeddings: dict[int, np.ndarray]) -> tuple[dict[str, np.ndarray],
                                                                  list[int]]:
    """Embeddings keyed by canonical structure name, with :data:`PAPER_ALIASES` applied.

    Returns:
        ``(vocabulary, unknown_ids)``: ids missing from the DAP Atlas table are left out.
    """
    from qsaudit.registry import dap_atlas_labels

    labels = dap_atlas_labels()
    vocab: dict[str, np.ndarray] = {}
    unknown: list[int] = []
    for cid in sorted(embeddings):
        if cid in NON_STRUCTURE_IDS:
            continue
        if cid not in labels:
            unknown.append(cid)
            continue
        vocab[canonical(labels[cid])] = embeddings[cid]
    for name, cid in PAPER_ALIASES.items():
        if cid in embeddings:
            vocab[canonical(name)] = embeddings[cid]
    return vocab, unknown


def import_paper_checkpoint(checkpoint: str | Path, embeddings: str | Path,
                            out: str | Path) -> Path:
    """Convert the paper's checkpoint + embedding pickle into a qsaudit model file at ``out``.

    The model gets the ``"paper"`` preset (ResNet-50, 256 px, unbounded head, the paper's
    preprocessing) and encoder spec ``open_clip:ViT-B-32:openai`` (needed only for names
    outside the pickle). Returns the written path.
    """
    state = read_paper_state_dict(checkpoint)
    config = paper_config(state)
    dropped = sorted(k for k in state if k.startswith(UNUSED_PREFIXES))
    kept = {k: v for k, v in state.items() if not k.startswith(UNUSED_PREFIXES)}
    model = QualityNet(config)
    try:
        result = model.load_state_dict(kept, strict=False)
    except RuntimeError as exc:  # shape mismatches
        reason = str(exc).splitlines()[-1].strip()
        raise ModelError(f'"{checkpoint}": weights do not fit the network ({reason})') from None
    if result.missing_keys or result.unexpected_keys:
        raise ModelError(f'"{checkpoint}": keys do not match the Quality Sentinel network '
                         f"(missing {_few(result.missing_keys)}; unexpected "
                         f"{_few(result.unexpected_keys)})")
    table = read_paper_embeddings(embeddings)
    dim = next(iter(table.values())).size
    if dim != config.embed_dim:
        raise ModelError(f'"{embeddings}": {dim}-d embeddings, the checkpoint expects '
                         f"{config.embed_dim}")
    vocab, unknown = paper_vocabulary(table)
    meta: dict[str, Any] = {
        "source": "Quality Sentinel (Chen, Zhou & Yuille 2024), released checkpoint",
        "checkpoint": Path(checkpoint).name,
        "checkpoint_sha256": _sha256(Path(checkpoint)),
        "embeddings": Path(embeddings).name,
        "embeddings_sha256": _sha256(Path(embeddings)),
        "dropped_keys": dropped,
        "paper_aliases": PAPER_ALIASES,
        "unknown_ids": unknown,
        "slice_sampling": {"k": 10, "mode": "paper"},
    }
    return save_checkpoint(out, model, config, encoder_spec=PAPER_ENCODER, vocabulary=vocab,
                           meta=meta)


def _few(keys: list[str], n: int = 5) -> str:
    if not keys:
        return "none"
    more = f" and {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()

