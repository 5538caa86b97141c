"""``scan_dataset``: predict the Dice of every label of a dataset, resumably and fast.

Pipeline: reader processes prepare cases (read, decode, check, crop) a few cases ahead while the
main process scores crops in fixed-size batches across labels and cases; each finished case is
committed to the results folder at once, and the final tables and report are written from the
committed parts when all cases are done.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from qsaudit import __version__
from qsaudit.atomic import write_json
from qsaudit.checks.shape import SHAPE_FEATURES
from qsaudit.cpu import single_threaded_children, usable_cores
from qsaudit.errors import ModelError, QsauditError
from qsaudit.inference.aggregate import (
    DEFAULT_METHOD,
    PART_FEATURES,
    PROBE_FEATURES,
    Calibration,
    aggregate,
    calibrated_aggregate,
    model_calibration,
)
from qsaudit.inference.batching import CrossCaseBatcher, ScoredCase, SlicePredictor
from qsaudit.inference.error_model import ErrorClassifier
from qsaudit.inference.finalize import REPORT_SLICES, write_outputs
from qsaudit.inference.intervals import StructureBands, calibration_bands
from qsaudit.inference.novelty import NoveltyCheck
from qsaudit.inference.prepare import PreparedCase, PrepareSpec, exit_with_parent, prepare_case
from qsaudit.inference.sampling import settings_for_model
from qsaudit.inference.settings import ScanSettings
from qsaudit.inference.store import SCAN_JSON, ResultsStore, refuse_inside_dataset
from qsaudit.inference.timing import cpu_now, time_breakdown


@dataclass(frozen=True)
class ScanSummary:
    """What a scan did and where its files are.

    ``cases``/``labels``: in this scan (shard); ``scanned_cases``: read in this run (the rest
    were already committed by an earlier, interrupted run); ``status_counts``: label status →
    count; ``flagged``: labels with at least one model-free flag; ``seconds``: wall time.
    """

    out_dir: Path
    cases: int
    labels: int
    scanned_cases: int
    resumed_cases: int
    status_counts: dict[str, int]
    flagged: int
    mean_dsc: float
    seconds: float
    results_csv: Path
    report: Path | None
    report_error: str | None


def shard_cases(cases: Sequence[Any], index: int, count: int) -> list[Any]:
    """Cases ``index::count`` of the list sorted by case id (0-based shard ``index`` of ``count``)."""
    ordered = sorted(cases, key=lambda c: c.case_id)
    return ordered[index::count]


def scan_dataset(dataset: str | Path, out_dir: str | Path, *,
                 settings: ScanSettings | None = None,
                 predictor: SlicePredictor | None = None,
                 on_case_committed: Callable[[str], None] | None = None) -> ScanSummary:
    """Scan ``dataset`` into the results folder ``out_dir`` and return a summary.

    Args:
        dataset: dataset folder (any layout ``qsaudit.datasets.list_cases`` reads).
        out_dir: results folder; an interrupted scan there is resumed, one made with another
            model or other settings is refused (``ResultsError``) unless ``settings.force``.
        settings: see :class:`ScanSettings` (None = defaults).
        predictor: a loaded model (default: ``settings.model`` or the shipped weights).
        on_case_committed: called with each case id once its results are committed.

    One bad case or label never stops the scan: it gets rows whose ``status`` names the problem.
    (``qsaudit.inference.ray_engine.scan_dataset_ray`` runs the same scan on a Ray cluster.)
    """
    settings = settings or ScanSettings()
    started, (cpu_started, children_started) = time.perf_counter(), cpu_now()
    scan = open_scan(dataset, out_dir, settings=settings, predictor=predictor,
                     load=_load_predictor, started=started, cpu_started=cpu_started)
    predictor, settings, todo, timings = scan.predictor, scan.settings, scan.todo, scan.timings
    batcher = CrossCaseBatcher(predictor, settings.batch_size)

    def commit(scored: ScoredCase) -> None:
        t0 = time.perf_counter()
        scan.commit(scored)
        timings["commit_seconds"] += time.perf_counter() - t0
        progress.update(task, advance=1, info="")
        if on_case_committed is not None:
            on_case_committed(scored.case.case_id)

    from qsaudit.progress import progress_bar

    loop_start = time.perf_counter()
    timings["setup_seconds"] = loop_start - started
    _reset_gpu_peak(predictor)
    governor = ModelThreads(predictor, settings.n_workers)
    timings["wait_seconds"] = 0.0
    forward_before = getattr(predictor, "forward_seconds", None)
    forward_cpu_before = getattr(predictor, "forward_cpu_seconds", None)
    with progress_bar() as progress, governor, contextlib.ExitStack() as readers:
        task = progress.add_task("scanning", total=len(todo), info=_starting(settings.n_workers))
        # closed on the way out, so an interrupt in the model (not only in a read) stops the readers
        prepared_cases = readers.enter_context(
            contextlib.closing(iter_prepared(todo, scan.spec, workers=settings.n_workers)))
        while True:
            t0 = time.perf_counter()
            prepared = next(prepared_cases, None)
            waited = time.perf_counter() - t0
            if prepared is None:
                break
            t0 = time.perf_counter()
            finished = list(batcher.add(prepared))
            computed = time.perf_counter() - t0
            timings["model_seconds"] += computed
            timings["wait_seconds"] += waited
            governor.update(waited=waited, computed=computed)
            for scored in finished:
                commit(scored)
        timings["model_threads"] = governor.history
        t0 = time.perf_counter()
        finished = list(batcher.flush())
        timings["model_seconds"] += time.perf_counter() - t0
        for scored in finished:
            commit(scored)

    timings["loop_seconds"] = time.perf_counter() - loop_start
    timings["forward_passes"] = batcher.forward_passes
    timings["batch_size"] = settings.batch_size
    if forward_before is not None:  # the model's own forward passes, out of model_seconds
        timings["network_seconds"] = predictor.forward_seconds - forward_before
    if forward_cpu_before is not None:
        timings["network_cpu_seconds"] = predictor.forward_cpu_seconds - forward_cpu_before
    if settings.n_workers > 0:  # the readers have exited and been reaped (iter_prepared)
        timings["reader_process_cpu_seconds"] = cpu_now()[1] - children_started
    peak = _gpu_peak_mib(predictor)
    if peak is not None:
        timings["gpu_peak_mib"], timings["gpu_peak_reserved_mib"] = peak
    return finish_scan(scan)


def _cuda_device(predictor: SlicePredictor) -> str | None:
    """The CUDA device ``predictor`` runs on (e.g. ``"cuda:0"``), None off the GPU."""
    device = str(getattr(predictor, "device", "cpu"))
    return device if device.startswith("cuda") else None


def _reset_gpu_peak(predictor: SlicePredictor) -> None:
    """Start counting the GPU's peak memory afresh (only on a CUDA predictor)."""
    device = _cuda_device(predictor)
    if device is not None:
        import torch

        torch.cuda.reset_peak_memory_stats(device)


