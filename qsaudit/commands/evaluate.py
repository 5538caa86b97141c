"""``qsaudit evaluate``: compare predicted label quality with the true Dice."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qsaudit.cli import app
from qsaudit.commands._common import QuietOption, ResultsOption, record, run_command, set_quiet


@app.command("evaluate")
@run_command
def evaluate(
    results: Path = ResultsOption,
    truth: Annotated[Path | None, typer.Option(
        "--truth", "-t", help="Table of true Dice (truth.csv of `qsaudit demo`): case_id, "
        "label, true_dsc[, error].")] = None,
    reference: Annotated[Path | None, typer.Option(
        "--reference", help="Reference (expert) masks, same layout and names as the dataset; "
        "the true Dice is recomputed. Needs --dataset.")] = None,
    dataset: Annotated[Path | None, typer.Option(
        "--dataset", "-d", help="The scanned dataset (with --reference).")] = None,
    threshold: Annotated[float, typer.Option(
        "--threshold", help="A label is bad when its true Dice is below this (for AUROC).")
    ] = 0.8,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Output folder (default: the results folder).")] = None,
    quiet: bool = QuietOption,
) -> None:
    """Pearson r, Spearman rho, MAE and AUROC of predicted vs true Dice, per structure and
    per error type, how often the scan's 90% interval holds the true Dice, and the scatter
    plot (the paper's Fig. 3). When the truth names the error of each label (truth.csv's
    error column) and the results have likely_error: its confusion matrix and top-1 accuracy.

    Writes evaluation.csv, evaluation.json and evaluation.png.

    Example: qsaudit evaluate --results qsaudit-report --truth demo/truth.csv
    """
    set_quiet(quiet)
    from qsaudit.analyses.evaluate import (
        evaluate_predictions,
        truth_from_reference,
        write_evaluation,
    )
    from qsaudit.analyses.results import load_results, load_truth, results_dir
    from qsaudit.commands._common import writable_folder
    from qsaudit.errors import UsageError

    if (truth is None) == (reference is None):
        raise UsageError("give either --truth FILE or --reference DIR (with --dataset DIR)")
    if not 0 < threshold <= 1:
        raise UsageError(f"--threshold {threshold}: must be in (0, 1]")
    table = load_results(results)
    if truth is not None:
        truth_table = load_truth(truth)
    else:
        if dataset is None:
            raise UsageError("--reference needs --dataset DIR (the scanned dataset)")
        truth_table = truth_from_reference(dataset, reference)
    folder = writable_folder(out or results_dir(results))
    result = evaluate_predictions(table, truth_table, threshold=threshold)
    paths = write_evaluation(result, folder)
    _render(result)
    for path in paths:
        typer.echo(f"wrote {path}")
    report = _outline_references(results, truth_table)
    if report is not None:
        typer.echo(f"wrote {report} (worst labels outlined against their reference masks)")
    record(results, "evaluate", paths, _summary_lines(result))


def _outline_references(results: Path, truth_table) -> Path | None:
    """Re-render the scan's report with the reference masks outlined on the worst labels, when
    the truth names them (``reference_path``: ``qsaudit demo``'s truth.csv, or --reference)."""
    from qsaudit.analyses.results import results_dir
    from qsaudit.commands._common import os_error_message
    from qsaudit.errors import QsauditError
    from qsaudit.progress import status, stderr_console
    from qsaudit.reports.scan_report import render_report_from_folder

    folder = results_dir(results)
    if "reference_path" not in truth_table.columns or not (folder / "report.html").is_file():
        return None
    values = truth_table["reference_value"] if "reference_value" in truth_table.columns \
        else [None] * len(truth_table)
    references = {(str(c), str(lab)): (path, value) for c, lab, path, value in zip(
        truth_table["case_id"], truth_table["label"], truth_table["reference_path"], values,
        strict=True) if isinstance(path, str) and path}
    if not references:
        return None
    try:
        with status("drawing the reference masks on the report's worst labels"):
            return render_report_from_folder(folder, read_volumes=True, references=references)
    except (QsauditError, OSError) as exc:
        message = os_error_message(exc) if isinstance(exc, OSError) else str(exc)
        stderr_console().print(f"report.html not re-rendered: {message}", markup=False)
        return None


def _summary_lines(result) -> list[str]:
    """The evaluation's overall figures, for the report's home page."""
    import math

    o = result.overall

    def known(key: str) -> bool:
        return o.get(key) is not None and not math.isnan(o[key])

    def f(key: str) -> str:
        return f"{o[key]:.3f}" if known(key) else "–"

    lines = [(f"{o.get('n', 0)} labels with a true DSC, {o.get('n_bad', 0)} bad "
             f"(true DSC < {result.threshold:g})"),
             (f"Pearson r {f('pearson')}, Spearman ρ {f('spearman')}, MAE {f('mae')}, "
             f"AUROC {f('auroc')}")]
    if known("coverage"):
        lines.append(f"the 90% interval held the true DSC for {o['coverage']:.1%} of the labels "
                     f"(mean width {f('width')})")
    return lines


def _render(result) -> None:
    import math

    from rich.table import Table

    from qsaudit.commands._common import stdout_console

    def f(v: float) -> str:
        return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"

    # the interval columns only when the results carry the scan's interval
    intervals = not math.isnan(result.overall.get("coverage", math.nan))
    t = Table(title=f"Predicted vs true Dice (bad = true Dice < {result.threshold:g})",
              title_justify="left")
    names = ["scope", "group", "labels", "bad", "Pearson r", "Spearman ρ", "MAE", "AUROC"]
    for name in names + (["cover", "width"] if intervals else []):
        t.add_column(name, justify="left" if name in ("scope", "group") else "right")
    for row in result.groups.itertuples(index=False):
        cells = [row.scope, row.group, str(row.n), str(row.n_bad), f(row.pearson),
                 f(row.spearman), f(row.mae), f(row.auroc)]
        t.add_row(*cells, *([f(row.coverage), f(row.width)] if intervals else []))
    stdout_console().print(t)
    if result.error_kinds is not None:
        _render_error_kinds(result.error_kinds, result.threshold, f)


def _render_error_kinds(kinds: dict, threshold: float, f) -> None:
    """The confusion matrix of likely_error over bad labels, and its top-1 accuracy."""
    from rich.table import Table

    from qsaudit.commands._common import stdout_console

    seen = list(next(iter(kinds["confusion"].values()), {}))
    t = Table(title=f"likely_error vs the true error (labels with true Dice < {threshold:g}; "
              "rows: true, columns: predicted)", title_justify="left")
    t.add_column("true \\ predicted")
    for name in seen:
        t.add_column(name, justify="right")
    for true_kind, counts in kinds["confusion"].items():
        t.add_row(true_kind, *(str(counts[k]) for k in seen))
    console = stdout_console()
    console.print(t)
    console.print(f"top-1 accuracy over {kinds['n_bad']} bad labels: {f(kinds['top1_bad'])}; "
                  f"perfect labels called none: {f(kinds['none_perfect'])} "
                  f"(of {kinds['n_perfect']})")
