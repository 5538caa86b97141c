"""Does a label's prediction depend on the pixel size? The resolution study of issue 13.

Each case (held-out OpenKBP patients of the model, and the real trunk CT of
``../shared/data/ts_example_dicom`` when present) is written again resampled: in-plane 2x finer,
in-plane 1.5x coarser, and with slices 2x thinner (CT linearly, each mask as the 0.5 level of its
linearly interpolated indicator). Every copy is scanned with ``qsaudit scan``'s own code, and the
prediction of each label is compared with that of the same label on the original grid.
Targets: mean |delta predicted| <= 0.03 at 2x finer, <= 0.05 at 1.5x coarser. The issue asks
for them over pixel sizes of 0.5-5 mm and slices of 0.6-5 mm; OpenKBP's 3.9-5 mm pixels made 1.5x
coarser leave that range (5.9-7.6 mm), so the last column keeps only the labels whose two grids
both lie inside it (the other columns keep every label).

    python benchmarks/resolution.py [--model qsaudit/weights/qsaudit-default.pt] [--cases 6]
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

VARIANTS = {"native": (1.0, 1.0, 1.0), "inplane_2x_finer": (2.0, 2.0, 1.0),
            "inplane_1.5x_coarser": (1 / 1.5, 1 / 1.5, 1.0), "slices_2x_thinner": (1.0, 1.0, 2.0)}


def resampled(array: np.ndarray, zoom: tuple[float, float, float], *, mask: bool) -> np.ndarray:
    """``array`` on a grid ``zoom`` times as fine (training's resampling: CT linear, masks the
    0.5 level); the original grid is returned as it is."""
    from qsaudit.training.resample import zoom_volume

    if zoom == (1.0, 1.0, 1.0):
        return array
    return zoom_volume(array, zoom, mask=mask)


def write_variants(cases: list, out: Path) -> None:
    """Every case of ``cases`` under ``out`` once per :data:`VARIANTS` (per-structure layout,
    case ids ``<case>__<variant>``)."""
    import nibabel as nib

    from qsaudit.datasets import read_image, read_mask

    for case in cases:
        image = read_image(case)
        masks = {ref.name: np.asarray(read_mask(ref, image), dtype=bool)
                 for ref in case.labels if ref.path is not None and Path(ref.path).is_file()}
        for variant, zoom in VARIANTS.items():
            ct = resampled(image.array, zoom, mask=False)
            scale = np.array(image.array.shape) / np.array(ct.shape)
            affine = image.affine.copy()
            affine[:3, :3] = affine[:3, :3] * scale[None, :]
            folder = out / f"{case.case_id}__{variant}"
            (folder / "segmentations").mkdir(parents=True)
            nib.save(nib.Nifti1Image(np.rint(ct).astype(np.int16), affine), folder / "ct.nii.gz")
            for name, m in masks.items():
                nib.save(nib.Nifti1Image(resampled(m, zoom, mask=True).astype(np.uint8), affine),
                         folder / "segmentations" / f"{name}.nii.gz")


PIXEL_RANGE, SLICE_RANGE = (0.5, 5.0), (0.6, 5.0)  # the grids issue 13 asks about


def in_range(folder: Path) -> bool:
    """Whether the CT written under ``folder`` has pixels and slices inside the issue's range
    (sizes rounded to 0.1 mm: a 0.98 mm CT made 2x finer, 0.49 mm, counts as 0.5)."""
    import nibabel as nib

    sx, sy, sz = (round(float(v), 1)
                  for v in nib.load(folder / "ct.nii.gz").header.get_zooms()[:3])
    return (all(PIXEL_RANGE[0] <= v <= PIXEL_RANGE[1] for v in (sx, sy))
            and SLICE_RANGE[0] <= sz <= SLICE_RANGE[1])


def main(argv: list[str] | None = None) -> None:
    import pandas as pd

    from qsaudit.datasets import list_cases
    from qsaudit.inference.engine import scan_dataset
    from qsaudit.inference.settings import ScanSettings
    from qsaudit.model.checkpoint import default_weights_path, load_checkpoint
    from qsaudit.registry import structure_family
    from qsaudit.training.cases import untouched_patients

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--cases", type=int, default=6, help="held-out OpenKBP patients")
    parser.add_argument("--openkbp", type=Path, default=ROOT.parent / "shared" / "data" / "openkbp")
    parser.add_argument("--trunk", type=Path,
                        default=ROOT.parent / "shared" / "data" / "ts_example_dicom" / "nifti")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args(argv)

    model = args.model or default_weights_path()
    meta = load_checkpoint(model, device="cpu").meta
    held = untouched_patients(meta)
    cases = []
    if args.openkbp.is_dir():
        cases += [c for c in list_cases(args.openkbp) if c.case_id in held][:args.cases]
    if args.trunk.is_dir():
        cases += list_cases(args.trunk)
    if not cases:
        print("no case to study (neither OpenKBP nor the trunk CT found)")
        return
    work = Path(tempfile.mkdtemp(prefix="qsaudit-res-")) if args.keep is None else args.keep
    try:
        work.mkdir(parents=True, exist_ok=True)
        write_variants(cases, work / "data")
        scan_dataset(work / "data", work / "scan",
                     settings=ScanSettings(model=model, force=True, workers=args.workers))
        df = pd.read_csv(work / "scan" / "results.csv")
        df = df[df.status == "ok"]
        df[["source", "variant"]] = df.case_id.str.split("__", n=1, expand=True)
        wide = df.pivot_table(index=["source", "label"], columns="variant",
                              values="predicted_dsc")
        wide["trunk"] = [s in {c.case_id for c in list_cases(args.trunk)}
                         if args.trunk.is_dir() else False for s, _ in wide.index]
        wide["family"] = [structure_family(lbl) for _, lbl in wide.index]
        print(f"model {model}; {len(cases)} cases, {len(wide)} labels")
        inside = {folder.name: in_range(folder) for folder in (work / "data").iterdir()}
        print(f"{'variant':<24}{'labels':>8}{'mean |d|':>10}{'max |d|':>10}"
              f"{'OpenKBP':>10}{'trunk CT':>10}{'in range (n)':>16}")
        for variant in VARIANTS:
            if variant == "native" or variant not in wide:
                continue
            d = (wide[variant] - wide["native"]).abs().dropna()
            t = wide.loc[d.index, "trunk"].astype(bool)
            ok = np.array([inside.get(f"{src}__native", False) and inside.get(f"{src}__{variant}",
                                                                              False)
                           for src, _ in d.index], dtype=bool)
            ranged = f"{d[ok].mean():.3f} ({int(ok.sum())})" if ok.any() else "- (0)"
            print(f"{variant:<24}{len(d):>8}{d.mean():>10.3f}{d.max():>10.3f}"
                  f"{d[~t].mean() if (~t).any() else float('nan'):>10.3f}"
                  f"{d[t].mean() if t.any() else float('nan'):>10.3f}{ranged:>16}")
        print("targets: 2x finer <= 0.03, 1.5x coarser <= 0.05")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
