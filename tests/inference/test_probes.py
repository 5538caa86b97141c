"""End probes: the crops beyond a label's ends, their summary features, and their way through
training samples, the calibration table and the scan."""

import math

import numpy as np
import pytest

from qsaudit.inference.probes import HIGH, LOW, PROBE_OFFSET, end_probes, probe_summary
from qsaudit.model.config import ModelConfig
from qsaudit.model.preprocess import crop_slice

CONFIG = ModelConfig(input_size=16, margin=2)


def _volume(z0: int, z1: int, depth: int = 10):
    rng = np.random.default_rng(3)
    ct = rng.normal(0, 100, (12, 12, depth)).astype(np.float32)
    mask = np.zeros((12, 12, depth), bool)
    for z in range(z0, z1):  # a box that grows with z, so every slice's mask differs
        mask[3:5 + z % 5, 4:8, z] = True
    return ct, mask


def test_probes_show_the_ct_beyond_each_end_with_the_end_slice_mask():
    ct, mask = _volume(3, 7)
    crops, sides = end_probes(ct, mask, (3, 7), model_config=CONFIG)
    assert crops.shape == (2, 2, 16, 16) and crops.dtype == np.float32
    assert sides.tolist() == [LOW, HIGH]
    np.testing.assert_array_equal(
        crops[0], crop_slice(ct[:, :, 3 - PROBE_OFFSET], mask[:, :, 3], config=CONFIG))
    np.testing.assert_array_equal(
        crops[1], crop_slice(ct[:, :, 6 + PROBE_OFFSET], mask[:, :, 6], config=CONFIG))


def test_an_end_at_the_volume_edge_has_no_probe():
    ct, mask = _volume(0, 5)
    crops, sides = end_probes(ct, mask, (0, 5), model_config=CONFIG)
    assert sides.tolist() == [HIGH] and crops.shape[0] == 1
    ct, mask = _volume(0, 10)
    crops, sides = end_probes(ct, mask, (0, 10), model_config=CONFIG)
    assert crops.shape == (0, 2, 16, 16) and sides.size == 0


def test_probe_summary():
    assert probe_summary(np.array([0.2, 1.3])) == (1.0, 0.2)  # clipped to [0, 1]
    assert probe_summary(np.array([0.4])) == (0.4, 0.4)
    for unknown in (None, np.zeros(0), np.array([np.nan])):
        assert all(math.isnan(v) for v in probe_summary(unknown))


def test_label_features_carry_the_probe_features():
    from qsaudit.inference.aggregate import FEATURES, PROBE_FEATURES, label_features

    s, a = np.array([0.9, 0.8]), np.array([10.0, 12.0])
    with_probes = label_features(s, a, probes=np.array([0.7, 0.1]))
    i = [FEATURES.index(n) for n in PROBE_FEATURES]
    assert PROBE_FEATURES == ("probe_max", "probe_min")
    assert with_probes[i].tolist() == [0.7, 0.1]
    assert np.isnan(label_features(s, a)[i]).all()
    others = [k for k in range(len(FEATURES)) if k not in i]
    np.testing.assert_array_equal(with_probes[others], label_features(s, a)[others])


def _samples_with_probes(n_groups: int, probes_per_group: list[int]):
    from qsaudit.training.samples import SampleSet

    parts = []
    for g in range(n_groups):
        k = probes_per_group[g]
        parts.append(SampleSet(
            np.full((3, 2, 4, 4), g, np.float16), np.array([0.9, 0.8, 0.7], np.float32),
            np.array(["liver"] * 3, dtype=object), np.zeros(3, np.int64),
            np.array([10, 20, 10], np.float32),
            [{"case_id": f"c{g}", "patient_id": f"p{g}", "structure": "liver",
              "source": "perfect", "severity": 0.0, "true_dsc": 1.0}],
            probe_inputs=np.full((k, 2, 4, 4), 10 + g, np.float16),
            probe_groups=np.zeros(k, np.int64)))
    return SampleSet.concat(parts, size=4)


def test_sample_sets_keep_probes_with_their_groups(tmp_path):
    from qsaudit.training.samples import SampleSet

    joined = _samples_with_probes(3, [2, 0, 1])
    assert joined.probe_groups.tolist() == [0, 0, 2]
    assert joined.probe_inputs[:, 0, 0, 0].tolist() == [10, 10, 12]
    assert joined.probe_names().tolist() == ["liver"] * 3
    joined.save(tmp_path / "s.npz")
    back = SampleSet.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(back.probe_inputs, joined.probe_inputs)
    np.testing.assert_array_equal(back.probe_groups, joined.probe_groups)
    assert back.subset(np.array([0, 1])).probe_groups.tolist() == [0, 0, 2]
    # a set saved without probes (an older cache) loads with none
    plain = SampleSet(joined.inputs, joined.targets, joined.names, joined.groups, joined.areas,
                      joined.group_table)
    plain.save(tmp_path / "old.npz")
    assert SampleSet.load(tmp_path / "old.npz").probe_inputs is None


def test_label_table_reads_each_groups_probe_scores():
    from qsaudit.inference.aggregate import FEATURES
    from qsaudit.training.calibration import label_table

    samples = _samples_with_probes(3, [2, 0, 1])
    table = label_table(samples, np.full(9, 0.8), np.array([0.3, 0.6, 0.9]))
    i = [FEATURES.index("probe_max"), FEATURES.index("probe_min")]
    assert table.features[0, i].tolist() == [0.6, 0.3]
    assert np.isnan(table.features[1, i]).all()  # no probe: both ends at the volume's edge
    assert table.features[2, i].tolist() == [0.9, 0.9]
    assert np.isnan(label_table(samples, np.full(9, 0.8)).features[:, i]).all()
    with pytest.raises(ValueError, match="probe predictions"):
        label_table(samples, np.full(9, 0.8), np.array([0.3]))


