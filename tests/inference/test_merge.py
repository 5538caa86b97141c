"""Sharded scans merged equal one scan; merge refuses inconsistent shards."""

import json

import pandas as pd
import pytest

from qsaudit.errors import ResultsError
from qsaudit.inference import ScanSettings, merge_shards, scan_dataset
from qsaudit.progress import set_quiet

set_quiet(True)


def _settings(model, **kw):
    return ScanSettings(model=model, workers=0, device="cpu", batch_size=16, slices=3, **kw)


@pytest.fixture
def sharded(make_dataset, tiny_model, tmp_path):
    # Eight cases (the volume check needs >= 8), a planted volume outlier: only the merged table has enough cases to flag it.
    dataset = make_dataset(cases=8, plants={"c004": "volume"})
    scan_dataset(dataset, tmp_path / "one", settings=_settings(tiny_model))
    for i in range(2):
        scan_dataset(dataset, tmp_path / f"s{i}", settings=_settings(tiny_model, shard=(i, 2)))
    return dataset, tmp_path


def test_shards_merged_equal_one_scan(sharded):
    _dataset, tmp = sharded
    shard_rows = [len(pd.read_parquet(tmp / f"s{i}" / "results.parquet")) for i in range(2)]
    assert shard_rows == [24, 24]
    summary = merge_shards([tmp / "s1", tmp / "s0"], tmp / "merged")
    assert summary.cases == 8 and (tmp / "merged" / "report.html").is_file()
    for name in ("results.parquet", "slices.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp / "one" / name),
                                      pd.read_parquet(tmp / "merged" / name))
    merged = pd.read_parquet(tmp / "merged" / "results.parquet")
    assert merged.loc[(merged.case_id == "c004") & (merged.label == "spleen"),
                      "flag_volume"].item()
    meta = json.loads((tmp / "merged" / "scan.json").read_text())
    assert meta["state"] == "complete" and len(meta["merged_from"]) == 2


def test_merge_refusals(sharded, tiny_model, other_model):
    dataset, tmp = sharded
    with pytest.raises(ResultsError, match="missing"):
        merge_shards([tmp / "s0"], tmp / "m1")
    with pytest.raises(ResultsError, match="given twice"):
        merge_shards([tmp / "s0", tmp / "s0", tmp / "s1"], tmp / "m2")
    with pytest.raises(ResultsError, match="not a shard"):
        merge_shards([tmp / "s0", tmp / "one"], tmp / "m3")
    scan_dataset(dataset, tmp / "x1", settings=_settings(other_model, shard=(1, 2)))
    with pytest.raises(ResultsError, match="model changed"):
        merge_shards([tmp / "s0", tmp / "x1"], tmp / "m4")
    meta_path = tmp / "s1" / "scan.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "state": "running"}))
    with pytest.raises(ResultsError, match="not finished"):
        merge_shards([tmp / "s0", tmp / "s1"], tmp / "m5")
