"""Throughput and memory of ``qsaudit scan --engine ray``, and hours for 20,000 CTs x 25 labels.

Prints, in one run:

1. labels/s of a Ray scan on this machine with 1 and 2 workers (a worker = one CPU core: the
   local Ray instance gets ``num_cpus=W`` and its processes are pinned to W cores; with one
   core the model actor shares it with the readers, with two it has its own), the CPU-seconds
   per case of the readers and the model actor (as ``scan.json`` records them), of the driver
   and of Ray's own processes (from the first commit to the last), and the node's peak memory (PSS of the driver
   and every Ray process, so the object store's shared pages count once) at two dataset
   sizes: memory must not grow with the number of cases. Wall-clock rates depend on what else
   the machine runs (its load is printed); CPU-seconds hardly do, so they feed the table;
2. a table of hours for 20,000 CTs x 25 labels against nodes and GPUs: CPU-only rows are the
   measured CPU-seconds per case spread over every core of a node (measured rate, scaled);
   GPU rows are PROJECTED: no GPU was measured, the GPU's rate is ``--gpu-crops-per-s`` (an
   assumption, printed) and the readers' CPU-seconds per case are the measured ones. One
   driver commits every case: its CPU-seconds per case cap the rate of any cluster.

The data are ``qsaudit demo`` phantoms (as ``benchmarks/scan_speed.py`` makes them) and the model
is the shipped default model, fp32 on CPU.

Usage: python benchmarks/ray_scale.py [--cases 8] [--labels 25] [--shape 256 256 150]
       [--gpu-crops-per-s 20000] [--keep DIR]
Needs the extra: pip install "qsaudit[ray]". Timings depend on the machine; run on an idle one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

TARGET_CTS, TARGET_LABELS = 20_000, 25

# Runs in a fresh process pinned to W cores (its Ray processes inherit the pinning).
RUN = """
import json, os, sys, threading, time
from pathlib import Path
cores = {workers}
os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:cores]))
import ray
ray.init(address="local", num_cpus=cores, object_store_memory=512 * 1024 ** 2,
         include_dashboard=False, logging_level="ERROR", log_to_driver=False)
from ray_scale import node_processes, role
peak = [0.0]
sampler_cpu = [0.0]  # the sampler's own CPU time, taken out of the driver's
stop = threading.Event()
def sample():
    while not stop.is_set():
        found = node_processes()
        peak[0] = max(peak[0], sum(p[2] for p in found))
        sampler_cpu[0] = time.thread_time()
        time.sleep(0.5)
thread = threading.Thread(target=sample, daemon=True)
thread.start()
from qsaudit.inference import ScanSettings
from qsaudit.inference.ray_engine import RayOptions, scan_dataset_ray
from qsaudit.progress import set_quiet
set_quiet(True)
def other_cpu():  # (driver less the sampler, Ray's own processes)
    found = [p for p in node_processes() if role(p[1]) == "other"]
    driver = sum(p[3] for p in found if p[0] == os.getpid()) - sampler_cpu[0]
    return driver, sum(p[3] for p in found if p[0] != os.getpid())
first, last = [], []
def mark(case_id):  # from the first commit to the last: start-up left out
    (last if first else first).append(other_cpu())
summary = scan_dataset_ray({dataset!r}, {out!r},
                           settings=ScanSettings(device="cpu", precision="fp32", slices=10),
                           options=RayOptions(actors=1), on_case_committed=mark)
stop.set(); thread.join()
timings = json.loads((Path({out!r}) / "scan.json").read_text())["timings"]
n = summary.cases
steady = {{"readers": timings["read_cpu_seconds"] / n, "model": timings["model_cpu_seconds"] / n,
          "driver": (last[-1][0] - first[0][0]) / (n - 1) if last else float("nan"),
          "ray": (last[-1][1] - first[0][1]) / (n - 1) if last else float("nan")}}
print(json.dumps({{"labels": summary.labels, "cases": n, "peak_mib": peak[0],
                  "timings": timings, "cpu_per_case": steady}}))
ray.shutdown()
"""


def node_processes() -> list[tuple[int, str, float, float]]:
    """(pid, title, PSS MiB, CPU seconds) of this process and all its descendants (the driver
    and the Ray instance it started). PSS splits shared pages, e.g. the object store's, among
    the processes mapping them instead of counting them in each."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    ours, grown = {os.getpid()}, True
    while grown:
        new = {pid for pid, parent in parents.items() if parent in ours} - ours
        ours |= new
        grown = bool(new)
    found = []
    tick = os.sysconf("SC_CLK_TCK")
    for pid in ours:
        try:
            proc = Path(f"/proc/{pid}")
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            cpu = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
            title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            pss = sum(int(line.split()[1]) for line in
                      (proc / "smaps_rollup").read_text().splitlines() if line.startswith("Pss:"))
        except (OSError, ValueError, IndexError):
            continue
        found.append((pid, title.strip(), pss / 1024, cpu))
    return found


