"""``qsaudit budget``: rank labels for correction within an annotation budget."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qsaudit.cli import app
from qsaudit.commands._common import QuietOption, ResultsOption, record, run_command, set_quiet


@app.command("budget")
@run_command
def budget(
    fraction: Annotated[float | None, typer.Option(
        "--fraction", "-f", help="Budget as a fraction (0..1) of the labels/cases, or of the "
        "total cost with --cost slices|voxels.")] = None,
    count: Annotated[int | None, typer.Option(
        "--count", "-n", help="Budget as a number of units.")] = None,
    unit: Annotated[str, typer.Option("--unit", help="label or case.")] = "label",
    cost: Annotated[str, typer.Option(
        "--cost", help="Effort per label: label (1 each), slices or voxels.")] = "label",
    truth: Annotated[Path | None, typer.Option(
        "--truth", help="True DSCs (truth.csv of `qsaudit demo`): simulate.")] = None,
    draws: Annotated[int, typer.Option(
        "--draws", help="Random orderings averaged in the simulation.")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random orderings.")] = 0,
    results: Path = ResultsOption,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Output folder (default: the results folder).")] = None,
    quiet: bool = QuietOption,
) -> None:
    """Rank labels (or cases) for correction, worst first, and pick those a budget buys.

    Writes correction_list.csv and budget.json (and budget.png with --truth).

    Example: qsaudit budget --fraction 0.33 --truth demo/truth.csv
    """
    set_quiet(quiet)
    from qsaudit import atomic
    from qsaudit.analyses.budget import plan_budget
    from qsaudit.analyses.plots import plot_budget_curves
    from qsaudit.analyses.results import load_results, load_truth, results_dir
    from qsaudit.commands._common import stdout_console, writable_folder
    from qsaudit.errors import UsageError

    if fraction is None and count is None:
        raise UsageError("give --fraction F or --count N")
    table = load_results(results)
    truth_table = load_truth(truth) if truth is not None else None
    folder = writable_folder(out or results_dir(results))
    result = plan_budget(table, fraction=fraction, count=count, unit=unit, cost=cost,  # type: ignore[arg-type]
                         truth=truth_table, n_draws=draws, seed=seed)
    written = [atomic.write_text(folder / "correction_list.csv",
                                 result.selected.to_csv(index=False)),
               atomic.write_json(folder / "budget.json", result.to_json())]
    sim = result.simulation
    if sim is not None:
        png = plot_budget_curves(sim.curves, budget=result.fraction)
        written.append(atomic.write_bytes(folder / "budget.png", png))
    units = "labels" if unit == "label" else "cases"
    lines = [(f"Selected {result.n_selected} of {len(result.ranking)} {units} "
             f"({result.spent_fraction:.1%} of the total cost, cost = {cost}).")]
    if result.n_skipped:
        lines.append(f"Skipped {result.n_skipped} result row(s) that are not ok.")
    if sim is not None:
        a = sim.at_budget
        lines.append(f"Mean true DSC at {result.fraction:.0%} budget: qsaudit {a['qsaudit']:.3f}"
                     f", random {a['random']:.3f}, oracle {a['oracle']:.3f} (now "
                     f"{a['none']:.3f}; {sim.n_labels} labels with truth).")
        if sim.saving_vs_random is not None:
            lines.append(f"qsaudit reaches random's quality with {sim.saving_vs_random:.0%} "
                         "less annotation.")
        if sim.n_without_truth:
            lines.append(f"{sim.n_without_truth} label(s) have no true DSC and were left out "
                         "of the simulation.")
    console = stdout_console()
    for line in lines:
        console.print(line, markup=False)
    for path in written:
        typer.echo(f"wrote {path}")
    record(results, "budget", written, lines)
