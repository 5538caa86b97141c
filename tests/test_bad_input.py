"""Hostile-user sweep: every command given bad input answers with one ``Error: …`` line.

Each case runs a command through Typer's CliRunner on a small workspace of seeded files built
on the fly, and checks the exit code (2: bad arguments or unusable inputs, in every command),
that the message is one line
naming the file or option at fault, that no traceback leaks, and that no file was written.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from qsaudit.cli import app

runner = CliRunner()
STRUCTURES = ("liver", "spleen", "kidney_left")


def _nifti_bytes(data: np.ndarray) -> bytes:
    img = nib.Nifti1Image(data, np.diag([1.5, 1.5, 3.0, 1.0]))
    return gzip.compress(img.to_bytes(), mtime=0)


def _write_case(folder: Path, rng: np.random.Generator) -> None:
    (folder / "segmentations").mkdir(parents=True)
    ct = rng.normal(40, 20, size=(12, 12, 6)).astype(np.int16)
    (folder / "ct.nii.gz").write_bytes(_nifti_bytes(ct))
    for i, name in enumerate(STRUCTURES):
        mask = np.zeros((12, 12, 6), np.uint8)
        mask[2 + 3 * i:5 + 3 * i, 3:9, 1:5] = 1
        (folder / "segmentations" / f"{name}.nii.gz").write_bytes(_nifti_bytes(mask))


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """A workspace of good and bad inputs (never written to by a failing command)."""
    root = tmp_path_factory.mktemp("bad_input")
    rng = np.random.default_rng(7)
    cases = [f"s{i:04d}" for i in range(1, 7)]
    rows = [{"case_id": c, "label": s, "structure": s,
             "predicted_dsc": round(float(rng.uniform(0.4, 1.0)), 4), "status": "ok",
             "mask_slices": int(rng.integers(3, 20)), "voxels": int(rng.integers(50, 900))}
            for c in cases for s in STRUCTURES]
    (root / "report").mkdir()
    pd.DataFrame(rows).to_csv(root / "report" / "results.csv", index=False)
    truth = pd.DataFrame(rows)[["case_id", "label"]].assign(true_dsc=0.9)
    truth.to_csv(root / "truth.csv", index=False)
    (root / "truth_unknown.csv").write_text("case_id,label,true_dsc\nq1,liver,0.9\n")
    (root / "meta.csv").write_text("image_id;age;gender\n" + "".join(
        f"{c};{40 + 5 * i};{'m' if i % 2 else 'f'}\n" for i, c in enumerate(cases)))
    (root / "meta_nomatch.csv").write_text("image_id;age;gender\nzz1;50;m\nzz2;61;f\n")
    (root / "wrongcols.csv").write_text("a,b\n1,2\n")
    (root / "empty.csv").write_text("")
    (root / "nonnumeric.csv").write_text("case_id,label,predicted_dsc\ns0001,liver,high\n")
    (root / "afile").write_text("just a file\n")
    (root / "emptydir").mkdir()
    (root / "noresults").mkdir()
    (root / "noresults" / "notes.txt").write_text("no results here\n")
    (root / "broken.toml").write_text("[default\nmin_dsc = 0.5\n")
    (root / "typo.toml").write_text("[default]\nmin_dsk = 0.5\n")
    (root / "badvalue.toml").write_text('[default]\nmin_dsc = "high"\n')
    _write_case(root / "dataset" / "s0001", rng)
    _write_case(root / "reference" / "s0001", rng)
    liver = root / "reference" / "s0001" / "segmentations" / "liver.nii.gz"
    liver.write_bytes(liver.read_bytes()[:60])  # truncated gzip stream
    _write_case(root / "corrupt" / "s0001", rng)
    (root / "corrupt" / "s0001" / "ct.nii.gz").write_bytes(b"not a nifti at all")
    (root / "badjson" / "imagesTr").mkdir(parents=True)
    (root / "badjson" / "dataset.json").write_text('{"labels": {"liver": 1,')
    (root / "demo_full").mkdir()
    (root / "demo_full" / "keep.txt").write_text("user data\n")
    return root


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


# (command line with {ws} for the workspace, exit code, text the one-line message must contain)
CASES = [
    # demo
    ("demo {ws}/demo_full --cases 1 -q", 2, "demo_full"),
    ("demo {ws}/afile --cases 1 -q", 2, "afile"),
    ("demo {ws}/afile/sub --cases 1 -q", 2, "afile/sub"),
    # datasets
    ("datasets {ws}/missing", 2, "missing"),
    ("datasets {ws}/afile", 2, "afile"),
    ("datasets {ws}/emptydir", 2, "emptydir"),
    ("datasets {ws}/dataset --layout bogus", 2, "bogus"),
    ("datasets {ws}/dataset --preset bogus", 2, "bogus"),
    ("datasets {ws}/dataset --labels {ws}/wrongcols.csv", 2, "wrongcols.csv"),
    ("datasets {ws}/dataset --labels {ws}/empty.csv", 2, "empty.csv"),
    ("datasets {ws}/dataset --labels {ws}/missing.csv", 2, "missing.csv"),
    # scan (fails before any model work)
    ("scan {ws}/missing --out {ws}/out -q", 2, "missing"),
    ("scan {ws}/afile --out {ws}/out -q", 2, "afile"),
    ("scan {ws}/emptydir --out {ws}/out -q", 2, "emptydir"),
    ("scan {ws}/dataset --out {ws}/out --shard 5/2 -q", 2, "5/2"),
    ("scan {ws}/badjson --out {ws}/out -q", 2, "dataset.json"),
    ("datasets {ws}/badjson", 2, "dataset.json"),
    ("scan {ws}/dataset --out {ws}/dataset/rep -q", 2, "inside the dataset"),
    # evaluate
    ("evaluate -r {ws}/missing --truth {ws}/truth.csv", 2, "missing"),
    ("evaluate -r {ws}/noresults --truth {ws}/truth.csv", 2, "noresults"),
    ("evaluate -r {ws}/afile --truth {ws}/truth.csv", 2, "afile"),
    ("evaluate -r {ws}/wrongcols.csv --truth {ws}/truth.csv", 2, "wrongcols.csv"),
    ("evaluate -r {ws}/empty.csv --truth {ws}/truth.csv", 2, "empty.csv"),
    ("evaluate -r {ws}/nonnumeric.csv --truth {ws}/truth.csv", 2, "nonnumeric.csv"),
    ("evaluate -r {ws}/report --truth {ws}/missing.csv", 2, "missing.csv"),
    ("evaluate -r {ws}/report --truth {ws}/wrongcols.csv", 2, "wrongcols.csv"),
    ("evaluate -r {ws}/report --truth {ws}/empty.csv", 2, "empty.csv"),
    ("evaluate -r {ws}/report --truth {ws}/truth_unknown.csv -o {ws}/out", 2, "truth"),
    ("evaluate -r {ws}/report --truth {ws}/truth.csv --threshold 2", 2, "--threshold"),
    ("evaluate -r {ws}/report --truth {ws}/truth.csv -o {ws}/afile/sub", 2, "afile/sub"),
    ("evaluate -r {ws}/report --reference {ws}/reference", 2, "--dataset"),
    ("evaluate -r {ws}/report --reference {ws}/reference --dataset {ws}/dataset -o {ws}/out",
     2, "liver.nii.gz"),
    # bias
    ("bias --meta {ws}/missing.csv -r {ws}/report", 2, "missing.csv"),
    ("bias --meta {ws}/meta_nomatch.csv -r {ws}/report -o {ws}/out", 2, "meta_nomatch.csv"),
    ("bias --meta {ws}/empty.csv -r {ws}/report", 2, "empty.csv"),
    ("bias --meta {ws}/wrongcols.csv -r {ws}/report", 2, "wrongcols.csv"),
    ("bias --meta {ws}/meta.csv -r {ws}/noresults", 2, "noresults"),
    ("bias --meta {ws}/meta.csv -r {ws}/report --alpha 2", 2, "--alpha"),
    ("bias --meta {ws}/meta.csv -r {ws}/report --sex-col nope", 2, "nope"),
    ("bias --meta {ws}/meta.csv -r {ws}/report --sex-map garbage", 2, "--sex-map"),
    ("bias --meta {ws}/meta.csv -r {ws}/report -o {ws}/afile/sub", 2, "afile/sub"),
    # budget
    ("budget -r {ws}/report --fraction 1.5", 2, "--fraction"),
    ("budget -r {ws}/report --fraction -0.1", 2, "--fraction"),
    ("budget -r {ws}/report --count 0", 2, "--count"),
    ("budget -r {ws}/report", 2, "--fraction"),
    ("budget -r {ws}/report --fraction 0.2 --count 3", 2, "--count"),
    ("budget -r {ws}/report --fraction 0.2 --unit bogus", 2, "--unit"),
    ("budget -r {ws}/report --fraction 0.2 --cost bogus", 2, "--cost"),
    ("budget -r {ws}/report --fraction 0.2 --truth {ws}/truth_unknown.csv -o {ws}/out", 2,
     "truth"),
    ("budget -r {ws}/report --fraction 0.2 --truth {ws}/wrongcols.csv", 2, "wrongcols.csv"),
    ("budget -r {ws}/noresults --fraction 0.2", 2, "noresults"),
    ("budget -r {ws}/report --fraction 0.2 -o {ws}/afile/sub", 2, "afile/sub"),
    # select
    ("select -r {ws}/report --top 1.5", 2, "--top"),
    ("select -r {ws}/report --count 0", 2, "--count"),
    ("select -r {ws}/report", 2, "--top"),
    ("select -r {ws}/report --min-dsc 2", 2, "--min-dsc"),
    ("select -r {ws}/report --top 0.5 --case-score bogus", 2, "--case-score"),
    ("select -r {ws}/report --top 0.5 --folds 0 --nnunet-splits {ws}/out/s.json", 2, "--folds"),
    ("select -r {ws}/report --top 0.5 --nnunet-splits {ws}/afile/s.json", 2, "afile"),
    ("select -r {ws}/report --top 0.5 --nnunet-splits {ws}/emptydir", 2, "emptydir"),
    ("select -r {ws}/report --top 0.5 -o {ws}/afile/sub", 2, "afile/sub"),
    # gate (exit 1 is a quality failure, so unusable input is always 2)
    ("gate -r {ws}/report", 2, "--min-dsc"),
    ("gate -r {ws}/noresults --min-dsc 0.5", 2, "noresults"),
    ("gate -r {ws}/report --min-dsc 0.5 --baseline {ws}/missing", 2, "missing"),
    ("gate -r {ws}/report --min-dsc 0.5 --baseline {ws}/wrongcols.csv", 2, "wrongcols.csv"),
    ("gate -r {ws}/report --min-dsc 0.5 --baseline {ws}/empty.csv", 2, "empty.csv"),
    ("gate -r {ws}/report --max-drop 0.05", 2, "--baseline"),
    ("gate -r {ws}/report --policy {ws}/broken.toml", 2, "broken.toml"),
    ("gate -r {ws}/report --policy {ws}/typo.toml", 2, "min_dsk"),
    ("gate -r {ws}/report --policy {ws}/badvalue.toml", 2, "badvalue.toml"),
    ("gate -r {ws}/report --policy {ws}/missing.toml", 2, "missing.toml"),
    ("gate -r {ws}/report --policy {ws}/emptydir", 2, "emptydir"),
    ("gate -r {ws}/report --min-dsc 0.5 --junit {ws}/afile/j.xml", 2, "afile"),
    ("gate -r {ws}/report --min-dsc 0.5 --junit {ws}/emptydir", 2, "emptydir"),
    # import-paper
    ("import-paper -c {ws}/missing.pth -e {ws}/missing.pkl -o {ws}/out/p.pt", 2, "missing.pth"),
    pytest.param("import-paper -c {ws}/afile -e {ws}/afile -o {ws}/out/p.pt", 2, "afile"),
    pytest.param("scan {ws}/dataset --out {ws}/out --model {ws}/afile -q", 2, "afile"),
    ("import-paper -c {ws}/afile -e {ws}/afile -o {ws}/emptydir", 2, "emptydir"),
    ("import-paper -c {ws}/afile -e {ws}/afile -o {ws}/afile/p.pt", 2, "afile"),
    # train (fails before any training)
    ("train --out {ws}/out/m.pt", 2, "--data"),
    ("train --out {ws}/out/m.pt --data {ws}/missing", 2, "missing"),
    ("train --out {ws}/out/m.pt --data {ws}/emptydir", 2, "emptydir"),
]


def _case_id(case) -> str:
    return (case.values if hasattr(case, "values") else case)[0]


@pytest.mark.parametrize(("line", "code", "names"), CASES, ids=[_case_id(c) for c in CASES])
def test_bad_input_gives_one_error_line(ws: Path, line: str, code: int, names: str) -> None:
    before = _files(ws)
    result = runner.invoke(app, line.format(ws=ws).split())
    text = result.output.strip()
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == code, result.output
    assert len(text.splitlines()) == 1 and text.startswith("Error: "), result.output
    assert names in text, result.output
    assert _files(ws) == before, "a failing command wrote or changed a file"


@pytest.mark.parametrize("line", [
    "budget -r {ws}/report --fraction abc",
    "select -r {ws}/report --top abc",
    "gate -r {ws}/report --min-dsc abc",
    "evaluate -r {ws}/report --truth {ws}/truth.csv --threshold abc",
    "demo {ws}/out --cases 0",
    "datasets {ws}/dataset --head -1",
])
def test_unparseable_option_is_a_usage_error(ws: Path, line: str) -> None:
    """Values Typer itself rejects: exit 2 and the option named, no traceback, nothing written."""
    before = _files(ws)
    result = runner.invoke(app, line.format(ws=ws).split())
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    option = [w for w in line.split() if w.startswith("--")][-1]
    assert option in result.output
    assert _files(ws) == before


def test_corrupt_volume_is_reported_not_raised(ws: Path) -> None:
    """`datasets` lists a case with an unreadable CT without crashing or writing into it."""
    before = _files(ws)
    result = runner.invoke(app, ["datasets", str(ws / "corrupt")])
    assert "Traceback" not in result.output and result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        assert "ct.nii.gz" in result.output
    assert _files(ws) == before


def test_good_input_still_works(ws: Path, tmp_path: Path) -> None:
    """The guards do not reject valid runs: budget and select write their files to --out."""
    out = tmp_path / "new" / "folder"
    result = runner.invoke(app, ["budget", "-r", str(ws / "report"), "--count", "2",
                                 "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert (out / "correction_list.csv").is_file() and not list(out.glob(".qsaudit-*"))
    result = runner.invoke(app, ["select", "-r", str(ws / "report"), "--count", "1",
                                 "--nnunet-splits", str(tmp_path / "s" / "splits.json"),
                                 "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s" / "splits.json").is_file()


@pytest.mark.slow
def test_scan_writes_nothing_into_the_dataset(tmp_path: Path) -> None:
    """A scan reads the dataset and writes only under --out (read-only datasets work)."""
    from qsaudit.phantoms import make_demo

    make_demo(tmp_path / "d", cases=1, shape=(40, 40, 16), workers=0)
    dataset = tmp_path / "d" / "dataset"
    before = _files(dataset)
    result = runner.invoke(app, ["scan", str(dataset), "--out", str(tmp_path / "r"), "-q",
                                 "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert _files(dataset) == before
