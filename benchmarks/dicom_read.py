"""Time to read one case as DICOM vs the same case as .nii.gz (``qsaudit.datasets.read_case``).

The case is the real CT of ``shared/data/ts_example_dicom`` (20 slices of 512 x 512, JPEG 2000
lossless as it came off the scanner) with its 31 TotalSegmentator labels. From the NIfTI labels
this script writes a DICOM-SEG (31 binary segments) and an RTSTRUCT (31 ROIs, contours traced at
the masks' edges) with the tests' DICOM builders, and an uncompressed copy of the CT series
(Explicit VR Little Endian, the usual PACS export). It then reads, in one process, after one
warm-up read of each (imports, highdicom's tables), the best of ``--repeats``:

- nifti:          ct.nii.gz + 31 segmentations/*.nii.gz (the reference);
- dicom_rtstruct: uncompressed CT series + RTSTRUCT;
- dicom_seg:      uncompressed CT series + SEG;
- dicom_j2k_seg:  the CT series as shipped (JPEG 2000) + SEG;

and prints seconds per case and the ratio to nifti (target: at most 2x). The CT alone is
printed too. JPEG 2000 slices decode on up to four threads (imagecodecs), so that row depends on
the number of cores. The reader processes do exactly this read (``prepare_case``).

Usage: python benchmarks/dicom_read.py [--repeats 5] [--data DIR] [--keep DIR]
Timings depend on the machine; run on an idle one.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "datasets" / "dicom"))  # the DICOM builders

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "ts_example_dicom"


def build(example: Path, out: Path) -> None:
    """Write out/raw (uncompressed CT), out/j2k (CT as shipped), out/SEG and out/RT."""
    import pydicom
    import test_dicom_real as real
    from dicom_builders import Study, mask_contours, write_rtstruct, write_seg

    real.EXAMPLE = example
    series = real._series()
    masks = real._file_order_masks(series)
    shutil.copytree(example / "dicom", out / "j2k")
    (out / "raw").mkdir()
    for path in sorted((example / "dicom").iterdir()):
        ds = pydicom.dcmread(path)
        ds.decompress()
        ds.save_as(out / "raw" / path.name, enforce_file_format=True)
    write_seg(out / "SEG" / "seg.dcm", series, masks)
    write_rtstruct(out / "RT" / "rtstruct.dcm", series,
                   {name: mask_contours(mask, real._grid(series)) for name, mask in masks.items()},
                   Study(patient_id="", study_uid=series[0].StudyInstanceUID,
                         frame_uid=series[0].FrameOfReferenceUID))


def _case(folder: Path, kind: str):
    from qsaudit.datasets import list_cases

    (case,) = list_cases(folder)
    return dataclasses.replace(case, labels=tuple(label for label in case.labels
                                                  if getattr(label, "kind", kind) == kind))


def _best(read, case, repeats: int) -> float:
    read(case)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        read(case)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--keep", type=Path, default=None, help="write the DICOM here, keep it")
    args = parser.parse_args()
    if not (args.data / "dicom").is_dir():
        sys.exit(f"{args.data}/dicom not found (give --data)")
    from qsaudit.datasets import list_cases, read_case, read_image

    work = args.keep or Path(tempfile.mkdtemp(prefix="dicom_read_"))
    if not (work / "SEG").is_dir():
        work.mkdir(parents=True, exist_ok=True)
        build(args.data, work)
    (nifti,) = list_cases(args.data / "nifti")
    variants = {}
    for name, ct, objects in (("dicom_rtstruct", "raw", "RT"), ("dicom_seg", "raw", "SEG"),
                              ("dicom_j2k_seg", "j2k", "SEG")):
        folder = work / f"case_{name}"
        if not folder.exists():
            shutil.copytree(work / ct, folder / "CT")
            shutil.copytree(work / objects, folder / objects)
        variants[name] = _case(folder, "rtstruct" if objects == "RT" else "seg")
    labels = len(nifti.labels)
    reference = _best(read_case, nifti, args.repeats)
    print(f"case: {args.data.name}, 20 slices of 512 x 512, {labels} labels; best of "
          f"{args.repeats} reads in one process")
    print(f"{'variant':<16}{'case (s)':>10}{'x nifti':>9}{'CT only (s)':>13}")
    print(f"{'nifti':<16}{reference:>10.3f}{1:>9.2f}{_best(read_image, nifti, args.repeats):>13.3f}")
    for name, case in variants.items():
        seconds = _best(read_case, case, args.repeats)
        ct_only = _best(read_image, case, args.repeats)
        print(f"{name:<16}{seconds:>10.3f}{seconds / reference:>9.2f}{ct_only:>13.3f}")
    if args.keep is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
