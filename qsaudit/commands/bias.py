"""``qsaudit bias``: predicted label quality by patient sex and age."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qsaudit.cli import app
from qsaudit.commands._common import QuietOption, ResultsOption, record, run_command, set_quiet


@app.command("bias")
@run_command
def bias(
    meta: Annotated[Path, typer.Option(
        "--meta", "-m", help="Patient metadata (TotalSegmentator meta.csv or any CSV/TSV).")],
    results: Path = ResultsOption,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Output folder (default: the results folder).")] = None,
    id_col: Annotated[str | None, typer.Option(
        "--id-col", help="Metadata column of case ids (default: image_id, case_id, …).")] = None,
    sex_col: Annotated[str | None, typer.Option(
        "--sex-col", help="Metadata column of sex (default: gender or sex).")] = None,
    age_col: Annotated[str | None, typer.Option(
        "--age-col", help="Metadata column of age (default: age).")] = None,
    sex_map: Annotated[str | None, typer.Option(
        "--sex-map", help="Codes of the sex column, e.g. 0=F,1=M.")] = None,
    covariate: Annotated[list[str] | None, typer.Option(
        "--covariate", "-c", help="Metadata column added to the joint model (repeatable), "
        "e.g. institute.")] = None,
    alpha: Annotated[float, typer.Option(
        "--alpha", help="Significance level (after Benjamini–Hochberg).")] = 0.05,
    html: Annotated[bool, typer.Option("--html/--no-html", help="Write bias.html.")] = True,
    quiet: bool = QuietOption,
) -> None:
    """Test whether predicted label quality differs by sex or age, per structure and overall.

    Writes bias.csv, bias.json and bias.html into the results folder.

    Example: qsaudit bias --meta meta.csv --results qsaudit-report --covariate institute
    """
    set_quiet(quiet)
    from qsaudit.analyses.bias import analyse_bias
    from qsaudit.analyses.bias_report import write_bias_outputs
    from qsaudit.analyses.metadata import parse_sex_map, read_metadata
    from qsaudit.analyses.results import load_results, results_dir
    from qsaudit.commands._common import writable_folder
    from qsaudit.errors import UsageError
    from qsaudit.progress import stderr_console
    from qsaudit.reports.hub import home_link

    if not 0 < alpha < 1:
        raise UsageError(f"--alpha {alpha}: must be between 0 and 1")
    table = load_results(results)
    metadata = read_metadata(meta, id_col=id_col, sex_col=sex_col, age_col=age_col,
                             sex_map=parse_sex_map(sex_map))
    folder = writable_folder(out or results_dir(results))
    with stderr_console().status("Fitting the bias models…"):
        result = analyse_bias(table, metadata, covariates=tuple(covariate or ()), alpha=alpha)
    paths = write_bias_outputs(result, folder, html=html,
                               home=home_link(folder, results_dir(results)))
    _render(result, alpha)
    for path in paths.values():
        typer.echo(f"wrote {path}")
    record(results, "bias", [paths[k] for k in ("html", "json", "csv") if k in paths],
           result.summary)


def _render(result, alpha: float) -> None:
    import math

    from rich.table import Table

    from qsaudit.commands._common import stdout_console

    def f(v: float, d: int = 3) -> str:
        return "–" if math.isnan(v) else f"{v:+.{d}f}"

    def p(v: float) -> str:
        return "–" if math.isnan(v) else ("<0.001" if v < 0.001 else f"{v:.3f}")

    t = Table(title="Predicted DSC by sex and age", title_justify="left")
    for name in ("structure", "labels", "M/F", "sex: M − F", "sex 95% CI", "sex p adj",
                 "age: per decade", "age 95% CI", "age p adj"):
        t.add_column(name, justify="left" if name == "structure" else "right")
    for r in result.table.itertuples(index=False):
        sig_s = "bold red" if r.sex_p_adj < alpha else ""
        sig_a = "bold red" if r.age_p_adj < alpha else ""
        t.add_row(r.structure, str(r.n_labels), f"{r.n_m}/{r.n_f}", f(r.sex_effect),
                  f"{f(r.sex_ci_low)}…{f(r.sex_ci_high)}", f"[{sig_s}]{p(r.sex_p_adj)}[/]"
                  if sig_s else p(r.sex_p_adj), f(r.age_effect_per_decade, 4),
                  f"{f(r.age_ci_low, 4)}…{f(r.age_ci_high, 4)}",
                  f"[{sig_a}]{p(r.age_p_adj)}[/]" if sig_a else p(r.age_p_adj))
    console = stdout_console()
    console.print(t)
    for line in result.summary:
        console.print(f"• {line}", markup=False)
