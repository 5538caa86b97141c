"""``qsaudit scan``: predict the Dice of every label of a dataset (see qsaudit.inference)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from qsaudit.cli import app
from qsaudit.commands._common import (
    DEFAULT_RESULTS_DIR,
    Interrupted,
    run_command,
    set_quiet,
    stdout_console,
)


@app.command("scan")
@run_command
def scan_command(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder (any supported layout).")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Results folder; an interrupted scan there is resumed.")
    ] = DEFAULT_RESULTS_DIR,
    model: Annotated[Path | None, typer.Option(
        "--model", "-m", help="Model file (default: the shipped weights).")] = None,
    slices: Annotated[int, typer.Option(
        "--slices", "-k", min=1, help="Slices scored per label (evenly spaced).")] = 10,
    device: Annotated[str, typer.Option(
        "--device", help="auto (CUDA with mixed precision when present), cpu or cuda.")
    ] = "auto",
    precision: Annotated[str, typer.Option(
        "--precision", help="auto (bf16 where the GPU or CPU computes it natively; fp32 for "
        "the paper's model), fp32, bf16 or fp16 (CUDA).")] = "auto",
    batch_size: Annotated[int | None, typer.Option(
        "--batch-size", "-b", min=1, help="Slices per forward pass (default: by device and "
        "model, as measured: on the CPU 4 for the paper's ResNet-50, 32 for the default model; 128 on "
        "CUDA).")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", "-w", min=0, help="Reader processes (default min(2, cores); 0 = none).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the slice sampling.")] = 0,
    shard: Annotated[str | None, typer.Option(
        "--shard", help="Scan only shard I of N (0-based, e.g. 0/4) of the sorted cases; "
        "join shards with qsaudit merge.")] = None,
    layout: Annotated[str | None, typer.Option(
        "--layout", "-l", help="Force the dataset layout (default: detected).")] = None,
    labels: Annotated[Path | None, typer.Option(
        "--labels", help="Label table for label maps: CSV with columns value,name.")] = None,
    preset: Annotated[str | None, typer.Option(
        "--preset", help="Known label table for label maps, e.g. btcv, amos.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace results made with another model or other settings.")
    ] = False,
    engine: Annotated[str, typer.Option(
        "--engine", help="local (this machine) or ray (a Ray cluster: needs "
        'pip install "qsaudit\\[ray]").')] = "local",
    ray_address: Annotated[str | None, typer.Option(
        "--ray-address", help="With --engine ray: join the cluster at HOST:PORT (from ray start "
        "--head); default: start a local Ray instance.")] = None,
    ray_actors: Annotated[int | None, typer.Option(
        "--ray-actors", min=1, help="With --engine ray: model actors (default: one per GPU; "
        "without GPUs, half the CPUs).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
) -> None:
    """Predict the Dice score of every label of DATASET, with model-free flags and a report.

    Writes results.csv/.parquet (one row per case and label), slices.parquet, report.html and
    scan.json to --out. Safe to interrupt: run the same command again to finish.

    Example: qsaudit scan data/dataset --out qsaudit-report --slices 10
    """
    from qsaudit.cluster import check_engine
    from qsaudit.inference import ScanSettings, parse_shard, scan_dataset

    set_quiet(quiet)
    check_engine(engine, {"--ray-address": ray_address, "--ray-actors": ray_actors})
    settings = ScanSettings(model=model, slices=slices, device=device, precision=precision,
                            batch_size=batch_size,
                            workers=workers, seed=seed,
                            shard=parse_shard(shard) if shard else None, layout=layout,
                            labels_table=labels, preset=preset, force=force)
    try:
        if engine == "ray":
            from qsaudit.inference.ray_engine import RayOptions, scan_dataset_ray

            summary = scan_dataset_ray(dataset, out, settings=settings,
                                       options=RayOptions(address=ray_address, actors=ray_actors))
        else:
            summary = scan_dataset(dataset, out, settings=settings)
    except KeyboardInterrupt:
        raise Interrupted(f'interrupted; the cases finished so far are kept in "{out}": run the '
                          "same command again to resume") from None
    print_summary(summary)


def print_summary(summary) -> None:
    """Render a ScanSummary on stdout (and a report problem as a warning on stderr)."""
    from qsaudit.commands._common import error_line

    console = stdout_console()
    statuses = ", ".join(f"{k} {v}" for k, v in summary.status_counts.items())
    console.print(f"Cases: {summary.cases}  Labels: {summary.labels}"
                  + (f" ({statuses})" if statuses else ""))
    if summary.resumed_cases:
        console.print(f"Resumed: {summary.resumed_cases} case(s) were already done")
    if summary.labels == 0:
        console.print(f"No labels: the {summary.scanned_cases} case(s) read have an image but no "
                      "mask (NIfTI: files under segmentations/ or a label map; DICOM: a SEG or "
                      "RTSTRUCT series that references the CT)", markup=False)
    else:
        console.print(f"Mean predicted Dice: {summary.mean_dsc:.3f}  "
                      f"Labels with model-free flags: {summary.flagged}")
    console.print(f"Results: {summary.results_csv}")
    if summary.report is not None:
        console.print(f"Report:  {summary.report}")
    else:
        error_line(f"report not written: {summary.report_error}")
    if summary.labels:  # nothing to budget without labels
        console.print("Next: qsaudit budget --fraction 0.1 --results "
                      f"{shlex.quote(str(summary.out_dir))}", markup=False)
