"""Sample targets, scorable slices, rebalancing and the sample-set container."""

from __future__ import annotations

import numpy as np

from qsaudit.degrade import dice as volume_dice
from qsaudit.degrade import slice_dice
from qsaudit.training.samples import (
    SampleSet,
    bin_weights,
    candidate_samples,
    rebalance,
    scorable_slices,
)


def test_slice_dice_by_hand():
    truth = np.zeros((4, 4, 3), bool)
    cand = np.zeros((4, 4, 3), bool)
    truth[0:2, 0:2, 0] = True      # 4 voxels
    cand[0:2, 0:1, 0] = True       # 2 voxels inside -> 2*2/(4+2)
    cand[3, 3, 1] = True           # false positive slice -> 0
    truth[1, 1, 2] = True          # truth-only slice -> 0 (never scored)
    d = slice_dice(cand, truth)
    assert np.allclose(d, [4 / 6, 0.0, 0.0])
    assert list(scorable_slices(cand)) == [0, 1]
    assert volume_dice(cand, truth) == 2 * 2 / (3 + 5)


def test_sample_targets_equal_slice_dice(trusted_cases, tiny_model_config):
    from qsaudit.degrade import degrade

    case = trusted_cases[0]
    truth = case.masks["liver"]
    cand = degrade(truth, "shift", 0.6, np.random.default_rng(0), spacing=case.spacing).mask
    cand[2:5, 2:5, 1] = True  # a false-positive slice must be kept with target 0
    slices = scorable_slices(cand)
    inputs, targets, areas = candidate_samples(case.ct, cand, truth, slices=slices,
                                               model_config=tiny_model_config)
    assert inputs.shape == (len(slices), 2, 32, 32) and inputs.dtype == np.float16
    expected = [2 * (cand[:, :, z] & truth[:, :, z]).sum() /
                (cand[:, :, z].sum() + truth[:, :, z].sum()) for z in slices]
    assert np.allclose(targets, expected, atol=1e-6)
    assert 1 in slices and targets[list(slices).index(1)] == 0.0
    assert np.array_equal(areas, cand[:, :, slices].sum((0, 1)))


def test_rebalance_caps_crowded_bins():
    rng = np.random.default_rng(0)
    targets = np.concatenate([np.full(500, 0.95), rng.uniform(0, 0.9, 90)])
    keep = rebalance(targets, rng, bins=10, max_ratio=2.0)
    counts = np.bincount(np.minimum((targets[keep] * 10).astype(int), 9), minlength=10)
    assert counts[9] <= 2 * np.median(np.bincount(
        np.minimum((targets * 10).astype(int), 9), minlength=10)[
            np.bincount(np.minimum((targets * 10).astype(int), 9), minlength=10) > 0]) + 1
    assert counts[9] < 500 and counts[:9].sum() == 90
    w = bin_weights(targets[keep], bins=10)
    per_bin = np.bincount(np.minimum((targets[keep] * 10).astype(int), 9), weights=w,
                          minlength=10)
    assert np.allclose(per_bin[per_bin > 0], 1.0)


def test_sample_set_concat_and_round_trip(tmp_path):
    def part(n, group_name):
        return SampleSet(np.zeros((n, 2, 4, 4), np.float16), np.linspace(0, 1, n, dtype=np.float32),
                         np.array(["liver"] * n, dtype=object), np.zeros(n, np.int64),
                         np.ones(n, np.float32), [{"case_id": group_name, "patient_id": group_name,
                                                   "structure": "liver", "source": "perfect",
                                                   "severity": 0.0, "true_dsc": 1.0}])

    joined = SampleSet.concat([part(2, "a"), part(3, "b")], size=4)
    assert len(joined) == 5 and joined.groups.tolist() == [0, 0, 1, 1, 1]
    assert joined.patients() == ["a", "b"]
    joined.save(tmp_path / "s.npz")
    back = SampleSet.load(tmp_path / "s.npz")
    assert np.array_equal(back.targets, joined.targets)
    assert back.group_table == joined.group_table and back.names.tolist() == ["liver"] * 5


def test_heaviest_units_are_built_first():
    from qsaudit.training.build import make_units, unit_cost
    from qsaudit.training.cases import phantom_specs

    specs = [*phantom_specs(2, seed=0, shape=(24, 24, 12)), *phantom_specs(2, seed=0,
                                                                           region="trunk")]
    units = make_units(specs, set(), group=1, seed=0)
    costs = {u.specs[0].region: unit_cost(u) for u in units}
    assert costs["trunk"] > 100 * costs["abdomen"]
