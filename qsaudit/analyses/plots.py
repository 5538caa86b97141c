"""Matplotlib figures for the analyses (Agg backend, returned as PNG bytes)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd

SEX_COLOURS = {"F": "#d6604d", "M": "#4393c3"}


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height), dpi=100)


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,…`` URI, for self-contained HTML."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def plot_by_sex(data: pd.DataFrame) -> bytes:
    """Box plots of predicted DSC by sex, one row per structure (PNG bytes).

    Horizontal, so that a hundred structures make a taller figure, not a wider one: the page
    shows it at its own size (800 px wide) with readable names, whatever the count.
    """
    structures = sorted(data["structure"].unique(), reverse=True)  # A at the top
    fig, ax = _figure(8.0, max(3.0, 0.3 * len(structures) + 1.4))
    for offset, sex in ((0.18, "F"), (-0.18, "M")):
        values = [data.loc[(data["structure"] == s) & (data["sex"] == sex), "predicted_dsc"]
                  .to_numpy() for s in structures]
        pos = [i + offset for i, v in enumerate(values) if len(v)]
        vals = [v for v in values if len(v)]
        if not vals:
            continue
        box = ax.boxplot(vals, positions=pos, widths=0.32, patch_artist=True, showfliers=True,
                         orientation="horizontal", flierprops={"markersize": 3})
        for patch in box["boxes"]:
            patch.set_facecolor(SEX_COLOURS[sex])
            patch.set_alpha(0.7)
        ax.plot([], [], "s", color=SEX_COLOURS[sex], label="female" if sex == "F" else "male")
    ax.set_yticks(range(len(structures)))
    ax.set_yticklabels(structures, fontsize=9)
    ax.set_ylim(-0.6, len(structures) - 0.4)
    ax.set_xlabel("predicted DSC")
    ax.set_title("Predicted DSC by sex")
    ax.grid(axis="x", color="#e5e5e5")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _png(fig)


def plot_vs_age(data: pd.DataFrame) -> bytes:
    """Predicted DSC (one point per label) against age with a LOWESS trend per sex (PNG)."""
    from statsmodels.nonparametric.smoothers_lowess import lowess

    fig, ax = _figure(7.0, 4.5)
    d = data.dropna(subset=["age"])
    groups = [("F", d[d["sex"] == "F"]), ("M", d[d["sex"] == "M"]),
              ("?", d[d["sex"].isna()])]
    for sex, g in groups:
        if g.empty:
            continue
        colour = SEX_COLOURS.get(sex, "#999999")
        name = {"F": "female", "M": "male"}.get(sex, "sex unknown")
        ax.scatter(g["age"], g["predicted_dsc"], s=8, alpha=0.35, color=colour, label=name)
        if g["age"].nunique() >= 5:
            trend = lowess(g["predicted_dsc"].to_numpy(), g["age"].to_numpy(), frac=0.6)
            ax.plot(trend[:, 0], trend[:, 1], color=colour, linewidth=2)
    if len(d) and d["age"].nunique() >= 5:
        trend = lowess(d["predicted_dsc"].to_numpy(), d["age"].to_numpy(), frac=0.6)
        ax.plot(trend[:, 0], trend[:, 1], color="black", linewidth=1.5, linestyle="--",
                label="all (LOWESS)")
    ax.set_xlabel("age (years)")
    ax.set_ylabel("predicted DSC")
    ax.set_title("Predicted DSC vs age")
    ax.legend(loc="lower left")
    return _png(fig)


def plot_budget_curves(curves: dict[str, list[list[float]]], *, budget: float | None) -> bytes:
    """Mean dataset DSC vs annotation budget for each ranking (PNG bytes)."""
    fig, ax = _figure(6.5, 4.5)
    styles = {"qsaudit": ("#1b7837", "-"), "random": ("#777777", "--"),
              "oracle": ("#762a83", ":")}
    for name, points in curves.items():
        arr = np.asarray(points, dtype=float)
        colour, style = styles.get(name, ("#333333", "-"))
        ax.plot(arr[:, 0] * 100, arr[:, 1], style, color=colour, label=name, linewidth=2)
    if budget is not None:
        ax.axvline(budget * 100, color="#bbbbbb", linewidth=1)
    ax.set_xlabel("annotation budget (% of total cost)")
    ax.set_ylabel("mean true DSC of the dataset")
    ax.set_title("Quality after correcting the ranked labels")
    ax.legend(loc="lower right")
    return _png(fig)