def test_label_table_keeps_each_labels_case_through_a_save(tmp_path):
    from qsaudit.training.calibration import LabelTable, label_table

    table = label_table(_samples_with_probes(3, [2, 0, 1]), np.full(9, 0.8))
    assert table.cases.tolist() == ["c0", "c1", "c2"]  # resolution copies are told apart so
    again = LabelTable.load(table.save(tmp_path / "t.npz"))
    assert again.cases.tolist() == ["c0", "c1", "c2"]
    np.testing.assert_array_equal(again.features, table.features)


def test_training_and_scan_build_the_same_probes(tiny_dataset):
    from qsaudit.datasets import list_cases
    from qsaudit.inference.prepare import PrepareSpec, prepare_case
    from qsaudit.training.cases import dataset_specs, load_case
    from qsaudit.training.samples import scorable_slices

    config = ModelConfig(input_size=32)
    spec = dataset_specs(tiny_dataset)[0]
    trusted = load_case(spec, min_label_voxels=1)
    case = next(c for c in list_cases(tiny_dataset) if c.case_id == spec.case_id)
    scanned = prepare_case(case, PrepareSpec(model_config=config, slices=4, end_probes=True))
    for work in scanned.labels:
        mask = trusted.masks[work.row["structure"]]
        valid = scorable_slices(mask)
        expected, _ = end_probes(trusted.ct, mask, (valid[0], valid[-1] + 1),
                                 model_config=config)
        assert work.n_probes == len(expected) and work.n_probes > 0
        assert work.crops.shape[0] == work.slice_indices.size + work.n_probes
        np.testing.assert_allclose(work.crops[work.slice_indices.size:], expected, atol=1e-6)
    off = prepare_case(case, PrepareSpec(model_config=config, slices=4))
    assert all(w.n_probes == 0 and w.crops.shape[0] == w.slice_indices.size
               for w in off.labels)  # not computed when no calibration reads them


def test_scan_scores_the_probes_and_feeds_them_to_the_calibration(tiny_dataset, tmp_path):
    import pandas as pd

    from qsaudit.datasets import list_cases
    from qsaudit.inference import ScanSettings, scan_dataset
    from qsaudit.model.checkpoint import load_checkpoint
    from qsaudit.progress import set_quiet
    from qsaudit.registry import canonical_name
    from tests.inference.conftest import write_calibrated_model

    set_quiet(True)
    # predicted Dice = the higher probe score
    write_calibrated_model(tmp_path / "cal.pt", {"probe_max": 1.0})
    settings = ScanSettings(model=tmp_path / "cal.pt", workers=0, device="cpu", batch_size=16,
                            slices=4)
    scan_dataset(tiny_dataset, tmp_path / "out", settings=settings)
    rows = pd.read_parquet(tmp_path / "out" / "results.parquet")
    slices = pd.read_parquet(tmp_path / "out" / "slices.parquet")

    predictor = load_checkpoint(tmp_path / "cal.pt", device="cpu")
    case = list_cases(tiny_dataset)[0]
    from qsaudit.datasets import read_image, read_mask

    volume = read_image(case)
    checked = 0
    for ref in case.labels:
        mask = read_mask(ref, volume, label_maps={})
        z = np.flatnonzero(mask.any(axis=(0, 1)))
        crops, _ = end_probes(volume.array, mask, (z[0], z[-1] + 1),
                              model_config=predictor.config)
        scores, _ = predictor.predict(crops, [canonical_name(ref.name)] * len(crops))
        row = rows[(rows.case_id == case.case_id) & (rows.label == ref.name)].iloc[0]
        assert row.predicted_dsc == pytest.approx(float(np.clip(scores, 0, 1).max()), abs=1e-4)
        assert row.n_slices == 4  # the probes are not scored slices
        assert ((slices.case_id == case.case_id) & (slices.label == ref.name)).sum() == 4
        checked += 1
    assert checked == 6


def test_probes_sit_about_three_mm_beyond_the_label_at_any_slice_spacing():
    from qsaudit.inference.probes import PROBE_MM, probe_offset

    assert probe_offset(None) == PROBE_OFFSET
    assert probe_offset((1.0, 1.0, 3.0)) == 1
    assert probe_offset((1.0, 1.0, 5.0)) == 1  # never less than the next slice
    assert probe_offset((1.0, 1.0, 1.0)) == 3
    assert probe_offset((1.0, 1.0, 0.6)) == round(PROBE_MM / 0.6)
    ct = np.random.default_rng(0).normal(0, 50, (16, 16, 20)).astype(np.float32)
    mask = np.zeros((16, 16, 20), bool)
    mask[4:10, 4:10, 8:12] = True
    crops, _sides = end_probes(ct, mask, (8, 12), model_config=CONFIG, spacing=(1.0, 1.0, 1.0))
    np.testing.assert_array_equal(
        crops[0], crop_slice(ct[:, :, 5], mask[:, :, 8], config=CONFIG, spacing=(1.0, 1.0, 1.0)))
    np.testing.assert_array_equal(
        crops[1], crop_slice(ct[:, :, 14], mask[:, :, 11], config=CONFIG,
                             spacing=(1.0, 1.0, 1.0)))
