"""``qsaudit bias``: is predicted label quality different between sexes or across ages?

:func:`analyse_bias` joins ok result rows to patient metadata and returns a :class:`BiasResult`
holding the per-structure table (``bias.csv``), the JSON contract (``bias.json``) and plain-words
summary sentences. Statistics and their assumptions are in :mod:`qsaudit.analyses.bias_stats`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from qsaudit.analyses.bias_stats import (
    JointModel,
    age_groups,
    age_test,
    benjamini_hochberg,
    joint_model,
    sex_test,
)
from qsaudit.analyses.metadata import JoinedData, Metadata, join_metadata
from qsaudit.analyses.results import ok_rows
from qsaudit.errors import AnalysisError, UsageError

ALPHA = 0.05
OVERALL = "(overall)"
MAX_LISTED = 50


@dataclass(frozen=True)
class BiasResult:
    """Outcome of :func:`analyse_bias`.

    ``table``: one row per structure plus an ``(overall)`` row (the ``bias.csv`` columns).
    ``data``: the analysed label rows (for plots). ``model``: the joint model. ``summary``:
    plain-words sentences. ``n_skipped``: result rows not ok.
    """

    table: pd.DataFrame
    data: pd.DataFrame
    model: JointModel
    groups: pd.DataFrame
    joined: JoinedData
    n_skipped: int
    covariates: tuple[str, ...]
    summary: list[str]

    def to_json(self) -> dict[str, Any]:
        """The stable ``bias.json`` contract (effects on the predicted-DSC scale)."""
        structures: dict[str, Any] = {}
        for row in self.table[self.table["structure"] != OVERALL].itertuples(index=False):
            structures[row.structure] = {
                "n_labels": int(row.n_labels),
                "sex": {"effect": row.sex_effect, "ci": [row.sex_ci_low, row.sex_ci_high],
                        "p": row.sex_p, "p_adj": row.sex_p_adj, "n_m": int(row.n_m),
                        "n_f": int(row.n_f), "mean_m": row.mean_m, "mean_f": row.mean_f,
                        "cohen_d": row.cohen_d, "p_mannwhitney": row.p_mannwhitney,
                        "rank_biserial": row.rank_biserial},
                "age": {"effect_per_decade": row.age_effect_per_decade,
                        "ci": [row.age_ci_low, row.age_ci_high], "p": row.age_p,
                        "p_adj": row.age_p_adj, "rho": row.rho, "p_spearman": row.p_spearman,
                        "n": int(row.n_age)},
            }
        m = self.model
        j = self.joined
        return {
            "overall": {
                "sex": {"effect": m.sex_effect, "ci": list(m.sex_ci), "p": m.sex_p},
                "age": {"effect_per_decade": m.age_effect_per_decade, "ci": list(m.age_ci),
                        "p": m.age_p},
                "model": {"method": m.method, "note": m.note, "covariates": list(self.covariates),
                          "n_labels": m.n_labels, "n_patients": m.n_patients},
                "age_groups": self.groups.to_dict(orient="records"),
                "age_groups_p_kruskal": self.groups.attrs.get("p_kruskal"),
            },
            "structures": structures,
            "n_cases": int(self.data["patient_id"].nunique()),
            "n_labels": len(self.data),
            "n_skipped_not_ok": self.n_skipped,
            "unmatched": {
                "cases_without_metadata": j.cases_without_metadata[:MAX_LISTED],
                "n_cases_without_metadata": len(j.cases_without_metadata),
                "metadata_without_cases": j.metadata_without_cases[:MAX_LISTED],
                "n_metadata_without_cases": len(j.metadata_without_cases),
                "cases_missing_sex": j.cases_missing_sex[:MAX_LISTED],
                "cases_missing_age": j.cases_missing_age[:MAX_LISTED],
            },
            "summary": self.summary,
        }


def _structure_rows(data: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for name, g in data.groupby("structure", sort=True):
        sx = g.dropna(subset=["sex"])
        st = sex_test(sx.loc[sx["sex"] == "M", "predicted_dsc"].to_numpy(),
                      sx.loc[sx["sex"] == "F", "predicted_dsc"].to_numpy())
        ag = g.dropna(subset=["age"])
        at = age_test(ag["age"].to_numpy(), ag["predicted_dsc"].to_numpy())
        rows.append(_row(str(name), len(g), st, at))
    table = pd.DataFrame(rows)
    if len(table):
        table["sex_p_adj"] = benjamini_hochberg(table["sex_p"].tolist())
        table["age_p_adj"] = benjamini_hochberg(table["age_p"].tolist())
    return table


def _row(name: str, n: int, st, at) -> dict[str, Any]:
    return {"structure": name, "n_labels": n, "n_m": st.n_m, "n_f": st.n_f,
            "mean_m": st.mean_m, "mean_f": st.mean_f, "sex_effect": st.effect,
            "sex_ci_low": st.ci[0], "sex_ci_high": st.ci[1], "sex_p": st.p,
            "sex_p_adj": np.nan, "cohen_d": st.cohen_d, "p_mannwhitney": st.p_mannwhitney,
            "rank_biserial": st.rank_biserial, "n_age": at.n, "rho": at.rho,
            "p_spearman": at.p_spearman, "age_effect_per_decade": at.effect_per_decade,
            "age_ci_low": at.ci[0], "age_ci_high": at.ci[1], "age_p": at.p, "age_p_adj": np.nan}


def _overall_row(data: pd.DataFrame, model: JointModel) -> dict[str, Any]:
    # Descriptive columns and the rank tests use one mean per patient (independent units);
    # the effect, CI and p come from the joint model.
    patient = data.groupby("patient_id").agg(predicted_dsc=("predicted_dsc", "mean"),
                                             sex=("sex", "first"), age=("age", "first"))
    sx = patient.dropna(subset=["sex"])
    st = sex_test(sx.loc[sx["sex"] == "M", "predicted_dsc"].to_numpy(),
                  sx.loc[sx["sex"] == "F", "predicted_dsc"].to_numpy())
    ag = patient.dropna(subset=["age"])
    at = age_test(ag["age"].to_numpy(), ag["predicted_dsc"].to_numpy())
    row = _row(OVERALL, len(data), st, at)
    row.update(sex_effect=model.sex_effect, sex_ci_low=model.sex_ci[0],
               sex_ci_high=model.sex_ci[1], sex_p=model.sex_p, sex_p_adj=model.sex_p,
               age_effect_per_decade=model.age_effect_per_decade, age_ci_low=model.age_ci[0],
               age_ci_high=model.age_ci[1], age_p=model.age_p, age_p_adj=model.age_p)
    return row


def analyse_bias(results: pd.DataFrame, meta: Metadata, *, covariates: tuple[str, ...] = (),
                 alpha: float = ALPHA) -> BiasResult:
    """Sex and age effects on predicted DSC, per structure and overall.

    ``results``: a results table (see :func:`qsaudit.analyses.results.load_results`); only ok
    rows are used. ``covariates``: metadata columns (e.g. ``institute``, ``manufacturer``)
    added to the joint model as categorical terms. ``alpha``: significance level after
    Benjamini–Hochberg correction across structures.
    """
    reserved = [c for c in covariates if c in ("sex", "age", "patient_id", "structure")]
    if reserved:
        raise UsageError(f"covariate {reserved[0]} is already in the model; name other "
                         "metadata columns (e.g. institute, manufacturer)")
    missing = [c for c in covariates if c not in meta.table.columns]
    if missing:
        raise UsageError(f'"{meta.source}": no covariate column {", ".join(missing)}; columns '
                         f'are {", ".join(meta.table.columns)}')
    ok, n_skipped = ok_rows(results)
    joined = join_metadata(ok, meta)
    data = joined.table
    if data.empty:
        raise AnalysisError(f'"{meta.source}": no case of the results has metadata (e.g. case '
                            f'"{ok["case_id"].iloc[0] if len(ok) else "?"}"); check --id-col')
    model = joint_model(data, covariates=covariates)
    table = _structure_rows(data)
    table = pd.concat([pd.DataFrame([_overall_row(data, model)]), table], ignore_index=True)
    groups = age_groups(data)
    summary = summarise(table, model, joined, alpha=alpha, n_skipped=n_skipped)
    return BiasResult(table=table, data=data, model=model, groups=groups, joined=joined,
                      n_skipped=n_skipped, covariates=tuple(covariates), summary=summary)


def _fmt_p(p: float) -> str:
    if math.isnan(p):
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def summarise(table: pd.DataFrame, model: JointModel, joined: JoinedData, *,
              alpha: float = ALPHA, n_skipped: int = 0) -> list[str]:
    """Plain-words sentences: what is significant, in which direction and how big."""
    out: list[str] = []
    s, a = model.sex_effect, model.age_effect_per_decade
    if not math.isnan(s):
        who = "male" if s > 0 else "female"
        verdict = "significant" if model.sex_p < alpha else "not significant"
        out.append(f"Overall, labels of {who} patients have a {abs(s):.3f} higher predicted DSC "
                   f"(male − female {s:+.3f}, 95% CI {model.sex_ci[0]:+.3f} to "
                   f"{model.sex_ci[1]:+.3f}, {_fmt_p(model.sex_p)}): {verdict} at {alpha:g}.")
    else:
        out.append("The overall sex effect could not be estimated (one sex only, or too few "
                   "labels).")
    if not math.isnan(a):
        way = "rises" if a > 0 else "falls"
        verdict = "significant" if model.age_p < alpha else "not significant"
        out.append(f"Overall, predicted DSC {way} by {abs(a):.3f} per decade of age (95% CI "
                   f"{model.age_ci[0]:+.3f} to {model.age_ci[1]:+.3f}, {_fmt_p(model.age_p)}): "
                   f"{verdict} at {alpha:g}.")
    else:
        out.append("The overall age effect could not be estimated (ages missing or constant).")
    out.append(f"Joint model: {model.note}.")
    per = table[table["structure"] != OVERALL]
    for what, col, eff, unit in (("sex", "sex_p_adj", "sex_effect", "male − female"),
                                 ("age", "age_p_adj", "age_effect_per_decade", "per decade")):
        sig = per[per[col] < alpha]
        if sig.empty:
            out.append(f"No structure shows a significant {what} difference after "
                       f"Benjamini–Hochberg correction ({len(per)} structures tested).")
        else:
            items = ", ".join(f"{r.structure} ({getattr(r, eff):+.3f} {unit}, "
                              f"adjusted {_fmt_p(getattr(r, col))})"
                              for r in sig.itertuples(index=False))
            out.append(f"{len(sig)} of {len(per)} structures differ by {what} after "
                       f"Benjamini–Hochberg correction: {items}.")
    notes = []
    if joined.cases_without_metadata:
        notes.append(f"{len(joined.cases_without_metadata)} case(s) without metadata")
    if joined.metadata_without_cases:
        notes.append(f"{len(joined.metadata_without_cases)} metadata row(s) without a case")
    if joined.cases_missing_sex:
        notes.append(f"{len(joined.cases_missing_sex)} case(s) with unknown sex")
    if joined.cases_missing_age:
        notes.append(f"{len(joined.cases_missing_age)} case(s) with unknown age")
    if n_skipped:
        notes.append(f"{n_skipped} result row(s) not ok and skipped")
    if notes:
        out.append("Not analysed: " + "; ".join(notes) + ".")
    return out
