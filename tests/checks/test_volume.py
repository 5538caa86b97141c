"""Dataset-level volume check: robust z on body-size-normalised volumes."""

import numpy as np

from qsaudit.checks import flag_volume, robust_z


def test_robust_z():
    z = robust_z(np.array([1.0, 2.0, 3.0, 4.0, 100.0, np.nan]))
    assert np.isnan(z[-1])
    assert z[2] == 0.0 and z[4] > 3.5 and abs(z[0]) < 3.5
    assert np.all(robust_z(np.ones(5)) == 0)


def test_flag_volume_plants_and_normalisation():
    rng = np.random.default_rng(1)
    area = rng.uniform(5e4, 9e4, 12)
    vol = 1500 * (area / 7e4) ** 1.5 * rng.uniform(0.95, 1.05, 12)
    vol[3] *= 4.0   # planted: far too large for this patient
    names = ["liver"] * 12
    flags = flag_volume(vol, area, names)
    assert flags.tolist() == [i == 3 for i in range(12)]
    # A big patient with a proportionally big liver is not flagged.
    area2 = np.append(area[:9], 2.5e5)
    vol2 = np.append(1500 * (area[:9] / 7e4) ** 1.5 * rng.uniform(0.95, 1.05, 9),
                     1500 * (2.5e5 / 7e4) ** 1.5)
    assert not flag_volume(vol2, area2, ["liver"] * 10).any()
    vol2[-1] *= 4.0
    assert flag_volume(vol2, area2, ["liver"] * 10)[-1]


def test_flag_volume_needs_enough_cases_and_skips_unusable():
    base = [1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.02]
    flags = flag_volume(base + [50.0, 0.0, np.nan], [1e4] * 10, ["x"] * 10)
    assert flags.tolist() == [False] * 7 + [True, False, False]
    flags = flag_volume(base[:6] + [50.0, 0.0, np.nan], [1e4] * 9, ["x"] * 9)
    assert not flags.any()   # 7 usable labels: fewer than 8
