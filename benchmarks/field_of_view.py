"""Does a good label lose its score when the scan's field of view cuts it?

Real CT rarely holds a structure whole: an abdominal scan cuts the lungs, the ribs, the humeri and
the back muscles at its upper and lower edge, a chest scan cuts the liver. A label cut there is
still a good label (its Dice against an expert, on the same scan, is unchanged), so its
prediction should not fall. Each held-out OpenKBP patient of the model is written whole and as
``--windows`` z-windows of ``--window-mm`` mm at seeded random heights (the CT and every label
cropped alike: the clinical labels stay the truth); every copy is scanned with ``qsaudit scan``'s
own code. Printed: the mean prediction of the labels in the windows that the window cuts (the
label goes on beyond a window edge) and of those it holds whole, beside the same labels in the
whole scan, the mean |delta| per group, and the network's own (uncalibrated) score both ways. A label calibration that has only seen whole
structures reads a label ending at the volume's edge (flat end, no end probe) as a cut-off one.

    python benchmarks/field_of_view.py [--model qsaudit/weights/qsaudit-default.pt] [--cases 6]
        [--windows 2] [--window-mm 40]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_windows(cases: list, out: Path, *, windows: int, window_mm: float,
                  seed: int) -> list[dict]:
    """Each case whole (``<case>__whole``) and ``windows`` z-windows of ``window_mm`` mm
    (``<case>__w<k>``) in the per-structure layout under ``out``. Returns one row per label in a
    window: ``case_id``, ``source``, ``label``, ``cut`` (the label has mask beyond the window)."""
    import nibabel as nib

    from qsaudit.datasets import read_image, read_mask
    from qsaudit.training.cases import window_span

    rng = np.random.default_rng(seed)
    rows = []
    for case in cases:
        image = read_image(case)
        masks = {ref.name: np.asarray(read_mask(ref, image), dtype=bool)
                 for ref in case.labels if ref.path is not None and Path(ref.path).is_file()}
        masks = {k: v for k, v in masks.items() if v.any()}
        nz = image.array.shape[2]
        z0, z1 = window_span(nz, float(image.spacing[2]), window_mm, 0.0)  # the lowest window
        spans = [("whole", 0, nz)]
        for k in range(windows):
            shift = int(rng.integers(0, nz - z1 + 1))
            spans.append((f"w{k}", z0 + shift, z1 + shift))
        for tag, z0, z1 in spans:
            folder = out / f"{case.case_id}__{tag}"
            (folder / "segmentations").mkdir(parents=True)
            affine = image.affine.copy()
            affine[:3, 3] = affine[:3, :3] @ np.array([0.0, 0.0, z0]) + affine[:3, 3]
            nib.save(nib.Nifti1Image(np.asarray(image.array[:, :, z0:z1], dtype=np.int16),
                                     affine), folder / "ct.nii.gz")
            for name, m in masks.items():
                part = m[:, :, z0:z1]
                if not part.any():
                    continue
                nib.save(nib.Nifti1Image(part.astype(np.uint8), affine),
                         folder / "segmentations" / f"{name}.nii.gz")
                if tag != "whole":
                    rows.append({"case_id": folder.name, "source": case.case_id, "label": name,
                                 "cut": bool(m[:, :, :z0].any() or m[:, :, z1:].any())})
    return rows


def main(argv: list[str] | None = None) -> None:
    import pandas as pd

    from qsaudit.datasets import list_cases
    from qsaudit.inference.engine import scan_dataset
    from qsaudit.inference.settings import ScanSettings
    from qsaudit.model.checkpoint import default_weights_path, load_checkpoint
    from qsaudit.training.cases import untouched_patients

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--cases", type=int, default=6, help="held-out OpenKBP patients")
    parser.add_argument("--windows", type=int, default=2, help="z-windows per patient")
    parser.add_argument("--window-mm", type=float, default=40.0,
                        help="window height (the trunk CT of ts_example_dicom covers 40 mm)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--openkbp", type=Path, default=ROOT.parent / "shared" / "data" / "openkbp")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args(argv)

    model = args.model or default_weights_path()
    meta = load_checkpoint(model, device="cpu").meta
    held = untouched_patients(meta)
    if not args.openkbp.is_dir():
        print(f"{args.openkbp}: not found, nothing to study")
        return
    cases = [c for c in list_cases(args.openkbp) if c.case_id in held][:args.cases]
    work = Path(tempfile.mkdtemp(prefix="qsaudit-fov-")) if args.keep is None else args.keep
    try:
        work.mkdir(parents=True, exist_ok=True)
        rows = pd.DataFrame(write_windows(cases, work / "data", windows=args.windows,
                                          window_mm=args.window_mm, seed=args.seed))
        scan_dataset(work / "data", work / "scan",
                     settings=ScanSettings(model=model, force=True, workers=args.workers))
        df = pd.read_csv(work / "scan" / "results.csv")
        df = df[df.status == "ok"]
        whole = df[df.case_id.str.endswith("__whole")].assign(
            source=lambda d: d.case_id.str.split("__").str[0])
        whole = whole.set_index(["source", "label"])[["predicted_dsc", "raw_score"]].rename(
            columns={"predicted_dsc": "whole", "raw_score": "whole_raw"})
        win = rows.merge(df[["case_id", "label", "predicted_dsc", "raw_score"]],
                         on=["case_id", "label"]).join(whole, on=["source", "label"])
        win = win.dropna(subset=["whole"])
        print(f"model {model}; {len(cases)} patients, {args.windows} windows of "
              f"{args.window_mm:g} mm each; the labels are the clinical ones (truth)")
        print(f"{'labels in a window':<28}{'n':>6}{'window':>9}{'whole':>9}{'mean |d|':>10}"
              f"{'raw: window':>13}{'whole':>8}")
        for title, part in (("cut by the window", win[win.cut]),
                            ("held whole", win[~win.cut]), ("all", win)):
            if part.empty:
                continue
            d = (part.predicted_dsc - part.whole).abs()
            print(f"{title:<28}{len(part):>6}{part.predicted_dsc.mean():>9.3f}"
                  f"{part.whole.mean():>9.3f}{d.mean():>10.3f}{part.raw_score.mean():>13.3f}"
                  f"{part.whole_raw.mean():>8.3f}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
