"""The label calibration is fitted on training-side shape features and applied to scan-side
ones: both sides must compute the same numbers for the same mask."""

import numpy as np

from qsaudit.checks.shape import shape_features
from qsaudit.datasets import list_cases
from qsaudit.inference.prepare import PrepareSpec, prepare_case
from qsaudit.model.config import ModelConfig
from qsaudit.registry import lookup
from qsaudit.training.cases import dataset_specs, load_case


def test_training_and_scan_compute_the_same_shape_features(tiny_dataset):
    spec = dataset_specs(tiny_dataset)[0]
    trusted = load_case(spec, min_label_voxels=1)  # HU clipped, cropped to the main CT block
    case = next(c for c in list_cases(tiny_dataset) if c.case_id == spec.case_id)
    scanned = prepare_case(case, PrepareSpec(model_config=ModelConfig(input_size=32),
                                             slices=4, shape_features=True))
    compared = 0
    for work in scanned.labels:
        structure = work.row["structure"]
        assert work.row["status"] == "ok" and work.shape is not None
        train_side = shape_features(trusted.masks[structure], trusted.ct,
                                    structure=lookup(structure), spacing=trusted.spacing)
        np.testing.assert_allclose(work.shape, train_side, rtol=1e-6, atol=1e-9)
        compared += 1
    assert compared == 6
    off = prepare_case(case, PrepareSpec(model_config=ModelConfig(input_size=32), slices=4,
                                         shape_features=False))
    assert all(w.shape is None for w in off.labels)  # not computed when no calibration reads them
