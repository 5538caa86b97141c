"""Draw a few phantom CT slices with mask outlines, for a human to judge realism.

Usage: PYTHONPATH=. python benchmarks/demo_slices.py [OUT.png] [--seed S] [--cases N]
Rows are patients; columns are axial slices from the lung bases to the pelvis plus a coronal
slice, in an abdominal window (W 400 / L 40); coloured lines outline the correct masks.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from qsaudit.phantoms import make_phantom


def _window(img: np.ndarray, level: float = 40, width: float = 400) -> np.ndarray:
    return np.clip((img - (level - width / 2)) / width, 0, 1)


def _outline(ax, masks: dict[str, np.ndarray], take, aspect: float) -> None:
    cmap = plt.get_cmap("tab20")
    for i, (_, m) in enumerate(sorted(masks.items())):
        sl = take(m)
        if sl.any():
            ax.contour(sl.T.astype(float), levels=[0.5], colors=[cmap(i % 20)], linewidths=0.6)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default="demo_slices.png")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", type=int, default=3)
    ap.add_argument("--no-outline", action="store_true")
    args = ap.parse_args()
    fractions = (0.92, 0.78, 0.62, 0.45, 0.25, 0.08)
    fig, axes = plt.subplots(args.cases, len(fractions) + 1,
                             figsize=(3 * (len(fractions) + 1), 3.1 * args.cases))
    axes = np.atleast_2d(axes)
    for row in range(args.cases):
        rng = np.random.default_rng([args.seed, row])
        sex = "MF"[row % 2]
        ph = make_phantom(rng, sex=sex, age=int(rng.integers(25, 85)))
        sx, sy, sz = ph.spacing
        for col, f in enumerate(fractions):
            k = int(f * (ph.ct.shape[2] - 1))
            ax = axes[row, col]
            # radiological view: patient's right on the image left, anterior up
            ax.imshow(_window(ph.ct[::-1, :, k]).T, cmap="gray", origin="lower",
                      aspect=sy / sx)
            if not args.no_outline:
                _outline(ax, ph.masks, lambda m, k=k: m[::-1, :, k], sy / sx)
            ax.set_title(f"{sex}{ph.age} z={k} ({sx:.1f}x{sz:.1f} mm)", fontsize=8)
            ax.axis("off")
        ax = axes[row, -1]
        j = int(np.argmax(ph.masks["liver"].sum(axis=(0, 2)))) if "liver" in ph.masks else \
            ph.ct.shape[1] // 2
        ax.imshow(_window(ph.ct[::-1, j, :]).T, cmap="gray", origin="lower", aspect=sz / sx)
        if not args.no_outline:
            _outline(ax, ph.masks, lambda m, j=j: m[::-1, j, :], sz / sx)
        ax.set_title(f"coronal y={j}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(Path(args.out), dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
