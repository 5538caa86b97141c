"""Validity of ``qsaudit bias``: power with an injected effect, false-positive rate without.

Simulates results tables (one label per patient and structure, a random patient intercept, see
:mod:`qsaudit.analyses.bias_simulation`), runs :func:`qsaudit.analyses.bias.analyse_bias` over
many seeds and prints how often each test is significant at 5%, with a Clopper–Pearson 95%
interval. Without an effect the rate should be at most the nominal 5% (within its interval).

With ``--demo DIR`` (a folder written by ``qsaudit demo``: truth.csv + patients.csv) it also runs
the analysis on the demo's true DSCs, which shows what the demo's injected bias looks like.

    python benchmarks/bias_validity.py --seeds 200
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import stats

from qsaudit.analyses.bias import analyse_bias
from qsaudit.analyses.bias_simulation import simulate_bias_data


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    """Exact 95% interval of a binomial proportion k/n."""
    lo = 0.0 if k == 0 else stats.beta.ppf(0.025, k, n - k + 1)
    hi = 1.0 if k == n else stats.beta.ppf(0.975, k + 1, n - k)
    return float(lo), float(hi)


def rates(seeds: int, patients: int, sex_effect: float, age_effect: float) -> dict[str, int]:
    hits = {"overall sex (joint model)": 0, "overall age (joint model)": 0,
            "any structure, sex (BH)": 0, "any structure, age (BH)": 0, "mixedlm used": 0}
    for seed in range(seeds):
        res, meta = simulate_bias_data(n_patients=patients, sex_effect=sex_effect,
                                       age_effect_per_decade=age_effect, seed=10_000 + seed)
        b = analyse_bias(res, meta)
        per = b.table.iloc[1:]
        hits["overall sex (joint model)"] += b.model.sex_p < 0.05
        hits["overall age (joint model)"] += b.model.age_p < 0.05
        hits["any structure, sex (BH)"] += bool((per["sex_p_adj"] < 0.05).any())
        hits["any structure, age (BH)"] += bool((per["age_p_adj"] < 0.05).any())
        hits["mixedlm used"] += b.model.method == "mixedlm"
    return hits


def demo_check(folder: Path) -> None:
    import pandas as pd

    from qsaudit.analyses.metadata import read_metadata
    from qsaudit.analyses.results import normalise_results

    truth = pd.read_csv(folder / "truth.csv", dtype={"case_id": str, "label": str})
    res = normalise_results(truth.rename(columns={"true_dsc": "predicted_dsc"})
                            .drop(columns=["error"], errors="ignore"))
    b = analyse_bias(res, read_metadata(folder / "patients.csv"))
    print(f"\nDemo {folder} (true DSC used as the prediction):")
    for line in b.summary:
        print("  " + line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--patients", type=int, default=80)
    parser.add_argument("--effect", type=float, default=0.03,
                        help="injected sex effect (male − female) and age effect per decade/2")
    parser.add_argument("--null-only", action="store_true", help="skip the power scenario")
    parser.add_argument("--demo", type=Path, default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    scenarios = [("no effect", 0.0, 0.0), (f"sex +{args.effect}, age -{args.effect / 2}/decade",
                                           args.effect, -args.effect / 2)]
    if args.null_only:
        scenarios = scenarios[:1]
    print(f"{args.seeds} seeds × {args.patients} patients × 5 structures; "
          "share significant at 5% [95% CI]")
    for name, sex, age in scenarios:
        hits = rates(args.seeds, args.patients, sex, age)
        print(f"\n{name}:")
        for test, k in hits.items():
            lo, hi = clopper_pearson(k, args.seeds)
            print(f"  {test:28s} {k / args.seeds:6.1%}  [{lo:.1%}, {hi:.1%}]")
    if args.demo is not None:
        demo_check(args.demo)
    print(f"\n({time.perf_counter() - t0:.0f} s, {np.__name__} {np.__version__})")


if __name__ == "__main__":
    main()
