"""Where a scan's time went: the breakdown written to ``scan.json`` → ``timings.breakdown``.

Two readings of one scan. The *wall* parts follow the main process, whose wall time they add up
to. The *CPU* parts count the seconds of processor time each kind of work took in every process
of the scan (the main process with all its threads, the reader processes from their start to
their exit): readers work in parallel with the main process, so wall times of different
processes cannot be added, CPU seconds can. On a machine whose cores are all busy (the usual
CPU scan) a kind of work's share of the CPU seconds is its share of the scan's time: removing it
would shorten the scan by that share. :func:`beyond_share` is the issue-15 figure, the share of
that time spent on anything but decompressing files and the network's forward passes.
"""

from __future__ import annotations

import time
from typing import Any


def children_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process's finished and reaped child processes;
    0.0 where the platform does not report them."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return 0.0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return float(usage.ru_utime + usage.ru_stime)


def cpu_now() -> tuple[float, float]:
    """``(this process's CPU seconds, its reaped children's)``, to subtract from a later call."""
    return time.process_time(), children_cpu_seconds()


def time_breakdown(timings: dict[str, Any]) -> dict[str, float]:
    """Where a scan's time went, in seconds (``scan.json`` → ``timings.breakdown``).

    Main-process wall parts that add up to ``total``: ``setup`` (listing the cases, loading the
    model), ``network`` (the forward passes), ``batching`` (assembling batches and spreading the
    scores back, the rest of ``model_seconds``), ``waiting_for_readers``, ``writing`` (each
    case's aggregation, checks and part file), ``tables_and_report`` (the final tables and
    report.html) and ``other``. ``readers_cpu`` is the reader processes' CPU time inside
    ``prepare_case`` (decoding the files, checks, cropping), in parallel with the rest, so it
    is not part of the sum; ``readers_decoding`` the readers' wall time reading and
    decompressing files, and ``readers_other`` the rest of their wall time (checks, shape
    features, crops). Under Ray the network runs in the actors: there ``batching`` includes it.

    CPU seconds, when the scan recorded them (the local engine does; see the module
    docstring): ``cpu_main`` (the main process, all threads, from the scan's start to the
    report, reading excluded when it ran in this process), ``cpu_network`` (of it, the forward
    passes), ``cpu_readers`` (the reader processes from start-up to exit, or the reading done
    in the main process), ``cpu_readers_decoding`` (of it, reading and decompressing the
    files) and ``beyond_decoding_and_network`` (:func:`beyond_share`, a share 0-1).
    """
    total = float(timings.get("total_seconds", 0.0))
    model = float(timings.get("model_seconds", 0.0))
    network = float(timings.get("network_seconds", 0.0))
    parts = {
        "setup": float(timings.get("setup_seconds", 0.0)),
        "network": network,
        "batching": max(0.0, model - network),
        "waiting_for_readers": float(timings.get("wait_seconds", 0.0)),
        "writing": float(timings.get("commit_seconds", 0.0)),
        "tables_and_report": float(timings.get("finish_seconds", 0.0)),
    }
    parts["other"] = max(0.0, total - sum(parts.values()))
    parts["total"] = total
    parts["readers_cpu"] = float(timings.get("reader_cpu_seconds", 0.0))
    decoding = float(timings.get("reader_decode_seconds", 0.0))
    parts["readers_decoding"] = decoding
    parts["readers_other"] = max(0.0, float(timings.get("read_seconds", 0.0)) - decoding)
    if "main_cpu_seconds" in timings:
        parts.update(_cpu_parts(timings))
    return {key: round(value, 3) if key != "beyond_decoding_and_network" else round(value, 4)
            for key, value in parts.items()}


def _cpu_parts(timings: dict[str, Any]) -> dict[str, float]:
    """The ``cpu_*`` parts of :func:`time_breakdown` and the share beyond them."""
    in_prepare = float(timings.get("reader_cpu_seconds", 0.0))
    main = float(timings["main_cpu_seconds"])
    readers = timings.get("reader_process_cpu_seconds")
    if readers is None:  # the cases were read in the main process: move that work across
        readers, main = in_prepare, max(0.0, main - in_prepare)
    # a reader's start-up and idle polling come on top of its cases; never less than those
    readers = max(float(readers), in_prepare)
    cpu = {"cpu_main": main,
           "cpu_network": min(main, float(timings.get("network_cpu_seconds", 0.0))),
           "cpu_readers": readers,
           "cpu_readers_decoding": min(readers,
                                       float(timings.get("reader_decode_cpu_seconds", 0.0)))}
    cpu["beyond_decoding_and_network"] = beyond_share(cpu)
    return cpu


def beyond_share(cpu: dict[str, float]) -> float:
    """Share (0-1) of a scan's CPU seconds spent beyond decompressing files and the network's
    forward passes: start-up, checks, shape features, crops, batching, writing, tables and
    report, over all of the scan's CPU seconds (``cpu`` holds :func:`time_breakdown`'s
    ``cpu_main``, ``cpu_network``, ``cpu_readers`` and ``cpu_readers_decoding``)."""
    everything = cpu["cpu_main"] + cpu["cpu_readers"]
    if not everything > 0:
        return 0.0
    beyond = everything - cpu["cpu_network"] - cpu["cpu_readers_decoding"]
    return max(0.0, beyond) / everything
