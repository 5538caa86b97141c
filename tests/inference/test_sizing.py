"""Size probes: which slice they show, how far they shrink and grow its mask, their summary
features, and their way through the calibration table and the scan (alike in both)."""

import math

import numpy as np
import pytest

from qsaudit.inference.sizing import (
    GROW,
    SHRINK,
    SIZE_PROBE_SHARE,
    probe_radius,
    probed_slice,
    size_probes,
    size_summary,
)
from qsaudit.model.config import ModelConfig
from qsaudit.model.preprocess import crop_slice

CONFIG = ModelConfig(input_size=32, margin=10)


def _disk_volume():
    rng = np.random.default_rng(1)
    ct = rng.normal(40, 30, (64, 64, 6)).astype(np.float32)
    yy, xx = np.mgrid[:64, :64]
    mask = np.zeros((64, 64, 6), bool)
    for z, radius in enumerate((4, 8, 12, 12, 8, 4)):
        mask[:, :, z] = (yy - 32) ** 2 + (xx - 30) ** 2 <= radius ** 2
    return ct, mask


def test_the_probed_slice_is_the_largest_first_of_equals():
    assert probed_slice(np.array([3, 9, 9, 2])) == 1
    with pytest.raises(ValueError):
        probed_slice(np.zeros(0))


def test_the_radius_is_a_share_of_the_crop_side():
    _ct, mask = _disk_volume()
    side = 25 + 2 * 10  # the disk's 25 px plus two margins
    assert probe_radius(mask[:, :, 2], model_config=CONFIG) == round(SIZE_PROBE_SHARE * side)
    # a model with its margin in millimetres: the same anatomy gives the same share of the view
    mm = ModelConfig(input_size=32, margin_mm=70.0)
    assert probe_radius(mask[:, :, 2], model_config=mm, spacing=(0.5, 0.5, 1.0)) \
        == round(SIZE_PROBE_SHARE * (25 + 2 * 140))
    assert probe_radius(np.zeros((8, 8), bool), model_config=CONFIG) == 1


def test_size_probes_shrink_and_grow_the_mask_in_its_own_view():
    ct, mask = _disk_volume()
    crops = size_probes(ct, mask, 2, model_config=CONFIG)
    own = crop_slice(ct[:, :, 2], mask[:, :, 2], config=CONFIG)
    assert crops.shape == (2, 2, 32, 32) and crops.dtype == np.float32
    np.testing.assert_array_equal(crops[SHRINK, 0], own[0])  # the same view of the CT
    np.testing.assert_array_equal(crops[GROW, 0], own[0])
    inside = [float((c[1] > 0).sum()) for c in (crops[SHRINK], own, crops[GROW])]
    assert inside[0] < inside[1] < inside[2]
    # a mask thinner than the radius is shown empty when shrunk, in the view of the mask
    thin = np.zeros_like(mask)
    thin[20:40, 30, 0] = True
    crops = size_probes(ct, thin, 0, model_config=CONFIG)
    assert (crops[SHRINK, 1] == -1).all()
    np.testing.assert_array_equal(crops[SHRINK, 0],
                                  crop_slice(ct[:, :, 0], thin[:, :, 0], config=CONFIG)[0])


def test_size_summary_is_each_probe_minus_the_probed_slice():
    scores, areas = np.array([0.5, 0.8, 0.6]), np.array([10, 30, 20])
    assert size_summary(np.array([0.9, 0.3]), scores, areas) == pytest.approx((0.1, -0.5))
    assert size_summary(np.array([1.4, -0.2]), scores, areas) == pytest.approx((0.2, -0.8))
    for unknown in (None, np.array([0.5]), np.array([0.5, np.nan])):
        assert all(math.isnan(v) for v in size_summary(unknown, scores, areas))


def test_label_features_carry_the_size_gains():
    from qsaudit.inference.aggregate import FEATURES, SIZE_FEATURES, label_features

    s, a = np.array([0.9, 0.7]), np.array([10.0, 12.0])
    i = [FEATURES.index(n) for n in SIZE_FEATURES]
    assert SIZE_FEATURES == ("shrink_gain", "grow_gain")
    assert label_features(s, a, sizes=np.array([0.8, 0.2]))[i] == pytest.approx([0.1, -0.5])
    assert np.isnan(label_features(s, a)[i]).all()


