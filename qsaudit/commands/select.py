"""``qsaudit select``: pick the best pseudo-labels for semi-supervised training."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qsaudit.cli import app
from qsaudit.commands._common import QuietOption, ResultsOption, record, run_command, set_quiet


@app.command("select")
@run_command
def select(
    top: Annotated[float | None, typer.Option(
        "--top", help="Best fraction (0..1) of the units.")] = None,
    count: Annotated[int | None, typer.Option("--count", "-n", help="Best N units.")] = None,
    min_dsc: Annotated[float | None, typer.Option(
        "--min-dsc", help="Every unit with predicted DSC ≥ this.")] = None,
    unit: Annotated[str, typer.Option("--unit", help="label or case.")] = "label",
    case_score: Annotated[str, typer.Option(
        "--case-score", help="Score of a case from its labels: mean or min.")] = "mean",
    nnunet_splits: Annotated[Path | None, typer.Option(
        "--nnunet-splits", help="Also write an nnU-Net splits_final.json here.")] = None,
    folds: Annotated[int, typer.Option("--folds", help="Folds of the nnU-Net split file.")] = 5,
    truth: Annotated[Path | None, typer.Option(
        "--truth", help="True DSCs: compare the selection with random selections.")] = None,
    draws: Annotated[int, typer.Option(
        "--draws", help="Random selections averaged with --truth.")] = 200,
    seed: Annotated[int, typer.Option(
        "--seed", help="Seed for folds and random selections.")] = 0,
    results: Path = ResultsOption,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Output folder (default: the results folder).")] = None,
    quiet: bool = QuietOption,
) -> None:
    """Select the labels (or cases) with the best predicted DSC, e.g. as pseudo-labels.

    Writes selected.csv (case_id, label, predicted_dsc, image_path, label_path) and select.json.

    Example: qsaudit select --top 0.5 --unit case --nnunet-splits splits_final.json
    """
    set_quiet(quiet)
    from qsaudit import atomic
    from qsaudit.analyses.results import load_results, load_truth, results_dir
    from qsaudit.analyses.select import nnunet_splits as make_splits
    from qsaudit.analyses.select import select_labels
    from qsaudit.commands._common import stdout_console, writable_folder
    from qsaudit.errors import UsageError

    if folds < 1:  # checked before any work, so that nothing is written
        raise UsageError(f"--folds {folds}: must be at least 1")
    table = load_results(results)
    truth_table = load_truth(truth) if truth is not None else None
    folder = writable_folder(out or results_dir(results))
    if nnunet_splits is not None:
        if nnunet_splits.is_dir():
            raise UsageError(f'"{nnunet_splits}": --nnunet-splits is a folder; give a file name '
                             "such as splits_final.json")
        writable_folder(nnunet_splits.parent, what="folder of --nnunet-splits")
    result = select_labels(table, top=top, count=count, min_dsc=min_dsc, unit=unit,  # type: ignore[arg-type]
                           case_score=case_score, truth=truth_table,  # type: ignore[arg-type]
                           n_draws=draws, seed=seed)
    written = [atomic.write_text(folder / "selected.csv", result.selected.to_csv(index=False)),
               atomic.write_json(folder / "select.json", result.to_json())]
    if nnunet_splits is not None:
        written.append(atomic.write_json(nnunet_splits,
                                         make_splits(result.cases, folds=folds, seed=seed)))
    units = "labels" if unit == "label" else "cases"
    lines = [(f"Selected {result.n_selected_units} of {result.n_units} {units} "
             f"({len(result.selected)} labels of {len(result.cases)} cases).")]
    if result.n_skipped:
        lines.append(f"Skipped {result.n_skipped} result row(s) that are not ok.")
    t = result.truth
    if t is not None:
        lines.append(f"Mean true DSC: selected {t.selected_mean:.3f}, random selection "
                     f"{t.random_mean:.3f} ± {t.random_sd:.3f}, all {t.all_mean:.3f}.")
    console = stdout_console()
    for line in lines:
        console.print(line, markup=False)
    for path in written:
        typer.echo(f"wrote {path}")
    record(results, "select", written, lines)
