"""Scan settings: validation, shards, what identifies a scan."""

import pytest

from qsaudit.errors import UsageError
from qsaudit.inference import ScanSettings, parse_shard, shard_cases


def test_parse_shard():
    assert parse_shard("0/4") == (0, 4)
    assert parse_shard("3/4") == (3, 4)
    for bad in ("4/4", "-1/2", "1", "a/b", "1/0"):
        with pytest.raises(UsageError):
            parse_shard(bad)


def test_settings_validation():
    for kwargs in ({"slices": 0}, {"batch_size": 0}, {"workers": -1}, {"aggregation": "max"},
                   {"device": "tpu"}, {"shard": (2, 2)}, {"sampling": "all"},
                   {"precision": "int8"}):
        with pytest.raises(UsageError):
            ScanSettings(**kwargs)


def test_identity_ignores_speed_settings():
    base = ScanSettings()
    assert base.identity() == ScanSettings(device="cpu", batch_size=7, workers=0).identity()
    assert base.identity() != ScanSettings(slices=5).identity()
    assert base.identity() != ScanSettings(seed=1).identity()


def test_shard_cases_partition():
    class C:
        def __init__(self, i):
            self.case_id = f"c{i:02d}"

    cases = [C(i) for i in (5, 3, 9, 0, 1, 7, 2)]
    shards = [shard_cases(cases, i, 3) for i in range(3)]
    ids = sorted(c.case_id for s in shards for c in s)
    assert ids == sorted(c.case_id for c in cases)
    assert [c.case_id for c in shards[0]] == ["c00", "c03", "c09"]
