"""The statistics behind ``qsaudit bias``: sex and age effects on predicted Dice.

Assumptions, stated once:

* Within one structure every patient contributes at most one label, so the per-structure tests
  (Welch t, Mann–Whitney U, Spearman, OLS) treat labels as independent observations.
* Across structures the labels of one patient are correlated; the overall effects therefore come
  from one joint model with a random intercept per patient (statsmodels ``MixedLM``), or, when
  that fails to converge or is not identifiable, OLS with standard errors clustered by patient.
* Sex and age are patient-level, so their joint-model tests use a t distribution with
  patients − patient-level parameters degrees of freedom ("between-within" method).
* Effects are on the predicted-DSC scale (0..1): sex = mean of male minus mean of female; age =
  change per decade (10 years). Intervals are 95%, tests two-sided.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

AGE_BINS = (0.0, 40.0, 50.0, 60.0, 70.0, 80.0, math.inf)
CI_LEVEL = 0.95


@dataclass(frozen=True)
class SexTest:
    """Male − female difference in predicted DSC for one group of independent labels."""

    n_m: int
    n_f: int
    mean_m: float
    mean_f: float
    effect: float            # mean_m − mean_f
    ci: tuple[float, float]  # Welch 95% CI of the difference
    p: float                 # Welch t-test
    cohen_d: float           # difference / pooled SD
    p_mannwhitney: float
    rank_biserial: float     # P(M > F) − P(F > M), in [-1, 1]


@dataclass(frozen=True)
class AgeTest:
    """Relation of predicted DSC with age (years) for one group of independent labels."""

    n: int
    rho: float                           # Spearman
    p_spearman: float
    effect_per_decade: float             # OLS slope × 10
    ci: tuple[float, float]
    p: float                             # OLS slope t-test


@dataclass(frozen=True)
class JointModel:
    """Joint model ``predicted_dsc ~ male + age_decades + C(structure) (+ covariates)``."""

    method: str                  # "mixedlm" or "ols_cluster" (or "none" when not estimable)
    note: str
    n_labels: int
    n_patients: int
    sex_effect: float
    sex_ci: tuple[float, float]
    sex_p: float
    age_effect_per_decade: float
    age_ci: tuple[float, float]
    age_p: float


NAN = float("nan")
NAN_CI = (NAN, NAN)


def sex_test(male: np.ndarray, female: np.ndarray) -> SexTest:
    """Welch t-test, Mann–Whitney U and effect sizes for two samples of predicted DSC.

    Needs at least 2 values per sex for the t-test (NaN otherwise).
    """
    from scipy import stats

    m = np.asarray(male, dtype=float)
    f = np.asarray(female, dtype=float)
    nm, nf = len(m), len(f)
    mean_m = float(m.mean()) if nm else NAN
    mean_f = float(f.mean()) if nf else NAN
    diff = mean_m - mean_f
    if nm < 2 or nf < 2:
        return SexTest(nm, nf, mean_m, mean_f, diff, NAN_CI, NAN, NAN, NAN, NAN)
    vm, vf = m.var(ddof=1), f.var(ddof=1)
    se = math.sqrt(vm / nm + vf / nf)
    if se == 0:
        p, ci = (1.0 if diff == 0 else 0.0), (diff, diff)
    else:
        df = (vm / nm + vf / nf) ** 2 / ((vm / nm) ** 2 / (nm - 1) + (vf / nf) ** 2 / (nf - 1))
        tcrit = stats.t.ppf(0.5 + CI_LEVEL / 2, df)
        p = float(2 * stats.t.sf(abs(diff / se), df))
        ci = (diff - tcrit * se, diff + tcrit * se)
    pooled = math.sqrt(((nm - 1) * vm + (nf - 1) * vf) / (nm + nf - 2))
    d = diff / pooled if pooled > 0 else NAN
    if np.ptp(np.concatenate([m, f])) == 0:
        p_mw, rbc = 1.0, 0.0
    else:
        u = stats.mannwhitneyu(m, f, alternative="two-sided")
        p_mw = float(u.pvalue)
        rbc = float(2 * u.statistic / (nm * nf) - 1)
    return SexTest(nm, nf, mean_m, mean_f, diff, (float(ci[0]), float(ci[1])), float(p),
                   float(d), p_mw, rbc)


def age_test(age: np.ndarray, dsc: np.ndarray) -> AgeTest:
    """Spearman ρ and the OLS slope of predicted DSC on age (per decade), with a 95% CI.

    Needs at least 3 labels with distinct ages (NaN otherwise).
    """
    from scipy import stats

    a = np.asarray(age, dtype=float)
    y = np.asarray(dsc, dtype=float)
    n = len(a)
    if n < 3 or np.ptp(a) == 0:
        return AgeTest(n, NAN, NAN, NAN, NAN_CI, NAN)
    if np.ptp(y) == 0:
        return AgeTest(n, NAN, NAN, 0.0, (0.0, 0.0), 1.0)
    rho, p_rho = stats.spearmanr(a, y)
    fit = stats.linregress(a / 10.0, y)
    tcrit = stats.t.ppf(0.5 + CI_LEVEL / 2, n - 2)
    ci = (fit.slope - tcrit * fit.stderr, fit.slope + tcrit * fit.stderr)
    return AgeTest(n, float(rho), float(p_rho), float(fit.slope), (float(ci[0]), float(ci[1])),
                   float(fit.pvalue))


def age_groups(table: pd.DataFrame) -> pd.DataFrame:
    """Predicted DSC by age group (<40, 40–49, …, ≥80): n labels, patients, mean, SD.

    Also returns, as ``table.attrs["p_kruskal"]``, the Kruskal–Wallis p over patient means.
    """
    from scipy import stats

    t = table.dropna(subset=["age"])
    labels = ["<40", "40-49", "50-59", "60-69", "70-79", ">=80"]
    group = pd.cut(t["age"], bins=list(AGE_BINS), right=False, labels=labels)
    out = (t.assign(age_group=group).groupby("age_group", observed=False)
           .agg(n_labels=("predicted_dsc", "size"), n_patients=("patient_id", "nunique"),
                mean_dsc=("predicted_dsc", "mean"), sd_dsc=("predicted_dsc", "std"))
           .reset_index())
    out["age_group"] = out["age_group"].astype(str)
    patient = t.assign(age_group=group).groupby(["age_group", "patient_id"], observed=True)[
        "predicted_dsc"].mean().reset_index()
    samples = [g["predicted_dsc"].to_numpy() for _, g in patient.groupby("age_group",
                                                                         observed=True)]
    samples = [s for s in samples if len(s) > 0]
    p = NAN
    if len(samples) >= 2 and np.ptp(np.concatenate(samples)) > 0:
        p = float(stats.kruskal(*samples).pvalue)
    out.attrs["p_kruskal"] = p
    return out


def benjamini_hochberg(pvalues: list[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values; NaN stays NaN and is not counted as a test."""
    arr = np.asarray(pvalues, dtype=float)
    out = np.full(arr.shape, np.nan)
    ok = ~np.isnan(arr)
    m = int(ok.sum())
    if m == 0:
        return out.tolist()
    p = arr[ok]
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    adj = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
    res = np.empty(m)
    res[order] = adj
    out[ok] = res
    return out.tolist()


