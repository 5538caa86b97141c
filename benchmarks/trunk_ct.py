"""Validation on real fine-pixel trunk CT: are good labels rated good, degraded copies lower?

Reads a per-structure dataset (default: ``../shared/data/ts_example_dicom/nifti``, one real
0.98 mm upper-abdomen CT with TotalSegmentator's 31 labels, which are mostly good). VALIDATION
ONLY: nothing here trains or calibrates. Two scans, both with ``qsaudit scan``'s own code:

1. the labels as they are: the mean predicted Dice (target >= 0.85), per structure family,
   beside the network's own uncalibrated score (``raw_score``);
2. ``--draws`` copies of the case in which every label is degraded by our degradation library
   (error kind and severity drawn at random, as training draws them), plus the labels as they
   are, taking the original labels as the truth: Pearson r (target >= 0.85), MAE, AUROC
   (true Dice < 0.8), how often the 90% interval holds the true Dice and its width, per family
   and error kind.

    python benchmarks/trunk_ct.py [--model qsaudit/weights/qsaudit-default.pt] [--draws 4] [--keep DIR]
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

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "ts_example_dicom" / "nifti"


def write_degraded(data: Path, out: Path, *, draws: int, seed: int) -> list[dict]:
    """Copies of every case of ``data`` with each label degraded (``draws`` per case), in the
    per-structure layout under ``out``; returns one truth row per written label."""
    import nibabel as nib

    from qsaudit.datasets import list_cases, read_image, read_mask
    from qsaudit.degrade import ERRORS, degrade, dice
    from qsaudit.training.candidates import body_mask

    errors = [e for e in ERRORS if e not in ("none", "empty")]
    rng = np.random.default_rng(seed)
    rows = []
    for case in list_cases(data):
        image = read_image(case)
        masks = {ref.name: read_mask(ref, image) for ref in case.labels}
        masks = {k: np.asarray(v, dtype=bool) for k, v in masks.items() if np.any(v)}
        body = body_mask(image.array)
        ct_img = nib.Nifti1Image(np.asarray(image.array, dtype=np.int16), image.affine)
        for k in range(draws):
            folder = out / f"{case.case_id}_draw{k}"
            (folder / "segmentations").mkdir(parents=True)
            nib.save(ct_img, folder / "ct.nii.gz")
            for name, truth in masks.items():
                neighbours = {n: m for n, m in masks.items() if n != name}
                error = errors[int(rng.integers(len(errors)))]
                result = degrade(truth, error, float(rng.uniform(0.05, 1.0)), rng,
                                 spacing=image.spacing, neighbours=neighbours, body=body)
                mask = np.asarray(result.mask, dtype=bool)
                if not mask.any():
                    continue
                nib.save(nib.Nifti1Image(mask.astype(np.uint8), image.affine),
                         folder / "segmentations" / f"{name}.nii.gz")
                rows.append({"case_id": folder.name, "label": name, "error_kind": error,
                             "true_dsc": dice(mask, truth)})
    return rows


def scan(data: Path, out: Path, model: Path | None, workers: int):
    """The results table of ``qsaudit scan`` on ``data``."""
    import pandas as pd

    from qsaudit.inference.engine import scan_dataset
    from qsaudit.inference.settings import ScanSettings

    kw = {"model": str(model)} if model else {}
    scan_dataset(data, out, settings=ScanSettings(force=True, workers=workers,
                                                   **kw))
    return pd.read_csv(out / "results.csv")


def metrics_table(df, by: str | None) -> None:
    """Print r, MAE, AUROC, interval coverage and width, overall or per ``by``."""
    from qsaudit.analyses.evaluate import quality_metrics

    groups = [("all", df)] if by is None else sorted(df.groupby(by), key=lambda g: str(g[0]))
    print(f"{'subset':<18}{'labels':>7}{'bad':>5}{'r':>8}{'MAE':>8}{'AUROC':>8}"
          f"{'cover':>8}{'width':>8}")
    for name, part in groups:
        m = quality_metrics(part.predicted_dsc.to_numpy(), part.true_dsc.to_numpy(),
                            low=part.dsc_low.to_numpy(), high=part.dsc_high.to_numpy())
        print(f"{name!s:<18}{m['n']:>7}{m['n_bad']:>5}{m['pearson']:>8.3f}{m['mae']:>8.3f}"
              f"{m['auroc']:>8.3f}{m['coverage']:>8.3f}{m['width']:>8.3f}")


def main(argv: list[str] | None = None) -> None:
    import pandas as pd

    from qsaudit.registry import structure_family

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--draws", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="keep the folders here")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"{args.data}: not found, nothing to validate")
        return
    work = Path(tempfile.mkdtemp(prefix="qsaudit-trunk-")) if args.keep is None else args.keep
    try:
        work.mkdir(parents=True, exist_ok=True)
        asis = scan(args.data, work / "scan-asis", args.model, args.workers)
        ok = asis[asis.status == "ok"].copy()
        ok["family"] = [structure_family(s) for s in ok.label]
        print(f"labels as they are ({len(ok)}): mean predicted {ok.predicted_dsc.mean():.3f}, "
              f"median {ok.predicted_dsc.median():.3f}, share >= 0.8 "
              f"{(ok.predicted_dsc >= 0.8).mean():.2f} (target: mean >= 0.85)")
        # raw: the network alone (uncalibrated mean of the slice scores), so that a change of
        # the network can be told from a change of the calibration
        print(f"  network alone (raw_score): mean {ok.raw_score.mean():.3f}")
        for fam, part in sorted(ok.groupby("family")):
            print(f"  {fam:<10}{len(part):>4} labels  mean {part.predicted_dsc.mean():.3f}  "
                  f"min {part.predicted_dsc.min():.3f}  raw {part.raw_score.mean():.3f}")
        if "novelty" in ok:
            print(f"  marked novel: {(ok.novelty.notna() & (ok.novelty != '')).sum()} of {len(ok)}")
        truth = pd.DataFrame(write_degraded(args.data, work / "degraded", draws=args.draws,
                                            seed=args.seed))
        deg = scan(work / "degraded", work / "scan-degraded", args.model, args.workers)
        deg = deg[deg.status == "ok"].merge(truth, on=["case_id", "label"])
        asis_rows = ok.assign(error_kind="none", true_dsc=1.0)
        both = pd.concat([deg, asis_rows[deg.columns.intersection(asis_rows.columns)]],
                         ignore_index=True)
        both["family"] = [structure_family(s) for s in both.label]
        print(f"\ndegraded copies ({len(deg)} labels, {args.draws} draws) with the labels as "
              f"they are taken as true (Dice 1): target r >= 0.85")
        metrics_table(both, None)
        print("\nper family")
        metrics_table(both, "family")
        print("\nper error kind")
        metrics_table(both, "error_kind")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