def _gpu_peak_mib(predictor: SlicePredictor) -> tuple[float, float] | None:
    """Peak GPU memory (MiB) of the scan's loop on a CUDA predictor: what torch allocated
    (``scan.json`` → ``timings.gpu_peak_mib``) and what its caching allocator held
    (``gpu_peak_reserved_mib``; nvidia-smi shows this plus the CUDA context); None off the
    GPU."""
    device = _cuda_device(predictor)
    if device is None:
        return None
    import torch

    return (round(torch.cuda.max_memory_allocated(device) / 2**20, 1),
            round(torch.cuda.max_memory_reserved(device) / 2**20, 1))


@dataclass
class OpenScan:
    """A scan between :func:`open_scan` and :func:`finish_scan`, whatever engine scores it.

    ``cases``: the scan's cases (shard); ``todo``: those not committed yet; ``settings``: as
    adjusted to the model; ``spec``: what a reader needs to prepare a case; ``novelty``: the
    check that widens the intervals of labels unlike the calibration's; ``errors``: the
    calibration's error classifier (``likely_error``); ``timings``: seconds
    (and counts) recorded in ``scan.json``; ``cpu_started``: this process's CPU clock
    (``time.process_time``) at the start, when the scan counts its CPU seconds.
    """

    dataset: Path
    out_dir: Path
    settings: ScanSettings
    predictor: SlicePredictor
    cases: list[Any]
    todo: list[Any]
    manifest: dict[str, Any]
    store: ResultsStore
    keeper: WorstKeeper
    calibration: Calibration | None
    bands: StructureBands | None
    spec: PrepareSpec
    started: float
    timings: dict[str, Any]
    novelty: NoveltyCheck | None = None
    errors: ErrorClassifier | None = None
    cpu_started: float | None = None

    def commit(self, scored: ScoredCase) -> None:
        """Aggregate one scored case and commit it to the results folder."""
        part, thumbs = _case_part(scored, self.settings.aggregation, self.keeper,
                                  self.calibration, self.bands, self.novelty, self.errors)
        self.store.commit(scored.case.case_id, part, thumbs)
        self.timings["read_seconds"] += scored.case.seconds
        self.timings["reader_cpu_seconds"] += getattr(scored.case, "cpu_seconds", 0.0)
        self.timings["reader_decode_seconds"] += getattr(scored.case, "decode_seconds", 0.0)
        self.timings["reader_decode_cpu_seconds"] += getattr(scored.case, "decode_cpu_seconds",
                                                             0.0)