def test_label_table_tells_end_part_and_size_probes_apart():
    from qsaudit.inference.aggregate import FEATURES
    from qsaudit.training.calibration import label_table
    from qsaudit.training.samples import SampleSet

    group = {"case_id": "c0", "patient_id": "p0", "structure": "liver", "source": "dilation",
             "severity": 0.5, "true_dsc": 0.8, "end_probes": 1, "part_probes": 1}
    samples = SampleSet(np.zeros((2, 2, 4, 4), np.float16), np.array([0.9, 0.8], np.float32),
                        np.array(["liver"] * 2, dtype=object), np.zeros(2, np.int64),
                        np.array([10, 20], np.float32), [group],
                        probe_inputs=np.zeros((4, 2, 4, 4), np.float16),
                        probe_groups=np.zeros(4, np.int64))
    # slice predictions 0.6 and 0.5 (the larger slice); probes: end 0.9, part 0.2, sizes 0.7, 0.1
    table = label_table(samples, np.array([0.6, 0.5]), np.array([0.9, 0.2, 0.7, 0.1]))
    row = dict(zip(FEATURES, table.features[0], strict=True))
    assert (row["probe_max"], row["probe_min"], row["part_min"]) == (0.9, 0.9, 0.2)
    assert (row["shrink_gain"], row["grow_gain"]) == pytest.approx((0.2, -0.4))


def test_scan_scores_the_size_probes_and_feeds_them_to_the_calibration(tmp_path):
    import pandas as pd

    from qsaudit.datasets import list_cases, read_image, read_mask
    from qsaudit.inference import ScanSettings, scan_dataset
    from qsaudit.inference.sampling import choose_slices
    from qsaudit.model.checkpoint import load_checkpoint
    from qsaudit.progress import set_quiet
    from qsaudit.registry import canonical_name
    from tests.inference.conftest import write_dataset
    from tests.inference.test_parts import _calibrated_by

    set_quiet(True)
    data = write_dataset(tmp_path / "ds", cases=1)
    model = _calibrated_by(tmp_path, "grow_gain", intercept=0.5)
    settings = ScanSettings(model=model, workers=0, device="cpu", batch_size=16, slices=4)
    scan_dataset(data, tmp_path / "out", settings=settings)
    rows = pd.read_parquet(tmp_path / "out" / "results.parquet")

    predictor = load_checkpoint(model, device="cpu")
    case = list_cases(data)[0]
    volume = read_image(case)
    for ref in case.labels:
        mask = read_mask(ref, volume, label_maps={})
        index = choose_slices(mask, 4, seed=0, case_id=case.case_id, label=ref.name)
        z = int(index[probed_slice(mask[:, :, index].sum(axis=(0, 1)))])
        own = crop_slice(volume.array[:, :, z], mask[:, :, z], config=predictor.config,
                         spacing=volume.spacing)
        crops = np.concatenate([own[None], size_probes(volume.array, mask, z,
                                                       model_config=predictor.config,
                                                       spacing=volume.spacing)])
        scores, _ = predictor.predict(crops, [canonical_name(ref.name)] * 3)
        scores = np.clip(scores, 0, 1)
        row = rows[rows.label == ref.name].iloc[0]
        # predicted = 0.5 + grow_gain, clipped to [0, 1] by the calibration
        expected = 0.5 + float(scores[2] - scores[0])
        assert 0 < expected < 1 and row.predicted_dsc == pytest.approx(expected, abs=1e-4)
        assert row.n_slices == min(4, int(mask.any(axis=(0, 1)).sum()))  # not scored slices


def test_training_and_scan_build_the_same_size_probes(tmp_path):
    import torch

    from qsaudit.datasets import list_cases
    from qsaudit.inference.prepare import PrepareSpec, prepare_case
    from qsaudit.training.build import Unit, build_unit
    from qsaudit.training.cases import dataset_specs
    from qsaudit.training.config import SampleConfig
    from tests.inference.conftest import write_dataset

    data = write_dataset(tmp_path / "ds", cases=1)
    config = ModelConfig(input_size=32)
    case = list_cases(data)[0]
    scanned = prepare_case(case, PrepareSpec(model_config=config, slices=10, size_probes=True))
    by_name = {w.row["structure"]: w for w in scanned.labels}
    torch.manual_seed(0)
    built = build_unit(Unit(specs=tuple(dataset_specs(data)), seed=(0,), validation=True),
                       config, SampleConfig(degraded_per_label=0, wrong_per_label=0,
                                            snapshot_steps=(), eval_slices=10,
                                            min_label_voxels=1))
    checked = 0
    for g, group in enumerate(built.group_table):
        if group["source"] != "perfect":
            continue
        work = by_name[group["structure"]]
        mine = built.probe_inputs[built.probe_groups == g][-2:].astype(np.float32)
        assert work.n_sizes == 2
        np.testing.assert_allclose(work.crops[-2:], mine, atol=2e-3)  # float16 in the set
        checked += 1
    assert checked == 6
    off = prepare_case(case, PrepareSpec(model_config=config, slices=10))
    assert all(w.n_sizes is None for w in off.labels)  # not computed when nothing reads them
