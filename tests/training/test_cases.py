"""Cleaning trusted cases: OpenKBP-style islands are cut away; patient-level split."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from qsaudit.training.cases import (
    CaseSpec,
    load_case,
    phantom_specs,
    prepare_case,
    split_patients,
)
from tests.training.conftest import make_volume


def _islands_volume():
    """Body block on z 4..19; above it, CT only in a 2-voxel margin around the labels."""
    ct = np.full((40, 40, 30), -1024.0, np.float32)
    ct[2:38, 2:38, 4:20] = 20.0
    cord = np.zeros_like(ct, bool)
    cord[13:17, 13:17, 2:24] = True
    margin = np.zeros_like(ct, bool)
    margin[11:19, 11:19, 20:24] = True
    ct[margin] = 30.0
    ct[23:31, 23:31, 24:30] = 30.0  # the margin around the stray label
    stray = np.zeros_like(ct, bool)
    stray[25:29, 25:29, 24:29] = True  # a label that lives only on the islands
    return ct, {"spinal cord": cord, "stray": stray}


def test_islands_are_cropped_and_island_labels_dropped():
    ct, masks = _islands_volume()
    case = prepare_case("pt", ct, masks, (3.0, 3.0, 2.5))
    assert case.z_range == (4, 20)
    assert case.ct.shape == (40, 40, 16)
    assert set(case.masks) == {"spinal cord"} and case.dropped == ["stray"]
    assert case.masks["spinal cord"].shape == case.ct.shape
    # no slice left where CT exists only around the contour
    body_area = (case.ct > -900).sum((0, 1))
    assert body_area.min() >= 0.5 * body_area.max()


def test_hu_is_clipped():
    ct, masks = make_volume(0)
    ct[0, 0, :] = 30000.0
    case = prepare_case("c", ct, masks, (1.0, 1.0, 1.0))
    assert case.ct.max() <= 3071.0 and case.ct.min() >= -1024.0


def test_split_is_seeded_and_patient_level():
    patients = [f"p{i}" for i in range(20)]
    a = split_patients(patients, fraction=0.2, seed=3)
    b = split_patients(patients, fraction=0.2, seed=3)
    c = split_patients(patients, fraction=0.2, seed=4)
    assert a == b and len(a) == 4 and a != c
    assert split_patients(["x"], fraction=0.5, seed=0) == set()
    assert "p1" in split_patients(patients, fraction=0.0, seed=0, forced={"p1", "zz"})


def test_dataset_case_loads_through_qsaudit_datasets(tmp_path):
    from qsaudit.datasets import list_cases
    from tests.training.conftest import write_dataset

    write_dataset(tmp_path / "ds", [5])
    case = list_cases(tmp_path / "ds")[0]
    loaded = load_case(CaseSpec("dataset", case.case_id, case.case_id, case=case))
    assert loaded.case_id == "case_05"
    assert {"liver", "spleen"} <= set(loaded.masks)
    assert loaded.spacing == (2.0, 2.0, 3.0)


def test_phantom_seeds_differ_between_streams():
    train = phantom_specs(3, seed=0)
    bench = phantom_specs(3, seed=0, stream=1)
    assert {s.seed for s in train}.isdisjoint({s.seed for s in bench})
    assert len({s.case_id for s in train}) == 3


def test_resolution_copies_are_seeded_finer_or_coarser_copies_of_real_cases(tmp_path,
                                                                           tiny_model_config):
    from qsaudit.datasets import list_cases
    from qsaudit.training.build import Unit, build_unit, unit_key
    from qsaudit.training.cases import is_resolution_copy, resolution_copies
    from qsaudit.training.config import SampleConfig
    from qsaudit.training.resample import PIXEL_MM
    from tests.training.conftest import write_dataset

    write_dataset(tmp_path / "ds", [5, 6])
    real = [CaseSpec("dataset", c.case_id, f"patient_{c.case_id}", case=c)
            for c in list_cases(tmp_path / "ds")]
    specs = real + phantom_specs(1, seed=0)
    copies = resolution_copies(specs, 2, seed=0)
    assert len(copies) == 4  # phantoms are drawn at every pixel size already: no copies
    assert copies == resolution_copies(specs, 2, seed=0)  # seeded
    assert {c.patient_id for c in copies} == {s.patient_id for s in real}  # one patient
    assert len({c.case_id for c in copies} | {s.case_id for s in real}) == 6
    assert all(PIXEL_MM[0] <= c.pixel_mm <= PIXEL_MM[1] for c in copies)
    # tables tell copies from originals by their case ids (the interval bands leave copies out)
    assert all(is_resolution_copy(c.case_id) for c in copies)
    assert not any(is_resolution_copy(s.case_id) for s in specs)
    assert not is_resolution_copy("patient@site_3")  # an "@" of a dataset's own case id
    assert resolution_copies(specs, 2, seed=1) != copies

    # built as validation (scan-like) samples, the copy is the case at its pixel size
    config = tiny_model_config
    samples = SampleConfig(snapshot_steps=(), degraded_per_label=1, wrong_per_label=0)
    copy = replace(copies[0], pixel_mm=1.0)
    original, resampled = (build_unit(Unit((s,), (0,), True), config, samples)
                           for s in (real[0], copy))
    assert {g["case_id"] for g in resampled.group_table} == {copy.case_id}
    # twice the pixels per axis (2 mm -> 1 mm): four times the slice area
    ratio = resampled.areas.mean() / original.areas.mean()
    assert 3.0 < ratio < 5.0
    assert unit_key(Unit((copy,), (0,), True), config, samples) != unit_key(
        Unit((real[0],), (0,), True), config, samples)


def test_cached_units_are_not_reused_across_shape_readings(monkeypatch, tiny_model_config):
    """A unit cached before the shape descriptors' reading changed holds old descriptors: a
    new reading must key (and so build) it afresh."""
    from qsaudit.checks import shape
    from qsaudit.training.build import Unit, unit_key
    from qsaudit.training.config import SampleConfig

    unit = Unit(tuple(phantom_specs(1, seed=0)), (0,), False)
    before = unit_key(unit, tiny_model_config, SampleConfig())
    monkeypatch.setattr(shape, "SHAPE_READING", shape.SHAPE_READING + 1)
    assert unit_key(unit, tiny_model_config, SampleConfig()) != before


def test_untouched_patients_are_validation_patients_the_calibration_did_not_use():
    from qsaudit.training.cases import untouched_patients

    meta = {"validation_patients": ["a", "b", "c"], "calibration_patients": ["b"],
            "excluded_cases": ["x", "c"]}
    assert untouched_patients(meta) == {"a", "c"}
    assert untouched_patients(meta, excluded=True) == {"a", "c", "x"}
    assert untouched_patients({}) == set()
