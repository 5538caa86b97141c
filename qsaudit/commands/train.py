"""``qsaudit train``: train a Quality Sentinel model on datasets with trusted labels."""

from __future__ import annotations

import contextlib
import shlex
from pathlib import Path
from typing import Annotated

import typer

from qsaudit.cli import app
from qsaudit.commands._common import QuietOption, run_command, set_quiet


@app.command("train")
@run_command
def train(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Model file to write (.pt).")],
    data: Annotated[list[Path] | None, typer.Option(
        "--data", "-d", help="Dataset with trusted labels (repeatable; any layout qsaudit "
        "reads, e.g. OpenKBP or TotalSegmentator).")] = None,
    phantoms: Annotated[int, typer.Option(
        "--phantoms", help="Also train on N generated abdominal phantoms.")] = 0,
    trunk_phantoms: Annotated[int, typer.Option(
        "--trunk-phantoms", help="Also train on N generated chest-to-pelvis phantoms "
        "(the whole skeleton, lungs, heart, muscles; 0.6-5 mm pixels).")] = 0,
    preset: Annotated[str, typer.Option(
        "--preset", help="default (small ResNet, CPU-friendly) or paper (ResNet-50, 256 px, "
        "Adam, 30 epochs, batch 128).")] = "default",
    epochs: Annotated[int | None, typer.Option("--epochs", help="Epochs (preset).")] = None,
    batch_size: Annotated[int | None, typer.Option(
        "--batch-size", help="Batch size (preset).")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Learning rate (preset).")] = None,
    workers: Annotated[int, typer.Option(
        "--workers", help="Processes that build samples (0 = all cores).")] = 0,
    max_minutes: Annotated[float | None, typer.Option(
        "--max-minutes", help="Stop training once the run (sample building included) has "
        "taken this many minutes, and keep the best model.")] = None,
    exclude_cases: Annotated[Path | None, typer.Option(
        "--exclude-cases", help="File of case/patient ids never to use (e.g. a benchmark's "
        "test patients), one per line.")] = None,
    holdout_fraction: Annotated[float | None, typer.Option(
        "--holdout-fraction", help="Fraction of patients held out for validation.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of everything random.")] = 0,
    device: Annotated[str, typer.Option(
        "--device", help="auto (CUDA with mixed precision when present), cpu or cuda.")
    ] = "auto",
    init: Annotated[Path | None, typer.Option(
        "--init", help="Start from this model file's network (fine-tuning; same architecture "
        "and text encoder), e.g. qsaudit/weights/qsaudit-default.pt.")] = None,
    precision: Annotated[str, typer.Option(
        "--precision", help="auto (bf16 on CUDA and on CPUs with native bf16, else fp32), "
        "fp32, bf16 or fp16 (CUDA only).")] = "auto",
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue an interrupted run from the state file beside --out.")
    ] = False,
    no_mse: Annotated[bool, typer.Option("--no-mse", help="Ablation: no weighted MSE.")] = False,
    no_opr: Annotated[bool, typer.Option(
        "--no-opr", help="Ablation: no optimal-pair ranking loss.")] = False,
    backbone: Annotated[str | None, typer.Option(
        "--backbone", help="Override the preset's backbone (resnet10/18/34/50).")] = None,
    width: Annotated[int | None, typer.Option(
        "--width", help="Override the preset's first-stage width.")] = None,
    input_size: Annotated[int | None, typer.Option(
        "--input-size", help="Override the preset's input size in pixels.")] = None,
    slices_per_candidate: Annotated[int | None, typer.Option(
        "--slices-per-candidate", help="Training slices drawn per candidate mask.")] = None,
    snapshot_steps: Annotated[str | None, typer.Option(
        "--snapshot-steps", help="Training steps at which the segmentation network that makes "
        "candidate masks is snapshotted, e.g. 5,20,60,200 (empty: no snapshots).")] = None,
    sample_draw: Annotated[int | None, typer.Option(
        "--sample-draw", help="Draw fresh training candidates and slices (N >= 1; 0 = the "
        "original draw) while the patient split and validation samples stay the same, e.g. "
        "to fine-tune with --init on new samples.")] = None,
    derived: Annotated[str | None, typer.Option(
        "--derived", help="Structures read off a dataset's CT itself and trained on as extra "
        "labels, comma-separated: lungs, vertebrae (around a labelled spinal cord), "
        "trachea (below a labelled larynx), clavicles (in front of a labelled spinal cord), "
        "humeri, ribs (against the lungs, from a labelled spinal cord); default lungs; "
        "empty: none.")] = None,
    embeddings: Annotated[Path | None, typer.Option(
        "--embeddings", help="Precomputed name embeddings (python -m "
        "qsaudit.training.embeddings FILE) for machines without the text encoder.")] = None,
    engine: Annotated[str, typer.Option(
        "--engine", help="local (this machine) or ray (samples built by Ray tasks, training "
        'data-parallel with Ray Train; needs pip install "qsaudit\\[ray]").')] = "local",
    ray_address: Annotated[str | None, typer.Option(
        "--ray-address", help="With --engine ray: join the cluster at HOST:PORT; default: "
        "start a local Ray instance.")] = None,
    ray_workers: Annotated[int | None, typer.Option(
        "--ray-workers", min=1, help="With --engine ray: training workers (default: one per "
        "GPU, else 2 CPU workers).")] = None,
    no_calibrate: Annotated[bool, typer.Option(
        "--no-calibrate", help="Write the network without the label calibration on the "
        "validation labels (fit it afterwards with python -m qsaudit.training.calibrate, "
        "e.g. on another machine); a scan then reports the mean slice prediction.")] = False,
    calibration_windows: Annotated[int | None, typer.Option(
        "--calibration-windows", min=0, help="Copies of every validation case cut in z to a "
        "drawn 30-200 mm window, for the label calibration only (labels cut by a scan's edge; "
        "default 1).")] = None,
    quiet: bool = QuietOption,
) -> None:
    """Train the model that predicts a mask's Dice from trusted labels: candidates are made by
    degrading them and by snapshots of a small segmentation network; the best epoch on held-out
    patients is kept. Writes OUT, OUT.log.jsonl, OUT.state.pt and OUT.samples/ beside it.

    Example: qsaudit train --data ../shared/data/openkbp --phantoms 60 --out model.pt
    """
    set_quiet(quiet)
    from qsaudit.cluster import check_engine
    from qsaudit.errors import UsageError

    check_engine(engine, {"--ray-address": ray_address, "--ray-workers": ray_workers})
    from qsaudit.model.config import get_preset
    from qsaudit.training.config import train_preset
    from qsaudit.training.run import read_case_ids, train_model

    if phantoms < 0:
        raise UsageError(f"--phantoms {phantoms}: must be 0 or more")
    if trunk_phantoms < 0:
        raise UsageError(f"--trunk-phantoms {trunk_phantoms}: must be 0 or more")
    config = train_preset(preset).with_overrides(
        epochs=epochs, batch_size=batch_size, lr=lr, workers=workers, max_minutes=max_minutes,
        holdout_fraction=holdout_fraction, seed=seed, device=device, precision=precision,
        mse=False if no_mse else None, opr=False if no_opr else None,
        slices_per_candidate=slices_per_candidate, draw=sample_draw,
        calibration_windows=calibration_windows)
    model_config = get_preset(preset)
    changes = {k: v for k, v in (("backbone", backbone), ("width", width),
                                 ("input_size", input_size)) if v is not None}
    if changes:
        model_config = model_config.replace(**changes)
    if snapshot_steps is not None:
        try:
            steps = tuple(int(v) for v in snapshot_steps.replace(" ", "").split(",") if v)
        except ValueError:
            raise UsageError(f"--snapshot-steps {snapshot_steps!r}: give whole numbers "
                             "separated by commas") from None
        config = config.with_overrides(snapshot_steps=steps)
    if derived is not None:
        from qsaudit.training.derived import derived_overrides

        config = config.with_overrides(**derived_overrides(derived))
    from qsaudit.commands._common import writable_folder

    writable_folder(Path(out).resolve().parent, what="folder of --out")
    excluded = read_case_ids(exclude_cases) if exclude_cases else set()
    command = _command_line(ctx)
    cluster, session = None, contextlib.nullcontext()
    if engine == "ray":  # one connection (or local instance) for building and training
        from qsaudit.cluster import ray_session
        from qsaudit.training.ray_train import RayTraining

        cluster = RayTraining(address=ray_address, workers=ray_workers)
        cluster.check(config, resume=resume)
        session = ray_session(ray_address)
    with session:
        report = train_model(list(data or []), out=out, phantoms=phantoms, config=config,
                             trunk_phantoms=trunk_phantoms,
                             model_config=model_config, exclude_cases=excluded, resume=resume,
                             embeddings_file=embeddings, command=command, init=init,
                             cluster=cluster, calibrate=not no_calibrate)
    m = report.best_metrics
    typer.echo(f"wrote {report.checkpoint} (best epoch {report.best_epoch} of "
               f"{report.epochs_done}{', stopped early' if report.stopped_early else ''})")
    typer.echo(f"samples: {report.n_train} training, {report.n_val} validation; patients: "
               f"{len(report.train_patients)} training, {len(report.validation_patients)} held out")
    if "label_r" in m:
        typer.echo(f"validation: label r {m['label_r']:.3f} MAE {m['label_mae']:.3f}; "
                   f"slice r {m['slice_r']:.3f} MAE {m['slice_mae']:.3f}")
    if "label_r_calibrated" in m:
        typer.echo(f"calibrated (cross-validated by patient): label r "
                   f"{m['label_r_calibrated']:.3f} MAE {m['label_mae_calibrated']:.3f}")
    elif "calibration_label_r_calibrated" in m:
        typer.echo(f"calibrated (cross-validated by patient, validation labels and "
                   f"{m['calibration_window_cases']} window copies): label r "
                   f"{m['calibration_label_r_calibrated']:.3f} "
                   f"MAE {m['calibration_label_mae_calibrated']:.3f}")
    typer.echo(f"time: {report.build_seconds:.0f} s building samples, "
               f"{report.train_seconds:.0f} s training; log {report.log}")


def _command_line(ctx: typer.Context) -> str:
    """The command as given, rebuilt from the parsed options (recorded in the model's meta)."""
    words = ["qsaudit", "train"]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if value in (None, False, []) or value == param.default or param.name == "quiet":
            continue
        flag = param.opts[0]
        if value is True:
            words.append(flag)
        else:
            for item in value if isinstance(value, list | tuple) else [value]:
                words += [flag, str(item)]
    return shlex.join(words)
