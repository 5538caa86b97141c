"""Speed and memory of ``qsaudit scan`` on a generated TotalSegmentator-layout dataset.

Prints, in one run:

1. throughput (labels/s) of ``qsaudit scan`` vs a naive baseline written the way the paper's
   inference script works (whole CT and whole mask read again for every label, no parallel
   reading, one slice per forward pass, results file rewritten after every case), both with the
   same randomly initialised ResNet-50 at 256 px. The baseline is slow, so it runs on fewer
   cases and its per-label rate is extrapolated (stated in the output);
2. the default model's scan time vs the I/O floor (read and decompress every file once with the
   same number of processes);
3. peak memory (scan process + reader processes) at two dataset sizes.

Usage: python benchmarks/scan_speed.py [--cases 20] [--labels 20] [--size 192] [--depth 96]
       [--baseline-cases 2] [--r50-cases 4] [--workers 2] [--device auto] [--keep DIR]
Timings depend on the machine; run on an idle one.
"""

from __future__ import annotations

import argparse
import csv
import json
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

LABEL_NAMES = ("liver", "spleen", "kidney_left", "kidney_right", "aorta", "inferior_vena_cava",
               "pancreas", "stomach", "gallbladder", "esophagus", "adrenal_gland_left",
               "adrenal_gland_right", "vertebrae_L1", "vertebrae_L2", "vertebrae_L3",
               "vertebrae_T12", "lung_left", "lung_right", "urinary_bladder", "duodenum",
               "colon", "small_bowel", "portal_vein_and_splenic_vein", "heart")


def make_dataset(root: Path, *, cases: int, labels: int, size: int, depth: int,
                 seed: int = 0) -> Path:
    """Write ``cases`` cases of ``labels`` ellipsoid organs (TotalSegmentator layout)."""
    import nibabel as nib

    rng = np.random.default_rng(seed)
    names = LABEL_NAMES[:labels]
    affine = np.diag([1.5, 1.5, 3.0, 1.0])
    grid = np.ogrid[:size, :size, :depth]
    for c in range(cases):
        ct = np.full((size, size, depth), -1000, np.int16)
        body = ((grid[0] - size / 2) / (0.45 * size)) ** 2 + ((grid[1] - size / 2) /
                                                             (0.38 * size)) ** 2 <= 1
        ct[np.broadcast_to(body, ct.shape)] = 40
        folder = root / f"s{c:04d}" / "segmentations"
        folder.mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(names):
            center = rng.uniform([0.3 * size, 0.3 * size, 0.2 * depth],
                                 [0.7 * size, 0.7 * size, 0.8 * depth])
            radii = rng.uniform([0.04 * size, 0.04 * size, 0.08 * depth],
                                [0.12 * size, 0.12 * size, 0.25 * depth])
            mask = sum(((g - m) / r) ** 2 for g, m, r in zip(grid, center, radii,
                                                            strict=True)) <= 1
            ct[mask] = 30 + 10 * i
            nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), folder / f"{name}.nii.gz")
        ct = ct + rng.normal(0, 10, ct.shape).astype(np.int16)
        nib.save(nib.Nifti1Image(ct, affine), root / f"s{c:04d}" / "ct.nii.gz")
    return root


def make_model(path: Path, backbone: str, width: int, size: int) -> Path:
    """A randomly initialised model file knowing every label name (timing only)."""
    import torch

    from qsaudit.model.checkpoint import save_checkpoint
    from qsaudit.model.config import ModelConfig
    from qsaudit.model.network import QualityNet

    torch.manual_seed(0)
    config = ModelConfig(backbone=backbone, width=width, input_size=size)
    rng = np.random.default_rng(0)
    vocabulary = {n: rng.normal(size=config.embed_dim).astype(np.float32) for n in LABEL_NAMES}
    return save_checkpoint(path, QualityNet(config), config, encoder_spec="minilm",
                           vocabulary=vocabulary, meta={"benchmark": True})


def _read_case_files(folder: str) -> int:
    import nibabel as nib

    total = 0
    for path in [Path(folder) / "ct.nii.gz", *sorted((Path(folder) / "segmentations").iterdir())]:
        total += np.asanyarray(nib.load(str(path)).dataobj).size
    return total


def io_floor(dataset: Path, workers: int) -> float:
    """Seconds to read and decompress every file once with ``workers`` processes."""
    folders = sorted(str(p) for p in dataset.iterdir() if p.is_dir())
    start = time.perf_counter()
    if workers <= 1:
        for f in folders:
            _read_case_files(f)
    else:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_read_case_files, folders))
    return time.perf_counter() - start


def naive_baseline(dataset: Path, model: Path, out_csv: Path, *, cases: int, slices: int,
                   device: str) -> tuple[float, int]:
    """The paper-style loop; returns (seconds, labels scored)."""
    import nibabel as nib

    from qsaudit.model.checkpoint import load_checkpoint
    from qsaudit.model.preprocess import crop_slice, sample_slices

    predictor = load_checkpoint(model, device=device)
    rows: list[dict] = []
    start = time.perf_counter()
    n = 0
    for case in sorted(p for p in dataset.iterdir() if p.is_dir())[:cases]:
        for label_path in sorted((case / "segmentations").iterdir()):
            ct = nib.load(str(case / "ct.nii.gz")).get_fdata(dtype=np.float32)
            mask = nib.load(str(label_path)).get_fdata(dtype=np.float32) > 0.5
            name = label_path.name.removesuffix(".nii.gz")
            scores = []
            for z in sample_slices(mask, slices):
                x = crop_slice(ct[:, :, z], mask[:, :, z], config=predictor.config)[None]
                scores.append(float(predictor.predict(x, [name], batch_size=1)[0][0]))
            rows.append({"case": case.name, "label": name, "dsc": float(np.mean(scores))})
            n += 1
        with open(out_csv, "w", newline="") as fh:  # rewritten after every case
            writer = csv.DictWriter(fh, fieldnames=["case", "label", "dsc"])
            writer.writeheader()
            writer.writerows(rows)
    return time.perf_counter() - start, n


