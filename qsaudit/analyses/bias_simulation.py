"""Simulated results + metadata with a known sex/age effect, to check ``analyse_bias``.

Used by ``benchmarks/bias_validity.py`` and the tests: with an effect the analysis must find
it; without one, the share of significant results over seeds must stay near the nominal 5%.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qsaudit.analyses.metadata import Metadata

DEFAULT_STRUCTURES = ("liver", "spleen", "kidney_left", "kidney_right", "pancreas")


def simulate_bias_data(*, n_patients: int = 80, structures: tuple[str, ...] = DEFAULT_STRUCTURES,
                       sex_effect: float = 0.0, age_effect_per_decade: float = 0.0,
                       patient_sd: float = 0.03, label_sd: float = 0.06, seed: int = 0
                       ) -> tuple[pd.DataFrame, Metadata]:
    """A results table (one ok label per patient and structure) and matching metadata.

    predicted_dsc = 0.85 + structure offset + ``sex_effect`` × male + ``age_effect_per_decade``
    × (age − 55)/10 + patient intercept (SD ``patient_sd``) + noise (SD ``label_sd``), clipped
    to [0, 1]. Ages uniform in 20..90 years, sexes with probability 1/2.
    """
    rng = np.random.default_rng(seed)
    ids = [f"s{i + 1:04d}" for i in range(n_patients)]
    male = rng.random(n_patients) < 0.5
    age = rng.uniform(20, 90, n_patients)
    intercept = rng.normal(0, patient_sd, n_patients)
    offsets = rng.normal(0, 0.04, len(structures))
    rows = []
    for i, pid in enumerate(ids):
        for j, s in enumerate(structures):
            mean = (0.85 + offsets[j] + sex_effect * male[i]
                    + age_effect_per_decade * (age[i] - 55) / 10 + intercept[i])
            rows.append({"case_id": pid, "label": s, "structure": s, "status": "ok",
                         "predicted_dsc": float(np.clip(mean + rng.normal(0, label_sd), 0, 1))})
    results = pd.DataFrame(rows)
    for col in ("case_id", "label", "structure", "status"):
        results[col] = results[col].astype("string")
    table = pd.DataFrame({"patient_id": ids, "sex": np.where(male, "M", "F"), "age": age,
                          "institute": rng.choice(["A", "B"], n_patients)})
    table["sex"] = table["sex"].astype("string")
    return results, Metadata(table=table, source="<simulated>", id_col="image_id",
                             sex_col="gender", age_col="age")
