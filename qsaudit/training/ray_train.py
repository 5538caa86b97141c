"""``qsaudit train --engine ray``: sample building as Ray tasks, data-parallel training with
Ray Train.

:class:`RayTraining` stands in for the local ``build_samples`` and ``fit`` inside
``train_model``: the case groups (units) of :mod:`qsaudit.training.build`, the slow CPU part,
are built by Ray tasks on any node (a bounded number at once) and joined as the local build
joins them; the network is then trained by ``workers`` Ray Train workers (one per GPU, or CPU
workers), each running the local training loop (:func:`qsaudit.training.trainer.fit`) on its
share of every batch, gradients averaged by DistributedDataParallel. Batches are drawn from the
same seeded order as a local run; the model differs from a local run's only by data-parallel
arithmetic (per-worker batch-norm statistics, pairs of the ranking loss within a worker's
share). The first worker validates and sends the best weights back through a Ray Train
checkpoint under ``storage`` (on a multi-node cluster: a folder every node mounts).
"""

from __future__ import annotations

import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from qsaudit.cluster import first_line, ray_session, task_error
from qsaudit.errors import QsauditError, UsageError
from qsaudit.training.build import Unit, build_unit, combine_units, make_units
from qsaudit.training.samples import SampleSet

RESULT_FILE = "fit.pt"


def build_unit_on_node(unit: Unit, model_config: Any, sample_config: Any) -> SampleSet:
    """``build_unit`` on a Ray worker, on one thread (a worker has one CPU)."""
    import torch

    torch.set_num_threads(1)
    return build_unit(unit, model_config, sample_config)


@dataclass(frozen=True)
class RayTraining:
    """Where and how ``train_model`` uses Ray (pass it as ``train_model(..., cluster=)``).

    Attributes:
        address: cluster to join; None: a local Ray instance (unless already connected).
        workers: Ray Train workers (None: one per GPU of the cluster, else 2).
        storage: folder for Ray Train's checkpoints (None: a temporary folder, fine on one
            machine; on several machines give a folder every node mounts).
        retries: how often a build task whose worker died is run again.
    """

    address: str | None = None
    workers: int | None = None
    storage: Path | None = None
    retries: int = 3

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise UsageError(f"Ray workers = {self.workers}: must be at least 1")

    @staticmethod
    def check(config: Any, *, resume: bool) -> None:
        """Refuse what a Ray run cannot do (before any work): UsageError."""
        if resume:
            raise UsageError("--resume continues the state file of a local training run; "
                             "with --engine ray run without --resume")
        if config.max_minutes is not None:  # one worker stopping alone would stall the others
            raise UsageError("--max-minutes stops one process; with --engine ray give "
                             "--epochs instead")

    def build_samples(self, specs: list, validation_patients: set[str], *, model_config: Any,
                      sample_config: Any, seed: int, workers: int = 0,
                      on_unit: Callable[[int, int], None] | None = None
                      ) -> tuple[SampleSet, SampleSet]:
        """As :func:`qsaudit.training.build.build_samples`, each unit a Ray task
        (``workers``: units built at once; 0 = one per CPU of the cluster)."""
        units = make_units(specs, validation_patients, group=sample_config.snapshot_group,
                           seed=seed, draw=sample_config.draw)
        results: list[SampleSet | None] = [None] * len(units)
        with ray_session(self.address) as ray:
            build = ray.remote(build_unit_on_node).options(num_cpus=1,
                                                           max_retries=self.retries)
            window = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
            waiting, running = deque(enumerate(units)), {}
            while waiting or running:
                while waiting and len(running) < window:
                    index, unit = waiting.popleft()
                    running[build.remote(unit, model_config, sample_config)] = index
                (ref,), _ = ray.wait(list(running), num_returns=1)
                index = running.pop(ref)
                try:
                    results[index] = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    names = ", ".join(s.case_id for s in units[index].specs)
                    raise task_error(exc, what=f"building samples of {names}") from None
                if on_unit:
                    on_unit(sum(r is not None for r in results), len(units))
        return combine_units(results, units, sample_config=sample_config, seed=seed,
                             size=model_config.input_size)

    def fit(self, model: Any, train: SampleSet, val: SampleSet, *, config: Any,
            embeddings: dict[str, np.ndarray], state_path: Path | None = None,
            resume: bool = False, on_step: Callable | None = None,
            on_epoch: Callable[[dict[str, Any]], None] | None = None,
            fingerprint: dict[str, Any] | None = None) -> Any:
        """As :func:`qsaudit.training.trainer.fit`, data-parallel on Ray Train workers.

        ``on_epoch`` gets every epoch's record once training is done (Ray Train runs the
        epochs); there is no per-step progress, no state file and no ``resume``.
        """
        import torch

        from qsaudit.training.trainer import FitResult

        self.check(config, resume=resume)
        with ray_session(self.address) as ray:
            from ray.train import RunConfig, ScalingConfig
            from ray.train.torch import TorchTrainer

            gpus = int(ray.cluster_resources().get("GPU", 0))
            use_gpu = gpus > 0 and config.device != "cpu"
            workers = self.workers or (gpus if use_gpu else 2)
            loop_config = {
                "samples": [ray.put(train), ray.put(val)],  # nested: fetched by each worker
                "weights": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "model_config": model.config, "config": config, "embeddings": embeddings,
            }
            with tempfile.TemporaryDirectory(prefix="qsaudit-ray-train-") as tmp:
                storage = Path(self.storage or tmp).resolve()
                trainer = TorchTrainer(
                    _train_loop, train_loop_config=loop_config,
                    scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu,
                                                 resources_per_worker={"CPU": 1}),
                    run_config=RunConfig(storage_path=str(storage), name="qsaudit-train"))
                try:
                    result = trainer.fit()
                except Exception as exc:  # noqa: BLE001 - Ray Train wraps the workers' errors
                    cause = exc
                    while getattr(cause, "__cause__", None) is not None:
                        cause = cause.__cause__
                    if isinstance(cause, QsauditError):
                        raise cause from None
                    raise QsauditError(f"Ray Train: {first_line(exc)}") from None
                if result.checkpoint is None:
                    raise QsauditError("Ray Train finished without the trained weights")
                with result.checkpoint.as_directory() as folder:
                    fitted = torch.load(Path(folder) / RESULT_FILE, map_location="cpu",
                                        weights_only=False)
        for record in fitted["history"]:
            if on_epoch:
                on_epoch({**record, "ray_workers": workers})
        return FitResult(**fitted)


