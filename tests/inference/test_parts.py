"""Part probes: which slices they show, their summary feature, and their way through the
calibration table and the scan (alike in both)."""

import math

import numpy as np
import pytest

from qsaudit.inference.parts import (
    MAX_PARTS,
    PART_MIN_SHARE,
    label_pieces,
    part_probes,
    part_slices,
    part_summary,
)
from qsaudit.model.config import ModelConfig
from qsaudit.model.preprocess import crop_slice

CONFIG = ModelConfig(input_size=16, margin=2)


def _main_piece(depth: int = 20) -> np.ndarray:
    mask = np.zeros((20, 20, depth), bool)
    mask[4:12, 4:12, 2:12] = True  # 640 voxels over slices 2..11
    return mask


def test_a_label_in_one_piece_has_no_part_slice():
    assert part_slices(_main_piece()).size == 0
    assert part_slices(np.zeros((5, 5, 5), bool)).size == 0


def test_the_slice_where_each_other_piece_is_largest():
    mask = _main_piece()
    mask[15:18, 15:18, 14:16] = True  # a blob on slices of its own: 9 voxels on 14, 9 on 15
    mask[15:18, 15:18, 16] = True
    mask[16, 16, 17] = True  # most of it on 14..16: ties go to the lowest slice
    assert part_slices(mask).tolist() == [14]
    mask[14:18, 0:3, 5:7] = True  # a piece beside the main one, on its slices (12 + 12)
    assert part_slices(mask).tolist() == [5, 14]
    # a box cut out of the volume: indices are the volume's
    assert part_slices(mask[:, :, 2:], offset=2).tolist() == [5, 14]


def test_each_piece_spans_its_slices_largest_first():
    mask = _main_piece()
    mask[15:18, 15:18, 14:18] = True  # 36 voxels on slices 14..17
    mask[14:18, 0:3, 5:7] = True  # 24 voxels on slices 5..6
    assert label_pieces(mask) == [(14, 17, 14), (5, 6, 5)]
    assert label_pieces(mask[:, :, 3:], offset=3) == [(14, 17, 14), (5, 6, 5)]
    assert label_pieces(_main_piece()) == []


def test_an_extra_blob_is_placed_on_the_piece_whose_probe_scores_lowest():
    from qsaudit.inference.error_model import locate_error

    pieces = [(14, 17, 14), (5, 6, 5)]
    common = {"slice_indices": np.arange(2, 12), "scores": np.linspace(0.9, 0.2, 10),
              "z_range": (2, 18)}
    assert locate_error("extra_blob", pieces=pieces, part_slices=np.array([5, 14]),
                        part_scores=np.array([0.8, 0.1]), **common) == "14-17"
    assert locate_error("extra_blob", pieces=pieces, part_slices=np.array([5, 14]),
                        part_scores=np.array([0.1, 0.8]), **common) == "5-6"
    # a piece the network rates well is not the blob: the run of low slice scores instead
    assert locate_error("extra_blob", pieces=pieces, part_slices=np.array([5, 14]),
                        part_scores=np.array([0.9, 0.95]), **common) \
        == locate_error("boundary_noise", **common)
    # an unscored (NaN) probe is passed over
    assert locate_error("extra_blob", pieces=pieces, part_slices=np.array([5, 14]),
                        part_scores=np.array([np.nan, 0.3]), **common) == "14-17"
    # without part probes: the run of low slice scores, as for the other kinds
    assert locate_error("extra_blob", **common) == locate_error("boundary_noise", **common)
    assert locate_error("boundary_noise", pieces=pieces, part_slices=np.array([5, 14]),
                        part_scores=np.array([0.1, 0.8]), **common) \
        == locate_error("boundary_noise", **common)


def test_pieces_of_one_size_are_chosen_by_where_they_lie_not_by_memory_order():
    mask = np.zeros((20, 20, 20), bool)
    mask[2:8, 2:8, 2:8] = True  # the main piece
    mask[12:14, 12:14, 2:6] = True  # two pieces of 16 voxels, and a third one
    mask[12:14, 2:4, 10:14] = True
    mask[2:4, 12:14, 15:19] = True
    c_order = label_pieces(mask)
    assert label_pieces(np.asfortranarray(mask)) == c_order == [(15, 18, 15), (10, 13, 10)]
    assert label_pieces(mask[::-1].copy())[0] == (10, 13, 10)  # mirrored: another comes first


def test_tiny_pieces_are_ignored_and_at_most_two_are_probed():
    mask = _main_piece()
    total = int(mask.sum())
    mask[18, 18, 18] = True  # one stray voxel: far below PART_MIN_SHARE of the label
    assert 1 < PART_MIN_SHARE * total and part_slices(mask).size == 0
    mask[0:3, 15:18, 14] = True  # three pieces of 9, 12 and 15 voxels on slices 14, 16, 18
    mask[0:3, 15:19, 16] = True
    mask[15:18, 0:5, 18] = True
    assert MAX_PARTS == 2 and part_slices(mask).tolist() == [16, 18]