def _formula(data: pd.DataFrame, covariates: tuple[str, ...]) -> str:
    terms = ["male", "age_decades"]
    if data["structure"].nunique() > 1:
        terms.append("C(structure)")
    for cov in covariates:
        if data[cov].nunique() > 1:
            terms.append(f"C({cov})")
    return "predicted_dsc ~ " + " + ".join(terms)


def joint_model(table: pd.DataFrame, *, covariates: tuple[str, ...] = ()) -> JointModel:
    """Fit the joint model over labels with known sex and age.

    ``table`` needs ``predicted_dsc``, ``sex`` ("M"/"F"), ``age`` (years), ``structure``,
    ``patient_id`` and the covariate columns. Tries MixedLM (REML, random intercept per
    patient); falls back to OLS with patient-clustered SEs and says so in ``note``.
    """
    import statsmodels.formula.api as smf
    from scipy import stats
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    data = table.dropna(subset=["predicted_dsc", "sex", "age"]).copy()
    for cov in covariates:
        data[cov] = data[cov].astype(str)
    data["male"] = (data["sex"] == "M").astype(float)
    data["age_decades"] = data["age"].astype(float) / 10.0
    n, n_pat = len(data), int(data["patient_id"].nunique())
    empty = JointModel("none", "", n, n_pat, NAN, NAN_CI, NAN, NAN, NAN_CI, NAN)
    if n < 4 or data["male"].nunique() < 2 and data["age_decades"].nunique() < 2:
        return _replace_note(empty, "too few labels with known sex and age for a joint model")
    formula = _formula(data, covariates)
    if data["male"].nunique() < 2:
        formula = formula.replace("male + ", "")
    if data["age_decades"].nunique() < 2:
        formula = formula.replace(" + age_decades", "").replace("age_decades + ", "")
    note = ""
    result, method = None, "mixedlm"
    if n_pat < n:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fit = smf.mixedlm(formula, data, groups=data["patient_id"]).fit(reml=True)
            # A variance estimate on the boundary (≈ 0) is a valid fit, not a failure.
            serious = [w for w in caught if issubclass(w.category, ConvergenceWarning)
                       and "boundary" not in str(w.message)]
            boundary = float(np.asarray(fit.cov_re).ravel()[0]) < 1e-8
            failed = (not getattr(fit, "converged", True) or bool(serious)
                      or not np.all(np.isfinite(fit.bse_fe)))
            if failed:
                note = "MixedLM did not converge; "
            else:
                result = fit
        except (ValueError, np.linalg.LinAlgError) as exc:
            note = f"MixedLM failed ({str(exc).splitlines()[0]}); "
    else:
        note = "one label per patient, so no random intercept is needed; "
    if result is None:
        method = "ols_cluster"
        groups = pd.factorize(data["patient_id"])[0]
        result = smf.ols(formula, data).fit(cov_type="cluster", cov_kwds={"groups": groups})
        note += "used OLS with standard errors clustered by patient"
    else:
        note = "linear mixed model with a random intercept per patient (REML)"
        if boundary:
            note += "; the patient variance is estimated at the boundary (about 0)"
    params, bse = result.params, result.bse
    # Sex and age vary between patients only, so their tests use a t distribution with
    # "between-within" degrees of freedom: patients minus patient-level parameters (the Wald z
    # of MixedLM / clustered OLS is liberal with tens of patients).
    n_between = 1 + sum(1 for name in params.index
                        if not name.startswith("C(structure)") and name != "Intercept"
                        and name in result.model.exog_names)
    df_bw = max(n_pat - n_between, 1)
    tcrit = stats.t.ppf(0.5 + CI_LEVEL / 2, df_bw)

    def get(name: str) -> tuple[float, tuple[float, float], float]:
        if name not in params.index or not np.isfinite(bse[name]) or bse[name] <= 0:
            return NAN, NAN_CI, NAN
        est, se = float(params[name]), float(bse[name])
        p = float(2 * stats.t.sf(abs(est / se), df_bw))
        return est, (float(est - tcrit * se), float(est + tcrit * se)), p

    s_eff, s_ci, s_p = get("male")
    a_eff, a_ci, a_p = get("age_decades")
    return JointModel(method, note, n, n_pat, s_eff, s_ci, s_p, a_eff, a_ci, a_p)


def _replace_note(model: JointModel, note: str) -> JointModel:
    from dataclasses import replace

    return replace(model, note=note)
