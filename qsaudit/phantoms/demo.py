"""Write a demo dataset of phantoms whose labels have known quality: :func:`make_demo`.

Layout (TotalSegmentator's)::

    DIR/dataset/s0001/ct.nii.gz                    int16 HU
    DIR/dataset/s0001/segmentations/<name>.nii.gz  uint8 labels, some degraded on purpose
    DIR/reference/s0001/segmentations/<name>.nii.gz  the correct masks
    DIR/patients.csv   TotalSegmentator meta.csv format (';'-separated)
    DIR/truth.csv      true Dice of every label (qsaudit.columns.TRUTH_COLUMNS)
    DIR/demo.json      seed, settings and the injected demographic effect
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qsaudit import __version__
from qsaudit.atomic import write_bytes, write_json, write_text
from qsaudit.columns import TRUTH_COLUMNS, names
from qsaudit.degrade import ERRORS, degrade, dice
from qsaudit.errors import UsageError
from qsaudit.phantoms.phantom import Phantom, make_phantom

# The injected demographic effect (bias=True): log-odds of an erroneous label rise for women and
# with age, and their errors are more severe.
BIAS_SEX = "F"
BIAS_SEX_LOG_ODDS = 0.6          # added for BIAS_SEX, subtracted for the other sex
BIAS_AGE_LOG_ODDS_PER_10Y = 0.35  # per decade above BIAS_AGE_CENTRE
BIAS_AGE_CENTRE = 55
BIAS_SEVERITY_SHIFT = 0.12       # severity added for BIAS_SEX (and removed for the other)
LIGHT_ERRORS = ("boundary_noise", "erosion", "dilation")  # inter-annotator-like variation

MANUFACTURERS = (("siemens", "SOMATOM Definition AS"), ("ge", "Revolution CT"),
                 ("philips", "IQon Spectral CT"), ("toshiba", "Aquilion ONE"))


@dataclass(frozen=True)
class DemoSummary:
    """What :func:`make_demo` wrote: counts, the mean true Dice and where the files are."""

    out_dir: Path
    dataset_dir: Path
    reference_dir: Path
    truth_csv: Path
    patients_csv: Path
    metadata_json: Path
    cases: int
    labels: int
    perfect_labels: int
    mean_true_dsc: float


@dataclass(frozen=True)
class _Settings:
    out_dir: Path
    seed: int
    bias: bool
    perfect_share: float
    error_rate: float
    shape: tuple[int, int, int] | None = None


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _nifti_bytes(array: np.ndarray, affine: np.ndarray) -> bytes:
    import nibabel as nib

    img = nib.Nifti1Image(array, affine)
    img.header.set_xyzt_units("mm", "sec")
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=1, mtime=0) as gz:
        gz.write(img.to_bytes())
    return buf.getvalue()


def _patient(rng: np.random.Generator, case_id: str, ph_study: str, sex: str, age: int) -> dict:
    maker, model = MANUFACTURERS[int(rng.integers(len(MANUFACTURERS)))]
    split = ("train", "val", "test")[int(rng.choice(3, p=[0.8, 0.1, 0.1]))]
    sick = rng.random() < 0.3
    return {"image_id": case_id, "age": age, "gender": sex.lower(),
            "institute": "ABCDEFGH"[int(rng.integers(8))], "study_type": ph_study,
            "split": split, "manufacturer": maker, "scanner_model": model,
            "kvp": int(rng.choice([100, 120, 120, 140])),
            "pathology": "tumor" if sick else "no_pathology",
            "pathology_location": str(rng.choice(["liver", "kidney", "pancreas"])) if sick else ""}


def _label_plan(rng: np.random.Generator, s: _Settings, sex: str, age: int) -> tuple[str, float]:
    """Draw (error, severity) for one label under the demo's rates and demographic effect."""
    shift = 0.0
    if s.bias:
        shift = (BIAS_SEX_LOG_ODDS * (1 if sex == BIAS_SEX else -1)
                 + BIAS_AGE_LOG_ODDS_PER_10Y * (age - BIAS_AGE_CENTRE) / 10)
    p_err = 1 / (1 + math.exp(-(_logit(s.error_rate) + shift))) if s.error_rate > 0 else 0.0
    rest = 1 - s.error_rate
    p_perfect = (1 - p_err) * (s.perfect_share / rest if rest > 0 else 1.0)
    u = rng.random()
    if u < p_err:
        sev = float(rng.random())
        if s.bias:
            sev += BIAS_SEVERITY_SHIFT * (1 if sex == BIAS_SEX else -1)
            sev += 0.04 * (age - BIAS_AGE_CENTRE) / 10
        return str(rng.choice(ERRORS)), float(np.clip(sev, 0.0, 1.0))
    if u < p_err + p_perfect:
        return "none", 0.0
    return str(rng.choice(LIGHT_ERRORS)), float(rng.uniform(0.0, 0.12))