def test_part_probes_crop_the_whole_mask_on_each_slice():
    rng = np.random.default_rng(0)
    ct = rng.normal(0, 100, (20, 20, 20)).astype(np.float32)
    mask = _main_piece()
    mask[14:18, 0:3, 5:7] = True
    crops = part_probes(ct, mask, np.array([5]), model_config=CONFIG)
    assert crops.shape == (1, 2, 16, 16) and crops.dtype == np.float32
    np.testing.assert_array_equal(crops[0], crop_slice(ct[:, :, 5], mask[:, :, 5], config=CONFIG))
    assert part_probes(ct, mask, np.zeros(0, np.int64), model_config=CONFIG).shape == (0, 2, 16, 16)


def test_part_summary():
    assert part_summary(np.array([0.7, -0.2])) == 0.0  # clipped to [0, 1]
    assert part_summary(np.array([0.4, 0.9])) == 0.4
    assert part_summary(np.zeros(0)) == 1.0  # one piece: nothing speaks against the label
    assert math.isnan(part_summary(None))  # not computed
    assert math.isnan(part_summary(np.array([np.nan])))


def test_label_features_carry_part_min():
    from qsaudit.inference.aggregate import FEATURES, PART_FEATURES, label_features

    s, a = np.array([0.9, 0.8]), np.array([10.0, 12.0])
    i = FEATURES.index("part_min")
    assert PART_FEATURES == ("part_min",)
    assert label_features(s, a, parts=np.array([0.6, 0.2]))[i] == 0.2
    assert label_features(s, a, parts=np.zeros(0))[i] == 1.0
    assert math.isnan(label_features(s, a)[i])


def test_label_table_tells_end_probes_from_part_probes():
    from qsaudit.inference.aggregate import FEATURES
    from qsaudit.training.calibration import label_table
    from qsaudit.training.samples import SampleSet

    parts = []
    for g, (ends, pieces) in enumerate([(2, 1), (1, 0), (0, 2)]):
        k = ends + pieces
        parts.append(SampleSet(
            np.zeros((2, 2, 4, 4), np.float16), np.array([0.9, 0.8], np.float32),
            np.array(["liver"] * 2, dtype=object), np.zeros(2, np.int64),
            np.array([10, 20], np.float32),
            [{"case_id": f"c{g}", "patient_id": f"p{g}", "structure": "liver",
              "source": "perfect", "severity": 0.0, "true_dsc": 1.0, "end_probes": ends}],
            probe_inputs=np.zeros((k, 2, 4, 4), np.float16), probe_groups=np.zeros(k, np.int64)))
    samples = SampleSet.concat(parts, size=4)
    probe_pred = np.array([0.9, 0.7, 0.1, 0.8, 0.5, 0.3])  # g0: ends 0.9, 0.7, part 0.1; ...
    table = label_table(samples, np.full(6, 0.8), probe_pred)
    ends = [FEATURES.index("probe_max"), FEATURES.index("probe_min")]
    part = FEATURES.index("part_min")
    assert table.features[0, ends].tolist() == [0.9, 0.7] and table.features[0, part] == 0.1
    assert table.features[1, ends].tolist() == [0.8, 0.8] and table.features[1, part] == 1.0
    assert np.isnan(table.features[2, ends]).all() and table.features[2, part] == 0.3
    # a group saved before part probes existed: every probe is an end probe, part_min unknown
    for g in samples.group_table:
        del g["end_probes"]
    old = label_table(samples, np.full(6, 0.8), probe_pred)
    assert old.features[0, ends].tolist() == [0.9, 0.1] and np.isnan(old.features[:, part]).all()


def test_scan_scores_the_part_probes_and_feeds_them_to_the_calibration(tmp_path):
    import pandas as pd

    from qsaudit.datasets import list_cases, read_image, read_mask
    from qsaudit.inference import ScanSettings, scan_dataset
    from qsaudit.model.checkpoint import load_checkpoint
    from qsaudit.progress import set_quiet
    from qsaudit.registry import canonical_name
    from tests.inference.conftest import write_calibrated_model, write_dataset

    set_quiet(True)
    data = write_dataset(tmp_path / "ds", cases=1, plants={"c000": "components"})  # liver in 2
    model = write_calibrated_model(tmp_path / "cal.pt", {"part_min": 1.0})
    settings = ScanSettings(model=model, workers=0, device="cpu", batch_size=16, slices=4)
    scan_dataset(data, tmp_path / "out", settings=settings)
    rows = pd.read_parquet(tmp_path / "out" / "results.parquet")

    predictor = load_checkpoint(model, device="cpu")
    case = list_cases(data)[0]
    volume = read_image(case)
    pieces = 0
    for ref in case.labels:
        mask = read_mask(ref, volume, label_maps={})
        z = part_slices(mask)
        row = rows[rows.label == ref.name].iloc[0]
        assert row.n_slices == min(4, int(mask.any(axis=(0, 1)).sum()))  # not scored slices
        if z.size == 0:
            assert row.predicted_dsc == 1.0
            continue
        crops = part_probes(volume.array, mask, z, model_config=predictor.config)
        scores, _ = predictor.predict(crops, [canonical_name(ref.name)] * len(crops))
        assert row.predicted_dsc == pytest.approx(float(np.clip(scores, 0, 1).min()), abs=1e-4)
        pieces += 1
    assert pieces == 1  # the planted liver