def _train_loop(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker: the local training loop on this worker's share of each batch."""
    import ray
    import ray.train
    import ray.train.torch
    import torch

    from qsaudit.model.network import QualityNet
    from qsaudit.training.trainer import fit

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    train_ref, val_ref = loop_config["samples"]
    train = ray.get(train_ref)
    model_config = loop_config["model_config"]
    # the first worker validates (and keeps the best weights); the others only train
    val = ray.get(val_ref) if rank == 0 else SampleSet.empty(model_config.input_size)
    device = ray.train.torch.get_device()
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.set_num_threads(1 if device.type == "cpu" else torch.get_num_threads())
    model = QualityNet(model_config)
    model.load_state_dict(loop_config["weights"])
    config = replace(loop_config["config"], device=str(device))
    result = fit(model, train, val, config=config, embeddings=loop_config["embeddings"],
                 on_epoch=lambda record: ray.train.report({"epoch": record["epoch"]}),
                 shard=(rank, world),
                 wrap=lambda m: ray.train.torch.prepare_model(m, move_to_device=False))
    if rank != 0:
        ray.train.report({"done": True})
        return
    with tempfile.TemporaryDirectory(prefix="qsaudit-fit-") as tmp:
        torch.save({"best_state": result.best_state, "best_metrics": result.best_metrics,
                    "best_epoch": result.best_epoch, "history": result.history,
                    "epochs_done": result.epochs_done, "stopped_early": result.stopped_early,
                    "seconds": result.seconds}, Path(tmp) / RESULT_FILE)
        ray.train.report({"done": True}, checkpoint=ray.train.Checkpoint.from_directory(tmp))
