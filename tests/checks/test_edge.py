"""Edge check: in-plane borders always, z-ends only for organs a scan should hold entirely."""

import numpy as np

from qsaudit.checks import FULLY_COVERED, flag_edge, mask_stats, z_ends_matter
from qsaudit.registry import lookup


def _box(shape=(32, 32, 16), lo=(10, 10, 4), hi=(20, 20, 12)):
    m = np.zeros(shape, dtype=bool)
    m[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = True
    return m


def test_flag_edge_in_plane_and_z_ends():
    shape = (32, 32, 16)
    assert not flag_edge(mask_stats(_box()), shape)
    assert flag_edge(mask_stats(_box(lo=(0, 10, 4))), shape)
    assert flag_edge(mask_stats(_box(hi=(20, 32, 12))), shape)
    assert flag_edge(mask_stats(_box(lo=(0, 10, 4))), shape, z_ends=False)
    z_end = mask_stats(_box(hi=(20, 20, 16)))
    assert flag_edge(z_end, shape)
    assert not flag_edge(z_end, shape, z_ends=False)
    assert not flag_edge(mask_stats(np.zeros(shape, bool)), shape)


def test_z_ends_matter_for_compact_organs_only():
    assert z_ends_matter("brainstem") and z_ends_matter("kidney_left")
    for long_one in ("aorta", "spinal_cord", "esophagus", "lung_left", "heart", "colon", None):
        assert not z_ends_matter(long_one)


def test_fully_covered_names_are_registry_keys():
    for key in FULLY_COVERED:
        structure = lookup(key)
        assert structure is not None and structure.key == key
