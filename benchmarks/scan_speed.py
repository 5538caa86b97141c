"""Speed and memory of ``qsaudit scan`` on a generated TotalSegmentator-layout dataset.

Prints, in one run:

1. throughput (labels/s) of ``qsaudit scan`` vs a naive baseline written the way the paper's
   inference script works (whole CT and whole mask read again for every label, no parallel
   reading, one slice per forward pass, results file rewritten after every case), both with the
   same randomly initialised ResNet-50 at 256 px. The baseline is slow, so it runs on fewer
   cases and its per-label rate is extrapolated (stated in the output);
2. the default model's scan time vs the I/O floor (read and decompress every file once with the
   same number of processes, with the fastest decompression we have: ISA-L, as the scan reads;
   nibabel's slower zlib floor is printed for reference);
3. peak memory (scan process + reader processes) at two dataset sizes.

Part 2 also prints ``scan.json``'s time breakdown: the main process's wall time by kind, the CPU
seconds of every process, and the issue-15 figure, the share of the scan's CPU seconds spent
beyond decompressing the files and the network's forward passes (``qsaudit.inference.timing``).

The data are ``qsaudit demo`` phantoms (noisy int16 CT, so decompression costs what it costs on
real scans) on a realistic grid (default 256 x 256 x 150 voxels, 37 masks of which --labels kept).

Usage: python benchmarks/scan_speed.py [--cases 20] [--labels 20] [--shape 256 256 150]
       [--unique 2] [--baseline-cases 1] [--r50-cases 4] [--workers 2] [--device auto|cpu|cuda]
       [--profile] [--keep DIR]
CUDA (~90 s): python benchmarks/scan_speed.py --device cuda --cases 10 --labels 15
Timings depend on the machine; run on an idle one.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

def make_dataset(root: Path, *, cases: int, labels: int, shape: tuple[int, int, int],
                 unique: int = 2, seed: int = 0) -> Path:
    """Write ``cases`` TotalSegmentator-layout cases of ``labels`` masks each under ``root``.

    The volumes are ``qsaudit demo`` phantoms (int16 CT with scanner-like noise, so gzip costs
    what it costs on real CT) on a ``shape`` grid (default 256 x 256 x 150, ~1.3 x 1.3 x 2.7 mm).
    Only ``unique`` distinct phantoms are generated (they are slow to make); the other cases are
    byte copies of them, which read exactly as slowly as distinct files. Each case keeps the
    first ``labels`` mask files in name order.
    """
    from qsaudit.phantoms import make_demo

    source = root.parent / "phantoms"  # shared by every dataset of one run
    if not source.is_dir():
        make_demo(source, cases=min(unique, cases), seed=seed, shape=shape,
                  workers=min(unique, cases, os.cpu_count() or 1))
    originals = sorted((source / "dataset").iterdir())
    root.mkdir(parents=True, exist_ok=True)
    for c in range(cases):
        src, dst = originals[c % len(originals)], root / f"s{c:04d}"
        (dst / "segmentations").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / "ct.nii.gz", dst / "ct.nii.gz")
        for mask in sorted((src / "segmentations").iterdir())[:labels]:
            shutil.copyfile(mask, dst / "segmentations" / mask.name)
    return root


def label_names(dataset: Path) -> list[str]:
    """Every mask name (file name without ``.nii.gz``) found in ``dataset``."""
    return sorted({p.name.removesuffix(".nii.gz") for p in dataset.glob("*/segmentations/*")})


def make_model(path: Path, backbone: str, width: int, size: int, names: list[str]) -> Path:
    """A randomly initialised model file knowing every label name (timing only)."""
    import torch

    from qsaudit.model.checkpoint import save_checkpoint
    from qsaudit.model.config import ModelConfig
    from qsaudit.model.network import QualityNet

    torch.manual_seed(0)
    config = ModelConfig(backbone=backbone, width=width, input_size=size)
    rng = np.random.default_rng(0)
    vocabulary = {n: rng.normal(size=config.embed_dim).astype(np.float32) for n in names}
    return save_checkpoint(path, QualityNet(config), config, encoder_spec="minilm",
                           vocabulary=vocabulary, meta={"benchmark": True})


def _read_case_files(folder: str, fast: bool = True) -> int:
    """Read and decompress every file of one case; ``fast``: the scan's reader (ISA-L inflate),
    else nibabel's own (zlib)."""
    import nibabel as nib

    from qsaudit.datasets.volumes import load_nifti

    total = 0
    for path in [Path(folder) / "ct.nii.gz", *sorted((Path(folder) / "segmentations").iterdir())]:
        image = load_nifti(path) if fast else nib.load(str(path))
        total += np.asanyarray(image.dataobj).size
    return total


