"""Worker processes run their numerical libraries single-threaded; the user's settings win."""

from __future__ import annotations

import multiprocessing
import os

from qsaudit.cpu import THREAD_VARIABLES, single_threaded_children, usable_cores


def _thread_settings() -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in THREAD_VARIABLES}


def test_children_started_in_the_block_see_one_thread_and_the_parent_is_restored(monkeypatch):
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "3")  # set by the user: kept
    with single_threaded_children(), multiprocessing.get_context("spawn").Pool(1) as pool:
        seen = pool.apply(_thread_settings)
    assert seen == {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "3"}
    assert _thread_settings() == {"OPENBLAS_NUM_THREADS": None, "OMP_NUM_THREADS": None,
                                  "MKL_NUM_THREADS": "3"}


def test_usable_cores_is_positive():
    assert 1 <= usable_cores() <= (os.cpu_count() or 1)
