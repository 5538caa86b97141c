"""The training loop: bin-balanced batches, periodic validation, best-checkpoint selection, resume.

Validation reports slice-level Pearson r and MAE and, after aggregating each validation
candidate's slice predictions (the scan's ``area_weighted`` mean), label-level r and MAE against
the candidate's true 3D Dice. The best epoch maximises ``label_r - label_mae`` (slice-level
figures when no label-level ones exist; the last epoch when there is no validation set).

A state file (model, optimizer, scheduler, epoch, RNG states, best weights, history) is written
after every epoch; ``resume=True`` continues from it. Each epoch seeds its own batch order from
``(seed, epoch)``, so a resumed run draws the batches an uninterrupted run would have drawn.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qsaudit.analyses.evaluate import mae, pearson
from qsaudit.errors import ModelError, UsageError
from qsaudit.model.checkpoint import (
    autocast,
    memory_layout,
    resolve_device,
    resolve_precision,
)
from qsaudit.training.augment import augment_batch
from qsaudit.training.config import TrainConfig
from qsaudit.training.samples import SampleSet, bin_weights

STATE_VERSION = 1


@dataclass
class FitResult:
    """What :func:`fit` returns: the best weights (CPU tensors), their metrics and the history."""

    best_state: dict[str, torch.Tensor]
    best_metrics: dict[str, float]
    best_epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)
    epochs_done: int = 0
    stopped_early: bool = False
    seconds: float = 0.0


def _lr_lambda(total_steps: int) -> Callable[[int], float]:
    warmup = max(1, min(200, total_steps // 20))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def _cpu_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the weights in the default layout, whatever layout trained them."""
    return {k: v.detach().cpu().clone(memory_format=torch.contiguous_format)
            for k, v in model.state_dict().items()}


def _name_index(names: np.ndarray, vocab: list[str]) -> np.ndarray:
    lookup = {n: i for i, n in enumerate(vocab)}
    try:
        return np.array([lookup[str(n)] for n in names], dtype=np.int64)
    except KeyError as exc:
        raise ModelError(f"no text embedding for structure {exc.args[0]!r}") from None


@torch.no_grad()
def predict_samples(model: torch.nn.Module, inputs: np.ndarray | torch.Tensor,
                    emb_index: np.ndarray, emb_table: torch.Tensor, *, device: torch.device,
                    batch_size: int = 256, precision: str = "fp32") -> np.ndarray:
    """Model outputs for ``inputs`` (N, 2, S, S) -> (N,) float64, in eval mode.

    ``precision`` is a resolved one (``fp32``, ``bf16`` or ``fp16``), as training uses.
    """
    model.eval()
    layout = memory_layout(device, precision)
    out = []
    x_all = torch.as_tensor(inputs)
    idx_all = torch.as_tensor(emb_index)
    for start in range(0, len(idx_all), batch_size):
        x = x_all[start:start + batch_size].to(device, non_blocking=True).float()
        x = x.contiguous(memory_format=layout)
        e = emb_table[idx_all[start:start + batch_size].to(emb_table.device)]
        with autocast(device, precision):
            y = model(x, e)
        out.append(y.float().cpu())
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


def label_scores(samples: SampleSet, slice_pred: np.ndarray, *,
                 method: str = "area_weighted") -> tuple[np.ndarray, np.ndarray]:
    """Aggregate slice predictions per group -> (predicted, true) label Dice, groups in order."""
    from qsaudit.inference.aggregate import aggregate

    pred, true = [], []
    order = np.argsort(samples.groups, kind="stable")
    groups = samples.groups[order]
    bounds = np.flatnonzero(np.diff(groups)) + 1
    for part in np.split(order, bounds):
        if part.size == 0:
            continue
        agg = aggregate(np.clip(slice_pred[part], 0, 1), samples.areas[part], method=method)
        pred.append(agg.dsc)
        true.append(samples.group_table[int(samples.groups[part[0]])]["true_dsc"])
    return np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)


def validation_metrics(samples: SampleSet, slice_pred: np.ndarray) -> dict[str, float]:
    """Slice-level and label-level r / MAE of predictions on a validation set."""
    clipped = np.clip(slice_pred, 0, 1)
    label_pred, label_true = label_scores(samples, slice_pred)
    return {"slice_r": pearson(clipped, samples.targets), "slice_mae": mae(clipped,
                                                                           samples.targets),
            "slice_bias": float(np.mean(clipped - samples.targets)) if len(samples) else math.nan,
            "label_r": pearson(label_pred, label_true), "label_mae": mae(label_pred, label_true),
            "n_slices": len(samples), "n_labels": int(label_pred.size)}


def selection_score(metrics: dict[str, float]) -> float:
    """Higher is better: ``label_r - label_mae`` (slice-level when label-level is undefined)."""
    for r_key, e_key in (("label_r", "label_mae"), ("slice_r", "slice_mae")):
        r, e = metrics.get(r_key, math.nan), metrics.get(e_key, math.nan)
        if not (math.isnan(r) or math.isnan(e)):
            return float(r - e)
    return -math.inf


