"""Field-of-view copies: real cases and trunk phantoms cut in z, so that the label calibration
meets labels cut by the scan's edge at every quality."""

import numpy as np


def test_window_copies_are_seeded_cuts_of_the_same_patient(tmp_path):
    from qsaudit.datasets import list_cases
    from qsaudit.training.cases import (
        WINDOW_MM,
        CaseSpec,
        is_resolution_copy,
        phantom_specs,
        window_copies,
    )
    from tests.training.conftest import write_dataset

    write_dataset(tmp_path / "ds", [5, 6])
    real = [CaseSpec("dataset", c.case_id, f"patient_{c.case_id}", case=c)
            for c in list_cases(tmp_path / "ds")]
    trunk = phantom_specs(1, seed=0, region="trunk")
    copies = window_copies(real + trunk, 3, seed=0)
    assert len(copies) == 6  # real cases only, by default
    assert copies == window_copies(real + trunk, 3, seed=0)
    assert copies != window_copies(real + trunk, 3, seed=1)
    assert {c.patient_id for c in copies} == {s.patient_id for s in real}
    assert len({c.case_id for c in copies}) == 6
    assert all(WINDOW_MM[0] - 0.5 <= c.z_window[0] <= WINDOW_MM[1] + 0.5
               and 0 <= c.z_window[1] <= 1 for c in copies)
    assert not any(is_resolution_copy(c.case_id) for c in copies)
    assert window_copies(copies, 2, seed=0) == []  # a window is not cut again
    cut_phantoms = window_copies(trunk, 1, seed=0, kinds=("phantom",))
    assert len(cut_phantoms) == 1 and cut_phantoms[0].seed == trunk[0].seed


def test_a_window_copy_is_the_case_cut_in_z_with_its_labels_truth_on_the_window(tmp_path):
    from qsaudit.training.cases import prepare_case, window_case
    from tests.training.conftest import make_volume

    ct, masks = make_volume(1)
    case = prepare_case("c", ct, masks, (2.0, 2.0, 3.0))
    assert case.ct.shape[2] == 24
    cut = window_case(case, 30.0, 0.5)  # 10 slices of 3 mm, halfway up the 14 left over
    assert cut.ct.shape == (40, 40, 10)
    np.testing.assert_array_equal(cut.ct, case.ct[:, :, 7:17])
    assert cut.z_range == (case.z_range[0] + 7, case.z_range[0] + 17)
    for name, mask in cut.masks.items():
        np.testing.assert_array_equal(mask, case.masks[name][:, :, 7:17])
    # a label with too little of itself in the window is dropped, not kept as a sliver
    low = window_case(case, 6.0, 0.0)  # slices 0-1: below every organ
    assert low.masks == {} and set(low.dropped) == set(case.masks)
    assert window_case(case, 1000.0, 0.3).ct.shape[2] == 24  # at most the whole case


def test_training_builds_window_copies_with_cut_labels(tmp_path, tiny_model_config):
    from dataclasses import replace

    from qsaudit.datasets import list_cases
    from qsaudit.training.build import Unit, build_unit, unit_key
    from qsaudit.training.cases import CaseSpec
    from qsaudit.training.config import SampleConfig
    from tests.training.conftest import write_dataset

    write_dataset(tmp_path / "ds", [5])
    spec = CaseSpec("dataset", "case_05", "p", case=list_cases(tmp_path / "ds")[0])
    cut = replace(spec, case_id="case_05#z30mm0.50", z_window=(30.0, 0.5))
    config = SampleConfig(snapshot_steps=(), degraded_per_label=1, wrong_per_label=0)
    whole = build_unit(Unit((spec,), (0,), True), tiny_model_config, config)
    part = build_unit(Unit((cut,), (0,), True), tiny_model_config, config)
    ends = {g["structure"]: g["volume_ends"] for g in part.group_table
            if g["source"] == "perfect"}
    assert ends and max(ends.values()) >= 1  # the window cuts some organ
    assert all(g["volume_ends"] == 0 for g in whole.group_table if g["source"] == "perfect")
    assert all(g["mask_slices"] <= 10 for g in part.group_table)
    assert unit_key(Unit((cut,), (0,), True), tiny_model_config, config) != \
        unit_key(Unit((spec,), (0,), True), tiny_model_config, config)
