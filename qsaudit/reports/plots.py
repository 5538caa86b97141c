"""Figures of the HTML report: the predicted-DSC distribution per structure and slice sparklines.

The distribution plot is an SVG drawing returned as an inline data URI; the slice-quality profile
is a tiny inline SVG string. Neither touches the network or the disk, nor imports a plotting
library.
"""

from __future__ import annotations

import base64
import html

import numpy as np
import pandas as pd

# Above this many labels of one structure the strip shows a seeded random subset (the box uses all).
MAX_STRIP_POINTS = 400
# Reference lines drawn on both figures (predicted DSC): below 0.5 = bad, below 0.8 = doubtful.
DSC_LINES = (0.5, 0.8)
MAX_NAME = 32  # characters of a structure name shown beside its box (the rest in a tooltip)


def dsc_distribution_svg(results: pd.DataFrame, *, seed: int = 0,
                         max_structures: int = 150) -> str | None:
    """Box + strip plot of ``predicted_dsc`` per structure, worst median at the top.

    ``results`` has ``predicted_dsc`` and ``structure`` (falls back to ``label`` when missing);
    rows without a prediction are left out. Shows at most ``max_structures`` structures (the
    worst by median). Boxes span the quartiles with the median marked, whiskers reach the
    furthest values within 1.5 IQR of the box (matplotlib's ``boxplot`` convention); dots
    are the labels (a seeded random subset above :data:`MAX_STRIP_POINTS`), red below 0.5 and
    orange below 0.8. Returns a ``data:image/svg+xml`` URI (700-900 px wide), or ``None``
    when nothing has a prediction. Drawn as SVG text: a report is written without importing a
    plotting library (matplotlib took about 0.9 s CPU of every scan).
    """
    groups = _groups_by_structure(results)
    if not groups:
        return None
    groups = groups[:max_structures]
    rng = np.random.default_rng(seed)
    n = len(groups)
    names = [_shown_name(name, vals.size) for name, vals in groups]
    # room for the longest name: about 6.7 px a character at 11 px (DejaVu Sans, the widest
    # of the usual sans-serif fonts), so no name is clipped at the figure's left edge
    left = int(max(120, min(340, 6.7 * max(len(t) for t in names) + 14)))
    width, right, row = 570 + left, 24, 28
    top = 34 if n > 15 else 14  # tall figure: the DSC axis is repeated on top
    height = top + row * n + 52
    plot_w = width - left - right

    def x(v: float) -> float:
        return left + (min(max(v, -0.02), 1.02) + 0.02) / 1.04 * plot_w

    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">'),
           f'<rect width="{width}" height="{height}" fill="#ffffff"/>']
    bottom = top + row * n
    for tick in np.linspace(0.0, 1.0, 6):
        tx = x(float(tick))
        out.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{top}" y2="{bottom}" '
                   'stroke="#eeeeee"/>')
        out.append(f'<text x="{tx:.1f}" y="{bottom + 16}" text-anchor="middle">{tick:.1f}</text>')
        if n > 15:
            out.append(f'<text x="{tx:.1f}" y="{top - 6}" text-anchor="middle">{tick:.1f}</text>')
    for line in DSC_LINES:
        out.append(f'<line x1="{x(line):.1f}" x2="{x(line):.1f}" y1="{top}" y2="{bottom}" '
                   'stroke="#999999" stroke-dasharray="4,3"/>')
    for i, (name, vals) in enumerate(groups):
        cy = top + row * (i + 0.5)
        shown = vals if vals.size <= MAX_STRIP_POINTS else rng.choice(
            vals, MAX_STRIP_POINTS, replace=False)
        jitter = rng.uniform(-0.22, 0.22, size=shown.size) * row
        colours = np.where(shown < DSC_LINES[0], "#c0392b",
                           np.where(shown < DSC_LINES[1], "#e67e22", "#2e7d32"))
        out.extend(f'<circle cx="{x(float(v)):.1f}" cy="{cy + j:.1f}" r="2" fill="{c}" '
                   'fill-opacity="0.6"/>' for v, j, c in zip(shown, jitter, colours, strict=True))
        q1, med, q3 = (float(q) for q in np.percentile(vals, [25, 50, 75]))
        reach = 1.5 * (q3 - q1)
        low = float(vals[vals >= q1 - reach].min())
        high = float(vals[vals <= q3 + reach].max())
        half = 0.3 * row
        out.append(f'<g stroke="#1f3b57"><line x1="{x(low):.1f}" x2="{x(q1):.1f}" '
                   f'y1="{cy:.1f}" y2="{cy:.1f}"/><line x1="{x(q3):.1f}" x2="{x(high):.1f}" '
                   f'y1="{cy:.1f}" y2="{cy:.1f}"/>'
                   + "".join(f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{cy - half / 2:.1f}" '
                             f'y2="{cy + half / 2:.1f}"/>' for v in (low, high))
                   + f'<rect x="{x(q1):.1f}" y="{cy - half:.1f}" width="{x(q3) - x(q1):.1f}" '
                   f'height="{2 * half:.1f}" fill="#dbe7f3" fill-opacity="0.5" '
                   'stroke-width="1.2"/></g>')
        out.append(f'<line x1="{x(med):.1f}" x2="{x(med):.1f}" y1="{cy - half:.1f}" '
                   f'y2="{cy + half:.1f}" stroke="#10202f" stroke-width="2"/>')
        out.append(f'<text x="{left - 6}" y="{cy + 4:.1f}" text-anchor="end">'
                   f"<title>{html.escape(name)}</title>{html.escape(names[i])}</text>")
    out.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{row * n}" fill="none" '
               'stroke="#444444"/>')
    out.append(f'<text x="{left + plot_w / 2:.1f}" y="{bottom + 36}" text-anchor="middle" '
               'font-size="12">predicted DSC (lower = worse label)</text></svg>')
    svg = "".join(out)
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _shown_name(name: str, n: int) -> str:
    """A structure's text beside its box: the name (cut at :data:`MAX_NAME` characters) and
    its label count."""
    shown = name if len(name) <= MAX_NAME else name[:MAX_NAME - 1] + "…"
    return f"{shown} (n={n})"


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
