"""``qsaudit train`` as one library call: data -> samples -> training -> model file + log.

Files written beside ``out`` (``model.pt``): ``model.log.jsonl`` (one JSON line per epoch),
``model.state.pt`` (resumable training state) and ``model.samples/`` (the built sample sets, so
that ``--resume`` does not rebuild them). The model file's ``meta`` records the data, command
line, seed, time taken, validation metrics and the held-out patient ids.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qsaudit.errors import UsageError
from qsaudit.training.cases import (
    CaseSpec,
    dataset_specs,
    phantom_specs,
    split_patients,
    window_copies,
)
from qsaudit.training.config import TrainConfig
from qsaudit.training.samples import SampleSet


@dataclass
class TrainReport:
    """Outcome of :func:`train_model`: paths written, sizes, best metrics and timings (s)."""

    checkpoint: Path
    log: Path
    n_train: int
    n_val: int
    train_patients: list[str]
    validation_patients: list[str]
    best_epoch: int
    best_metrics: dict[str, float]
    epochs_done: int
    stopped_early: bool
    build_seconds: float
    train_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def side_paths(out: Path) -> dict[str, Path]:
    """The files kept beside the model file ``out``."""
    stem = out.with_suffix("")
    return {"log": Path(f"{stem}.log.jsonl"), "state": Path(f"{stem}.state.pt"),
            "samples": Path(f"{stem}.samples")}


def read_case_ids(path: str | Path) -> set[str]:
    """Case/patient ids from a text file: one per line (or comma-separated), ``#`` comments."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f'"{path}": no such file of case ids')
    ids: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0]
        ids.update(part.strip() for part in line.replace(",", " ").split() if part.strip())
    return ids


def collect_specs(data_dirs: list[Path], *, phantoms: int, seed: int,
                  phantom_shape: tuple[int, int, int] | None = None,
                  trunk_phantoms: int = 0) -> list[CaseSpec]:
    """Case recipes from every ``--data`` folder plus ``phantoms`` generated abdominal
    phantoms and ``trunk_phantoms`` chest-to-pelvis ones."""
    specs: list[CaseSpec] = []
    for root in data_dirs:
        specs.extend(dataset_specs(root))
    specs.extend(phantom_specs(phantoms, seed=seed, shape=phantom_shape))
    if trunk_phantoms:
        specs.extend(phantom_specs(trunk_phantoms, seed=seed, region="trunk"))
    if not specs:
        raise UsageError("no training data: give --data DIR and/or --phantoms N")
    return specs


def _build_or_load(specs, val_patients, *, model_config, config: TrainConfig, cache: Path,
                   fingerprint: dict, resume: bool, cluster: Any = None
                   ) -> tuple[SampleSet, SampleSet]:
    from qsaudit.progress import progress_bar
    from qsaudit.training.build import build_samples

    # a cluster (qsaudit.training.ray_train.RayTraining) makes the same call on Ray tasks
    build = build_samples if cluster is None else cluster.build_samples

    stamp = cache / "fingerprint.json"
    if resume and stamp.is_file() and json.loads(stamp.read_text()) == fingerprint:
        return SampleSet.load(cache / "train.npz"), SampleSet.load(cache / "val.npz")
    with progress_bar() as bar:
        task = bar.add_task("building samples", total=None, info="")

        def on_unit(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, info=f"{done}/{total} case groups")

        local = {"unit_cache": cache / "units"} if cluster is None else {}
        train, val = build(specs, val_patients, model_config=model_config,
                           sample_config=config.samples, seed=config.seed,
                           workers=config.workers, on_unit=on_unit, **local)
    from qsaudit.atomic import write_json

    train.save(cache / "train.npz")
    val.save(cache / "val.npz")
    write_json(stamp, fingerprint)
    return train, val


def validation_calibration(model: Any, val: SampleSet, embeddings: dict[str, np.ndarray], *,
                           config: TrainConfig) -> tuple[Any, dict[str, Any]]:
    """Fit the label calibration on the validation labels with ``model``'s predictions.

    Returns ``(LabelCalibration or None, metrics)`` (see
    :func:`qsaudit.training.calibration.calibrate`); no validation set gives ``(None, {})``.
    """
    import torch

    from qsaudit.model.checkpoint import resolve_device
    from qsaudit.training.calibration import calibrate
    from qsaudit.training.trainer import _name_index, predict_samples

    if len(val) == 0:
        return None, {}
    device = resolve_device(config.device)
    vocab = sorted(embeddings)
    table = torch.from_numpy(np.stack([embeddings[n] for n in vocab]).astype(np.float32))
    model.to(device)
    pred = predict_samples(model, val.inputs, _name_index(val.names, vocab), table.to(device),
                           device=device)
    probe_pred = None
    if val.probe_inputs is not None:
        probe_pred = predict_samples(model, val.probe_inputs,
                                     _name_index(val.probe_names(), vocab), table.to(device),
                                     device=device)
    return calibrate(val, pred, seed=config.seed, probe_pred=probe_pred)