def io_floor(dataset: Path, workers: int, *, fast: bool = True) -> float:
    """Seconds to read and decompress every file once with ``workers`` processes.

    ``fast``: with the fastest decompression we have (ISA-L, as the scan reads); else with
    nibabel's zlib path, for reference.
    """
    from functools import partial

    from qsaudit.cpu import single_threaded_children

    folders = sorted(str(p) for p in dataset.iterdir() if p.is_dir())
    read = partial(_read_case_files, fast=fast)
    start = time.perf_counter()
    if workers <= 1:
        for f in folders:
            read(f)
    else:
        with single_threaded_children(), ProcessPoolExecutor(workers) as pool:
            list(pool.map(read, folders))
    return time.perf_counter() - start


def naive_baseline(dataset: Path, model: Path, out_csv: Path, *, cases: int, slices: int,
                   device: str) -> dict:
    """The paper-style loop over the first ``cases`` cases.

    Returns seconds in all, seconds spent reading (CT and mask, per label) and labels scored.
    """
    import nibabel as nib

    from qsaudit.model.checkpoint import load_checkpoint
    from qsaudit.model.preprocess import crop_slice, sample_slices

    predictor = load_checkpoint(model, device=device, precision="fp32")  # as the paper's script
    rows: list[dict] = []
    start = time.perf_counter()
    read = 0.0
    for case in sorted(p for p in dataset.iterdir() if p.is_dir())[:cases]:
        for label_path in sorted((case / "segmentations").iterdir()):
            t = time.perf_counter()
            ct = nib.load(str(case / "ct.nii.gz")).get_fdata(dtype=np.float32)
            mask = nib.load(str(label_path)).get_fdata(dtype=np.float32) > 0.5
            read += time.perf_counter() - t
            name = label_path.name.removesuffix(".nii.gz")
            scores = []
            for z in sample_slices(mask, slices):
                x = crop_slice(ct[:, :, z], mask[:, :, z], config=predictor.config)[None]
                scores.append(float(predictor.predict(x, [name], batch_size=1)[0][0]))
            dsc = float(np.mean(scores)) if scores else float("nan")  # empty mask: no slice
            rows.append({"case": case.name, "label": name, "dsc": dsc})
        with open(out_csv, "w", newline="") as fh:  # rewritten after every case
            writer = csv.DictWriter(fh, fieldnames=["case", "label", "dsc"])
            writer.writeheader()
            writer.writerows(rows)
    return {"seconds": time.perf_counter() - start, "read_seconds": read, "labels": len(rows)}


def timed_scan(dataset: Path, out: Path, model: Path, *, workers: int, device: str,
               slices: int, batch_size: int, precision: str = "auto",
               profile: Path | None = None) -> dict:
    """Run ``qsaudit scan`` in a fresh process; seconds and peak memory (MiB).

    With ``profile`` the scan runs under cProfile (main process only) and the statistics are
    dumped there; the timing then includes the profiler's overhead.
    """
    call = (f"scan_dataset({str(dataset)!r}, {str(out)!r}, settings=ScanSettings("
            f"model={str(model)!r}, workers={workers}, device={device!r}, slices={slices}, "
            f"batch_size={batch_size}, precision={precision!r}, force=True))")
    stmt = f"s = {call}"
    if profile is not None:
        stmt = f"cProfile.runctx({stmt!r}, globals(), globals(), {str(profile)!r})"
    code = (
        "import cProfile, json, resource, sys, time\n"
        "from qsaudit.inference import ScanSettings, scan_dataset\n"
        "from qsaudit.progress import set_quiet\n"
        "set_quiet(True)\n"
        "t = time.perf_counter()\n"
        f"{stmt}\n"
        "dt = time.perf_counter() - t\n"
        "me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "used = json.load(open(s.out_dir / 'scan.json'))['model']['precision']\n"
        "print(json.dumps({'seconds': dt, 'labels': s.labels, 'main_mib': me, "
        "'reader_mib': kids, 'precision': used}))\n"
    )
    # the checkout first, then whatever the caller put on the path (gpu_figures.sh: wheels)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"scan failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def wall_share(breakdown: dict) -> float:
    """The older wall-time reading of the share beyond decoding and the network: each process's
    busy wall time (the main process less its waits, the readers' time in ``prepare_case``)
    added up. It counts a process waiting for a core as working and leaves out the readers'
    start-up, so it is printed for reference only (``beyond_decoding_and_network``, from CPU
    seconds, is the figure; see ``qsaudit.inference.timing``)."""
    main = breakdown["total"] - breakdown["waiting_for_readers"]
    readers = breakdown["readers_decoding"] + breakdown["readers_other"]
    beyond = main - breakdown["network"] + breakdown["readers_other"]
    return beyond / max(main + readers, 1e-9)


