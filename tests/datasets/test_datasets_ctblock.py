"""ct_main_block: the body block, not the islands of CT kept around contours."""

from __future__ import annotations

import numpy as np
import pytest

from qsaudit.datasets import ct_main_block
from qsaudit.datasets.ctblock import DEFAULT_MIN_FRACTION


def _volume_with_islands() -> np.ndarray:
    """Z=20: a head (area 100) on z 5..9 and shoulders (area 400) on z 10..14; islands of
    4 voxels on z 0..4 and 15..19 (1 % of the largest area)."""
    ct = np.full((24, 24, 20), -1024.0, dtype=np.float32)
    ct[2:22, 2:22, 10:15] = 40.0          # shoulders, area 400
    ct[7:17, 7:17, 5:10] = 40.0           # head, area 100 = 25 % of the shoulders
    ct[11:13, 11:13, 0:5] = 30.0          # island below
    ct[11:13, 11:13, 15:20] = 30.0        # island above
    return ct


def test_islands_are_left_out_and_the_head_kept():
    assert ct_main_block(_volume_with_islands()) == (5, 15)
    assert 4 / 400 < DEFAULT_MIN_FRACTION < 100 / 400


def test_min_fraction_and_threshold_control_the_block():
    ct = _volume_with_islands()
    assert ct_main_block(ct, min_fraction=0.5) == (10, 15)
    assert ct_main_block(ct, min_fraction=0.005) == (0, 20)
    assert ct_main_block(ct, body_hu=35.0) == (5, 15)
    assert ct_main_block(ct, body_hu=50.0) == (0, 20)  # nothing is body: keep everything


def test_the_run_around_the_largest_slice_wins():
    ct = np.full((10, 10, 12), -1000.0, dtype=np.float32)
    ct[2:8, 2:8, 0:4] = 0.0                # a first run, area 36
    ct[:, :, 6:12] = 0.0                   # the run with the largest slices, area 100
    assert ct_main_block(ct) == (6, 12)


def test_bad_arguments():
    with pytest.raises(ValueError, match="3D"):
        ct_main_block(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="min_fraction"):
        ct_main_block(np.zeros((4, 4, 4)), min_fraction=0.0)
