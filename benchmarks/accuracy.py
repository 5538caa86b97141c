"""Label-level accuracy of a qsaudit model on data it never saw (issue 3's benchmark).

Two test sets, each with degraded labels, network-snapshot labels and perfect labels, scored the
way ``qsaudit scan`` scores them (evenly spaced slices, fixed crop margin, area-weighted mean):

* phantoms from a seed stream that training never uses;
* OpenKBP patients held out from training (the ``excluded_cases`` and ``validation_patients``
  recorded in the model's meta), cropped to their main CT block like the training data.

Prints Pearson r, Spearman rho, MAE and AUROC (true Dice < 0.8) per test set and candidate kind,
and, where a test set has radiotherapy target volumes (OpenKBP's PTVs: a clinical margin around a
tumour, not an edge the CT shows), for the anatomical structures and the target volumes apart.
For the calibrated scores it also prints how often the 90% prediction interval that the scan
reports (``dsc_low``..``dsc_high``) holds the true Dice, and its mean width.
Per structure family ([bones], [organs], ...) and per degradation kind (<truncation>, ...) too.
``--shuffle-names`` scores every label again under another structure's name: if the name
matters, r drops and perfect labels lose their high scores. Targets: phantoms r >= 0.95 and
MAE <= 0.05; OpenKBP held-out r >= 0.90 and MAE <= 0.08 for every degradation kind.

    python benchmarks/accuracy.py [--model qsaudit/weights/qsaudit-default.pt] [--phantoms 20]
        [--trunk-phantoms 10] [--shuffle-names]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qsaudit.analyses.evaluate import quality_metrics
from qsaudit.inference.intervals import calibration_bands
from qsaudit.registry import is_target_volume
from qsaudit.training.cases import (
    PHANTOM_BENCHMARK_STREAM,
    dataset_specs,
    phantom_specs,
    untouched_patients,
)
from qsaudit.training.config import SampleConfig


def kind_of(source: str) -> str:
    """Candidate family: perfect, snapshot, wrong_structure (another structure's mask under
    the label's name) or degraded."""
    if source in ("perfect", "wrong_structure"):
        return source
    return "snapshot" if source.startswith("snapshot-") else "degraded"


def shuffled_names(names: np.ndarray, seed: int) -> np.ndarray:
    """``names`` with every structure renamed to another structure of the set (a random
    derangement of the distinct names): does the prediction depend on the name?"""
    unique = sorted(set(names.tolist()))
    rng = np.random.default_rng(seed)
    for _ in range(100):
        perm = rng.permutation(len(unique))
        if len(unique) < 2 or not np.any(perm == np.arange(len(unique))):
            break
    mapping = {u: unique[p] for u, p in zip(unique, perm, strict=True)}
    return np.array([mapping[n] for n in names], dtype=object)


_BUILT: dict[int, object] = {}  # one build per set of specs (the shuffled pass reuses it)


def score_specs(predictor, specs, *, sample_config: SampleConfig, seed: int, workers: int,
                shuffle: bool = False):
    """Label Dice of every candidate of ``specs``: (plain, calibrated or None, interval or
    None, true, kinds, target, table); ``interval`` is the (low, high) pair the scan reports
    for the calibrated score (None without error bands; widened for novel labels as the scan
    widens them), ``target`` True for the labels of radiotherapy target volumes. ``shuffle``:
    score every label under another structure's name (:func:`shuffled_names`).

    ``plain`` is the area-weighted mean of the slice predictions; ``calibrated`` applies the
    model's label calibration (``meta["calibration"]``) to the same slices, as the scan does.
    """
    from qsaudit.inference.aggregate import model_calibration, with_priors
    from qsaudit.training.build import build_samples
    from qsaudit.training.calibrate import predict_probes
    from qsaudit.training.calibration import label_table

    patients = {s.patient_id for s in specs}
    if id(specs) not in _BUILT:
        _BUILT[id(specs)] = build_samples(specs, patients, model_config=predictor.config,
                                          sample_config=sample_config, seed=seed,
                                          workers=workers)[1]
    val = _BUILT[id(specs)]
    probe_set = val
    if shuffle:  # the network sees other names; the table keeps each label's own structure
        from dataclasses import replace

        unique = np.array(sorted(set(val.names.tolist())
                                 | {g["structure"] for g in val.group_table}), dtype=object)
        mapping = dict(zip(unique, shuffled_names(unique, seed), strict=True))
        probe_set = replace(val, group_table=[{**g, "structure": mapping[g["structure"]]}
                                              for g in val.group_table])
        val = replace(val, names=np.array([mapping[n] for n in val.names], dtype=object))
    pred, _ = predictor.predict(val.inputs.astype(np.float32), list(val.names))
    table = label_table(val, pred, predict_probes(predictor, probe_set))
    calibration = model_calibration(predictor.meta)
    if calibration is not None:  # the structure's prior, of the name the scan would read
        named = table.structures if not shuffle else [mapping[s] for s in table.structures]
        table.features = with_priors(table.features, named, calibration)
    calibrated = None if calibration is None else calibration.apply(table.features)
    bands = None if calibration is None else calibration_bands(calibration)
    interval = None if bands is None else bands.interval(calibrated, table.structures)
    if interval is not None:
        interval = _widen_novel(predictor, calibration, table, calibrated, interval)
    kinds = np.array([kind_of(s) for s in table.sources])
    target = np.array([is_target_volume(s) for s in table.structures], dtype=bool)
    return table.plain, calibrated, interval, table.true, kinds, target, table


def _widen_novel(predictor, calibration, table, calibrated, interval):
    """The intervals the scan reports: novel labels' widened (qsaudit.inference.novelty)."""
    from qsaudit.inference.aggregate import Aggregate
    from qsaudit.inference.novelty import NoveltyCheck

    check = NoveltyCheck(predictor, calibration)
    low, high = np.array(interval[0], dtype=float), np.array(interval[1], dtype=float)
    for i, structure in enumerate(table.structures):
        agg, _, _ = check.apply(Aggregate(float(calibrated[i]), low[i], high[i], 0.0,
                                          table.features[i]), str(structure))
        low[i], high[i] = agg.low, agg.high
    return low, high


def report(title: str, pred: np.ndarray, true: np.ndarray, kinds: np.ndarray,
           target: np.ndarray, interval: tuple[np.ndarray, np.ndarray] | None = None,
           table=None) -> None:
    """Print r, rho, MAE, AUROC (bad = true Dice < 0.8) overall, per candidate kind and, when
    some labels are target volumes, for anatomical structures and target volumes apart; with
    ``interval`` also its coverage of the true Dice and mean width."""
    print(f"\n{title}")
    extra = f"{'cover':>8}{'width':>8}" if interval is not None else ""
    print(f"{'subset':<18}{'labels':>8}{'bad':>6}{'r':>8}{'rho':>8}{'MAE':>8}{'AUROC':>8}{extra}")
    subsets = {"all": np.ones(len(pred), bool),
               **{name: kinds == name for name in ("degraded", "snapshot", "perfect",
                                                   "wrong_structure")}}
    if target.any():
        subsets.update(anatomy=~target, targets=target)
    if table is not None:  # per structure family, and per degradation kind
        from qsaudit.registry import structure_family

        fams = np.array([structure_family(str(s)) for s in table.structures])
        subsets.update({f"[{f}]": fams == f for f in sorted(set(fams))})
        sources = np.asarray(table.sources).astype(str)
        subsets.update({f"<{e}>": sources == e for e in sorted(set(sources))
                        if kind_of(e) == "degraded"})
    for name, keep in subsets.items():
        if not keep.any():
            continue
        low, high = (None, None) if interval is None else (interval[0][keep], interval[1][keep])
        m = quality_metrics(pred[keep], true[keep], low=low, high=high)
        extra = "" if interval is None else f"{m['coverage']:>8.3f}{m['width']:>8.3f}"
        print(f"{name:<18}{m['n']:>8}{m['n_bad']:>6}{m['pearson']:>8.3f}{m['spearman']:>8.3f}"
              f"{m['mae']:>8.3f}{m['auroc']:>8.3f}{extra}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "qsaudit" / "weights" / "qsaudit-default.pt")
    parser.add_argument("--phantoms", type=int, default=20)
    parser.add_argument("--openkbp", type=Path, default=ROOT.parent / "shared" / "data" / "openkbp")
    parser.add_argument("--max-cases", type=int, default=0, help="Cap on OpenKBP cases (0 = all).")
    parser.add_argument("--trunk-phantoms", type=int, default=0,
                        help="Also chest-to-pelvis phantoms of the benchmark seed stream.")
    parser.add_argument("--shuffle-names", action="store_true",
                        help="Also score every label under another structure's name.")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", help="as qsaudit scan --precision")
    parser.add_argument("--derived", default=None,
                        help="HU-derived structures added to the OpenKBP test labels, e.g. "
                        "lungs,vertebrae (default: the model's training setting), so that two "
                        "models are scored on the same labels.")
    args = parser.parse_args(argv)

    from qsaudit.inference.aggregate import model_calibration
    from qsaudit.model.checkpoint import load_checkpoint

    predictor = load_checkpoint(args.model, device=args.device, precision=args.precision)
    meta = predictor.meta
    sample_config = SampleConfig.of_model(meta, derived=args.derived)
    print(f"model {args.model} (trained {meta.get('command') or '?'}), {predictor.device} "
          f"{predictor.precision}, calibration: {type(model_calibration(meta)).__name__}")

    runs = []
    if args.phantoms > 0:
        runs.append((f"phantoms (benchmark seed stream, {args.phantoms} patients)",
                     phantom_specs(args.phantoms, seed=args.seed, stream=PHANTOM_BENCHMARK_STREAM,
                                   shape=sample_config.phantom_shape)))
    if args.trunk_phantoms > 0:
        runs.append((f"trunk phantoms (benchmark seed stream, {args.trunk_phantoms} patients)",
                     phantom_specs(args.trunk_phantoms, seed=args.seed,
                                   stream=PHANTOM_BENCHMARK_STREAM, region="trunk")))
    # Patients used to fit the label calibration are not a fair test of it.
    held = untouched_patients(meta, excluded=True)
    if args.openkbp.is_dir():
        specs = [s for s in dataset_specs(args.openkbp) if s.patient_id in held]
        if args.max_cases:
            specs = specs[:args.max_cases]
        if specs:
            runs.append(((f"OpenKBP patients held out from training and calibration "
                         f"({len(specs)})"), specs))
        else:
            print("\nOpenKBP: the model's meta names no held-out OpenKBP patient")
    else:
        print(f"\nOpenKBP: {args.openkbp} not found, skipped")
    for title, specs in runs:
        p, c, iv, t, k, tv, table = score_specs(predictor, specs, sample_config=sample_config,
                                                seed=args.seed, workers=args.workers)
        report(f"{title}, uncalibrated", p, t, k, tv)
        if c is not None:
            report(f"{title}, calibrated (what qsaudit scan reports)", c, t, k, tv, iv, table)
        if args.shuffle_names:
            p, c, _, t, k, tv, _ = score_specs(predictor, specs, sample_config=sample_config,
                                               seed=args.seed, workers=args.workers,
                                               shuffle=True)
            report(f"{title}, every label scored under another structure's name "
                   f"(does the name matter?)", c if c is not None else p, t, k, tv)


if __name__ == "__main__":
    main()
