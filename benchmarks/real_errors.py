"""Does a scan still find the real contour errors of OpenKBP? (issue 13: "stays as good")

The OpenKBP README lists clear errors found by eye: two oesophagus contours that take in the
trachea's air (train_pt_55, train_pt_67) and, in train_pt_89, a spinal cord smeared over 75 mm
and a one-slice oesophagus outside the CT. This scans the whole OpenKBP folder with ``qsaudit
scan``'s own code and prints, for each of these labels, its predicted Dice and its rank among
the labels of its structure (1 = the worst; a good model puts them first), and the mean rank
percentile (lower = found earlier). Most of these patients were training patients of every
model so far, so compare models with each other, not with a held-out figure.

    python benchmarks/real_errors.py [--model qsaudit/weights/qsaudit-default.pt]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KNOWN_ERRORS = (("train_pt_55", "Esophagus"), ("train_pt_67", "Esophagus"),
                ("train_pt_89", "SpinalCord"), ("train_pt_89", "Esophagus"))


def main(argv: list[str] | None = None) -> None:
    import pandas as pd

    from qsaudit.inference.engine import scan_dataset
    from qsaudit.inference.settings import ScanSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--openkbp", type=Path, default=ROOT.parent / "shared" / "data" / "openkbp")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    if not args.openkbp.is_dir():
        print(f"{args.openkbp}: not found, skipped")
        return
    work = Path(tempfile.mkdtemp(prefix="qsaudit-errors-"))
    try:
        kw = {"model": args.model} if args.model else {}
        scan_dataset(args.openkbp, work, settings=ScanSettings(force=True, workers=args.workers,
                                                              **kw))
        df = pd.read_csv(work / "results.csv")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    df = df[df.status == "ok"].copy()
    df["rank"] = df.groupby("label").predicted_dsc.rank(method="min")
    df["of"] = df.groupby("label").predicted_dsc.transform("size")
    print(f"{'case':<14}{'label':<12}{'predicted':>10}{'rank':>10}{'percentile':>12}")
    percentiles = []
    for case, label in KNOWN_ERRORS:
        row = df[(df.case_id == case) & (df.label == label)]
        if row.empty:
            print(f"{case:<14}{label:<12}{'not scored':>10}")
            continue
        r = row.iloc[0]
        pct = 100.0 * (r["rank"] - 1) / max(r["of"] - 1, 1)
        percentiles.append(pct)
        print(f"{case:<14}{label:<12}{r.predicted_dsc:>10.3f}{int(r['rank']):>6}/{int(r['of']):<4}"
              f"{pct:>11.1f}%")
    if percentiles:
        print(f"mean percentile {sum(percentiles) / len(percentiles):.1f}% (lower = found first)")


if __name__ == "__main__":
    main()
