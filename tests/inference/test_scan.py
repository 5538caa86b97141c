"""scan_dataset end to end on tiny generated datasets with a tiny real model file."""

import gzip
import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from qsaudit.columns import RESULT_COLUMNS, SLICE_COLUMNS, names
from qsaudit.errors import ResultsError
from qsaudit.inference import ScanSettings, scan_dataset
from qsaudit.progress import set_quiet

set_quiet(True)


def _settings(model, **kw):
    return ScanSettings(model=model, workers=0, device="cpu", batch_size=16, **kw)


def _tables(out):
    return pd.read_parquet(out / "results.parquet"), pd.read_parquet(out / "slices.parquet")


def _assert_same(out_a, out_b):
    for a, b in zip(_tables(out_a), _tables(out_b), strict=True):
        pd.testing.assert_frame_equal(a, b)
    csv_a = (out_a / "results.csv").read_text().replace(str(out_a), "")
    assert csv_a == (out_b / "results.csv").read_text().replace(str(out_b), "")


def test_rows_columns_and_files(tiny_dataset, tiny_model, tmp_path):
    out = tmp_path / "out"
    summary = scan_dataset(tiny_dataset, out, settings=_settings(tiny_model, slices=4))
    results, slices = _tables(out)
    assert list(results.columns) == names(RESULT_COLUMNS)
    assert list(slices.columns) == names(SLICE_COLUMNS)
    assert len(results) == 6 * 6 and summary.labels == 36 and summary.cases == 6
    assert (results["status"] == "ok").all()
    assert results["predicted_dsc"].between(0, 1).all()
    assert (results["n_slices"] == results["mask_slices"].clip(upper=4)).all()
    assert len(slices) == results["n_slices"].sum()
    assert results["structure"][results["label"] == "kidney_left"].eq("left kidney").all()
    assert (results["volume_ml"] == results["voxels"] * 16 / 1000).all()
    assert results[["case_id", "label"]].equals(
        results[["case_id", "label"]].sort_values(["case_id", "label"]))
    meta = json.loads((out / "scan.json").read_text())
    assert meta["state"] == "complete" and meta["counts"]["labels"] == 36
    assert meta["model_fingerprint"] and meta["settings"]["slices"] == 4
    assert (out / "results.csv").is_file() and (out / "report.html").is_file()


def test_two_scans_identical_and_workers_do_not_matter(tiny_dataset, tiny_model, tmp_path):
    scan_dataset(tiny_dataset, tmp_path / "a", settings=_settings(tiny_model))
    scan_dataset(tiny_dataset, tmp_path / "b", settings=_settings(tiny_model))
    _assert_same(tmp_path / "a", tmp_path / "b")
    scan_dataset(tiny_dataset, tmp_path / "c",
                 settings=_settings(tiny_model).replace(workers=2, batch_size=16))
    _assert_same(tmp_path / "a", tmp_path / "c")


def test_resume_after_interruption_gives_identical_results(tiny_dataset, tiny_model, tmp_path):
    scan_dataset(tiny_dataset, tmp_path / "full", settings=_settings(tiny_model))
    committed = []

    def crash_after_two(case_id):
        committed.append(case_id)
        if len(committed) == 2:
            raise KeyboardInterrupt

    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        scan_dataset(tiny_dataset, out, settings=_settings(tiny_model),
                     on_case_committed=crash_after_two)
    assert not (out / "results.csv").exists()
    assert json.loads((out / "scan.json").read_text())["state"] == "running"
    summary = scan_dataset(tiny_dataset, out, settings=_settings(tiny_model))
    assert summary.resumed_cases == 2 and summary.scanned_cases == 4
    _assert_same(tmp_path / "full", out)


def test_changed_settings_or_model_refused_unless_force(tiny_dataset, tiny_model, other_model,
                                                        tmp_path):
    out = tmp_path / "out"
    scan_dataset(tiny_dataset, out, settings=_settings(tiny_model))
    with pytest.raises(ResultsError, match="slices was 10, now 5"):
        scan_dataset(tiny_dataset, out, settings=_settings(tiny_model, slices=5))
    with pytest.raises(ResultsError, match="model changed"):
        scan_dataset(tiny_dataset, out, settings=_settings(other_model))
    summary = scan_dataset(tiny_dataset, out, settings=_settings(tiny_model, slices=5, force=True))
    assert summary.resumed_cases == 0
    assert _tables(out)[0]["n_slices"].max() == 5
    # Speed settings may change between runs of one scan.
    again = scan_dataset(tiny_dataset, out, settings=_settings(tiny_model, slices=5)
                         .replace(batch_size=3))
    assert again.resumed_cases == 6