def gpu_memory(timings: dict) -> str:
    """``scan.json`` timings' GPU memory figures in words."""
    return (f"peak {timings['gpu_peak_mib']:.0f} MiB allocated by torch in the scan's loop, "
            f"{timings.get('gpu_peak_reserved_mib', float('nan')):.0f} MiB held by its allocator")


def print_breakdown(timings: dict, what: str) -> None:
    """Print ``scan.json``'s time breakdown and the share beyond decoding and the network."""
    b = timings["breakdown"]
    print(f"   where the {what} scan's {b['total']:.1f} s went (main process, wall): network "
          f"{b['network']:.1f}, batching {b['batching']:.1f}, waiting for readers "
          f"{b['waiting_for_readers']:.1f}, writing {b['writing']:.1f}, tables+report "
          f"{b['tables_and_report']:.1f}, set-up {b['setup']:.1f}, other {b['other']:.1f}; "
          f"readers: decoding {b['readers_decoding']:.1f} s, checks/shape/crops "
          f"{b['readers_other']:.1f} s; batch {timings.get('batch_size')}")
    cpu_main, cpu_readers = b["cpu_main"], b["cpu_readers"]
    print(f"   CPU seconds: main process {cpu_main:.1f} (network {b['cpu_network']:.1f}, the "
          f"rest {cpu_main - b['cpu_network']:.1f}), readers {cpu_readers:.1f} (decoding "
          f"{b['cpu_readers_decoding']:.1f}, in prepare_case {b['readers_cpu']:.1f}, start-up "
          f"and idle {max(0.0, cpu_readers - b['readers_cpu']):.1f})")
    print(f"   beyond decoding and the network: {b['beyond_decoding_and_network']:.1%} of the "
          f"scan's CPU seconds (target <= 25%; older wall-time reading {wall_share(b):.1%})")
    if "gpu_peak_mib" in timings:
        print(f"   GPU memory: {gpu_memory(timings)}")


