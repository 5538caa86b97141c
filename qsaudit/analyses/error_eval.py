"""How well ``likely_error`` names what is wrong: a confusion matrix and top-1 accuracy.

Needs results with the ``likely_error`` column (a model with an error classifier) and a truth
table whose ``error`` column names how each label was made (``qsaudit demo``'s truth.csv: a
degradation name, or ``none``). Degradation names are mapped onto the error kinds by
``qsaudit.inference.error_kinds.kind_of_source`` (the same mapping training uses), and a label
whose true Dice is at least ``NONE_DSC`` counts as ``none`` whatever made it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from qsaudit.inference.error_kinds import ERROR_KINDS, kind_of_source

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def error_kind_evaluation(table: pd.DataFrame, *, threshold: float = 0.8
                          ) -> dict[str, Any] | None:
    """Metrics of ``likely_error`` against the true kinds of a matched evaluation table
    (columns ``error``, ``true_dsc``, ``likely_error``); None when either is missing.

    Returns ``n_bad`` (labels of known kind with true Dice < ``threshold``), ``top1_bad``
    (share of them whose kind is named), ``n_perfect`` / ``none_perfect`` (labels made
    without error (``none``) and the share called ``none``), ``per_kind`` ({kind: top-1 over
    its bad labels}) and ``confusion`` ({true kind: {predicted kind: count}} over the bad
    labels, in vocabulary order).
    """
    if "likely_error" not in table.columns or "error" not in table.columns:
        return None
    predicted = table["likely_error"].astype("string")
    if predicted.isna().all():
        return None
    # a label whose error the truth does not name ("unknown") has no true kind, however good
    true_kind = np.array([kind_of_source(e, t) if kind_of_source(e) is not None else None
                          for e, t in zip(table["error"].astype(str), table["true_dsc"],
                                          strict=True)], dtype=object)
    known = np.array([k is not None for k in true_kind])
    if not known.any():
        return None
    pred = np.array([p or None for p in predicted.fillna("").tolist()], dtype=object)
    bad = known & (table["true_dsc"].to_numpy(dtype=np.float64) < threshold)
    perfect = (table["error"].astype(str) == "none").to_numpy()
    hits = pred == true_kind
    per_kind = {k: float(hits[bad & (true_kind == k)].mean()) for k in ERROR_KINDS
                if (bad & (true_kind == k)).any()}
    seen = [k for k in ERROR_KINDS if k in set(true_kind[bad]) | set(pred[bad])]
    confusion = {t: dict.fromkeys(seen, 0) for t in seen if (true_kind[bad] == t).any()}
    for t, p in zip(true_kind[bad], pred[bad], strict=True):
        if p in seen:
            confusion[t][p] += 1
    return {"n_bad": int(bad.sum()),
            "top1_bad": float(hits[bad].mean()) if bad.any() else float("nan"),
            "n_perfect": int(perfect.sum()),
            "none_perfect": float((pred[perfect] == "none").mean()) if perfect.any()
            else float("nan"),
            "per_kind": per_kind, "confusion": confusion}