def test_training_and_scan_build_the_same_part_probes(tmp_path):
    from qsaudit.datasets import list_cases
    from qsaudit.inference.prepare import PrepareSpec, prepare_case
    from qsaudit.training.cases import dataset_specs, load_case
    from tests.inference.conftest import write_dataset

    data = write_dataset(tmp_path / "ds", cases=1, plants={"c000": "components"})
    config = ModelConfig(input_size=32)
    spec = dataset_specs(data)[0]
    trusted = load_case(spec, min_label_voxels=1)
    case = list_cases(data)[0]
    scanned = prepare_case(case, PrepareSpec(model_config=config, slices=4, part_probes=True))
    for work in scanned.labels:
        mask = trusted.masks[work.row["structure"]]
        expected = part_probes(trusted.ct, mask, part_slices(mask), model_config=config)
        assert work.n_parts == len(expected)
        np.testing.assert_allclose(work.crops[work.slice_indices.size + work.n_probes:],
                                   expected, atol=1e-6)
    assert sum(w.n_parts for w in scanned.labels) == 1
    liver = next(w for w in scanned.labels if w.n_parts)
    mask = trusted.masks[liver.row["structure"]]
    assert liver.part_pieces == label_pieces(mask) and len(liver.part_pieces) == 1
    assert liver.part_slices.tolist() == [liver.part_pieces[0][2]]
    off = prepare_case(case, PrepareSpec(model_config=config, slices=4))
    assert all(w.n_parts is None for w in off.labels)  # not computed when nothing reads them


def test_the_calibration_builder_makes_the_scans_end_and_part_probes(tmp_path):
    from qsaudit.datasets import list_cases
    from qsaudit.inference.prepare import PrepareSpec, prepare_case
    from qsaudit.training.build import Unit, build_unit
    from qsaudit.training.cases import dataset_specs
    from qsaudit.training.config import SampleConfig
    from tests.inference.conftest import write_dataset

    data = write_dataset(tmp_path / "ds", cases=1, plants={"c000": "components"})
    config = ModelConfig(input_size=32)
    scanned = prepare_case(list_cases(data)[0], PrepareSpec(model_config=config, slices=10,
                                                            end_probes=True, part_probes=True))
    by_name = {w.row["structure"]: w for w in scanned.labels}
    built = build_unit(Unit(specs=tuple(dataset_specs(data)), seed=(0,), validation=True),
                       config, SampleConfig(degraded_per_label=0, wrong_per_label=0,
                                            snapshot_steps=(), eval_slices=10,
                                            min_label_voxels=1))
    checked = 0
    for g, group in enumerate(built.group_table):
        if group["source"] != "perfect":
            continue
        work = by_name[group["structure"]]
        probes = built.probe_inputs[built.probe_groups == g].astype(np.float32)
        n = work.slice_indices.size
        assert group["end_probes"] == work.n_probes
        assert len(probes) == work.n_probes + work.n_parts
        np.testing.assert_allclose(probes, work.crops[n:], atol=2e-3)  # float16 in the set
        checked += 1
    assert checked == 6 and sum(w.n_parts for w in scanned.labels) == 1


def test_a_calibration_that_does_not_read_part_min_scans_without_part_probes(tmp_path,
                                                                               monkeypatch):
    import pandas as pd

    from qsaudit.inference import ScanSettings, parts, scan_dataset
    from qsaudit.inference.aggregate import FEATURES
    from qsaudit.progress import set_quiet
    from tests.inference.conftest import write_calibrated_model, write_dataset

    set_quiet(True)
    data = write_dataset(tmp_path / "ds", cases=1, plants={"c000": "components"})
    write_calibrated_model(tmp_path / "old.pt", {"probe_max": 1.0},
                           names=tuple(n for n in FEATURES if n != "part_min"))

    def refuse(*_args, **_kwargs):
        raise AssertionError("part probes made for a calibration that does not read them")

    monkeypatch.setattr(parts, "part_probes", refuse)
    monkeypatch.setattr(parts, "label_pieces", refuse)
    settings = ScanSettings(model=tmp_path / "old.pt", workers=0, device="cpu", batch_size=16,
                            slices=4)
    scan_dataset(data, tmp_path / "out", settings=settings)
    rows = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert (rows.status == "ok").all() and len(rows) == 6