def _make_case(index: int, s: _Settings) -> tuple[dict, list[dict]]:
    """Make, degrade and write case ``index``; returns its patients.csv row and truth rows."""
    rng = np.random.default_rng([s.seed, index])
    case_id = f"s{index + 1:04d}"
    sex = "F" if rng.random() < 0.5 else "M"
    age = int(rng.integers(22, 90))
    ph: Phantom = make_phantom(rng, sex=sex, age=age, shape=s.shape)
    study = "ct abdomen pelvis" if "urinary_bladder" in ph.masks else "ct abdomen"
    patient = _patient(rng, case_id, study, sex, age)
    case_dir = s.out_dir / "dataset" / case_id
    ref_dir = s.out_dir / "reference" / case_id / "segmentations"
    ct = np.round(ph.ct).astype(np.int16)
    write_bytes(case_dir / "ct.nii.gz", _nifti_bytes(ct, ph.affine))
    rows = []
    for name in sorted(ph.masks):
        mask = ph.masks[name]
        error, severity = _label_plan(rng, s, sex, age)
        others = {k: v for k, v in ph.masks.items() if k != name}
        out = degrade(mask, error, severity, rng, spacing=ph.spacing, neighbours=others,
                      body=ph.body)
        write_bytes(case_dir / "segmentations" / f"{name}.nii.gz",
                    _nifti_bytes(out.mask.astype(np.uint8), ph.affine))
        write_bytes(ref_dir / f"{name}.nii.gz", _nifti_bytes(mask.astype(np.uint8), ph.affine))
        rows.append({"case_id": case_id, "label": name, "true_dsc": dice(out.mask, mask),
                     "error": error, "severity": severity,
                     "reference_path": f"reference/{case_id}/segmentations/{name}.nii.gz"})
    return patient, rows


def _prepare(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f'"{out_dir}": exists and is not a folder')
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise UsageError(f'"{out_dir}": folder is not empty (--overwrite replaces the demo '
                             "files in it)")
        for sub in ("dataset", "reference"):
            shutil.rmtree(out_dir / sub, ignore_errors=True)
        for f in ("patients.csv", "truth.csv", "demo.json"):
            (out_dir / f).unlink(missing_ok=True)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f'"{out_dir}": cannot create the folder '
                         f"({exc.strerror or type(exc).__name__})") from None


def make_demo(out_dir: str | Path, *, cases: int = 24, seed: int = 0, bias: bool = True,
              perfect_share: float = 0.35, error_rate: float | None = None,
              overwrite: bool = False, workers: int | None = None,
              shape: tuple[int, int, int] | None = None) -> DemoSummary:
    """Write ``cases`` phantom CTs with labels of known true Dice into ``out_dir``.

    ``perfect_share`` of the labels are left perfect; ``error_rate`` (default
    ``1 - perfect_share``) get a deliberate error from :data:`qsaudit.degrade.ERRORS` at a
    uniform severity; any remainder gets light, annotator-like variation. With ``bias`` the
    error rate and severity rise for women and with age (recorded in demo.json); without it
    they do not depend on sex or age. Same seed -> identical files. ``workers`` processes
    (default up to 2) make the cases; ``shape`` fixes every volume's grid (small shapes make
    quick test data). Raises UsageError for bad arguments or a non-empty
    ``out_dir`` without ``overwrite``.
    """
    if cases < 1:
        raise UsageError(f"cases must be at least 1, got {cases}")
    if not 0.0 <= perfect_share <= 1.0:
        raise UsageError(f"perfect share must be in [0, 1], got {perfect_share}")
    rate = 1.0 - perfect_share if error_rate is None else float(error_rate)
    if not 0.0 <= rate <= 1.0 - perfect_share + 1e-9:
        raise UsageError(f"error rate must be in [0, 1 - perfect share], got {error_rate}")
    out = Path(out_dir)
    _prepare(out, overwrite)
    settings = _Settings(out, int(seed), bool(bias), float(perfect_share), rate,
                         None if shape is None else tuple(int(n) for n in shape))
    results = _run(settings, cases, workers)
    patients = [p for p, _ in results]
    truth = [r for _, rows in results for r in rows]
    cols = names(TRUTH_COLUMNS)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    for r in truth:
        writer.writerow([r["case_id"], r["label"], f"{r['true_dsc']:.6f}", r["error"],
                         f"{r['severity']:.4f}", r["reference_path"]])
    write_text(out / "truth.csv", buf.getvalue())
    pbuf = io.StringIO()
    pw = csv.DictWriter(pbuf, fieldnames=list(patients[0]), delimiter=";", lineterminator="\n")
    pw.writeheader()
    pw.writerows(patients)
    write_text(out / "patients.csv", pbuf.getvalue())
    dscs = np.array([r["true_dsc"] for r in truth])
    meta = {
        "generator": "qsaudit demo", "version": __version__, "seed": int(seed), "cases": cases,
        "labels": len(truth), "perfect_share": perfect_share, "error_rate": rate,
        "errors": list(ERRORS), "mean_true_dsc": float(dscs.mean()),
        "bias": {"enabled": bool(bias), "sex": BIAS_SEX if bias else None,
                 "sex_log_odds": BIAS_SEX_LOG_ODDS if bias else 0.0,
                 "age_log_odds_per_10y": BIAS_AGE_LOG_ODDS_PER_10Y if bias else 0.0,
                 "age_centre": BIAS_AGE_CENTRE,
                 "severity_shift_sex": BIAS_SEVERITY_SHIFT if bias else 0.0,
                 "description": (f"labels of sex {BIAS_SEX} and of older patients are degraded "
                                 "more often and more severely") if bias else
                 "degradation independent of sex and age"},
    }
    write_json(out / "demo.json", meta)
    return DemoSummary(out_dir=out, dataset_dir=out / "dataset", reference_dir=out / "reference",
                       truth_csv=out / "truth.csv", patients_csv=out / "patients.csv",
                       metadata_json=out / "demo.json", cases=cases, labels=len(truth),
                       perfect_labels=int(sum(r["error"] == "none" for r in truth)),
                       mean_true_dsc=float(dscs.mean()))


def _run(settings: _Settings, cases: int, workers: int | None) -> list[tuple[dict, list[dict]]]:
    from qsaudit.progress import track

    n = min(cases, workers if workers is not None else 2)
    if n <= 1:
        return [_make_case(i, settings)
                for i in track(range(cases), "Making phantoms", total=cases)]
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
        futures = pool.map(_make_case, range(cases), [settings] * cases)
        return list(track(futures, "Making phantoms", total=cases))