def test_precision_is_part_of_a_scans_identity(tiny_dataset, tiny_model, tmp_path):
    out = tmp_path / "out"
    scan_dataset(tiny_dataset, out, settings=_settings(tiny_model, precision="bf16"))
    meta = json.loads((out / "scan.json").read_text())
    assert meta["model"]["precision"] == "bf16" and meta["identity"]["precision"] == "bf16"
    with pytest.raises(ResultsError, match="precision was 'bf16', now 'fp32'"):
        scan_dataset(tiny_dataset, out, settings=_settings(tiny_model, precision="fp32"))
    exact = tmp_path / "exact"
    scan_dataset(tiny_dataset, exact, settings=_settings(tiny_model, precision="fp32"))
    a, b = _tables(out)[0], _tables(exact)[0]
    gap = (a["predicted_dsc"] - b["predicted_dsc"]).abs()
    assert 0 < gap.max() < 0.05  # bf16 really ran, and stays close to fp32
    # a folder from before precision was recorded (fp32 on CPU) still resumes in fp32
    manifest = json.loads((exact / "scan.json").read_text())
    del manifest["identity"]["precision"]
    (exact / "scan.json").write_text(json.dumps(manifest))
    again = scan_dataset(tiny_dataset, exact, settings=_settings(tiny_model, precision="fp32"))
    assert again.resumed_cases == 6


def test_every_flag_on_its_planted_case(make_dataset, tiny_model, tmp_path):
    plants = {"c001": "side", "c002": "hu", "c003": "components", "c004": "edge",
              "c005": "volume", "c006": "empty"}
    # Nine cases: the volume check needs >= 8 non-empty spleens and c006's is empty.
    dataset = make_dataset(cases=9, plants=plants)
    scan_dataset(dataset, tmp_path / "out", settings=_settings(tiny_model, slices=3))
    results = _tables(tmp_path / "out")[0].set_index(["case_id", "label"])
    expected = {
        "flag_side": {("c001", "kidney_left"), ("c001", "kidney_right")},
        "flag_hu": {("c002", "esophagus")},
        "flag_components": {("c003", "liver")},
        "flag_edge": {("c004", "liver")},
        "flag_empty": {("c006", "spleen")},
    }
    for flag, keys in expected.items():
        raised = set(results.index[results[flag].fillna(False).astype(bool)])
        assert raised == keys, flag
    volume = set(results.index[results["flag_volume"].fillna(False).astype(bool)])
    assert ("c005", "spleen") in volume
    assert volume <= {("c005", "spleen"), ("c004", "liver")}  # the shifted liver may count
    empty = results.loc[("c006", "spleen")]
    assert empty["status"] == "empty" and pd.isna(empty["predicted_dsc"])
    assert empty["n_flags"] == 1
    clean = results.loc["c000"]
    assert (clean["n_flags"] == 0).all()


