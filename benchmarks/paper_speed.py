"""qsaudit scan vs the Quality Sentinel paper's own inference loop, same checkpoint, same data.

The paper's released checkpoint cannot be downloaded here, so this script builds one of the same
format and size (a ResNet-50 at 256 px with the paper's module names and random weights; speed
does not depend on the values), imports it with ``qsaudit import-paper`` and writes the
``benchmarks/scan_speed.py`` phantoms as a TotalSegmentator-v1 dataset. It then times, in the
same run, fp32 on the CPU:

- the paper's loop, restated as ``tests/inference/test_paper_scan.py`` checks it: per case the
  CT read once, per label its mask read, up to 10 slices cropped and resized through PIL, one
  forward pass per label (NCHW, torch's default threads), the results CSV rewritten after every
  case;
- ``qsaudit scan --model paper.pt --precision fp32`` at several batch sizes (default: the
  scan's own choice for the device, and 1, 4, 16, 64), in a fresh process each, with the
  breakdown of its wall time from ``scan.json``.

Target (issue 15): the scan at least 1.1x the paper's loop, and never slower at any batch size.

Usage: python benchmarks/paper_speed.py [--cases 3] [--labels 20] [--shape 256 256 120]
       [--batches 1 4 16 64] [--keep DIR]
Timings depend on the machine; run on an idle one.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "model"))  # the paper-format network
sys.path.insert(0, str(ROOT / "tests" / "inference"))  # the paper's crop


def paper_format_net():
    """A ResNet-50 with the released checkpoint's module names and forward pass (the tests'
    ``PaperFormatNet``), in eval mode."""
    import torch
    from test_model_paper import PaperFormatNet

    torch.manual_seed(0)
    return PaperFormatNet(50).eval()


def write_paper_files(folder: Path) -> tuple[Path, Path, object, dict]:
    """The checkpoint and embedding table in the paper's format; returns also the net and
    table, for the paper's loop."""
    import torch

    net = paper_format_net()
    checkpoint = folder / "best_resnet50_model.pth"
    torch.save(net.state_dict(), checkpoint)
    gen = torch.Generator().manual_seed(5)
    table = {cid: torch.randn(1, 512, generator=gen) for cid in range(145)}
    embeddings = folder / "label_embedding.pkl"
    with open(embeddings, "wb") as fh:
        pickle.dump(table, fh)
    return checkpoint, embeddings, net, table


def paper_loop(dataset: Path, net, table: dict, ids: dict[str, int], out_csv: Path) -> dict:
    """The paper's inference loop over every case of ``dataset``; seconds and labels."""
    import nibabel as nib
    import torch
    from test_paper_scan import _script_crop  # the paper's crop, as the tests restate it
    from torchvision import transforms

    ct_tf = transforms.Compose([transforms.ToPILImage(), transforms.Resize((256, 256)),
                                transforms.ToTensor(), transforms.Normalize([0.5], [0.25])])
    mask_tf = transforms.Compose([transforms.ToPILImage(), transforms.Resize((256, 256)),
                                  transforms.ToTensor(), transforms.Normalize([0.5], [0.5])])
    rows: list[dict] = []
    start = time.perf_counter()
    for case in sorted(p for p in dataset.iterdir() if p.is_dir()):
        ct = np.asarray(nib.load(case / "ct.nii.gz").dataobj).transpose(2, 1, 0)
        ct01 = ((np.clip(ct, -200, 200) + 200) / 400).astype(np.float32)
        for path in sorted((case / "segmentations").glob("*.nii.gz")):
            name = path.name.removesuffix(".nii.gz")
            mask = np.asarray(nib.load(path).dataobj).transpose(2, 1, 0).astype(np.float32)
            valid = [z for z in range(mask.shape[0]) if mask[z].sum() > 0]
            if not valid or name not in ids:
                continue
            n = len(valid)
            picks = valid if n <= 10 else [valid[int(n / 10 * i)] for i in range(10)]
            inputs = []
            for z in picks:
                image_crop, mask_crop = _script_crop(ct01[z], mask[z])
                inputs.append(torch.cat([ct_tf(image_crop), mask_tf(mask_crop)], dim=0))
            text = table[ids[name]].expand(len(picks), -1)
            with torch.no_grad():
                score = float(net(torch.stack(inputs), text).mean())
            rows.append({"case": case.name, "label": name, "dsc": score})
        with open(out_csv, "w", newline="") as fh:  # rewritten after every case
            writer = csv.DictWriter(fh, fieldnames=["case", "label", "dsc"])
            writer.writeheader()
            writer.writerows(rows)
    return {"seconds": time.perf_counter() - start, "labels": len(rows)}


