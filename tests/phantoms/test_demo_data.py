"""make_demo and `qsaudit demo`: layout, truth that matches the files, bias flag, determinism."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from qsaudit.columns import TRUTH_COLUMNS, names
from qsaudit.degrade import dice
from qsaudit.errors import UsageError
from qsaudit.phantoms import make_demo
from qsaudit.phantoms import phantom as phantom_module
from qsaudit.phantoms.demo import _label_plan, _Settings

TINY = (40, 40, 24)
PATIENT_HEADER = ("image_id;age;gender;institute;study_type;split;manufacturer;scanner_model;"
                  "kvp;pathology;pathology_location")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "d"
    summary = make_demo(out, cases=3, seed=4, shape=TINY, workers=1)
    return out, summary


def _read_mask(path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj) > 0


def test_truth_matches_dice_recomputed_from_files(demo):
    out, summary = demo
    with open(out / "truth.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == names(TRUTH_COLUMNS)
    assert len(rows) == summary.labels and {r["case_id"] for r in rows} == {
        "s0001", "s0002", "s0003"}
    for r in rows:
        label = _read_mask(out / "dataset" / r["case_id"] / "segmentations" / f"{r['label']}.nii.gz")
        ref = _read_mask(out / "reference" / r["case_id"] / "segmentations" / f"{r['label']}.nii.gz")
        assert float(r["true_dsc"]) == pytest.approx(dice(label, ref), abs=1e-6)
        if r["error"] == "none":
            assert np.array_equal(label, ref)
    assert any(r["error"] == "none" for r in rows) and any(float(r["true_dsc"]) < 0.9 for r in rows)
    ct = nib.load(out / "dataset" / "s0001" / "ct.nii.gz")
    assert ct.get_data_dtype() == np.int16 and ct.shape == TINY
    assert nib.aff2axcodes(ct.affine) == ("R", "A", "S")


def test_patients_csv_and_metadata(demo):
    out, summary = demo
    lines = (out / "patients.csv").read_text().splitlines()
    assert lines[0] == PATIENT_HEADER and len(lines) == 4
    for line in lines[1:]:
        fields = line.split(";")
        assert len(fields) == 11 and fields[2] in ("m", "f") and fields[5] in ("train", "val", "test")
        assert 18 <= int(fields[1]) <= 95
    meta = json.loads((out / "demo.json").read_text())
    assert meta["seed"] == 4 and meta["cases"] == 3 and meta["bias"]["enabled"] is True
    assert meta["bias"]["sex"] == "F" and meta["perfect_share"] == 0.35 and meta["version"]
    assert summary.mean_true_dsc == pytest.approx(meta["mean_true_dsc"])


def test_same_seed_identical_files_and_refuses_non_empty(demo, tmp_path):
    out, _ = demo
    again = tmp_path / "again"
    make_demo(again, cases=3, seed=4, shape=TINY, workers=2)
    assert (again / "truth.csv").read_bytes() == (out / "truth.csv").read_bytes()
    name = "dataset/s0002/segmentations/liver.nii.gz"
    assert (again / name).read_bytes() == (out / name).read_bytes()
    with pytest.raises(UsageError, match="not empty"):
        make_demo(again, cases=1, shape=TINY)
    summary = make_demo(again, cases=1, seed=1, bias=False, shape=TINY, overwrite=True)
    assert summary.cases == 1 and not (again / "dataset" / "s0002").exists()
    assert json.loads((again / "demo.json").read_text())["bias"]["enabled"] is False


def test_demographic_effect_only_with_bias():
    def error_share(bias: bool, sex: str, age: int) -> float:
        s = _Settings(out_dir=None, seed=0, bias=bias, perfect_share=0.35, error_rate=0.65)
        rng = np.random.default_rng(0)
        return np.mean([_label_plan(rng, s, sex, age)[0] != "none" for _ in range(3000)])

    assert error_share(True, "F", 80) > error_share(True, "M", 30) + 0.25
    assert abs(error_share(False, "F", 80) - error_share(False, "M", 30)) < 0.05
    assert abs(error_share(False, "M", 50) - 0.65) < 0.05


def test_demo_command(tmp_path, monkeypatch):
    from qsaudit.cli import app

    monkeypatch.setattr(phantom_module, "DEFAULT_INPLANE", (36, 37))
    monkeypatch.setattr(phantom_module, "MAX_SLICES", 20)
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", str(out), "--cases", "2", "--seed", "3",
                                      "--no-bias", "--perfect-share", "0.5", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "2 phantom CTs" in result.output and f"qsaudit scan {out / 'dataset'}" in result.output
    assert json.loads((out / "demo.json").read_text())["bias"]["enabled"] is False
    again = CliRunner().invoke(app, ["demo", str(out), "--cases", "1", "--quiet"])
    assert again.exit_code == 2 and "not empty" in again.output
