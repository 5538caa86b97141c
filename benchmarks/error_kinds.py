"""How well ``likely_error`` names what is wrong with a label (issue 18's benchmark).

Two test sets of candidates the model never saw, scored the way ``qsaudit scan`` scores them
(as ``benchmarks/accuracy.py`` does): phantoms of the benchmark seed stream, and OpenKBP
patients held out from training and calibration (the model's ``validation_patients`` minus its
``calibration_patients``). Each candidate's true kind comes from the degradation that made it
(``qsaudit.inference.error_kinds.kind_of_source``). Prints the top-1 accuracy over bad labels
(true Dice < 0.8) and per kind, the share of perfect labels called ``none``, the confusion
matrix, and the time the classifier and the localisation take per label beside the time of
the calibration itself. Targets: top-1 >= 0.75 on phantoms, >= 0.6 on real CT; ``none`` for at
least 90% of perfect labels.

    python benchmarks/error_kinds.py --model M.pt [--phantoms 20] [--save-tables DIR]

Without a model that carries a classifier, or to try a fit quickly, fit on one saved table and
test on others (tables of ``python -m qsaudit.training.calibrate ... --table``, or of
``--save-tables``); ``--split-real`` instead tests, on one table, a fit on its phantoms and
calibration patients against its other real patients (those of ``--held-out FILE``)::

    python benchmarks/error_kinds.py --fit-table cal.npz --test-table phantoms.npz ...
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qsaudit.inference.error_kinds import ERROR_KINDS
from qsaudit.training.error_fit import (
    BAD_DSC,
    confusion,
    fit_errors,
    kind_metrics,
    table_kinds,
    table_rows,
)


def report(title: str, classifier, table) -> dict:
    """Print the accuracy of ``classifier`` on a ``LabelTable``; returns its metrics."""
    kinds = table_kinds(table)
    pred, _prob = classifier.predict(table_rows(table))
    perfect = np.asarray(table.sources == "perfect", dtype=bool)
    m = kind_metrics(kinds, pred, table.true, perfect)
    print(f"\n{title}: {len(table)} labels")
    print(f"  top-1 over {m['n_bad']} bad labels (true Dice < {BAD_DSC:g}): {m['top1_bad']:.3f}")
    print(f"  perfect labels called none: {m['none_perfect']:.3f} (of {int(perfect.sum())})")
    bad = np.array([k is not None for k in kinds]) & (table.true < BAD_DSC)
    print(f"  {'kind':<16}{'bad':>6}{'top-1':>8}")
    for k in ERROR_KINDS:
        part = bad & (kinds == k)
        if part.any():
            print(f"  {k:<16}{int(part.sum()):>6}{float(np.mean(pred[part] == k)):>8.3f}")
    snap = np.array([str(s).startswith("snapshot-") for s in table.sources]) & \
        (table.true < BAD_DSC)
    if snap.any():
        called = {k: int(np.sum(pred[snap] == k)) for k in ERROR_KINDS if np.any(pred[snap] == k)}
        print(f"  network-snapshot labels (no single true kind) are called: {called}")
    matrix = confusion(kinds[bad], pred[bad])
    cols = list(next(iter(matrix.values()), {}))
    print("  confusion (rows true, columns predicted):")
    print("  " + " " * 16 + "".join(f"{c[:7]:>8}" for c in cols))
    for t, counts in matrix.items():
        print(f"  {t:<16}" + "".join(f"{counts[c]:>8}" for c in cols))
    return m


def timing(classifier, calibration, table) -> None:
    """Milliseconds per label of the classifier + localisation, and of the calibration."""
    from qsaudit.inference.error_model import classifier_rows, locate_error

    n = min(len(table), 300)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for i in range(n):
        kind, _ = classifier.predict(classifier_rows(table.features[i], table.structures[i]))
        locate_error(str(kind[0]), slice_indices=np.arange(0, 30, 3), scores=rng.random(10),
                     z_range=(0, 30), z_areas=rng.integers(0, 50, 30), z_size=80,
                     probe_sides=np.array([0, 1]), probe_scores=rng.random(2), slice_mm=3.0)
    per_label = (time.perf_counter() - t0) / n * 1e3
    line = f"\nclassifier + localisation: {per_label:.2f} ms per label"
    if calibration is not None:
        t0 = time.perf_counter()
        for i in range(n):
            calibration.apply(table.features[i][None])
        line += f"; the calibration itself: {(time.perf_counter() - t0) / n * 1e3:.2f} ms"
    print(line)


def score_tables(model: Path, args) -> list[tuple[str, object]]:
    """Score the benchmark phantoms and held-out OpenKBP patients with ``model``: tables."""
    from qsaudit.model.checkpoint import load_checkpoint
    from qsaudit.training.build import build_samples
    from qsaudit.training.calibrate import predict_probes
    from qsaudit.training.calibration import label_table
    from qsaudit.training.cases import (
        PHANTOM_BENCHMARK_STREAM,
        dataset_specs,
        phantom_specs,
        untouched_patients,
    )
    from qsaudit.training.config import SampleConfig

    predictor = load_checkpoint(model, device=args.device)
    meta = predictor.meta
    sample_config = SampleConfig.of_model(meta, derived=args.derived)
    runs = []
    if args.phantoms > 0:
        runs.append(("phantoms", phantom_specs(args.phantoms, seed=args.seed,
                                               stream=PHANTOM_BENCHMARK_STREAM,
                                               shape=sample_config.phantom_shape)))
    held = untouched_patients(meta)
    if args.openkbp.is_dir() and held:
        specs = [s for s in dataset_specs(args.openkbp) if s.patient_id in held]
        if args.max_cases:
            specs = specs[:args.max_cases]
        runs.append(("openkbp_held_out", specs))
    tables = []
    for name, specs in runs:
        _, val = build_samples(specs, {s.patient_id for s in specs},
                               model_config=predictor.config, sample_config=sample_config,
                               seed=args.seed, workers=args.workers)
        pred, _ = predictor.predict(val.inputs.astype(np.float32), list(val.names))
        table = label_table(val, pred, predict_probes(predictor, val))
        if args.save_tables is not None:
            table.save(args.save_tables / f"{name}.npz")
        tables.append((name, table))
    return tables


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--phantoms", type=int, default=20)
    parser.add_argument("--openkbp", type=Path,
                        default=ROOT.parent / "shared" / "data" / "openkbp")
    parser.add_argument("--max-cases", type=int, default=0)
    parser.add_argument("--save-tables", type=Path, default=None,
                        help="keep the scored tables here (.npz) to re-test without scoring")
    parser.add_argument("--fit-table", type=Path, default=None,
                        help="fit a classifier on this table instead of the model's")
    parser.add_argument("--test-table", type=Path, action="append", default=[])
    parser.add_argument("--split-real", action="store_true",
                        help="with --fit-table: test on its real patients of --held-out, fit "
                        "on the rest")
    parser.add_argument("--held-out", type=Path, default=None,
                        help="file of patient ids (one per line) for --split-real")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--derived", default=None,
                        help="HU-derived structures added to the held-out OpenKBP labels, e.g. "
                        "lungs,vertebrae (default: the model's training setting), so that two "
                        "models are scored on the same labels.")
    args = parser.parse_args(argv)

    from qsaudit.training.calibration import LabelTable, add_priors

    calibration, classifier = None, None
    if args.fit_table is not None:
        table = LabelTable.load(args.fit_table)
        tests = [(str(p), LabelTable.load(p)) for p in args.test_table]
        if args.split_real:
            held = {ln.strip() for ln in args.held_out.read_text().splitlines() if ln.strip()}
            test = np.isin(table.patients.astype(str), sorted(held))
            tests.append(("real patients held out of the fit", _subset(table, test)))
            table = _subset(table, ~test)
        priors = add_priors(table)  # as a calibration's fit reads them; the tests take the fit's
        if priors is not None:
            for _title, tested in tests:
                add_priors(tested, priors)
        classifier, metrics = fit_errors(table, seed=0)
        print(f"fitted on {args.fit_table} ({len(table)} labels): {classifier.method}; "
              f"cross-validated by patient: top-1 {metrics['errors_top1_bad']:.3f}, "
              f"none {metrics['errors_none_perfect']:.3f}; trees "
              f"{metrics.get('errors_top1_bad_trees', float('nan')):.3f} / softmax "
              f"{metrics.get('errors_top1_bad_softmax', float('nan')):.3f}")
        for key in ("phantoms", "real"):
            if f"errors_top1_bad_{key}" in metrics:
                print(f"  {key}: top-1 {metrics[f'errors_top1_bad_{key}']:.3f} over "
                      f"{metrics[f'errors_n_bad_{key}']} bad labels, none "
                      f"{metrics[f'errors_none_perfect_{key}']:.3f}")
    else:
        if args.model is None:
            parser.error("give --model, or --fit-table with --test-table / --split-real")
        from qsaudit.inference.aggregate import model_calibration, with_priors
        from qsaudit.inference.error_model import calibration_errors
        from qsaudit.model.checkpoint import load_checkpoint

        calibration = model_calibration(load_checkpoint(args.model, device="cpu").meta)
        classifier = None if calibration is None else calibration_errors(calibration)
        if classifier is None:
            parser.error(f"{args.model} has no error classifier (refit its calibration)")
        if args.save_tables is not None:
            args.save_tables.mkdir(parents=True, exist_ok=True)
        tests = [(str(p), LabelTable.load(p)) for p in args.test_table] or \
            score_tables(args.model, args)
        for _title, table in tests:  # each structure's prior, as the scan reads it
            table.features = with_priors(table.features, table.structures, calibration)
    for title, table in tests:
        report(title, classifier, table)
    if tests:
        timing(classifier, calibration, tests[0][1])


def _subset(table, keep: np.ndarray):
    """The labels ``keep`` of a LabelTable."""
    from qsaudit.training.calibration import LabelTable

    s = None if table.structures is None else table.structures[keep]
    return LabelTable(table.features[keep], table.true[keep], table.plain[keep],
                      table.patients[keep], table.sources[keep], s)


if __name__ == "__main__":
    main()