def open_scan(dataset: str | Path, out_dir: str | Path, *, settings: ScanSettings,
              predictor: SlicePredictor | None,
              load: Callable[[ScanSettings], SlicePredictor], started: float,
              cpu_started: float | None = None) -> OpenScan:
    """List the cases, open (or resume) the results folder and fix what readers compute.

    ``predictor``: the model (None: ``load(settings)`` loads it after the cases are listed);
    ``started``/``cpu_started``: the scan's wall and CPU clocks at its start (see
    :class:`OpenScan`).
    Refuses (``UsageError``) a results folder inside the dataset.
    """
    from qsaudit.datasets import list_cases
    from qsaudit.progress import status

    dataset = Path(dataset)
    refuse_inside_dataset(dataset, out_dir)
    with status(f"listing the cases of {dataset}"):
        cases = list_cases(dataset, layout=settings.layout, labels_table=settings.labels_table,
                           preset=settings.preset)
    if settings.shard is not None:
        cases = shard_cases(cases, *settings.shard)
    if predictor is None:
        with status("loading the model"):
            predictor = load(settings)
    settings = settings_for_model(settings, predictor)  # the paper's model: its own protocol
    if settings.batch_size is None:  # by device and model size, as measured
        settings = settings.replace(batch_size=_batch_size(predictor))
    manifest = {
        "qsaudit_version": __version__,
        "dataset": str(dataset.resolve()),
        "model_fingerprint": predictor.fingerprint,
        "model": _model_info(predictor, settings),
        "identity": _identity(settings, predictor),
        "settings": settings.to_dict(),
        "started": _now(),
    }
    store = ResultsStore.open(out_dir, manifest, force=settings.force)
    done = store.done_case_ids()
    todo = [c for c in cases if c.case_id not in done]
    seen = [(r.get("predicted_dsc"), p["case_id"], r["label"])
            for p in store.load_parts(sorted(done & {c.case_id for c in cases}))
            for r in p["rows"]]
    keeper = WorstKeeper(settings.thumbnails, seen)
    calibration = _calibration(predictor, settings.aggregation)
    bands = _bands(calibration)
    spec = PrepareSpec(model_config=predictor.config, slices=settings.slices,
                       sampling=settings.sampling, seed=settings.seed,
                       shape_features=_reads(calibration, SHAPE_FEATURES),
                       end_probes=_reads(calibration, PROBE_FEATURES),
                       part_probes=_reads(calibration, PART_FEATURES))
    return OpenScan(dataset=dataset, out_dir=Path(out_dir), settings=settings,
                    predictor=predictor, cases=cases, todo=todo, manifest=manifest, store=store,
                    keeper=keeper, calibration=calibration, bands=bands, spec=spec,
                    started=started, timings={"read_seconds": 0.0, "reader_cpu_seconds": 0.0,
                                          "reader_decode_seconds": 0.0,
                                          "reader_decode_cpu_seconds": 0.0,
                                          "model_seconds": 0.0, "commit_seconds": 0.0},
                    novelty=_novelty(predictor, calibration), errors=_errors(calibration),
                    cpu_started=cpu_started)


