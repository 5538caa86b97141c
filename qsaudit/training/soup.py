"""Average the weights of model files fine-tuned from one network (a "model soup"), on CPU.

A fine-tune of a few epochs on a fresh draw of training samples moves single structure families
by a tenth or two either way; averaging the weights of sibling fine-tunes (or of a fine-tune and
its parent) keeps what they agree on and cancels much of that draw-to-draw swing, at no cost at
scan time (one network, as fast as either)::

    python -m qsaudit.training.soup OUT.pt A.pt B.pt [C.pt ...] [--weights 0.5,0.5]

The inputs must be one architecture with one vocabulary, trained on one patient split (else the
result's held-out patients would not be held out). Batch-norm running statistics are averaged
like the weights. The result carries no label calibration (the averaged network scores
differently from each parent): calibrate it before use, with ``python -m
qsaudit.training.calibrate OUT.pt --data ...``. Its meta records each input's
path, SHA-256, weight and training run (command, init, validation figures); of the inputs' meta
only what holds for the average is kept (the patient split, the name encoder, the sample
settings).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from qsaudit.errors import ModelError, UsageError

# meta keys that must agree between the inputs (the patient split: no training patient of one
# input may be a held-out patient of the result)
SPLIT_KEYS = ("validation_patients", "excluded_cases")
# meta keys of the first input that also hold for the average (the split, the name encoder, the
# sample settings a calibration reuses); the rest describe one training run, kept per input
KEPT_KEYS = (*SPLIT_KEYS, "encoder", "train_config", "phantom_seed_stream")
# each input's own record in ``averaged_from``
RUN_KEYS = ("command", "init", "validation", "best_epoch", "epochs_done", "n_train_samples")


def average_checkpoints(models: list[str | Path], out: str | Path, *,
                        weights: list[float] | None = None) -> dict[str, Any]:
    """Write the weighted average of the networks in ``models`` to ``out`` (atomically).

    Args:
        models: two or more qsaudit model files of one architecture, vocabulary and split.
        out: destination model file; it has no calibration (see module doc).
        weights: one non-negative weight per model (normalised to sum 1); default equal.

    Returns the meta written (``averaged_from`` lists the inputs).

    Raises:
        UsageError: fewer than two models, or weights that do not fit them.
        ModelError: an unreadable input, or inputs that cannot be averaged (naming the file).
    """
    import torch

    from qsaudit.atomic import write_with
    from qsaudit.model.checkpoint import file_sha256, read_network

    paths = [Path(m) for m in models]
    if len(paths) < 2:
        raise UsageError("soup: give at least two model files to average")
    share = _normalised(weights, len(paths))
    payloads = [read_network(p)[2] for p in paths]
    first, metas = payloads[0], [json.loads(p.get("meta_json") or "{}") for p in payloads]
    for path, payload, meta in zip(paths[1:], payloads[1:], metas[1:]):
        _check_compatible(path, payload, meta, paths[0], first, metas[0])

    state: dict[str, torch.Tensor] = {}
    for key, tensor in first["state_dict"].items():
        if tensor.is_floating_point():
            total = sum(w * p["state_dict"][key].double() for w, p in zip(share, payloads))
            state[key] = total.to(tensor.dtype)
        else:  # counters (num_batches_tracked): the first input's
            state[key] = tensor.clone()
    meta: dict[str, Any] = {k: metas[0][k] for k in KEPT_KEYS if k in metas[0]}
    meta["trained_with"] = "qsaudit train, averaged by qsaudit.training.soup"
    held = {str(p) for p in meta.get("validation_patients") or ()}
    for path, m in zip(paths, metas):
        leaked = held & {str(p) for p in m.get("train_patients") or ()}
        if leaked:
            raise ModelError(f'"{path}": trained on {min(leaked)}, a held-out patient of the '
                             "others: their average would not hold it out")
    meta["train_patients"] = sorted({str(p) for m in metas for p in m.get("train_patients") or ()})
    meta["averaged_from"] = [
        {"file": str(p), "sha256": file_sha256(p), "weight": w,
         **{k: m[k] for k in RUN_KEYS if k in m}}
        for p, w, m in zip(paths, share, metas)]
    meta["command"] = "python -m qsaudit.training.soup " + " ".join(
        [str(out)] + [str(p) for p in paths]
        + ([] if weights is None else ["--weights", ",".join(f"{w:g}" for w in weights)]))
    payload = {**first, "state_dict": state, "meta_json": json.dumps(meta, default=str)}
    write_with(Path(out), lambda tmp: torch.save(payload, tmp))
    return meta


def _normalised(weights: list[float] | None, n: int) -> list[float]:
    """``weights`` scaled to sum 1 (equal when None); UsageError when they do not fit."""
    if weights is None:
        return [1.0 / n] * n
    if len(weights) != n:
        raise UsageError(f"soup: {len(weights)} weights for {n} model files")
    top = max((float(w) for w in weights), default=0.0)
    if any(not (math.isfinite(w) and w >= 0) for w in weights) or top <= 0:
        raise UsageError("soup: weights must be finite, non-negative and not all zero")
    scaled = [float(w) / top for w in weights]  # no overflow in the sum
    total = sum(scaled)
    return [w / total for w in scaled]


def _check_compatible(path: Path, payload: dict[str, Any], meta: dict[str, Any],
                      ref_path: Path, ref: dict[str, Any], ref_meta: dict[str, Any]) -> None:
    """ModelError naming ``path`` when it cannot be averaged with ``ref``."""
    import torch

    def fail(what: str) -> None:
        raise ModelError(f'"{path}": cannot be averaged with "{ref_path.name}": {what}')

    if payload["config"] != ref["config"]:
        fail("a different network configuration")
    if any(v.dtype != ref["state_dict"][k].dtype for k, v in payload["state_dict"].items()):
        fail("weights stored in another precision")
    if str(payload.get("encoder_spec")) != str(ref.get("encoder_spec")):
        fail("a different text encoder")
    if list(payload["vocabulary_names"]) != list(ref["vocabulary_names"]) or not torch.allclose(
            payload["vocabulary"].float(), ref["vocabulary"].float(), atol=1e-6):
        fail("a different structure vocabulary")
    for key in SPLIT_KEYS:
        if sorted(map(str, meta.get(key) or [])) != sorted(map(str, ref_meta.get(key) or [])):
            fail(f"trained on another patient split ({key} differ)")
    # the configuration fixes the shapes; read_network has loaded both strictly


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``python -m qsaudit.training.soup OUT A B [...] [--weights ...]``."""
    from qsaudit.errors import QsauditError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="model file to write (uncalibrated)")
    parser.add_argument("models", type=Path, nargs="+", help="model files to average")
    parser.add_argument("--weights", default=None, help="comma-separated, one per model")
    args = parser.parse_args(argv)
    try:
        weights = None
        if args.weights is not None:
            try:
                weights = [float(v) for v in args.weights.split(",")]
            except ValueError:
                raise UsageError(f'soup: --weights "{args.weights}" is not a list of numbers'
                                 ) from None
        meta = average_checkpoints(args.models, args.out, weights=weights)
    except QsauditError as exc:
        print(f"Error: {exc}")
        return exc.exit_code
    shares = ", ".join(f"{a['file']} {a['weight']:.2f}" for a in meta["averaged_from"])
    print(f"wrote {args.out} (average of {shares}); calibrate it before use: "
          f"python -m qsaudit.training.calibrate {args.out} --data ...")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