def test_bad_files_get_status_rows(make_dataset, tiny_model, tmp_path):
    dataset = make_dataset(cases=6)
    (dataset / "c000" / "ct.nii.gz").write_bytes(
        (dataset / "c000" / "ct.nii.gz").read_bytes()[:200])            # truncated CT
    (dataset / "c001" / "ct.nii.gz").unlink()                          # missing CT
    (dataset / "c002" / "segmentations" / "liver.nii.gz").write_bytes(
        gzip.compress(b"not a nifti at all"))                           # corrupt label
    affine = np.diag([2.0, 2.0, 4.0, 1.0])
    nib.save(nib.Nifti1Image(np.ones((30, 32, 16), np.uint8), affine),
             dataset / "c003" / "segmentations" / "spleen.nii.gz")       # wrong shape
    shifted = affine.copy()
    shifted[0, 3] = 7.0
    mask = np.zeros((32, 32, 16), np.uint8)
    mask[10:14, 10:14, 5:9] = 1
    nib.save(nib.Nifti1Image(mask, shifted),
             dataset / "c004" / "segmentations" / "aorta.nii.gz")        # wrong affine
    summary = scan_dataset(dataset, tmp_path / "out", settings=_settings(tiny_model))
    results = _tables(tmp_path / "out")[0].set_index(["case_id", "label"])
    assert set(results.loc["c000", "status"]) == {"unreadable"}
    assert set(results.loc["c001", "status"]) == {"missing_image"}
    assert results.loc[("c002", "liver"), "status"] == "unreadable"
    assert results.loc[("c003", "spleen"), "status"] == "shape_mismatch"
    assert results.loc[("c004", "aorta"), "status"] == "affine_mismatch"
    assert "ct.nii.gz" in results.loc[("c000", "liver"), "error"]
    bad = results[results["status"] != "ok"]
    assert bad["predicted_dsc"].isna().all() and bad["error"].str.len().gt(0).all()
    assert (results.loc["c005", "status"] == "ok").all()
    assert (results.loc[("c002", "spleen"), "status"]) == "ok"
    assert summary.status_counts["ok"] == 6 + 5 + 5 + 5


def test_report_shows_the_device_the_scan_ran_on(tiny_dataset, tiny_model, tmp_path):
    import re

    import torch

    out = tmp_path / "out"
    scan_dataset(tiny_dataset, out, settings=ScanSettings(model=tiny_model, workers=0,
                                                          device="auto", slices=2))
    used = json.loads((out / "scan.json").read_text())["model"]["device"]
    assert used == ("cuda:0" if torch.cuda.is_available() else "cpu") or used.startswith("cuda")
    text = re.sub(r"<[^>]+>", " ", (out / "report.html").read_text())
    assert f"{used} (auto)" in text


@pytest.mark.parametrize("workers", [0, 2])
def test_scan_json_says_where_the_time_went(tiny_dataset, tiny_model, tmp_path, workers):
    from qsaudit.model.checkpoint import load_checkpoint

    out = tmp_path / "out"
    scan_dataset(tiny_dataset, out, settings=ScanSettings(model=tiny_model, workers=workers,
                                                          device="cpu", slices=2))
    timings = json.loads((out / "scan.json").read_text())["timings"]
    assert timings["batch_size"] == load_checkpoint(tiny_model, device="cpu").batch_size  # auto
    parts = timings["breakdown"]
    main = ["setup", "network", "batching", "waiting_for_readers", "writing",
            "tables_and_report", "other"]
    assert all(parts[key] >= 0 for key in main + ["readers_cpu", "readers_decoding"])
    assert sum(parts[key] for key in main) == pytest.approx(parts["total"], abs=0.01)
    assert 0 < parts["network"] <= timings["model_seconds"] + 1e-6
    assert parts["readers_decoding"] > 0 and parts["tables_and_report"] > 0
    assert parts["readers_decoding"] <= timings["read_seconds"] + 1e-6
    # CPU seconds of every process: the network and the decoding are parts of their process's
    assert 0 < parts["cpu_network"] <= parts["cpu_main"]
    assert 0 < parts["cpu_readers_decoding"] <= parts["cpu_readers"]
    assert parts["cpu_readers"] >= parts["readers_cpu"] - 1e-3  # start-up comes on top
    assert 0 < parts["beyond_decoding_and_network"] < 1
    assert "gpu_peak_mib" not in timings  # only a scan on the GPU reports its memory
    explicit = tmp_path / "explicit"
    scan_dataset(tiny_dataset, explicit, settings=_settings(tiny_model, slices=2))
    assert json.loads((explicit / "scan.json").read_text())["timings"]["batch_size"] == 16


@pytest.mark.gpu
def test_a_scan_on_the_gpu_reports_its_peak_gpu_memory(tiny_dataset, tiny_model, tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    out = tmp_path / "out"
    scan_dataset(tiny_dataset, out, settings=ScanSettings(model=tiny_model, workers=0,
                                                          device="cuda", slices=2))
    timings = json.loads((out / "scan.json").read_text())["timings"]
    total = torch.cuda.get_device_properties(0).total_memory / 2**20
    assert 0 < timings["gpu_peak_mib"] <= timings["gpu_peak_reserved_mib"] < total