def finish_scan(scan: OpenScan) -> ScanSummary:
    """Write the final tables, report and the complete ``scan.json`` from the committed parts."""
    out_dir, store, manifest, settings = scan.out_dir, scan.store, scan.manifest, scan.settings
    timings = scan.timings
    finish_start = time.perf_counter()
    ids = [c.case_id for c in sorted(scan.cases, key=lambda c: c.case_id)]
    parts = store.load_parts(ids)
    outputs = write_outputs(out_dir, [(store, p) for p in parts],
                            dataset=manifest["dataset"], model=manifest["model"]["name"],
                            settings=_shown_settings(manifest), worst_n=settings.thumbnails)
    seconds = time.perf_counter() - scan.started
    summary = _summary(out_dir, outputs, scanned=len(scan.todo),
                       resumed=len(scan.cases) - len(scan.todo), seconds=seconds)
    timings["total_seconds"] = seconds
    timings["finish_seconds"] = time.perf_counter() - finish_start
    if scan.cpu_started is not None:
        timings["main_cpu_seconds"] = time.process_time() - scan.cpu_started
    timings["breakdown"] = time_breakdown(timings)
    previous = store.read_manifest() or {}
    write_json(out_dir / SCAN_JSON, {
        **manifest, "started": previous.get("started", manifest["started"]),
        "finished": _now(), "state": "complete",
        "counts": {"cases": summary.cases, "labels": summary.labels,
                   "status": summary.status_counts, "flagged": summary.flagged,
                   "scanned_this_run": summary.scanned_cases,
                   "resumed_from_earlier_runs": summary.resumed_cases},
        "timings": timings, "report_error": outputs.report_error,
    })
    return summary


def iter_prepared(cases: Sequence[Any], spec: PrepareSpec, *, workers: int
                  ) -> Iterator[PreparedCase]:
    """Prepared cases in input order; ``workers`` processes read ahead (0 = in this process).

    At most ``workers + 1`` cases are in flight, so memory stays bounded; workers are started
    with "spawn" so they never inherit the model or torch's threads.
    """
    if workers <= 0:
        for case in cases:
            yield prepare_case(case, spec)
        return
    with single_threaded_children():
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=_ReaderContext(),
                                   initializer=_start_reader, initargs=(os.getpid(),))
        # workers are spawned at submits: start them all while the variables hold
        started = [pool.submit(os.getpid) for _ in range(workers)]
    finished = False
    try:
        for future in started:
            future.result()
        pending = iter(cases)
        window: deque = deque()
        for case in pending:
            window.append(pool.submit(prepare_case, case, spec))
            if len(window) > workers:
                break
        while window:
            future = window.popleft()
            try:
                result = future.result()
            except BrokenProcessPool:
                raise QsauditError("a reader process died (out of memory?); committed cases "
                                   "are kept: run the same scan again to resume") from None
            nxt = next(pending, None)
            if nxt is not None:
                window.append(pool.submit(prepare_case, nxt, spec))
            yield result
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:  # interrupted or failed: waiting for readers mid-case could hang, so stop them
            _stop_readers(pool)


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """Hold SIGINT back in this thread for the block: a Ctrl-C that comes meanwhile is
    delivered when the block ends (nothing is lost), and a process started in the block
    inherits the blocked signal."""
    import signal

    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - not POSIX
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class _ReaderProcess(multiprocessing.get_context("spawn").Process):  # type: ignore[name-defined]
    """A spawned reader that cannot get Ctrl-C while it starts: the scan holds SIGINT back
    (blocks it) while it starts the process, the process inherits the blocked signal across
    exec, so a Ctrl-C while the reader still imports prints no traceback there; the scan gets
    it at the latest when the start returns (at once when another of its threads takes it).
    Starting can take a second on a slow machine: a signal ignored meanwhile would be lost."""

    def start(self) -> None:
        with _sigint_held():
            super().start()


