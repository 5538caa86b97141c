"""``scan_dataset_ray``: the scan of ``scan_dataset``, spread over a Ray cluster.

Ray CPU tasks read and prepare cases (``prepare_case``) on whichever node has a free core; the
model runs in actors, one per GPU (CPU actors on a cluster without GPUs), which all load the
model file's bytes from one object put in Ray's object store. The driver keeps a bounded number
of cases in flight (memory does not grow with the number of cases), commits each scored case to
the results folder exactly as the local engine does (``OpenScan.commit``) and writes the final
tables the same way, so resume, ``merge``, the tables and the report do not know which engine
made a folder.

An actor scores one case at a time in fixed-size padded batches (``CrossCaseBatcher``); a crop's
score does not depend on the other crops of its batch, so in fp32 the results are identical to
a local scan on the same kind of device.

Faults: a prepare task whose worker process dies is run again (``RayOptions.retries``); an actor
that dies is restarted with the same weights and the cases it held are scored again. A case is
committed only once scored, so a killed driver loses nothing committed and a rerun resumes.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qsaudit import __version__
from qsaudit.cluster import node_name, ray_session, task_error
from qsaudit.errors import DatasetError, ModelError, QsauditError, UsageError
from qsaudit.inference.batching import CrossCaseBatcher, ScoredCase
from qsaudit.inference.engine import OpenScan, ScanSummary, finish_scan, open_scan
from qsaudit.inference.prepare import PreparedCase, PrepareSpec, prepare_case
from qsaudit.inference.settings import ScanSettings

CASES_PER_ACTOR = 2  # one being scored, one waiting: an actor never idles between cases
ACTOR_START_SECONDS = 600


@dataclass(frozen=True)
class RayOptions:
    """How a scan uses Ray; CLI flags override these defaults.

    Attributes:
        address: cluster to join (``host:port`` of ``ray start --head``, or ``auto``);
            None starts a local Ray instance on this machine for the scan.
        actors: model actors (None: one per GPU of the cluster; without GPUs, half its CPUs,
            at least one).
        in_flight: cases being read, waiting or scored at once (None: two per actor plus one
            per CPU the actors leave to the readers). Bounds the memory of the scan.
        retries: how often a dead worker's task is re-run and a dead actor restarted.
    """

    address: str | None = None
    actors: int | None = None
    in_flight: int | None = None
    retries: int = 3

    def __post_init__(self) -> None:
        for name in ("actors", "in_flight"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"Ray {name.replace('_', ' ')} = {value}: must be at least 1")
        if self.retries < 0:
            raise UsageError(f"Ray retries = {self.retries}: must be 0 or more")


@dataclass(frozen=True)
class ClusterModel:
    """What the driver knows of the model the actors run (what ``open_scan`` reads)."""

    config: Any
    fingerprint: str
    meta: dict[str, Any]
    path: Path
    device: str
    precision: str
    batch_size: int  # the actors' crops per forward pass


class CaseScorer:
    """A model actor: loads the model once from its file's bytes and scores prepared cases."""

    def __init__(self, weights: list[Any], *, device: str, precision: str, batch_size: int,
                 threads: int) -> None:
        """``weights``: ``[ref]``, the object ref of the model file's bytes (nested, so that a
        restarted actor fetches it again from the object store)."""
        import ray
        import torch

        from qsaudit.model.checkpoint import load_checkpoint

        torch.set_num_threads(max(1, threads))
        with tempfile.TemporaryDirectory(prefix="qsaudit-model-") as tmp:
            path = Path(tmp) / "model.pt"
            path.write_bytes(ray.get(weights[0]))
            self.predictor = load_checkpoint(path, device=device, precision=precision)
        self.batch_size = batch_size

    def describe(self) -> dict[str, Any]:
        """Where and how this actor computes."""
        return {"node": node_name(), "device": self.predictor.device.type,
                "precision": self.predictor.precision,
                "fingerprint": self.predictor.fingerprint, "version": __version__}

    def score(self, prepared: tuple[PreparedCase, float]) -> tuple[ScoredCase, dict[str, float]]:
        """Score every crop of one case (from :func:`prepare_on_node`): the case without its
        crops, and the seconds and CPU-seconds spent reading it and in the model."""
        case, read_cpu = prepared
        start, cpu = time.perf_counter(), time.process_time()
        batcher = CrossCaseBatcher(self.predictor, self.batch_size)
        scored = [*batcher.add(case), *batcher.flush()][0]
        return scored, {"model_seconds": time.perf_counter() - start,
                        "model_cpu_seconds": time.process_time() - cpu,
                        "read_cpu_seconds": read_cpu}


