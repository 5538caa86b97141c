"""(Re)fit the label calibration of an existing model file from data, on CPU.

``qsaudit train`` calibrates on its validation patients by itself; this module does it for a
model trained elsewhere (or to recalibrate on more held-out data)::

    python -m qsaudit.training.calibrate MODEL.pt --data DIR --phantoms 20 [--out NEW.pt]
    python -m qsaudit.training.calibrate MODEL.pt --from-table T.npz --errors-only [--out NEW.pt]

Candidates (perfect, degraded, network snapshots) of every label are scored the way a scan
scores them; the fit replaces ``meta["calibration"]`` in the model file (``--out`` writes a
copy instead). Of a ``--data`` folder only the model's validation patients are used when the
model records them (training patients would make the calibration over-confident; ``--all-cases``
overrides), never its excluded cases. Phantoms come from their own seed stream, never the
training one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from qsaudit.errors import UsageError

PHANTOM_CALIBRATION_STREAM = 8209


def calibrate_checkpoint(model: str | Path, *, data_dirs: list[str | Path] = (),
                         phantoms: int = 0, out: str | Path | None = None, seed: int = 0,
                         workers: int = 0, all_cases: bool = False,
                         snapshot_steps: tuple[int, ...] | None = None,
                         degraded_per_label: int | None = None,
                         patients: set[str] | None = None,
                         table_out: str | Path | None = None,
                         method: str = "auto", trunk_phantoms: int = 0,
                         resolution_copies: int = 0, window_copies: int = 0,
                         phantom_window_copies: int = 0,
                         derived: str | None = None) -> dict[str, Any]:
    """Fit a label calibration for the model file ``model`` and write it (see module doc).

    Returns the metrics of :func:`qsaudit.training.calibration.calibrate` plus ``written``
    (the model file path, or None when too few labels allowed no calibration). ``patients``
    restricts the ``--data`` cases further (e.g. half of the validation patients, so that the
    other half stays untouched for a benchmark); they are recorded as
    ``meta["calibration_patients"]``. ``resolution_copies``: add that many copies of every real
    case resampled in-plane to a drawn pixel size
    (:func:`~qsaudit.training.cases.resolution_copies`; same patient, so patient weights and
    folds are unchanged). ``window_copies`` / ``phantom_window_copies``: add that many
    field-of-view copies of every real case / trunk phantom, cut in z to a drawn window
    (:func:`~qsaudit.training.cases.window_copies`: labels cut by the scan's edge, as real scans
    cut them). ``derived``: the structures read off the real CT
    (:func:`qsaudit.training.derived.derived_overrides`, e.g. ``"lungs,vertebrae,ribs"``; an
    empty string for none) instead of the model's training setting: a calibration may measure
    the network on real-CT structures it never trained on. ``table_out``: also save the
    per-label table (features, their names, true Dice, patient, candidate source, case) as
    ``.npz``, to study other calibrations.
    Raises UsageError without usable data, ModelError for a bad model file.
    """
    from qsaudit.model.checkpoint import load_checkpoint
    from qsaudit.training.build import build_samples
    from qsaudit.training.calibration import calibrate
    from qsaudit.training.cases import dataset_specs, phantom_specs
    from qsaudit.training.cases import resolution_copies as copies_of
    from qsaudit.training.cases import window_copies as windows_of
    from qsaudit.training.config import SampleConfig

    model = Path(model)
    predictor = load_checkpoint(model, device="cpu", precision="fp32")  # same on every CPU
    meta = dict(predictor.meta)
    held_out = set(meta.get("validation_patients") or ())
    excluded = set(meta.get("excluded_cases") or ())
    specs = []
    for root in data_dirs:
        found = [s for s in dataset_specs(root)
                 if s.case_id not in excluded and s.patient_id not in excluded]
        if not all_cases and held_out:
            found = [s for s in found if s.patient_id in held_out or s.case_id in held_out]
        if patients is not None:
            found = [s for s in found if s.patient_id in patients or s.case_id in patients]
        specs.extend(found)
    real = list(specs)
    specs.extend(copies_of(real, resolution_copies, seed=seed))
    specs.extend(windows_of(real, window_copies, seed=seed))
    specs.extend(phantom_specs(phantoms, seed=seed, stream=PHANTOM_CALIBRATION_STREAM))
    if trunk_phantoms:
        trunk = phantom_specs(trunk_phantoms, seed=seed, stream=PHANTOM_CALIBRATION_STREAM,
                              region="trunk")
        specs.extend(trunk + windows_of(trunk, phantom_window_copies, seed=seed,
                                        kinds=("phantom",)))
    if not specs:
        raise UsageError("no calibration data: give --data DIR (with the model's validation "
                         "patients, or --all-cases) and/or --phantoms N")
    changes = {k: v for k, v in (("snapshot_steps", snapshot_steps),
                                 ("degraded_per_label", degraded_per_label)) if v is not None}
    samples = SampleConfig.of_model(meta, derived=derived, **changes)
    _, val = build_samples(specs, {s.patient_id for s in specs}, model_config=predictor.config,
                           sample_config=samples, seed=seed, workers=workers)
    if len(val) == 0:
        raise UsageError("no scorable labels in the calibration data")
    pred, _ = predictor.predict(val.inputs.astype("float32"), list(val.names))
    probe_pred = predict_probes(predictor, val)
    calibration, metrics = calibrate(val, pred, seed=seed, method=method, probe_pred=probe_pred)
    if table_out is not None:  # with the structure priors the fit read (a refit derives them)
        from qsaudit.training.calibration import add_priors, label_table

        table = label_table(val, pred, probe_pred)
        add_priors(table)
        table.save(table_out)
    patients_used = {s.patient_id for s in specs}
    return _write(model, meta, calibration, metrics, patients_used, out=out,
                  info={"data": [str(d) for d in data_dirs], "phantoms": phantoms,
                        "trunk_phantoms": trunk_phantoms,
                        "resolution_copies": resolution_copies,
                        "window_copies": window_copies,
                        "phantom_window_copies": phantom_window_copies,
                        "derived": list(samples.derived_sources) if samples.derived else []})


def predict_probes(predictor: Any, samples: Any) -> Any:
    """The predictor's scores (P,) of a sample set's probes, end and part probes (None when it
    has none)."""
    if samples.probe_inputs is None:
        return None
    pred, _ = predictor.predict(samples.probe_inputs, list(samples.probe_names()))
    return pred


def calibrate_from_table(model: str | Path, table_file: str | Path, *,
                         out: str | Path | None = None, seed: int = 0,
                         method: str = "auto", trunk_phantoms: int = 0) -> dict[str, Any]:
    """Refit the calibration of ``model`` from a table saved by ``--table`` (seconds, no data).

    The table must come from this model (its slice predictions are in it); its patients are
    recorded as ``meta["calibration_patients"]``. Returns the metrics plus ``written``.
    """
    from qsaudit.model.checkpoint import load_checkpoint
    from qsaudit.training.calibration import LabelTable, calibrate_table

    try:
        table = LabelTable.load(table_file)
    except ValueError as exc:
        raise UsageError(f'"{table_file}": {exc}') from None
    meta = dict(load_checkpoint(model, device="cpu", precision="fp32").meta)
    calibration, metrics = calibrate_table(table, seed=seed, method=method)
    return _write(Path(model), meta, calibration, metrics, set(table.patients.tolist()),
                  out=out, info={"table": str(table_file)})


def refit_errors_from_table(model: str | Path, table_file: str | Path, *,
                            out: str | Path | None = None, seed: int = 0) -> dict[str, Any]:
    """Refit only the error classifier (``likely_error``) of ``model`` from a table saved by
    ``--table`` of this model; its Dice calibration is kept as stored, so ``predicted_dsc``
    does not change. Returns the error metrics plus ``written``."""
    import torch

    from qsaudit.inference.aggregate import PRIOR_FEATURES
    from qsaudit.inference.error_model import INFO_KEY
    from qsaudit.training.calibration import LabelTable, add_priors
    from qsaudit.training.error_fit import fit_errors

    try:
        table = LabelTable.load(table_file)
    except ValueError as exc:
        raise UsageError(f'"{table_file}": {exc}') from None
    payload = torch.load(Path(model), map_location="cpu", weights_only=True)
    meta = json.loads(payload["meta_json"])
    stored = meta.get("calibration")
    if not isinstance(stored, dict):
        raise UsageError(f'"{model}" has no label calibration to add an error classifier to')
    if any(n in PRIOR_FEATURES for n in stored.get("features", ())):
        add_priors(table)  # the scan gives the classifier priors only where these are read
    classifier, metrics = fit_errors(table, seed=seed)
    info = stored.setdefault("info", {})
    info.pop(INFO_KEY, None)
    if classifier is not None:
        info[INFO_KEY] = classifier.to_json()
    old = {k: v for k, v in (meta.get("calibration_metrics") or {}).items()
           if not k.startswith("errors")}
    meta["calibration_metrics"] = {**old, **metrics}
    metrics["written"] = _save(payload, meta, Path(out) if out is not None else Path(model))
    return metrics


def _write(model: Path, meta: dict[str, Any], calibration: Any, metrics: dict[str, Any],
           patients: set[str], *, out: str | Path | None, info: dict[str, Any]
           ) -> dict[str, Any]:
    """Store ``calibration`` in a copy of the model file (``out``, else in place)."""
    import torch

    metrics["written"] = None
    if calibration is None:
        return metrics
    calibration.info.update(info)
    payload = torch.load(model, map_location="cpu", weights_only=True)
    meta["calibration"] = calibration.to_json()
    meta["calibration_metrics"] = metrics
    meta["calibration_patients"] = sorted(p for p in patients if not p.startswith("phantom"))
    metrics["written"] = _save(payload, meta, Path(out) if out is not None else model)
    return metrics


def _save(payload: dict[str, Any], meta: dict[str, Any], target: Path) -> str:
    """Write a model file's ``payload`` with ``meta`` as its metadata to ``target``
    (atomically); returns the path written."""
    import torch

    from qsaudit.atomic import write_with

    payload["meta_json"] = json.dumps(meta, default=str)
    write_with(target, lambda p: torch.save(payload, p))
    return str(target)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``python -m qsaudit.training.calibrate MODEL --data DIR ...``."""
    from qsaudit.errors import QsauditError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--data", type=Path, action="append", default=[])
    parser.add_argument("--phantoms", type=int, default=0)
    parser.add_argument("--trunk-phantoms", type=int, default=0,
                        help="chest-to-pelvis phantoms (calibration seed stream)")
    parser.add_argument("--resolution-copies", type=int, default=0,
                        help="copies of every real case at a drawn in-plane pixel size "
                        "(0.6-5 mm, log-uniform)")
    parser.add_argument("--window-copies", type=int, default=0,
                        help="copies of every real case cut in z to a drawn window (30-200 mm): "
                        "labels cut by the scan's field of view")
    parser.add_argument("--phantom-window-copies", type=int, default=0,
                        help="the same for every trunk phantom")
    parser.add_argument("--derived", default=None,
                        help="structures read off the real CT, comma-separated (e.g. "
                        "lungs,vertebrae,trachea,clavicles,humeri,ribs; default: the model's "
                        "training setting; empty: none)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--all-cases", action="store_true")
    parser.add_argument("--patients", type=Path, default=None,
                        help="file of patient ids (one per line) to calibrate on")
    parser.add_argument("--snapshot-steps", default=None,
                        help="e.g. 5,30,100 (default: the model's training setting)")
    parser.add_argument("--method", choices=("auto", "trees", "ridge"), default="auto",
                        help="boosted trees, ridge + isotonic, or auto (default): the one with "
                        "the lower cross-validated MAE")
    parser.add_argument("--table", type=Path, default=None,
                        help="also save the per-label feature table here (.npz)")
    parser.add_argument("--from-table", type=Path, default=None,
                        help="refit from a table saved by --table (no data needed)")
    parser.add_argument("--errors-only", action="store_true",
                        help="with --from-table: refit only the error classifier, keeping the "
                        "Dice calibration as it is")
    args = parser.parse_args(argv)
    steps = None
    if args.snapshot_steps is not None:
        steps = tuple(int(v) for v in args.snapshot_steps.split(",") if v.strip())
    chosen = None
    if args.patients is not None:
        chosen = {ln.strip() for ln in args.patients.read_text().splitlines() if ln.strip()}
    try:
        if args.errors_only and args.from_table is None:
            raise UsageError("--errors-only needs --from-table")
        if args.errors_only:
            metrics = refit_errors_from_table(args.model, args.from_table, out=args.out,
                                              seed=args.seed)
        elif args.from_table is not None:
            metrics = calibrate_from_table(args.model, args.from_table, out=args.out,
                                           seed=args.seed, method=args.method)
        else:
            metrics = calibrate_checkpoint(args.model, data_dirs=args.data,
                                           phantoms=args.phantoms, out=args.out,
                                           seed=args.seed, workers=args.workers,
                                           all_cases=args.all_cases, snapshot_steps=steps,
                                           patients=chosen, table_out=args.table,
                                           method=args.method,
                                           trunk_phantoms=args.trunk_phantoms,
                                           resolution_copies=args.resolution_copies,
                                           window_copies=args.window_copies,
                                           phantom_window_copies=args.phantom_window_copies,
                                           derived=args.derived)
    except QsauditError as exc:
        print(f"Error: {exc}")
        return 2 if isinstance(exc, UsageError) else 1
    print(json.dumps(metrics, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