class _ReaderContext(type(multiprocessing.get_context("spawn"))):  # type: ignore[misc]
    Process = _ReaderProcess


def _start_reader(parent_pid: int) -> None:
    """Reader-process initializer: Ctrl-C is the scan's to handle (the main process stops the
    readers), so a reader ignores SIGINT instead of printing a traceback; it exits with the scan."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent(parent_pid)


def _stop_readers(pool: ProcessPoolExecutor, *, grace_seconds: float = 5.0) -> None:
    """Cancel the queued cases and end the reader processes now (terminate, then kill)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    results = getattr(pool, "_result_queue", None)  # shutdown() forgets it
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + grace_seconds
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
    # A reader ended while it wrote a prepared case leaves the pool's manager thread waiting for
    # the rest of that message, and the interpreter joins that thread at exit: Ctrl-C would hang.
    # The readers are gone, so closing this process's own write end of the result pipe gives the
    # thread end-of-file and it winds down.
    writer = getattr(results, "_writer", None)
    if writer is not None and not writer.closed:
        writer.close()


class WorstKeeper:
    """Tracks the ``n`` worst predicted labels seen so far (ties by case, then label).

    A label is in the final worst ``n`` only if it was among the worst ``n`` when it was
    committed, so thumbnails are stored exactly for those labels (a small, bounded number).
    """

    def __init__(self, n: int, seen: Sequence[tuple[float | None, str, str]] = ()) -> None:
        self.n = int(n)
        self._worst: list[tuple[float, str, str]] = []
        for dsc, case_id, label in seen:
            self.offer(dsc, case_id, label)

    def offer(self, dsc: float | None, case_id: str, label: str) -> bool:
        """Add a label's score; True when it is among the worst ``n`` so far."""
        if self.n <= 0 or dsc is None or math.isnan(dsc):
            return False
        key = (float(dsc), case_id, label)
        if len(self._worst) >= self.n and key >= self._worst[-1]:
            return False
        bisect.insort(self._worst, key)
        del self._worst[self.n:]
        return True


def _calibration(predictor: SlicePredictor, method: str) -> Calibration | None:
    """The model's label calibration, used with the default (area-weighted) aggregation only."""
    if method != DEFAULT_METHOD:
        return None
    try:
        return model_calibration(getattr(predictor, "meta", None))
    except ValueError as exc:
        raise ModelError(f"model file: {exc}") from None


def _bands(calibration: Calibration | None) -> StructureBands | None:
    """The prediction-interval bands stored in the model's calibration (None: none stored)."""
    try:
        return None if calibration is None else calibration_bands(calibration)
    except ValueError as exc:
        raise ModelError(f"model file: {exc}") from None


def _novelty(predictor: SlicePredictor, calibration: Calibration | None) -> NoveltyCheck | None:
    """The check that widens the intervals of labels unlike the calibration's (None for a
    model without a calibrated interval)."""
    if calibration is None or _bands(calibration) is None:
        return None
    try:
        return NoveltyCheck(predictor, calibration)
    except ValueError as exc:
        raise ModelError(f"model file: {exc}") from None


def _errors(calibration: Calibration | None) -> ErrorClassifier | None:
    """The error classifier stored with the model's calibration (None: none stored)."""
    from qsaudit.inference.error_model import calibration_errors

    try:
        return None if calibration is None else calibration_errors(calibration)
    except ValueError as exc:
        raise ModelError(f"model file: {exc}") from None


