"""Labels cut by the scan's field of view: the ``volume_ends`` feature, from training samples
through the calibration table to the scan (the copies that teach it:
tests/training/test_window_copies.py)."""

import numpy as np
import pytest

from qsaudit.inference.probes import volume_ends


def test_volume_ends_counts_the_label_ends_on_the_volumes_edge_slices():
    assert volume_ends((3, 7), 10) == 0
    assert volume_ends((0, 7), 10) == 1
    assert volume_ends((3, 10), 10) == 1
    assert volume_ends((0, 10), 10) == 2
    assert volume_ends((0, 1), 1) == 2  # one slice of a one-slice volume


def test_label_features_carry_volume_ends_and_leave_the_rest_alone():
    from qsaudit.inference.aggregate import FEATURES, FIELD_FEATURES, label_features

    s, a = np.array([0.9, 0.8, 0.85]), np.array([10.0, 12.0, 9.0])
    i = FEATURES.index("volume_ends")
    assert FIELD_FEATURES == ("volume_ends",)
    cut = label_features(s, a, volume_ends=2)
    assert cut[i] == 2.0
    assert np.isnan(label_features(s, a)[i])  # unknown
    others = [k for k in range(len(FEATURES)) if k != i]
    np.testing.assert_array_equal(cut[others], label_features(s, a, volume_ends=0)[others])


def test_the_label_table_reads_volume_ends_and_older_tables_load_without_it(tmp_path):
    from qsaudit.inference.aggregate import FEATURES
    from qsaudit.training.calibration import LabelTable, label_table
    from qsaudit.training.samples import SampleSet

    parts = []
    for g, ends in enumerate((0, 2, None)):
        group = {"case_id": f"c{g}", "patient_id": f"p{g}", "structure": "liver",
                 "source": "perfect", "severity": 0.0, "true_dsc": 1.0}
        if ends is not None:
            group["volume_ends"] = ends
        parts.append(SampleSet(np.zeros((2, 2, 4, 4), np.float16),
                               np.array([0.9, 0.8], np.float32),
                               np.array(["liver"] * 2, dtype=object), np.zeros(2, np.int64),
                               np.array([10, 20], np.float32), [group]))
    table = label_table(SampleSet.concat(parts, size=4), np.full(6, 0.8))
    i = FEATURES.index("volume_ends")
    assert table.features[:2, i].tolist() == [0.0, 2.0]
    assert np.isnan(table.features[2, i])

    # a table saved before the feature existed (its names stop at the probes) loads, unknown
    old = tmp_path / "old.npz"
    keep = [k for k in range(len(FEATURES)) if k != i]
    np.savez(old, features=table.features[:, keep], names=np.array(FEATURES)[keep],
             true=table.true, plain=table.plain, patients=table.patients.astype(str),
             sources=table.sources.astype(str))
    back = LabelTable.load(old)
    assert back.features.shape == table.features.shape
    assert np.isnan(back.features[:, i]).all()
    np.testing.assert_array_equal(back.features[:, keep], table.features[:, keep])
    # features this qsaudit does not know, or in another order, are refused
    np.savez(old, features=table.features[:, ::-1], names=np.array(FEATURES)[::-1],
             true=table.true, plain=table.plain, patients=table.patients.astype(str),
             sources=table.sources.astype(str))
    with pytest.raises(ValueError, match="not this qsaudit's"):
        LabelTable.load(old)


def _write_cut_case(root):
    """One case of 12 slices: a liver cut by the lowest slice, a spleen inside, an aorta
    through the whole volume; returns the expected ``volume_ends`` per label file stem."""
    import nibabel as nib

    rng = np.random.default_rng(0)
    ct = rng.normal(40, 10, (40, 40, 12)).astype(np.float32)
    labels = {"liver": (0, 6), "spleen": (3, 9), "aorta": (0, 12)}
    folder = root / "case_00"
    (folder / "segmentations").mkdir(parents=True)
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(ct.astype(np.int16), affine), folder / "ct.nii.gz")
    for k, (name, (z0, z1)) in enumerate(labels.items()):
        mask = np.zeros(ct.shape, np.uint8)
        mask[5 + 10 * k:14 + 10 * k, 10:22, z0:z1] = 1
        nib.save(nib.Nifti1Image(mask, affine), folder / "segmentations" / f"{name}.nii.gz")
    return {name: volume_ends(z, 12) for name, z in labels.items()}


@pytest.mark.parametrize("names", ["all", "without probes"])
def test_the_scan_feeds_volume_ends_to_the_calibration(tmp_path, names):
    import pandas as pd

    from qsaudit.inference import ScanSettings, scan_dataset
    from qsaudit.inference.aggregate import FEATURES
    from qsaudit.progress import set_quiet
    from tests.inference.conftest import write_calibrated_model

    set_quiet(True)
    expected = _write_cut_case(tmp_path / "data")
    assert sorted(expected.values()) == [0, 1, 2]
    # a calibration that reads no probe feature makes the scan skip the probes: the label's
    # slice range must still reach the calibration
    used = FEATURES if names == "all" else ("mean", "volume_ends")
    # predicted Dice = half the ends on the edge
    write_calibrated_model(tmp_path / "cal.pt", {"volume_ends": 0.5}, names=used)
    scan_dataset(tmp_path / "data", tmp_path / "out",
                 settings=ScanSettings(model=tmp_path / "cal.pt", workers=0, device="cpu",
                                       batch_size=16, slices=4))
    rows = pd.read_csv(tmp_path / "out" / "results.csv").set_index("label")
    for name, ends in expected.items():
        assert rows.loc[name, "predicted_dsc"] == pytest.approx(0.5 * ends, abs=1e-6), name
