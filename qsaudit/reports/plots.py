"""Figures of the HTML report: the predicted-DSC distribution per structure and slice sparklines.

The distribution plot is a matplotlib figure (Agg backend) returned as an inline PNG data URI; the
slice-quality profile is a tiny inline SVG string. Neither touches the network or the disk.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd

# Above this many labels of one structure the strip shows a seeded random subset (the box uses all).
MAX_STRIP_POINTS = 400
# Reference lines drawn on both figures (predicted DSC): below 0.5 = bad, below 0.8 = doubtful.
DSC_LINES = (0.5, 0.8)


def dsc_distribution_png(
    results: pd.DataFrame, *, seed: int = 0, max_structures: int = 150
) -> str | None:
    """Box + strip plot of ``predicted_dsc`` per structure, worst median at the top.

    ``results`` has ``predicted_dsc`` and ``structure`` (falls back to ``label`` when missing);
    rows without a prediction are left out. Shows at most ``max_structures`` structures (the
    worst by median). Returns a ``data:image/png`` URI, or ``None`` when nothing has a prediction.
    """
    groups = _groups_by_structure(results)
    if not groups:
        return None
    groups = groups[:max_structures]
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    rng = np.random.default_rng(seed)
    n = len(groups)
    fig = Figure(figsize=(8.0, 1.0 + 0.28 * n), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    positions = np.arange(n, 0, -1)  # the worst structure on top
    values = [g[1] for g in groups]
    style = {
        "positions": positions, "widths": 0.6, "showfliers": False, "patch_artist": True,
        "zorder": 3,  # boxes over the dots, half transparent, so both stay readable
        "boxprops": {"facecolor": "#dbe7f380", "edgecolor": "#1f3b57", "linewidth": 1.2},
        "medianprops": {"color": "#10202f", "linewidth": 2.0},
        "whiskerprops": {"color": "#1f3b57"}, "capprops": {"color": "#1f3b57"},
    }
    try:
        ax.boxplot(values, orientation="horizontal", **style)
    except TypeError:  # matplotlib < 3.10 has no ``orientation``
        ax.boxplot(values, vert=False, **style)
    for pos, vals in zip(positions, values, strict=True):
        shown = vals if vals.size <= MAX_STRIP_POINTS else rng.choice(
            vals, MAX_STRIP_POINTS, replace=False)
        jitter = rng.uniform(-0.22, 0.22, size=shown.size)
        colours = np.where(shown < DSC_LINES[0], "#c0392b",
                           np.where(shown < DSC_LINES[1], "#e67e22", "#2e7d32"))
        ax.scatter(shown, pos + jitter, s=8, c=colours, alpha=0.6, linewidths=0, zorder=2)
    for x in DSC_LINES:
        ax.axvline(x, color="#999999", linestyle="--", linewidth=0.8, zorder=1)
    ax.set_yticks(positions)
    ax.set_yticklabels([f"{name} (n={vals.size})" for name, vals in groups], fontsize=8)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(0.3, n + 0.7)
    ax.set_xlabel("predicted DSC (lower = worse label)")
    ax.grid(axis="x", color="#eeeeee", zorder=0)
    if n > 15:  # tall figure: repeat the DSC axis on top
        ax.tick_params(axis="x", top=True, labeltop=True)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _groups_by_structure(results: pd.DataFrame) -> list[tuple[str, np.ndarray]]:
    """(structure, predicted DSCs) pairs, ordered by median ascending then name."""
    if results.empty or "predicted_dsc" not in results:
        return []
    names = results["structure"] if "structure" in results else results["label"]
    if "label" in results:
        names = names.fillna(results["label"])
    frame = pd.DataFrame({
        "name": names.astype("string").fillna("?"),
        "dsc": pd.to_numeric(results["predicted_dsc"], errors="coerce").astype("float64"),
    }).dropna(subset=["dsc"])
    groups = [(str(k), g["dsc"].to_numpy(dtype=float)) for k, g in frame.groupby("name", sort=True)]
    groups.sort(key=lambda item: (float(np.median(item[1])), item[0]))
    return groups


def sparkline_svg(
    slice_index: np.ndarray, slice_dsc: np.ndarray, *, width: int = 180, height: int = 40
) -> str:
    """An inline SVG of predicted slice DSC (y, 0 at the bottom, 1 at the top) against slice index.

    Points are sorted by slice index; the lowest point is marked with a red dot, a dashed line marks
    DSC 0.5. Returns ``""`` when no slice has a prediction.
    """
    idx = np.asarray(slice_index, dtype=float)
    dsc = np.asarray(slice_dsc, dtype=float)
    keep = np.isfinite(idx) & np.isfinite(dsc)
    idx, dsc = idx[keep], np.clip(dsc[keep], 0.0, 1.0)
    if idx.size == 0:
        return ""
    order = np.argsort(idx, kind="mergesort")
    idx, dsc = idx[order], dsc[order]
    pad = 4.0
    span = idx[-1] - idx[0]
    if span > 0:
        xs = pad + (idx - idx[0]) / span * (width - 2 * pad)
    else:
        xs = np.full(idx.shape, width / 2.0)
    ys = pad + (1.0 - dsc) * (height - 2 * pad)
    y_half = pad + 0.5 * (height - 2 * pad)
    worst = int(np.argmin(dsc))
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    title = (f"slice DSC along z: slices {int(idx[0])}–{int(idx[-1])}, lowest "
             f"{dsc[worst]:.2f} at slice {int(idx[worst])}")
    parts = [
        (f'<svg class="spark" width="{width}" height="{height}" '
         f'viewBox="0 0 {width} {height}" role="img">'),
        f"<title>{title}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fafafa" stroke="#dddddd"/>',
        (f'<line x1="{pad}" x2="{width - pad}" y1="{y_half:.1f}" y2="{y_half:.1f}" '
         'stroke="#bbbbbb" stroke-dasharray="3,3"/>'),
    ]
    if idx.size > 1:
        parts.append(f'<polyline fill="none" stroke="#3b6b99" stroke-width="1.5" '
                     f'points="{points}"/>')
    parts.append(f'<circle cx="{xs[worst]:.1f}" cy="{ys[worst]:.1f}" r="2.8" fill="#c0392b"/>')
    parts.append("</svg>")
    return "".join(parts)