def print_profile(path: Path, top: int = 25) -> None:
    """Print the ``top`` functions by cumulative time of a cProfile dump."""
    import pstats

    pstats.Stats(str(path)).sort_stats("cumulative").print_stats(top)


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--labels", type=int, default=20, help="masks per case (of 37)")
    parser.add_argument("--shape", type=int, nargs=3, default=(256, 256, 150),
                        metavar=("X", "Y", "Z"), help="voxels of every CT")
    parser.add_argument("--unique", type=int, default=2,
                        help="distinct phantoms generated; other cases are copies of them")
    parser.add_argument("--slices", type=int, default=10)
    parser.add_argument("--baseline-cases", type=int, default=1)
    parser.add_argument("--r50-cases", type=int, default=4,
                        help="cases scanned with the ResNet-50 (CPU is slow)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default: the scan's own choice for the device and model")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--precision", default="auto",
                        help="scan precision (the ResNet-50 scan also runs in fp32)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile the default-model scan (cProfile, main process)")
    parser.add_argument("--keep", type=Path, default=None, help="keep files in this folder")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="qsaudit-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    shape = tuple(args.shape)
    try:
        t = time.perf_counter()
        common = {"labels": args.labels, "shape": shape, "unique": args.unique}
        big = make_dataset(work / "big", cases=args.cases, **common)
        small = make_dataset(work / "small", cases=max(1, args.cases // 2), **common)
        r50_data = make_dataset(work / "r50", cases=args.r50_cases, **common)
        ct_mib = sum(p.stat().st_size for p in big.glob("*/ct.nii.gz")) / 2**20 / args.cases
        mask_mib = sum(p.stat().st_size for p in big.glob("*/segmentations/*")) / 2**20
        print(f"dataset: {args.cases} cases x {args.labels} labels, CT {'x'.join(map(str, shape))}"
              f" int16 phantoms ({args.unique} distinct), {ct_mib:.1f} MiB per CT.gz, "
              f"{mask_mib / args.cases:.1f} MiB of masks per case (made in "
              f"{time.perf_counter() - t:.1f} s)")
        print(f"machine: {os.cpu_count()} CPU cores, load average {_load()} at the start")
        names = label_names(big)
        r50 = make_model(work / "r50.pt", "resnet50", 64, 256, names)
        from qsaudit.model.checkpoint import default_weights_path

        default = default_weights_path()
        if not default.is_file():
            default = make_model(work / "default.pt", "resnet18", 32, 96, names)
            print("default model: shipped weights absent, random ModelConfig() used")

        if args.r50_cases > 0 and args.baseline_cases > 0:
            print(f"\n1. ResNet-50 at 256 px, K = {args.slices} slices per label, "
                  f"device {args.device}")
            base = naive_baseline(r50_data, r50, work / "naive.csv", cases=args.baseline_cases,
                                  slices=args.slices, device=args.device)
            base_rate = base["labels"] / base["seconds"]
            print(f"   naive baseline: {base['labels']} labels in {base['seconds']:.1f} s = "
                  f"{base_rate:.2f} labels/s, of which re-reading CT+mask per label "
                  f"{base['read_seconds']:.1f} s (ran on {args.baseline_cases} case(s); "
                  "rate extrapolated per label)")
            for precision in dict.fromkeys(("fp32", args.precision)):
                fast = timed_scan(r50_data, work / "out-r50", r50, workers=args.workers,
                                  device=args.device, slices=args.slices,
                                  batch_size=args.batch_size, precision=precision)
                fast_rate = fast["labels"] / fast["seconds"]
                print(f"   qsaudit scan --precision {precision} ({fast['precision']}): "
                      f"{fast['labels']} labels in {fast['seconds']:.1f} s = {fast_rate:.2f} "
                      f"labels/s ({args.r50_cases} cases, {args.workers} readers); speed-up "
                      f"{fast_rate / base_rate:.1f}x (target >= 10x)")
                r50_timings = json.loads((work / "out-r50" / "scan.json").read_text())["timings"]
                if "gpu_peak_mib" in r50_timings:
                    print(f"   GPU memory: {gpu_memory(r50_timings)}")

        print(f"\n2. default model vs the I/O floor, {args.workers} processes, device "
              f"{args.device}")
        floor = io_floor(big, args.workers)
        zlib_floor = io_floor(big, args.workers, fast=False)
        print(f"   I/O floor with nibabel's zlib reading (for reference): {zlib_floor:.1f} s")
        scan = timed_scan(big, work / "out-big", default, workers=args.workers,
                          device=args.device, slices=args.slices, batch_size=args.batch_size,
                          precision=args.precision)
        loop = json.loads((work / "out-big" / "scan.json").read_text())["timings"]
        print(f"   I/O floor: {floor:.1f} s; scan ({scan['precision']}): {scan['seconds']:.1f} s "
              f"({scan['labels']} labels) = {scan['seconds'] / floor:.2f}x the floor "
              "(target <= 1.5x)")
        print(f"   of which set-up (listing, model load) {loop['setup_seconds']:.1f} s, "
              f"read+score loop {loop['loop_seconds']:.1f} s = "
              f"{loop['loop_seconds'] / floor:.2f}x the floor (model "
              f"{loop['model_seconds']:.1f} s in the main process), tables+report "
              f"{loop['total_seconds'] - loop['setup_seconds'] - loop['loop_seconds']:.1f} s")
        print_breakdown(loop, "default model")

        print("\n3. peak memory (MiB): scan process / largest reader process")
        half = timed_scan(small, work / "out-small", default, workers=args.workers,
                          device=args.device, slices=args.slices, batch_size=args.batch_size)
        for n, run in ((len(list(small.iterdir())), half), (args.cases, scan)):
            print(f"   {n:4d} cases: {run['main_mib']:.0f} / {run['reader_mib']:.0f}")

        if args.profile:
            print("\n4. profile of the default-model scan (main process, cumulative time)")
            timed_scan(big, work / "out-prof", default, workers=args.workers,
                       device=args.device, slices=args.slices, batch_size=args.batch_size,
                       profile=work / "scan.prof")
            print_profile(work / "scan.prof")
        print(f"\nload average {_load()} at the end (other processes skew the timings)")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
