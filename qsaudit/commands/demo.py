"""``qsaudit demo``: write a synthetic CT dataset whose labels have known true Dice."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from qsaudit.cli import app
from qsaudit.commands._common import run_command, set_quiet, stdout_console


@app.command("demo")
@run_command
def demo_command(
    directory: Annotated[Path, typer.Argument(help="Folder to create (must be empty or new).")],
    cases: Annotated[int, typer.Option("--cases", "-n", min=1,
                                       help="Number of phantom CT volumes.")] = 24,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same files).")] = 0,
    no_bias: Annotated[bool, typer.Option(
        "--no-bias", help="Do not inject the demographic effect (women and older patients get "
        "worse labels by default).")] = False,
    perfect_share: Annotated[float, typer.Option(
        "--perfect-share", min=0.0, max=1.0, help="Share of labels left perfect.")] = 0.35,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace the demo files in a non-empty folder.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q",
                                        help="No progress output on stderr.")] = False,
) -> None:
    """Make phantom abdominal CTs with TotalSegmentator-style labels of known quality.

    Some labels are degraded on purpose (erosion, leakage, left-right swap, ...); truth.csv
    holds the true Dice of every label, so `qsaudit evaluate` can check the predictions.

    Example: qsaudit demo demo-data --cases 24 --seed 0
    """
    from qsaudit.phantoms import make_demo

    set_quiet(quiet)
    s = make_demo(directory, cases=cases, seed=seed, bias=not no_bias,
                  perfect_share=perfect_share, overwrite=overwrite)
    console = stdout_console()
    console.print(f"Made {s.cases} phantom CTs with {s.labels} labels "
                  f"({s.perfect_labels} perfect), mean true Dice {s.mean_true_dsc:.3f}.")
    console.print(f"Dataset:   {s.dataset_dir}")
    console.print(f"Reference: {s.reference_dir}")
    console.print(f"Truth:     {s.truth_csv}")
    console.print(f"Patients:  {s.patients_csv}")
    console.print(f"Next: qsaudit scan {shlex.quote(str(s.dataset_dir))}", markup=False)
