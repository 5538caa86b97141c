"""Left/right checks: wrong side of the midline and swapped pairs."""

import math

import numpy as np

from qsaudit.checks import flag_side, side_offset_mm, swapped_pairs


def test_offset_sign_follows_ras_x():
    assert side_offset_mm(20, 16, 2.0) == 8.0   # right of the midline
    assert side_offset_mm(10, 16, 1.5) == -9.0


def test_flag_side():
    assert flag_side(12.0, "left")          # a left structure on the right
    assert not flag_side(-12.0, "left")
    assert flag_side(-12.0, "right")
    assert not flag_side(3.0, "left")       # within the margin of the midline
    assert not flag_side(40.0, None)
    assert not flag_side(math.nan, "left")


def test_swapped_pairs():
    sides = {"kidney_left": "left", "kidney_right": "right", "liver": None}
    pairs = {"kidney_left": "kidney_right", "kidney_right": "kidney_left", "liver": None}
    fine = {"kidney_left": -30.0, "kidney_right": 30.0, "liver": 40.0}
    assert swapped_pairs(fine, sides, pairs) == set()
    swapped = {"kidney_left": 25.0, "kidney_right": -25.0}
    assert swapped_pairs(swapped, sides, pairs) == {"kidney_left", "kidney_right"}
    assert swapped_pairs({"kidney_left": 25.0}, sides, pairs) == set()


def test_wrong_side_share_and_partial_mirror():
    from qsaudit.checks import wrong_side_share

    per_x = np.zeros(40)
    per_x[5:10] = 10.0                  # a left organ, 10-14 voxels left of the midline (x = 20)
    assert wrong_side_share(per_x, 20.0, 1.0, "left") == 0.0
    per_x[30:35] = 2.5                  # a fifth of it mirrored to the right
    assert wrong_side_share(per_x, 20.0, 1.0, "left") == 0.2
    assert wrong_side_share(per_x, 20.0, 1.0, "right") == 0.8
    assert wrong_side_share(per_x, 20.0, 1.0, None) == 0.0
    # The centroid stays on the left (about -7 mm), yet the voxel share flags it.
    assert not flag_side(-7.0, "left")
    assert flag_side(-7.0, "left", wrong_share=0.2)
    assert not flag_side(-7.0, "left", wrong_share=0.1)
