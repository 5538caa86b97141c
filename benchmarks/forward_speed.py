"""Time per crop of the network's forward pass by batch size, memory format and precision.

The scan pads every forward pass to exactly ``--batch-size`` crops, so the batch size and the
memory format are the two knobs between the network and the scan. This script times, in one
process with the scan's thread count, the default model and a ResNet-50 at 256 px built like the
paper's network (random weights: only the speed matters), for batch sizes 1 to 128, contiguous
(NCHW) and channels-last (NHWC), fp32 and (where the device has it) bf16. It prints ms per crop
and the best setting per model and precision; ``qsaudit.model.checkpoint.default_batch_size`` and
``memory_layout`` encode what it found.

Usage: python benchmarks/forward_speed.py [--device cpu|cuda] [--threads N] [--batches 1 4 8 ...]
       [--seconds 2]
Timings depend on the machine; run on an idle one.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _models(device: str):
    import torch

    from qsaudit.model.checkpoint import default_weights_path, load_checkpoint
    from qsaudit.model.config import PRESETS
    from qsaudit.model.network import QualityNet

    out = {}
    default = default_weights_path()
    if default.is_file():
        out["default"] = load_checkpoint(default, device=device, precision="fp32").model
    torch.manual_seed(0)
    out["paper (resnet50, 256 px)"] = QualityNet(PRESETS["paper"]).eval().to(device)
    return out


def time_forward(model, batch: int, *, layout, precision: str, device: str,
                 seconds: float) -> float:
    """Seconds per crop of ``model`` on ``batch`` crops (best of repeated passes)."""
    import torch

    size = model.config.input_size
    embed = model.config.embed_dim
    x = torch.randn(batch, 2, size, size, device=device).contiguous(memory_format=layout)
    e = torch.randn(batch, embed, device=device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    net = model.to(memory_format=layout)
    best = float("inf")
    with torch.inference_mode(), torch.autocast(device, dtype=dtype or torch.float32,
                                                enabled=dtype is not None):
        net(x, e)  # warm-up: oneDNN picks its kernels on the first call
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            if device == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            net(x, e)
            if device == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t)
    return best / batch


def main() -> None:
    import torch

    from qsaudit.cpu import usable_cores
    from qsaudit.model.checkpoint import cpu_has_bf16

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 16, 32, 64, 128])
    parser.add_argument("--seconds", type=float, default=2.0, help="timing per setting")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bf16 = torch.cuda.is_bf16_supported() if args.device == "cuda" else cpu_has_bf16()
    precisions = ["fp32"] + (["bf16"] if bf16 else [])
    layouts = {"NCHW": torch.contiguous_format, "NHWC": torch.channels_last}
    print(f"device {args.device}, {args.threads} threads, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}; ms per crop (best pass)")
    for name, model in _models(args.device).items():
        print(f"\n{name}")
        print("precision layout " + " ".join(f"{b:>7d}" for b in args.batches))
        for precision in precisions:
            best = (float("inf"), None, None)
            for label, layout in layouts.items():
                row = []
                for batch in args.batches:
                    ms = 1000 * time_forward(model, batch, layout=layout, precision=precision,
                                             device=args.device, seconds=args.seconds)
                    row.append(ms)
                    best = min(best, (ms, label, batch))
                print(f"{precision:9s} {label:6s} " + " ".join(f"{v:7.1f}" for v in row),
                      flush=True)
            print(f"  best {precision}: {best[1]} at batch {best[2]} ({best[0]:.1f} ms/crop)")


if __name__ == "__main__":
    main()