def prepare_on_node(case: Any, spec: PrepareSpec, dataset_root: str
                    ) -> tuple[PreparedCase, float]:
    """``prepare_case`` on a Ray worker, and the CPU-seconds it took; refuses a node that
    cannot see the dataset (else every case would be committed as ``missing_image``)."""
    if not os.path.isdir(dataset_root):
        raise DatasetError(f'"{dataset_root}": the dataset folder is not visible on Ray node '
                           f"{node_name()}; put it on storage every node mounts at this path")
    cpu = time.process_time()
    prepared = prepare_case(case, spec)
    return prepared, time.process_time() - cpu


def scan_dataset_ray(dataset: str | Path, out_dir: str | Path, *,
                     settings: ScanSettings | None = None, options: RayOptions | None = None,
                     on_case_committed: Callable[[str], None] | None = None) -> ScanSummary:
    """Scan ``dataset`` into ``out_dir`` like :func:`qsaudit.inference.scan_dataset`, on Ray.

    ``options``: see :class:`RayOptions` (None: a local Ray instance, default actors). The
    results folder is written by this process (the driver); the dataset must be readable at
    the same path on every node. Raises ``UsageError`` when Ray is not installed or the
    cluster cannot be reached, ``DatasetError`` naming a node that cannot see the dataset.
    """
    settings = settings or ScanSettings()
    options = options or RayOptions()
    started = time.perf_counter()
    with ray_session(options.address) as ray:
        fleet = _Fleet(ray, settings, options)
        try:
            scan = open_scan(dataset, out_dir, settings=settings, predictor=None,
                             load=fleet.start, started=started)
            scan.timings["setup_seconds"] = time.perf_counter() - started
            loop_start = time.perf_counter()
            _score_all(ray, scan, fleet, on_case_committed)
            scan.timings["loop_seconds"] = time.perf_counter() - loop_start
            scan.timings["engine"] = fleet.record()
            return finish_scan(scan)
        finally:
            fleet.stop()


