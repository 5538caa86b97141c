"""Atomic writes: whole files only, usual permissions, no temporary files left behind."""

from __future__ import annotations

import os
import stat

import pytest

from qsaudit import atomic


def test_write_replaces_whole_file_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "sub" / "results.json"
    atomic.write_json(target, {"a": 1, "b": float("nan")})
    atomic.write_json(target, {"a": 2})
    assert target.read_text() == '{\n  "a": 2\n}\n'
    assert sorted(p.name for p in target.parent.iterdir()) == ["results.json"]


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic.write_text(tmp_path / "r.csv", "x\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_failed_writer_keeps_the_old_file(tmp_path):
    target = atomic.write_text(tmp_path / "t.txt", "old")

    def broken(p):
        p.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic.write_with(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]