def fit(model: torch.nn.Module, train: SampleSet, val: SampleSet, *, config: TrainConfig,
        embeddings: dict[str, np.ndarray], state_path: Path | None = None,
        resume: bool = False, on_step: Callable[[int, int, dict[str, Any]], None] | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
        fingerprint: dict[str, Any] | None = None, shard: tuple[int, int] = (0, 1),
        wrap: Callable[[torch.nn.Module], torch.nn.Module] | None = None) -> FitResult:
    """Train ``model`` on ``train`` and keep the weights that validate best on ``val``.

    ``embeddings`` maps every structure name of both sets to its text embedding (E,).
    ``on_step(step, total, info)`` and ``on_epoch(record)`` report progress; ``fingerprint``
    (plain JSON) is stored in the state file and must match on resume. Data-parallel
    training (``qsaudit.training.ray_train``): ``shard=(rank, world)`` trains on every
    ``world``-th sample of each batch from ``rank`` on, and ``wrap`` (e.g. into
    DistributedDataParallel) gives the module the training steps run through.
    """
    if len(train) < 2:
        raise UsageError(f"only {len(train)} training sample(s): give more data or phantoms")
    started = time.monotonic()
    device = resolve_device(config.device)
    vocab = sorted(embeddings)
    emb_table = torch.from_numpy(np.stack([embeddings[n] for n in vocab]).astype(np.float32))
    emb_table = emb_table.to(device)
    train_idx = torch.from_numpy(_name_index(train.names, vocab))
    val_idx = _name_index(val.names, vocab)
    x_train = torch.from_numpy(train.inputs)
    y_train = torch.from_numpy(train.targets.astype(np.float32))
    if device.type == "cuda":
        x_train, y_train, train_idx = x_train.to(device), y_train.to(device), train_idx.to(device)
    weights = torch.from_numpy(bin_weights(train.targets, bins=config.samples.bins))

    precision = resolve_precision(config.precision, device, bounded=True)
    layout = memory_layout(device, precision)
    model.to(device=device, memory_format=layout)
    net = wrap(model) if wrap is not None else model
    rank, world = shard
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    opt_cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    optimizer = opt_cls(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, len(train) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(total_steps))

    from qsaudit.model.losses import quality_loss

    start_epoch, history, best = 0, [], None
    best_score, best_epoch, best_metrics = -math.inf, 0, {}
    if resume and state_path is not None and Path(state_path).is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        if state.get("version") != STATE_VERSION or state.get("fingerprint") != fingerprint:
            raise UsageError(f'"{state_path}": state file was made with other data or settings; '
                             "start afresh without --resume")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, history = int(state["epoch"]), list(state["history"])
        best, best_score = state["best_state"], float(state["best_score"])
        best_epoch, best_metrics = int(state["best_epoch"]), dict(state["best_metrics"])
        torch.set_rng_state(state["torch_rng"])

    stopped = False
    deadline = None if config.max_minutes is None else started + 60.0 * config.max_minutes
    epoch = start_epoch
    for epoch in range(start_epoch + 1, config.epochs + 1):
        torch.manual_seed(config.seed * 7919 + epoch)
        gen = torch.Generator().manual_seed(config.seed * 1000003 + epoch)
        aug_gen = torch.Generator().manual_seed(config.seed * 1000033 + epoch)
        order = torch.multinomial(weights, steps_per_epoch * config.batch_size,
                                  replacement=True, generator=gen)
        net.train()
        losses = []
        for step in range(steps_per_epoch):
            batch = order[step * config.batch_size:(step + 1) * config.batch_size][rank::world]
            batch = batch.to(x_train.device)
            x = x_train[batch].to(device, non_blocking=True).float()
            if config.augment:
                x = augment_batch(x, aug_gen)
            x = x.contiguous(memory_format=layout)
            y = y_train[batch].to(device, non_blocking=True)
            e = emb_table[train_idx[batch].to(device)]
            with autocast(device, precision):
                pred = net(x, e)
            loss = quality_loss(pred.float(), y, e, mse=config.mse, opr=config.opr,
                                opr_weight=config.opr_weight)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            losses.append(float(loss.detach()))
            if on_step:
                on_step((epoch - 1) * steps_per_epoch + step + 1, total_steps,
                        {"epoch": epoch, "loss": losses[-1]})
            if deadline is not None and time.monotonic() > deadline:
                stopped = True
                break
        record: dict[str, Any] = {"epoch": epoch, "steps": len(losses), "precision": precision,
                                  "train_loss": float(np.mean(losses)),
                                  "lr": float(scheduler.get_last_lr()[0])}
        if len(val) and (epoch % config.validate_every == 0 or epoch == config.epochs or stopped):
            pred = predict_samples(model, val.inputs, val_idx, emb_table, device=device,
                                   precision=precision)
            record.update(validation_metrics(val, pred))
        record["seconds"] = round(time.monotonic() - started, 1)
        score = selection_score(record) if len(val) else float(epoch)
        if score > best_score:
            best_score, best_epoch = score, epoch
            best_metrics = {k: v for k, v in record.items() if k not in ("steps", "lr")}
            best = _cpu_weights(model)
        record["best_epoch"] = best_epoch
        history.append(record)
        if on_epoch:
            on_epoch(record)
        if state_path is not None:
            _save_state(state_path, model, optimizer, scheduler, epoch, history, best,
                        best_score, best_epoch, best_metrics, fingerprint)
        if stopped:
            break
    if best is None:
        best = _cpu_weights(model)
    return FitResult(best_state=best, best_metrics=best_metrics, best_epoch=best_epoch,
                     history=history, epochs_done=epoch, stopped_early=stopped,
                     seconds=time.monotonic() - started)


def _save_state(path: Path, model, optimizer, scheduler, epoch: int, history: list,
                best: dict | None, best_score: float, best_epoch: int, best_metrics: dict,
                fingerprint: dict | None) -> None:
    from qsaudit.atomic import write_with

    state = {"version": STATE_VERSION, "epoch": epoch, "history": history,
             "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "best_state": best, "best_score": best_score, "best_epoch": best_epoch,
             "best_metrics": best_metrics, "torch_rng": torch.get_rng_state(),
             "numpy_rng": np.random.get_state(), "fingerprint": fingerprint}
    write_with(Path(path), lambda p: torch.save(state, p))
