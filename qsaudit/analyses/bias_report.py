"""Write the outputs of ``qsaudit bias``: bias.csv, bias.json and a self-contained bias.html."""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path

import qsaudit
from qsaudit import atomic
from qsaudit.analyses.bias import BiasResult
from qsaudit.analyses.plots import data_uri, plot_by_sex, plot_vs_age
from qsaudit.errors import AnalysisError
from qsaudit.reports.scan_report import templates_dir


def render_bias_html(result: BiasResult, *, home: str | None = None) -> str:
    """The HTML report (plots inlined as base64 PNGs; no external resources); ``home``: the
    link back to the scan's report.html, when there is one."""
    import jinja2

    folder = templates_dir()
    if not (folder / "bias.html.j2").is_file():
        raise AnalysisError(f'"{folder / "bias.html.j2"}": report template missing')
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    env.filters["num"] = _num
    env.filters["pval"] = _pval
    table = result.table.to_dict(orient="records")
    return env.get_template("bias.html.j2").render(
        summary=result.summary, rows=table, groups=result.groups.to_dict(orient="records"),
        p_kruskal=result.groups.attrs.get("p_kruskal"), model=result.model,
        joined=result.joined, n_skipped=result.n_skipped, covariates=result.covariates,
        n_cases=int(result.data["patient_id"].nunique()), n_labels=len(result.data),
        plot_sex=data_uri(plot_by_sex(result.data)), plot_age=data_uri(plot_vs_age(result.data)),
        created=_dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M"),
        version=qsaudit.__version__, home=home)


def write_bias_outputs(result: BiasResult, out_dir: str | Path, *, html: bool = True,
                       home: str | None = None) -> dict[str, Path]:
    """Write ``bias.csv``, ``bias.json`` and (optionally) ``bias.html`` atomically; ``home``:
    see :func:`render_bias_html`."""
    out = Path(out_dir)
    paths = {
        "csv": atomic.write_text(out / "bias.csv", result.table.to_csv(index=False)),
        "json": atomic.write_json(out / "bias.json", result.to_json()),
    }
    if html:
        paths["html"] = atomic.write_text(out / "bias.html", render_bias_html(result, home=home))
    return paths


def _num(value, digits: int = 3) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if math.isnan(v) else f"{v:.{digits}f}"


def _pval(value) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    if math.isnan(v):
        return "–"
    return "<0.001" if v < 0.001 else f"{v:.3f}"
