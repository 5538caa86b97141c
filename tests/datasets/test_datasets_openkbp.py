"""The real OpenKBP NIfTI set from shared data (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qsaudit.datasets import ct_main_block, detect_layout, list_cases, read_case

OPENKBP = Path(__file__).resolve().parents[3] / "shared" / "data" / "openkbp"

pytestmark = pytest.mark.skipif(not OPENKBP.is_dir(), reason=f"{OPENKBP} not present")


def test_openkbp_lists_170_cases_with_its_structures():
    assert detect_layout(OPENKBP) == "per-structure"
    cases = list_cases(OPENKBP)
    assert len(cases) == 170
    assert all(case.image is not None for case in cases)
    names = [label.name for case in cases for label in case.labels]
    assert len(names) == 1310
    assert names.count("Brainstem") == 156 and names.count("PTV70") == 170
    assert cases[0].case_id == "train_pt_1" and cases[1].case_id == "train_pt_2"


def test_openkbp_case_reads_with_matching_shapes():
    case = next(c for c in list_cases(OPENKBP) if c.case_id == "train_pt_1")
    volume, masks = read_case(case)
    assert volume.array.shape == (128, 128, 128) and volume.array.dtype == np.float32
    assert 1.5 <= volume.spacing[2] <= 3.3 and 2.7 <= volume.spacing[0] <= 5.1
    assert volume.array.min() == -1024
    for name, mask in masks.items():
        assert isinstance(mask, np.ndarray), f"{name}: {mask}"
        assert mask.shape == volume.array.shape and mask.any()
    # train_pt_1: body on k 31..91; below it, islands around the cord (k 2..30)
    assert ct_main_block(volume.array) == (31, 92)
    cord_z = np.nonzero(masks["SpinalCord"].any(axis=(0, 1)))[0]
    assert cord_z.min() < 31