def _left_for_training(config: TrainConfig, build_seconds: float) -> TrainConfig:
    """``config`` with ``max_minutes`` cut by the time building samples took: the limit is
    the whole run's wall time (a lent GPU's lease ends at a fixed time, whatever the build
    cost). At least a few seconds are left, so that one step runs and a model is written."""
    if config.max_minutes is None:
        return config
    return config.with_overrides(
        max_minutes=max(config.max_minutes - build_seconds / 60.0, 0.05))


def _split(patients: list[str], config: TrainConfig, init: str | Path | None) -> set[str]:
    """The validation patients. A fine-tune keeps its ``init`` model's split for every patient
    that model knew (its held-out patients must never reach training); new patients (e.g. new
    phantoms) are split among themselves."""
    if init is not None:
        from qsaudit.model.checkpoint import read_network

        meta = json.loads(read_network(init)[2].get("meta_json") or "{}")
        held = set(meta.get("validation_patients") or ())
        known = held | set(meta.get("train_patients") or ())
        if known:
            new = [p for p in patients if p not in known]
            return (held & set(patients)) | split_patients(
                new, fraction=config.holdout_fraction, seed=config.seed)
    return split_patients(patients, fraction=config.holdout_fraction, seed=config.seed)


def _start_from(model: Any, model_config: Any, encoder: str, init: str | Path) -> None:
    """Load the network weights of the model file ``init`` into ``model`` (fine-tuning)."""
    from qsaudit.model.checkpoint import read_network

    network, config, payload = read_network(init)
    # the crop margin may change (e.g. from pixels to millimetres): the network is the same
    if config.replace(margin=0, margin_mm=None) != model_config.replace(margin=0, margin_mm=None):
        raise UsageError(f'"{init}": --init model has another architecture ({config.backbone}, '
                         f"width {config.width}, {config.input_size} px, embeddings "
                         f"{config.embed_dim}) than this run ({model_config.backbone}, width "
                         f"{model_config.width}, {model_config.input_size} px, embeddings "
                         f"{model_config.embed_dim})")
    if str(payload.get("encoder_spec")) != encoder:
        raise UsageError(f'"{init}": --init model used the text encoder '
                         f'{payload.get("encoder_spec")!r}, this run {encoder!r}')
    model.load_state_dict(network.state_dict(), strict=True)