def timed_scan(dataset: Path, out: Path, model: Path, *, workers: int, device: str,
               slices: int, batch_size: int) -> dict:
    """Run ``qsaudit scan`` in a fresh process; seconds and peak memory (MiB)."""
    code = (
        "import json, resource, sys, time\n"
        "from qsaudit.inference import ScanSettings, scan_dataset\n"
        "from qsaudit.progress import set_quiet\n"
        "set_quiet(True)\n"
        "t = time.perf_counter()\n"
        f"s = scan_dataset({str(dataset)!r}, {str(out)!r}, settings=ScanSettings("
        f"model={str(model)!r}, workers={workers}, device={device!r}, slices={slices}, "
        f"batch_size={batch_size}, force=True))\n"
        "dt = time.perf_counter() - t\n"
        "me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(json.dumps({'seconds': dt, 'labels': s.labels, 'main_mib': me, "
        "'reader_mib': kids}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                          check=False)
    if proc.returncode != 0:
        raise SystemExit(f"scan failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--labels", type=int, default=20)
    parser.add_argument("--size", type=int, default=192, help="in-plane voxels")
    parser.add_argument("--depth", type=int, default=96, help="axial slices")
    parser.add_argument("--slices", type=int, default=10)
    parser.add_argument("--baseline-cases", type=int, default=1)
    parser.add_argument("--r50-cases", type=int, default=4,
                        help="cases scanned with the ResNet-50 (CPU is slow)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--keep", type=Path, default=None, help="keep files in this folder")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="qsaudit-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        big = make_dataset(work / "big", cases=args.cases, labels=args.labels, size=args.size,
                           depth=args.depth)
        small = make_dataset(work / "small", cases=max(1, args.cases // 2), labels=args.labels,
                             size=args.size, depth=args.depth)
        r50_data = work / "r50"
        r50_data.mkdir(exist_ok=True)
        for case in sorted(big.iterdir())[:args.r50_cases]:
            if not (r50_data / case.name).exists():
                shutil.copytree(case, r50_data / case.name)
        print(f"dataset: {args.cases} cases x {args.labels} labels, {args.size}x{args.size}x"
              f"{args.depth} voxels (made in {time.perf_counter() - t:.1f} s)")
        r50 = make_model(work / "r50.pt", "resnet50", 64, 256)
        from qsaudit.model.checkpoint import default_weights_path

        default = default_weights_path()
        if not default.is_file():
            default = make_model(work / "default.pt", "resnet18", 32, 96)
            print("default model: shipped weights absent, random ModelConfig() used")

        if args.r50_cases > 0 and args.baseline_cases > 0:
            print("\n1. ResNet-50 at 256 px, K =", args.slices, "slices per label")
            base_s, base_n = naive_baseline(r50_data, r50, work / "naive.csv",
                                            cases=args.baseline_cases, slices=args.slices,
                                            device=args.device)
            base_rate = base_n / base_s
            print(f"   naive baseline: {base_n} labels in {base_s:.1f} s = {base_rate:.2f} labels/s "
                  f"(ran on {args.baseline_cases} case(s); rate extrapolated per label)")
            fast = timed_scan(r50_data, work / "out-r50", r50, workers=args.workers,
                              device=args.device, slices=args.slices, batch_size=args.batch_size)
            fast_rate = fast["labels"] / fast["seconds"]
            print(f"   qsaudit scan:   {fast['labels']} labels in {fast['seconds']:.1f} s = "
                  f"{fast_rate:.2f} labels/s ({args.r50_cases} cases)")
            print(f"   speed-up: {fast_rate / base_rate:.1f}x (target >= 10x)")

        print("\n2. default model vs the I/O floor,", args.workers, "processes")
        floor = io_floor(big, args.workers)
        scan = timed_scan(big, work / "out-big", default, workers=args.workers,
                          device=args.device, slices=args.slices, batch_size=args.batch_size)
        loop = json.loads((work / "out-big" / "scan.json").read_text())["timings"]
        print(f"   I/O floor: {floor:.1f} s; scan: {scan['seconds']:.1f} s "
              f"({scan['labels']} labels) = {scan['seconds'] / floor:.2f}x the floor "
              "(target <= 1.5x)")
        print(f"   of which set-up (listing, model load) {loop['setup_seconds']:.1f} s, "
              f"read+score loop {loop['loop_seconds']:.1f} s = "
              f"{loop['loop_seconds'] / floor:.2f}x the floor, tables+report "
              f"{loop['total_seconds'] - loop['setup_seconds'] - loop['loop_seconds']:.1f} s")

        print("\n3. peak memory (MiB): scan process / largest reader process")
        half = timed_scan(small, work / "out-small", default, workers=args.workers,
                          device=args.device, slices=args.slices, batch_size=args.batch_size)
        for n, run in ((len(list(small.iterdir())), half), (args.cases, scan)):
            print(f"   {n:4d} cases: {run['main_mib']:.0f} / {run['reader_mib']:.0f}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