def role(title: str) -> str:
    """workers (model actors and readers, whose CPU time the scan records itself) or other
    (the driver, raylet, GCS, agents)."""
    return "workers" if title.startswith(("ray::CaseScorer", "ray::prepare_on_node",
                                          "ray::IDLE")) else "other"


def run_scan(dataset: Path, out: Path, workers: int) -> dict:
    """One Ray scan of ``dataset`` on ``workers`` cores, in a fresh process; its figures."""
    code = RUN.format(workers=workers, dataset=str(dataset), out=str(out))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "benchmarks")])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"the scan on {workers} core(s) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def print_table(cpu: dict[str, float], *, labels: int, gpu_crops_per_s: float) -> None:
    """Section 2: hours for TARGET_CTS CTs from the CPU-seconds per case ``cpu`` (readers,
    model, driver; Ray's own processes cost CPU per second, not per case: left out)."""
    per_case = cpu["readers"] + cpu["model"]  # the work of a case, on whichever node
    driver_rate = 1 / cpu["driver"]  # one driver commits every case
    print(f"   per dedicated core: {1 / per_case:.3f} CTs/s = {labels / per_case:.1f} labels/s "
          f"(reading + model); the driver commits at most {driver_rate:.1f} CTs/s")
    print(f"\n2. hours for {TARGET_CTS:,} CTs x {TARGET_LABELS} labels from those CPU-seconds "
          "(CTs like these; real CTs of 512 x 512 x ~300 read several times slower)")
    print(f"   {'node':<30}nodes:     1       4      16      64   source")
    rows = [("16 cores, CPU only", 16 / per_case, "measured CPU-s per case, 16 busy cores")]
    for node_cores, gpus in ((16, 1), (32, 4), (64, 8)):
        readers = (node_cores - gpus) / cpu["readers"]
        gpu = gpus * gpu_crops_per_s / (labels * 10)
        bound = "readers" if readers < gpu else "GPU"
        source = f"PROJECTED: {bound} bound, GPU {gpu_crops_per_s:.0f} crops/s assumed"
        rows.append((f"{node_cores} cores + {gpus} GPU", min(readers, gpu), source))
    for name, rate, source in rows:
        hours = [TARGET_CTS / (rate * nodes) / 3600 for nodes in (1, 4, 16, 64)]
        print(f"   {name:<36}" + "".join(f"{h:8.2f}" for h in hours) + f"   {source}")
    print(f"   but one driver commits at most {driver_rate:.1f} CTs/s (measured): no scan of "
          f"{TARGET_CTS:,} CTs ends in under {TARGET_CTS / driver_rate / 3600:.1f} h while the "
          "driver aggregates and writes every case")


def main() -> None:
    from scan_speed import make_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--labels", type=int, default=TARGET_LABELS, help="masks per case")
    parser.add_argument("--shape", type=int, nargs=3, default=(256, 256, 150),
                        metavar=("X", "Y", "Z"))
    parser.add_argument("--gpu-crops-per-s", type=float, default=20000.0,
                        help="ASSUMED crops/s of one GPU actor (not measured here)")
    parser.add_argument("--keep", type=Path, default=None, help="keep files in this folder")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    if cores < 2:
        raise SystemExit("needs 2 cores to compare 1 and 2 workers")
    work = args.keep or Path(tempfile.mkdtemp(prefix="qsaudit-ray-bench-"))
    common = {"labels": args.labels, "shape": tuple(args.shape), "unique": 2}
    t = time.perf_counter()
    big = make_dataset(work / "big", cases=args.cases, **common)
    small = make_dataset(work / "small", cases=max(1, args.cases // 2), **common)
    print(f"dataset: {args.cases} cases x {args.labels} labels, CT "
          f"{'x'.join(map(str, args.shape))} phantoms (made in {time.perf_counter() - t:.0f} s);"
          f" machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")

    print("\n1. measured on this machine (default model, fp32, K = 10 slices per label)")
    results = {}
    for workers in (1, 2):
        load = os.getloadavg()[0]
        r = run_scan(big, work / f"out{workers}", workers)
        results[workers] = r
        tm, cpu = r["timings"], r["cpu_per_case"]
        rate = r["labels"] / tm["loop_seconds"]
        print(f"   {workers} worker(s): {rate:6.2f} labels/s ({rate / workers:.2f} per worker) "
              f"at load {load:.1f}; CPU-s per case: readers {cpu['readers']:.2f}, model "
              f"{cpu['model']:.2f}, driver {cpu['driver']:.2f}, Ray's own {cpu['ray']:.2f}; "
              f"node peak "
              f"{r['peak_mib']:.0f} MiB (PSS); start-up {tm['setup_seconds']:.0f} s")
    half = run_scan(small, work / "out_small", 2)
    print(f"   node memory vs cases (2 workers): {half['cases']} cases {half['peak_mib']:.0f} MiB,"
          f" {results[2]['cases']} cases {results[2]['peak_mib']:.0f} MiB")

    print_table(results[2]["cpu_per_case"], labels=args.labels,
                gpu_crops_per_s=args.gpu_crops_per_s)
    if args.keep is None:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