def train_model(data_dirs: list[str | Path], *, out: str | Path, phantoms: int = 0,
                config: TrainConfig | None = None, model_config: Any = None,
                exclude_cases: set[str] | None = None, resume: bool = False,
                encoder: str = "minilm", embeddings_file: str | Path | None = None,
                command: str | None = None, init: str | Path | None = None,
                trunk_phantoms: int = 0, cluster: Any = None,
                calibrate: bool = True) -> TrainReport:
    """Build samples, train a QualityNet and write the model file ``out`` (see module doc).

    ``model_config`` defaults to the model preset named by ``config.preset`` with the text
    encoder's embedding size. ``exclude_cases`` (case or patient ids) are used neither for
    training nor for validation. ``embeddings_file`` (see :mod:`qsaudit.training.embeddings`)
    replaces the text encoder on machines that lack it. ``init``: a model file whose network
    weights start the training (fine-tuning; same architecture and text encoder), unless a
    resumed run's state file supplies them. ``trunk_phantoms``: chest-to-pelvis phantoms
    beside the ``phantoms`` abdominal ones. ``cluster``: a
    :class:`qsaudit.training.ray_train.RayTraining` builds the samples and trains on Ray
    (None: on this machine). ``calibrate=False`` writes the network without the label
    calibration on the validation labels (fitted later by :mod:`qsaudit.training.calibrate`).
    Raises :class:`UsageError` for unusable inputs.
    """
    import torch

    from qsaudit.inference.aggregate import FEATURES
    from qsaudit.model.checkpoint import save_checkpoint
    from qsaudit.model.config import get_preset
    from qsaudit.model.network import QualityNet
    from qsaudit.progress import progress_bar
    from qsaudit.training.build import build_samples
    from qsaudit.training.embeddings import lookup_embeddings, read_embeddings
    from qsaudit.training.trainer import fit

    started = time.monotonic()
    config = config or TrainConfig()
    config.validate()
    out = Path(out)
    paths = side_paths(out)
    if model_config is None:
        model_config = get_preset(config.preset)
    table = None
    if embeddings_file is not None:
        encoder, table = read_embeddings(embeddings_file)
        dim = len(next(iter(table.values())))
    else:
        from qsaudit.model.text import encoder_dim

        dim = encoder_dim(encoder)
    model_config = model_config.replace(embed_dim=dim)
    data_dirs = [Path(d) for d in data_dirs]
    specs = collect_specs(data_dirs, phantoms=phantoms, seed=config.seed,
                          phantom_shape=config.samples.phantom_shape,
                          trunk_phantoms=trunk_phantoms)
    excluded = set(exclude_cases or ())
    specs = [s for s in specs if s.case_id not in excluded and s.patient_id not in excluded]
    patients = sorted({s.patient_id for s in specs})
    val_patients = _split(patients, config, init)
    fingerprint = {"data": [str(d.resolve()) for d in data_dirs], "phantoms": phantoms,
                   **({"trunk_phantoms": trunk_phantoms} if trunk_phantoms else {}),
                   "excluded": sorted(excluded), "seed": config.seed,
                   "samples": json.loads(json.dumps(config.to_dict()["samples"])),
                   "holdout_fraction": config.holdout_fraction, "features": list(FEATURES),
                   "model": model_config.to_dict()}
    train, val = _build_or_load(specs, val_patients, model_config=model_config, config=config,
                                cache=paths["samples"], fingerprint=fingerprint, resume=resume,
                                cluster=cluster)
    build_seconds = time.monotonic() - started
    if len(train) < 2:
        raise UsageError(f"only {len(train)} training sample(s) could be made: give more data")

    names = sorted(set(train.names.tolist()) | set(val.names.tolist()))
    embeddings = lookup_embeddings(names, encoder=encoder, table=table)
    torch.manual_seed(config.seed)
    model = QualityNet(model_config)
    if init is not None:
        _start_from(model, model_config, encoder, init)
    if not resume:
        paths["log"].unlink(missing_ok=True)
    log_fh = open(paths["log"], "a", encoding="utf-8")  # noqa: SIM115 - closed below
    try:
        with progress_bar() as bar:
            task = bar.add_task("training", total=None, info="")

            def on_step(step: int, total: int, info: dict) -> None:
                bar.update(task, completed=step, total=total,
                           info=f"epoch {info['epoch']} loss {info['loss']:.4f}")

            def on_epoch(record: dict) -> None:
                log_fh.write(json.dumps(record) + "\n")
                log_fh.flush()

            result = (cluster.fit if cluster is not None else fit)(
                model, train, val, config=_left_for_training(config, build_seconds),
                embeddings=embeddings,
                state_path=paths["state"], resume=resume, on_step=on_step,
                on_epoch=on_epoch, fingerprint=fingerprint)
    finally:
        log_fh.close()
    model.load_state_dict(result.best_state)
    calibration, calibration_metrics = None, {}
    if calibrate:
        labels = val
        windows = window_copies([s for s in specs if s.patient_id in val_patients],
                                config.calibration_windows, seed=config.seed,
                                kinds=("dataset", "phantom")) if len(val) else []
        if windows:  # labels cut by a scan's edge, for the calibration only
            _, cut = build_samples(windows, {s.patient_id for s in windows},
                                   model_config=model_config, sample_config=config.samples,
                                   seed=config.seed, workers=config.workers)
            labels = SampleSet.concat([val, cut], size=model_config.input_size)
        calibration, calibration_metrics = validation_calibration(model, labels, embeddings,
                                                                  config=config)
        if labels is not val:  # measured on more labels than the validation: named apart
            calibration_metrics = {f"calibration_{k}": v for k, v in calibration_metrics.items()}
            calibration_metrics["calibration_window_cases"] = len(windows)
    train_patients = sorted(set(patients) - val_patients)
    meta = {
        "trained_with": "qsaudit train",
        "command": command,
        "data": [str(d) for d in data_dirs],
        "phantoms": phantoms,
        "trunk_phantoms": trunk_phantoms,
        "phantom_seed_stream": "(7101, seed, index)",
        "seed": config.seed,
        "init": str(init) if init is not None else None,
        "train_config": config.to_dict(),
        "encoder": encoder,
        "n_train_samples": len(train),
        "n_validation_samples": len(val),
        "train_patients": train_patients,
        "validation_patients": sorted(val_patients),
        "excluded_cases": sorted(excluded),
        "best_epoch": result.best_epoch,
        "epochs_done": result.epochs_done,
        "stopped_early": result.stopped_early,
        "validation": {**result.best_metrics, **calibration_metrics},
        "build_seconds": round(build_seconds, 1),
        "train_seconds": round(result.seconds, 1),
        "device": str(next(model.parameters()).device),
        "target_histogram": np.histogram(train.targets, bins=config.samples.bins,
                                         range=(0, 1))[0].tolist(),
    }
    if calibration is not None:
        meta["calibration"] = calibration.to_json()
    model.cpu()
    save_checkpoint(out, model, model_config, encoder_spec=encoder, vocabulary=embeddings,
                    meta=meta)
    return TrainReport(checkpoint=out, log=paths["log"], n_train=len(train), n_val=len(val),
                       train_patients=train_patients, validation_patients=sorted(val_patients),
                       best_epoch=result.best_epoch,
                       best_metrics={**result.best_metrics, **calibration_metrics},
                       epochs_done=result.epochs_done, stopped_early=result.stopped_early,
                       build_seconds=build_seconds, train_seconds=result.seconds)