def _likely_errors(errors: ErrorClassifier,
                   pending: list[tuple[int, np.ndarray, Any, np.ndarray, np.ndarray, Any]],
                   rows: list[dict[str, Any]]) -> None:
    """Set ``likely_error``, ``likely_error_p`` and ``error_slices`` of a case's scored labels:
    ``pending`` holds (index into ``rows``, label features, prepared label, slice scores,
    end-probe scores, part-probe scores or None) per label; the classifier runs once over them
    all (one call per label cost as much as the rest of the label's bookkeeping)."""
    from qsaudit.inference.error_model import classifier_rows, locate_error

    if not pending:
        return
    names = [rows[i].get("structure") or rows[i].get("label") for i, *_ in pending]
    kinds, prob = errors.predict(classifier_rows(np.stack([f for _, f, *_ in pending]), names))
    for (i, _features, work, scores, probes, parts), kind, p in zip(pending, kinds, prob,
                                                                 strict=True):
        kind = str(kind)
        z_range = work.z_range or (int(work.slice_indices[0]), int(work.slice_indices[-1]) + 1)
        where = locate_error(kind, slice_indices=work.slice_indices, scores=scores,
                             z_range=z_range, z_areas=work.z_areas,
                             probe_sides=work.probe_sides, probe_scores=probes,
                             z_size=work.z_size, slice_mm=work.slice_mm,
                             pieces=work.part_pieces, part_slices=work.part_slices,
                             part_scores=parts)
        rows[i].update(likely_error=kind, likely_error_p=float(p), error_slices=where)


def _volume_ends(work: Any) -> int | None:
    """How many of a prepared label's ends lie on its volume's edge slices (None when its
    slice range is unknown)."""
    from qsaudit.inference.probes import volume_ends

    if work.z_range is None or not work.z_size:
        return None
    return volume_ends(work.z_range, work.z_size)


def _reads(calibration: Calibration | None, names: tuple[str, ...]) -> bool:
    """True when ``calibration`` uses any of the features ``names`` (the readers then
    compute them)."""
    return calibration is not None and any(n in names for n in calibration.names)