class _Fleet:
    """The model actors of one scan (started by ``start``, killed by ``stop``)."""

    def __init__(self, ray: Any, settings: ScanSettings, options: RayOptions) -> None:
        self.ray, self.settings, self.options = ray, settings, options
        self.actors: list[Any] = []
        self.info: list[dict[str, Any]] = []
        self.window = 0
        self.pending: list[Any] = []
        self.weights: Any = None  # held for the whole scan: restarted actors read it again

    def start(self, settings: ScanSettings) -> ClusterModel:
        import torch

        from qsaudit.model.checkpoint import (
            default_batch_size,
            default_weights_path,
            largest_activation,
            load_checkpoint,
        )

        ray, options = self.ray, self.options
        path = Path(settings.model) if settings.model else default_weights_path()
        header = load_checkpoint(path, device="cpu", precision="fp32")  # a bad file fails here
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
        if settings.device == "cuda" and gpus == 0:
            raise UsageError("--device cuda: the Ray cluster has no GPU")
        use_gpu = gpus > 0 and settings.device != "cpu"
        count = options.actors or (gpus if use_gpu else max(1, cpus // 2))
        if use_gpu and count > gpus:
            raise UsageError(f"--ray-actors {count}: the Ray cluster has {gpus} GPU(s)")
        # an actor holds its CPU for the whole scan: when that would leave none to the readers,
        # the actors share the CPUs with them (as the local engine's model does on one core)
        actor_cpus = 1 if cpus >= count + 1 else 0
        actor_class = ray.remote(CaseScorer).options(
            num_cpus=actor_cpus, num_gpus=1 if use_gpu else 0, max_restarts=options.retries,
            max_task_retries=options.retries)
        self.weights = ray.put(path.read_bytes())  # shipped once to each node's object store
        self.batch_size = settings.batch_size or default_batch_size(
            torch.device("cuda" if use_gpu else "cpu"),
            largest_activation(header.model, int(header.config.input_size)))
        self.actors = [actor_class.remote([self.weights], device="cuda" if use_gpu else "cpu",
                                          precision=settings.precision,
                                          batch_size=self.batch_size, threads=1)
                       for _ in range(count)]
        try:
            self.info = ray.get([a.describe.remote() for a in self.actors],
                                timeout=ACTOR_START_SECONDS)
        except ray.exceptions.GetTimeoutError:
            raise QsauditError(f"{count} Ray model actor(s) did not start within "
                               f"{ACTOR_START_SECONDS // 60} minutes: the cluster lacks the "
                               "CPUs/GPUs they need (see ray status)") from None
        except ray.exceptions.RayError as exc:
            raise task_error(exc, what=f'model "{path}" on a Ray actor') from None
        self._check(header)
        readers = max(1, cpus - count * actor_cpus)
        self.window = options.in_flight or CASES_PER_ACTOR * count + readers
        return ClusterModel(config=header.config, fingerprint=header.fingerprint,
                            meta=header.meta, path=path, device=self.info[0]["device"],
                            precision=self.info[0]["precision"], batch_size=self.batch_size)

    def _check(self, header: Any) -> None:
        for info in self.info:
            if info["version"] != __version__:
                raise UsageError(f"Ray node {info['node']} runs qsaudit {info['version']}, this "
                                 f"one {__version__}: install the same version on every node")
            if info["fingerprint"] != header.fingerprint:
                raise ModelError(f"Ray node {info['node']}: the model arrived damaged")
        precisions = sorted({i["precision"] for i in self.info})
        if len(precisions) > 1:  # bf16 and fp32 scores would be mixed in one folder
            raise ModelError(f"the Ray actors compute in {' and '.join(precisions)}: "
                             "give --precision fp32 (or bf16) so that all compute alike")

    def record(self) -> dict[str, Any]:
        """What ``scan.json`` records about the cluster."""
        return {"name": "ray", "address": self.options.address, "actors": len(self.actors),
                "nodes": sorted({i["node"] for i in self.info}), "in_flight": self.window,
                "device": self.info[0]["device"] if self.info else None}

    def stop(self) -> None:
        for ref in self.pending:
            self.ray.cancel(ref)
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors, self.pending, self.weights = [], [], None


def _score_all(ray: Any, scan: OpenScan, fleet: _Fleet,
               on_case_committed: Callable[[str], None] | None) -> None:
    """Prepare, score and commit every case of ``scan.todo``, at most ``fleet.window`` at once.

    Prepared cases go to the actor with the fewest cases; each scored case is committed as soon
    as it comes back, in whatever order (the final tables are sorted).
    """
    from qsaudit.progress import progress_bar

    prepare = ray.remote(prepare_on_node).options(num_cpus=1, max_retries=fleet.options.retries)
    root = str(scan.dataset.resolve())
    todo = iter(scan.todo)
    preparing: dict[Any, Any] = {}  # prepare ref -> case
    prepared: deque[tuple[Any, Any]] = deque()  # (prepare ref, case) waiting for an actor
    scoring: dict[Any, tuple[Any, int]] = {}  # score ref -> (case, actor index)
    load = [0] * len(fleet.actors)
    with progress_bar() as progress:
        task = progress.add_task("scanning", total=len(scan.todo),
                                 info=f"{len(fleet.actors)} Ray actor(s)")
        while True:
            while len(preparing) + len(prepared) + len(scoring) < fleet.window:
                case = next(todo, None)
                if case is None:
                    break
                preparing[prepare.remote(case, scan.spec, root)] = case
            while prepared and min(load) < CASES_PER_ACTOR:
                index = load.index(min(load))
                ref, case = prepared.popleft()
                scoring[fleet.actors[index].score.remote(ref)] = (case, index)
                load[index] += 1
            fleet.pending = [*preparing, *scoring]
            if not fleet.pending:
                break
            (ref,), _ = ray.wait(fleet.pending, num_returns=1)
            if ref in preparing:  # a failed read surfaces when its actor call fails
                prepared.append((ref, preparing.pop(ref)))
                continue
            case, index = scoring.pop(ref)
            load[index] -= 1
            try:
                scored, spent = ray.get(ref)
            except ray.exceptions.RayError as exc:
                raise task_error(exc, what=f'case "{case.case_id}"') from None
            scan.commit(scored)
            for key, seconds in spent.items():  # in the workers, summed over them
                scan.timings[key] = scan.timings.get(key, 0.0) + seconds
            progress.update(task, advance=1)
            if on_case_committed is not None:
                on_case_committed(case.case_id)