def dap_ids(names: list[str]) -> dict[str, int]:
    """Name -> the paper's DAP Atlas class id, as ``import-paper`` maps them (its aliases too)."""
    from qsaudit.model.paper import PAPER_ALIASES
    from qsaudit.model.text import canonical
    from qsaudit.registry import dap_atlas_labels

    by_name = {canonical(label): cid for cid, label in dap_atlas_labels().items()}
    by_name.update({canonical(name): cid for name, cid in PAPER_ALIASES.items()})
    return {name: by_name[canonical(name)] for name in names if canonical(name) in by_name}


def timed_scan(dataset: Path, out: Path, model: Path, batch: int | None) -> dict:
    """``qsaudit scan`` in a fresh process (fp32, CPU); wall seconds and scan.json timings."""
    command = [sys.executable, "-m", "qsaudit", "scan", str(dataset), "--out", str(out),
               "--model", str(model), "--device", "cpu", "--precision", "fp32", "--quiet",
               "--force"]
    if batch is not None:
        command += ["--batch-size", str(batch)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"scan failed:\n{proc.stderr}")
    timings = json.loads((out / "scan.json").read_text())["timings"]
    return {"seconds": seconds, "timings": timings}


def main() -> None:
    import torch
    from scan_speed import make_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--labels", type=int, default=20)
    parser.add_argument("--shape", type=int, nargs=3, default=(256, 256, 120))
    parser.add_argument("--batches", type=int, nargs="*", default=[1, 4, 16, 64])
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="qsaudit-paper-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        dataset = make_dataset(work / "Totalsegmentator_dataset", cases=args.cases,
                               labels=args.labels, shape=tuple(args.shape))
        checkpoint, embeddings, net, table = write_paper_files(work)
        model = work / "paper.pt"
        subprocess.run([sys.executable, "-m", "qsaudit", "import-paper", "--checkpoint",
                        str(checkpoint), "--embeddings", str(embeddings), "--out", str(model)],
                       check=True, capture_output=True, env={**os.environ,
                                                             "PYTHONPATH": str(ROOT)})
        names = sorted({p.name.removesuffix(".nii.gz")
                        for p in dataset.glob("*/segmentations/*.nii.gz")})
        ids = dap_ids(names)
        print(f"{args.cases} cases x {args.labels} labels ({len(ids)} names the paper knows), "
              f"CT {'x'.join(map(str, args.shape))}; {os.cpu_count()} cores, torch "
              f"{torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}; fp32 on the CPU")
        paper = paper_loop(dataset, net, table, ids, work / "paper.csv")
        per = paper["seconds"] / paper["labels"]
        print(f"paper's loop: {paper['labels']} labels in {paper['seconds']:.1f} s "
              f"({1000 * per:.0f} ms a label)")
        print("qsaudit scan  batch  wall (s)  x paper  | network  batching  waiting  writing  "
              "tables+report  setup  other | readers' CPU")
        for batch in [None, *args.batches]:
            run = timed_scan(dataset, work / f"out-{batch}", model, batch)
            b = run["timings"]["breakdown"]
            ratio = paper["seconds"] / run["seconds"]
            label = f"{run['timings']['batch_size']}{' (auto)' if batch is None else ''}"
            print(f"              {label:>9s} {run['seconds']:8.1f} {ratio:7.2f}x  | "
                  f"{b['network']:7.1f} {b['batching']:9.1f} {b['waiting_for_readers']:8.1f} "
                  f"{b['writing']:8.1f} {b['tables_and_report']:14.1f} {b['setup']:6.1f} "
                  f"{b['other']:5.1f} | {b['readers_cpu']:6.1f}", flush=True)
        print("target: every row >= 1.0x, the automatic batch >= 1.1x")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
