"""Body midline and size."""

import numpy as np

from qsaudit.checks import body_profile


def test_body_profile_midline_and_area():
    ct = np.full((40, 30, 5), -1000.0)
    ct[10:30, 5:25, :] = 40.0       # 20 x 20 voxels centred at x = 19.5
    ct[10:30, 5:25, 0] = -1000.0    # an empty slice is ignored
    profile = body_profile(ct, (1.5, 2.0, 3.0))
    assert profile.midline_x == 19.5
    assert profile.area_mm2 == 20 * 20 * 1.5 * 2.0
    assert np.isnan(body_profile(np.full((4, 4, 4), -1000.0), (1, 1, 1)).midline_x)