def _case_part(scored: ScoredCase, method: str, keeper: WorstKeeper,
               calibration: Calibration | None = None, bands: StructureBands | None = None,
               novelty: NoveltyCheck | None = None, errors: ErrorClassifier | None = None
               ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Rows, slice rows and thumbnails of one scored case (``predicted_dsc`` calibrated when
    the model has a calibration, with the interval of its ``bands`` when it has them, widened
    by ``novelty`` for labels unlike the calibration's; ``raw_score`` is always the plain
    aggregate; ``likely_error`` and where it lies from the calibration's ``errors``
    classifier, when it has one)."""
    rows, slice_rows, thumbs = [], [], {}
    pending: list[tuple[int, np.ndarray, Any, np.ndarray, np.ndarray, Any]] = []
    for work, all_scores, all_raw in zip(scored.case.labels, scored.scores, scored.raw,
                                         strict=True):
        row = dict(work.row)
        n = int(work.slice_indices.size)  # the end probes' scores follow the slices' scores,
        e = n + int(work.n_probes)         # then the part probes'
        scores, raw = all_scores[:n], all_raw[:n]
        probes = all_scores[n:e]
        parts = None if work.n_parts is None else all_scores[e:]
        if n:
            if calibration is not None:
                agg = calibrated_aggregate(scores, work.slice_areas, calibration,
                                           population=row.get("mask_slices"),
                                           slice_indices=work.slice_indices, shape=work.shape,
                                           probes=probes, slice_mm=work.slice_mm,
                                           volume_ends=_volume_ends(work), parts=parts,
                                           structure=row.get("structure"),
                                           bands=None if bands is None
                                           else bands.for_structure(row.get("structure")))
                if errors is not None and agg.features is not None:
                    pending.append((len(rows), agg.features, work, scores, probes, parts))
                if novelty is not None:
                    agg, row["novelty"], row["name_similarity"] = novelty.apply(
                        agg, row.get("structure") or row.get("label"))
            elif method == "mean":  # clip(mean of raw outputs), as the paper scores a label
                plain = aggregate(raw, work.slice_areas, method=method,
                                  population=row.get("mask_slices"))
                agg = replace(plain, dsc=float(np.clip(plain.dsc, 0.0, 1.0)))
            else:
                agg = aggregate(scores, work.slice_areas, method=method,
                                population=row.get("mask_slices"))
            raw_agg = aggregate(raw, work.slice_areas, method=method)
            worst = int(np.argmin(scores))
            row.update(predicted_dsc=agg.dsc, dsc_low=agg.low, dsc_high=agg.high,
                       raw_score=raw_agg.dsc, slice_std=agg.std,
                       worst_slice=int(work.slice_indices[worst]),
                       n_slices=int(work.slice_indices.size))
            for z, s, a in zip(work.slice_indices, scores, work.slice_areas, strict=True):
                slice_rows.append({"label": work.label, "slice_index": int(z),
                                   "slice_dsc": float(s), "mask_voxels": int(a)})
            if keeper.offer(agg.dsc, scored.case.case_id, work.label):
                order = np.lexsort((work.slice_indices, scores))[:REPORT_SLICES]
                thumbs[work.label] = {"ct": work.thumb_ct[order], "mask": work.thumb_mask[order],
                                      "slice_indices": work.slice_indices[order].tolist(),
                                      "spacing": work.thumb_spacing, "views": work.thumb_views}
        else:
            row.update(n_slices=0)
        rows.append({k: _plain(v) for k, v in row.items()})
    if errors is not None:
        _likely_errors(errors, pending, rows)
    part = {"rows": rows, "slices": slice_rows, "body_area_mm2": _plain(scored.case.body_area_mm2),
            "seconds": scored.case.seconds}
    return part, thumbs


class ModelThreads:
    """Shares the CPU cores between the model (torch threads) and the reader processes.

    Whether the model should take every core (a ResNet-50: the readers sit idle with their
    queue full) or leave the readers theirs (a small model: OpenMP threads sharing a core with a
    busy reader spin and stall it) depends on the model, the data and the machine, and the
    wrong choice feeds itself (a stalled model looks like the bottleneck). So it is measured:
    after the first case (start-up), ``PROBE`` cases run with every core and ``PROBE`` with the
    readers' share, the setting with the shorter time per case (wait + model) is kept, and the
    trial is repeated every ``REPROBE`` cases. Scores do not depend on the thread count (oneDNN's
    forward passes split work by output; tests/model check it). A context manager: torch's
    thread count is restored on exit; ``history`` lists the settings used, in order.
    """

    PROBE = 3
    REPROBE = 64

    def __init__(self, predictor: SlicePredictor, workers: int) -> None:
        import torch

        device = getattr(predictor, "device", None)
        self.active = workers > 0 and getattr(device, "type", None) == "cpu"
        cores = usable_cores()
        self.all = max(1, min(cores, torch.get_num_threads()))  # never beyond torch's own choice
        self.shared = max(1, min(self.all, cores - workers))
        self.cases = 0
        self.history: list[int] = []
        self._trial: list[int] = []
        self._timed: dict[int, list[float]] = {}
        self._since = 0
        self._before: int | None = None

    def __enter__(self) -> ModelThreads:  # noqa: PYI034 - a plain class, not subclassed
        if self.active:
            import torch

            self._before = torch.get_num_threads()
            self._set(self.all)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._before is not None:
            import torch

            torch.set_num_threads(self._before)

    def update(self, *, waited: float, computed: float) -> None:
        """Account one case: seconds waited for the readers and spent in the model."""
        if not self.active:
            return
        self.cases += 1
        if self.cases == 1:  # start-up: the readers were starting, nothing to learn
            self._start_trial()
            return
        if self._trial:
            current = self._trial[0]
            self._timed.setdefault(current, []).append(waited + computed)
            if len(self._timed[current]) >= self.PROBE:
                self._trial.pop(0)
                if self._trial:
                    self._set(self._trial[0])
                else:  # keep the faster setting until the next trial
                    best = min(self._timed, key=lambda t: float(np.mean(self._timed[t])))
                    self._set(best)
                    self._since = 0
            return
        self._since += 1
        if self._since >= self.REPROBE:
            self._start_trial()

    def _start_trial(self) -> None:
        self._trial = list(dict.fromkeys((self.all, self.shared)))
        self._timed = {}
        if len(self._trial) == 1:  # nothing to choose between
            self._trial = []
            self._since = -(10 ** 9)
        self._set(self._trial[0] if self._trial else self.all)

    def _set(self, threads: int) -> None:
        import torch

        if not self.history or self.history[-1] != threads:
            torch.set_num_threads(threads)
            self.history.append(threads)


def _batch_size(predictor: SlicePredictor) -> int:
    """The crops per forward pass that suit ``predictor`` (its ``batch_size``; a Ray fleet's is
    the one its actors use), else the CPU rule for its input size."""
    chosen = getattr(predictor, "batch_size", None)
    if chosen is not None:
        return int(chosen)
    return 32


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _load_predictor(settings: ScanSettings) -> SlicePredictor:
    from qsaudit.model.checkpoint import default_weights_path, load_checkpoint

    return load_checkpoint(settings.model or default_weights_path(), device=settings.device,
                           precision=settings.precision)


def _identity(settings: ScanSettings, predictor: SlicePredictor) -> dict[str, Any]:
    """The settings that change results, plus the arithmetic: bf16 moves scores by up to
    ~0.01, so a scan resumes (and shards merge) only in the precision it began in (folders
    from before precision was recorded count as fp32, see store.IDENTITY_DEFAULTS)."""
    return {**settings.identity(), "precision": _precision(predictor)}


def _shown_settings(manifest: dict[str, Any]) -> dict[str, Any]:
    """Settings for the report, with the device and precision actually used."""
    from qsaudit.reports.scan_report import settings_as_run

    return settings_as_run(manifest) or {}


def _precision(predictor: SlicePredictor) -> str:
    """The arithmetic ``predictor`` computes in (fp32 for predictors that do not say)."""
    return str(getattr(predictor, "precision", "fp32"))


def _model_info(predictor: SlicePredictor, settings: ScanSettings) -> dict[str, Any]:
    path = getattr(predictor, "path", None) or settings.model
    config = getattr(predictor, "config", None)
    return {"name": Path(path).name if path else type(predictor).__name__,
            "path": str(path) if path else None,
            "fingerprint": predictor.fingerprint,
            "config": config.to_dict() if hasattr(config, "to_dict") else None,
            "device": str(getattr(predictor, "device", settings.device)),
            "precision": _precision(predictor)}


def _summary(out_dir: Path, outputs: Any, *, scanned: int, resumed: int,
             seconds: float) -> ScanSummary:
    table = outputs.results
    counts = {str(k): int(v) for k, v in table["status"].value_counts().sort_index().items()}
    dsc = table["predicted_dsc"].dropna()
    return ScanSummary(out_dir=out_dir, cases=int(table["case_id"].nunique()),
                       labels=len(table), scanned_cases=scanned, resumed_cases=resumed,
                       status_counts=counts, flagged=int((table["n_flags"] > 0).sum()),
                       mean_dsc=float(dsc.mean()) if len(dsc) else float("nan"),
                       seconds=seconds, results_csv=outputs.results_csv,
                       report=outputs.report, report_error=outputs.report_error)


def _starting(workers: int) -> str:
    """What the scan does before its first case is committed (the bar sits at 0 meanwhile)."""
    readers = f"starting {workers} reader process{'es' if workers != 1 else ''}, " if workers \
        else ""
    return f"{readers}reading the first cases and warming up the model…"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
