"""How many slices to score per label, and how to aggregate them (the paper's Fig. 2b).

For labels of phantoms (a benchmark seed stream; degraded, snapshot and perfect candidates),
every slice with mask is cut into a model input. Two questions:

1. Aggregation, independent of any model: the 3D Dice is exactly the (|A_z| + |B_z|)-weighted mean
   of slice Dices; weighting by the candidate's slice area |A_z| alone is what a scan can do.
   The table compares mean / median / area-weighted mean of the TRUE slice Dices (all slices,
   and K evenly spaced ones) with the true 3D Dice.
2. With a model (``--model``), the mean absolute deviation of the K-slice aggregate from the
   all-slice aggregate, and from the true 3D Dice, for K = 1 … 30.

    python benchmarks/slice_count.py [--model qsaudit/weights/qsaudit-default.pt] [--phantoms 8]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qsaudit.inference.aggregate import aggregate
from qsaudit.training.cases import PHANTOM_BENCHMARK_STREAM, phantom_specs
from qsaudit.training.config import SampleConfig

K_VALUES = (1, 2, 3, 5, 7, 10, 15, 20, 30)
METHODS = ("mean", "median", "area_weighted")


def even_pick(n: int, k: int) -> np.ndarray:
    """Positions of ``k`` evenly spaced items among ``n`` (all when n <= k), like the scan."""
    if n <= k:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, k)).astype(np.int64))


def per_label(samples) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, float]]:
    """(sample positions, slice targets, slice areas, true 3D Dice) for each candidate."""
    out = []
    order = np.argsort(samples.groups, kind="stable")
    bounds = np.flatnonzero(np.diff(samples.groups[order])) + 1
    for part in np.split(order, bounds):
        if part.size:
            g = samples.group_table[int(samples.groups[part[0]])]
            out.append((part, samples.targets[part].astype(np.float64),
                        samples.areas[part].astype(np.float64), float(g["true_dsc"])))
    return out


def agg(values: np.ndarray, areas: np.ndarray, method: str) -> float:
    return aggregate(values, areas, method=method).dsc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--phantoms", type=int, default=8)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--input-size", type=int, default=64,
                        help="Crop size when no model is given (inputs are then unused).")
    args = parser.parse_args(argv)

    from qsaudit.model.config import ModelConfig
    from qsaudit.training.build import build_samples

    predictor = None
    model_config = ModelConfig(input_size=args.input_size)
    if args.model is not None:
        from qsaudit.model.checkpoint import load_checkpoint

        predictor = load_checkpoint(args.model)
        model_config = predictor.config
    specs = phantom_specs(args.phantoms, seed=args.seed, stream=PHANTOM_BENCHMARK_STREAM)
    config = SampleConfig(eval_slices=100_000)  # every slice with mask
    _, samples = build_samples(specs, {s.patient_id for s in specs}, model_config=model_config,
                               sample_config=config, seed=args.seed, workers=args.workers)
    labels = per_label(samples)
    true3d = np.array([t for *_, t in labels])
    print(f"{len(labels)} labels, {len(samples)} slices, "
          f"median {int(np.median([len(p) for p, *_ in labels]))} slices per label")

    print("\n1. Aggregating TRUE slice Dices: MAE / Pearson r against the true 3D Dice")
    print(f"{'K':>4}" + "".join(f"{m:>24}" for m in METHODS))
    for k in (*K_VALUES, 0):
        row = []
        for method in METHODS:
            est = np.array([agg(v[even_pick(len(v), k)] if k else v,
                                a[even_pick(len(a), k)] if k else a, method)
                            for _, v, a, _ in labels])
            err = np.abs(est - true3d).mean()
            r = np.corrcoef(est, true3d)[0, 1]
            row.append(f"{err:>12.4f} / {r:>7.4f}")
        print(f"{'all' if k == 0 else k:>4}" + "".join(f"{c:>24}" for c in row))

    if predictor is None:
        print("\n(no --model: the model-based deviation table is skipped)")
        return
    pred, _ = predictor.predict(samples.inputs.astype(np.float32), list(samples.names))
    _calibrated_table(predictor, samples, labels, pred)
    print("\n2. Model predictions: mean |agg(K) - agg(all)|  and  mean |agg(K) - true 3D Dice|")
    print(f"{'K':>4}" + "".join(f"{m:>26}" for m in METHODS))
    for k in K_VALUES:
        row = []
        for method in METHODS:
            dev, err = [], []
            for pos, _, a, t in labels:
                p = pred[pos]
                pick = even_pick(len(p), k)
                sub = agg(p[pick], a[pick], method)
                dev.append(abs(sub - agg(p, a, method)))
                err.append(abs(sub - t))
            row.append(f"{np.mean(dev):>12.4f} / {np.mean(err):>9.4f}")
        print(f"{k:>4}" + "".join(f"{c:>26}" for c in row))


def _calibrated_table(predictor, samples, labels, pred: np.ndarray) -> None:
    """Label-level r / MAE against the true 3D Dice, uncalibrated vs the model's calibration."""
    from qsaudit.inference.aggregate import calibrated_aggregate, model_calibration

    cal = model_calibration(predictor.meta)
    print("\n3. K-slice label score vs true 3D Dice: r / MAE, area-weighted mean"
          + (" | calibrated" if cal else " (the model has no calibration)"))
    for k in (5, 10, 20):
        plain, fixed, truth = [], [], []
        for pos, _, a, t in labels:
            g = samples.group_table[int(samples.groups[pos[0]])]
            pick = even_pick(len(pos), k)
            plain.append(agg(pred[pos][pick], a[pick], "area_weighted"))
            if cal:
                shape = g.get("shape")
                fixed.append(calibrated_aggregate(
                    pred[pos][pick], a[pick], cal, population=g.get("mask_slices"),
                    slice_indices=np.array([0, max(g.get("z_extent", 1) - 1, 0)]),
                    shape=None if shape is None else np.asarray(shape),
                    slice_mm=g.get("slice_mm"), volume_ends=g.get("volume_ends"),
                    structure=g.get("structure")).dsc)
            truth.append(t)
        cols = [np.array(plain)] + ([np.array(fixed)] if cal else [])
        text = " | ".join(f"{np.corrcoef(c, truth)[0, 1]:.3f} / {np.abs(c - truth).mean():.3f}"
                          for c in cols)
        print(f"{k:>4}   {text}")


if __name__ == "__main__":
    main()
