"""Model files: save a trained QualityNet with what inference needs, load it as a Predictor.

A qsaudit model file (``torch.save`` of plain tensors, lists and strings, so it loads with
``weights_only=True``) holds the network weights, the :class:`ModelConfig`, the text-encoder spec
and the embedding table of the training vocabulary keyed by canonical structure name (inference
needs no text encoder for those names), plus free-form ``meta`` (data, command, metrics).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qsaudit.atomic import write_with
from qsaudit.errors import ModelError
from qsaudit.model.config import PRECISIONS, ModelConfig
from qsaudit.model.network import QualityNet, fold_batch_norm
from qsaudit.model.text import canonical, get_text_encoder

FORMAT = "qsaudit-model"
FORMAT_VERSION = 1


def default_weights_path() -> Path:
    """The shipped default model: ``qsaudit/weights/qsaudit-default.pt`` (package data)."""
    return Path(__file__).resolve().parents[1] / "weights" / "qsaudit-default.pt"


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA if available else CPU; otherwise the named torch device.

    Raises:
        ModelError: unknown device string, or CUDA asked for but not available.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ModelError(f'device "{device}": not a torch device (use auto, cpu or cuda)') from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f'device "{device}": CUDA is not available on this machine')
    return dev


def cpu_has_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (AVX512-BF16 or AMX), so bf16 is fast."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def resolve_precision(precision: str, device: torch.device, *, bounded: bool) -> str:
    """The arithmetic a forward pass uses: ``"fp32"``, ``"bf16"`` or ``"fp16"``.

    ``"auto"``: mixed precision where it is fast and harmless, fp32 otherwise. On CUDA, bf16
    (fp16 on GPUs without bf16); on a CPU with native bf16 (AVX512-BF16/AMX), bf16 with
    channels-last convolutions. Unbounded models (the paper's) always get fp32 under ``auto``:
    their raw output is compared with the released script's to 1e-4, which bf16 does not keep.
    Raises ModelError for an unknown name or fp16 on the CPU.
    """
    if precision not in PRECISIONS:
        raise ModelError(f'precision "{precision}": choose from {", ".join(PRECISIONS)}')
    if precision == "fp16" and device.type != "cuda":
        raise ModelError('precision "fp16": only on CUDA (use bf16 or fp32 on the CPU)')
    if precision != "auto":
        return precision
    if not bounded:
        return "fp32"
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_has_bf16():
        return "bf16"
    return "fp32"


def autocast(device: torch.device, precision: str):
    """The autocast context of a resolved ``precision`` (``fp32`` disables it)."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def memory_layout(device: torch.device, precision: str) -> torch.memory_format:
    """Channels-last on the CPU (oneDNN's fast convolutions, in fp32 as in bf16: the paper's
    ResNet-50 at 256 px takes 64 ms a crop instead of 72-127 ms, ``benchmarks/forward_speed.py``),
    the default (NCHW) elsewhere."""
    if device.type == "cpu":
        return torch.channels_last
    return torch.contiguous_format


CPU_BATCH_VALUES = 2 ** 22
"""Values of a batch's largest activation on the CPU: a batch whose activations outgrow the
caches is slower per crop. Measured (``benchmarks/forward_speed.py``, 2-core Xeon): the paper's
ResNet-50 at 256 px (1 M values a crop after its stem) is fastest at batch 4 (64 ms a crop in
fp32, 88 ms at 64); the default model (18 k values a crop) at 32-64."""
GPU_BATCH = 128
"""Crops per forward pass on CUDA (not yet measured on a GPU here)."""


def largest_activation(model: torch.nn.Module, input_size: int) -> int:
    """Values in the largest output of any layer of ``model`` for one crop (one dry run on the
    model's device)."""
    largest = 0

    def record(_module: Any, _inputs: Any, output: Any) -> None:
        nonlocal largest
        if torch.is_tensor(output):
            largest = max(largest, int(output[0].numel()))

    embed = int(getattr(getattr(model, "config", None), "embed_dim", 0) or 0)
    device = next(model.parameters()).device
    hooks = [m.register_forward_hook(record) for m in model.modules() if m is not model]
    try:
        with torch.inference_mode():
            model(torch.zeros(1, 2, input_size, input_size, device=device),
                  torch.zeros(1, embed, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    return largest


def largest_divisor(n: int, at_most: int) -> int:
    """The largest divisor of ``n`` that is at most ``at_most`` (at least 1)."""
    for d in range(min(n, max(1, at_most)), 0, -1):
        if n % d == 0:
            return d
    return 1


def default_batch_size(device: torch.device, activation: int) -> int:
    """The scan's crops per forward pass on ``device`` for a model whose largest activation
    holds ``activation`` values a crop (:func:`largest_activation`): on the CPU the largest power
    of two between 4 and 64 whose batch stays within :data:`CPU_BATCH_VALUES`, on CUDA
    :data:`GPU_BATCH`."""
    if device.type != "cpu":
        return GPU_BATCH
    batch = 4
    while batch < 64 and 2 * batch * activation <= CPU_BATCH_VALUES:
        batch *= 2
    return batch


def save_checkpoint(path: str | Path, model: QualityNet, config: ModelConfig, *,
                    encoder_spec: str, vocabulary: dict[str, np.ndarray],
                    meta: dict[str, Any]) -> Path:
    """Write a model file atomically; returns its path.

    Args:
        path: destination (``.pt``).
        model: the network (its weights are copied to CPU).
        config: the network's configuration.
        encoder_spec: text encoder that made the embeddings (``"minilm"``, ``"open_clip:..."``).
        vocabulary: structure name -> embedding ``(embed_dim,)``; names are stored by their
            canonical form (a later name with the same canonical form replaces an earlier one).
        meta: JSON-able information about the model (data, seed, metrics, ...).
    """
    table: dict[str, np.ndarray] = {}
    for name, vec in vocabulary.items():
        v = np.asarray(vec, dtype=np.float32).reshape(-1)
        if v.shape != (config.embed_dim,):
            raise ModelError(f'vocabulary "{name}": embedding has {v.size} values, the model '
                             f"expects {config.embed_dim}")
        table[canonical(name)] = v
    names = list(table)
    matrix = (np.stack([table[n] for n in names]) if names
              else np.zeros((0, config.embed_dim), dtype=np.float32))
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "encoder_spec": str(encoder_spec),
        "vocabulary_names": names,
        "vocabulary": torch.from_numpy(matrix.copy()),
        "meta_json": json.dumps(meta, default=str),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    return write_with(Path(path), lambda tmp: torch.save(payload, tmp))


class Predictor:
    """A loaded model ready to score slices; see :func:`load_checkpoint`.

    Attributes:
        config: the model's configuration (``input_size``, preprocessing, ...).
        encoder_spec: text encoder for names outside the stored vocabulary.
        meta: the ``meta`` dict saved with the model.
        device: torch device the network runs on.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast) in :meth:`predict`, as
            :func:`resolve_precision` chose it.
        path: the model file.
        forward_seconds: wall time spent in the network's forward passes so far (the scan's
            timing breakdown reads it); ``forward_cpu_seconds`` the CPU time this process
            spent in them (all its threads).
    """

    def __init__(self, model: QualityNet, config: ModelConfig, *, encoder_spec: str,
                 vocabulary: dict[str, np.ndarray], meta: dict[str, Any], device: torch.device,
                 path: Path, fingerprint: str, precision: str = "auto") -> None:
        self.model = fold_batch_norm(model.eval()).to(device)  # inference only
        self.config = config
        self.encoder_spec = encoder_spec
        self.meta = meta
        self.device = device
        self.path = path
        self._fingerprint = fingerprint
        self._vocabulary = dict(vocabulary)
        self._on_demand: dict[str, np.ndarray] = {}
        # Mixed precision for qsaudit's bounded models; unbounded models (the paper's) run in
        # float32, as bf16 moves their raw output by ~5e-3 relative (measured on H100).
        self.precision = resolve_precision(precision, device, bounded=config.bounded)
        self._layout = memory_layout(device, self.precision)
        self.model = self.model.to(memory_format=self._layout)
        self.forward_seconds = 0.0
        self.forward_cpu_seconds = 0.0
        self._activation: int | None = None

    @property
    def batch_size(self) -> int:
        """Crops per forward pass that suit this model on its device
        (:func:`default_batch_size`; one dry run the first time it is asked)."""
        if self._activation is None:
            self._activation = largest_activation(self.model, self.config.input_size)
        return default_batch_size(self.device, self._activation)

    @property
    def use_amp(self) -> bool:
        """True when :meth:`predict` runs under autocast (bf16 or fp16)."""
        return self.precision != "fp32"

    @property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of the model file's bytes."""
        return self._fingerprint

    @property
    def vocabulary(self) -> list[str]:
        """Canonical names whose embeddings are stored in the model file."""
        return list(self._vocabulary)

    def embeddings(self, names: Sequence[str]) -> np.ndarray:
        """Embeddings ``(N, embed_dim)`` float32 of ``names``.

        Names resolve through the registry; those outside the stored vocabulary are embedded
        once with the stored encoder spec and cached (ModelError if that encoder is missing).
        """
        keys = [canonical(n) for n in names]
        missing = sorted({k for k in keys if k not in self._vocabulary
                          and k not in self._on_demand})
        if missing:
            vectors = get_text_encoder(self.encoder_spec).encode(missing)
            if vectors.shape[1] != self.config.embed_dim:
                raise ModelError(f'text encoder "{self.encoder_spec}" gives {vectors.shape[1]}-d '
                                 f"embeddings, the model expects {self.config.embed_dim}")
            self._on_demand.update(zip(missing, vectors, strict=True))
        if not keys:
            return np.zeros((0, self.config.embed_dim), dtype=np.float32)
        return np.stack([self._vocabulary.get(k, self._on_demand.get(k)) for k in keys]
                        ).astype(np.float32)

    def predict(self, inputs: np.ndarray, names: Sequence[str], *, batch_size: int = 256
                ) -> tuple[np.ndarray, np.ndarray]:
        """Score model inputs.

        Args:
            inputs: ``(N, 2, S, S)`` float32 from :func:`qsaudit.model.preprocess.crop_slice`.
            names: structure name of each input (length ``N``).
            batch_size: inputs per forward pass. On the CPU a pass larger than
                :attr:`batch_size` runs as equal smaller passes (the largest divisor of
                ``batch_size`` that fits), so every pass of a given ``batch_size`` still has
                one shape and a score never depends on where its crop sits in the batch.

        Returns:
            ``(predicted, raw)`` float64 arrays ``(N,)``: the predicted Dice clipped to [0, 1],
            and the network's unclipped output (equal for bounded models).
        """
        x = np.asarray(inputs, dtype=np.float32)
        s = self.config.input_size
        if x.ndim != 4 or x.shape[1:] != (2, s, s):
            raise ModelError(f"predict: inputs must be (N, 2, {s}, {s}), got {x.shape}")
        if len(names) != x.shape[0]:
            raise ModelError(f"predict: {x.shape[0]} inputs but {len(names)} names")
        if batch_size < 1:
            raise ModelError(f"predict: batch_size = {batch_size}, must be >= 1")
        emb = self.embeddings(names)
        raw = np.empty(x.shape[0], dtype=np.float64)
        step = batch_size
        if self.device.type == "cpu":  # larger passes are slower per crop here: split them
            step = largest_divisor(batch_size, self.batch_size)
        started, cpu = time.perf_counter(), time.process_time()
        with torch.inference_mode(), autocast(self.device, self.precision):
            for start in range(0, x.shape[0], step):
                stop = start + step
                xb = torch.from_numpy(x[start:stop]).to(self.device)
                xb = xb.contiguous(memory_format=self._layout)
                eb = torch.from_numpy(emb[start:stop]).to(self.device)
                raw[start:stop] = self.model(xb, eb).float().cpu().numpy()
        self.forward_seconds += time.perf_counter() - started
        self.forward_cpu_seconds += time.process_time() - cpu
        return np.clip(raw, 0.0, 1.0), raw


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (a model file's fingerprint)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_checkpoint(path: str | Path, *, device: str = "auto",
                    precision: str = "auto") -> Predictor:
    """Load a qsaudit model file as a :class:`Predictor` on ``device`` (see resolve_device)
    computing in ``precision`` (see resolve_precision).

    Raises:
        ModelError: missing file, not a qsaudit model (e.g. the paper's raw checkpoint, which
            ``qsaudit import-paper`` converts), or weights that do not fit the stored config.
    """
    dev = resolve_device(device)
    model, config, payload = read_network(path)
    path = Path(path)
    try:
        names = list(payload["vocabulary_names"])
        matrix = payload["vocabulary"].float().numpy()
        meta = json.loads(payload.get("meta_json", "{}"))
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f'"{path}": damaged qsaudit model file ({reason})') from None
    vocabulary = {n: matrix[i] for i, n in enumerate(names)}
    return Predictor(model, config, encoder_spec=str(payload["encoder_spec"]),
                     vocabulary=vocabulary, meta=meta, device=dev, path=path,
                     fingerprint=file_sha256(path), precision=precision)


def read_network(path: str | Path) -> tuple[QualityNet, ModelConfig, dict[str, Any]]:
    """The trainable network of a qsaudit model file (CPU, fp32, batch norms unfolded), its
    configuration and the file's payload. Raises ModelError as :func:`load_checkpoint` does."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f'"{path}": model file not found')
    payload = load_torch_file(path, what="qsaudit model file")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        hint = ""
        if isinstance(payload, dict) and any("attention1" in str(k) for k in _flat_keys(payload)):
            hint = "; it looks like the paper's checkpoint: convert it with qsaudit import-paper"
        raise ModelError(f'"{path}": not a qsaudit model file{hint}')
    if int(payload.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelError(f'"{path}": model format version {payload["format_version"]} is newer '
                         "than this qsaudit understands; upgrade qsaudit")
    try:
        config = ModelConfig.from_dict(payload["config"])
        model = QualityNet(config)
        model.load_state_dict(payload["state_dict"], strict=True)
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f'"{path}": damaged qsaudit model file ({reason})') from None
    return model, config, payload


def _flat_keys(d: dict) -> list[str]:
    keys = [str(k) for k in d]
    for v in d.values():
        if isinstance(v, dict):
            keys += [str(k) for k in v]
    return keys


def load_torch_file(path: Path, *, what: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; any failure becomes one ModelError line.

    torch raises many exception types for files that are not its own (KeyError for text,
    UnpicklingError, BadZipFile, ...); a user gets ``"<path>": not a readable <what> (<reason>)``.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, OSError,
            ValueError, AttributeError, KeyError, IndexError, TypeError,
            UnicodeDecodeError) as exc:
        raise ModelError(f'"{path}": not a readable {what} ({_short_reason(exc)})') from None


def _short_reason(exc: BaseException) -> str:
    """First sentence of a loader error, at most ~120 characters (torch's are very long)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if text.startswith("Weights only load failed"):
        return "not a PyTorch file saved with torch.save, or a corrupt one"
    return text if len(text) <= 120 else text[:117] + "..."
