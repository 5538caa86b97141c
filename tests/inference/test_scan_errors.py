"""A scan with a model whose calibration carries an error classifier fills likely_error,
likely_error_p and error_slices; a model without one leaves them empty."""

import numpy as np
import pandas as pd

from qsaudit.inference import ScanSettings, scan_dataset
from qsaudit.inference.error_kinds import ERROR_KINDS, parse_slices
from qsaudit.inference.error_model import CLASSIFIER_FEATURES, ErrorClassifier
from qsaudit.progress import set_quiet
from tests.inference.conftest import write_calibrated_model


def _model_with(tmp_path, errors: ErrorClassifier | None):
    info = {} if errors is None else {"errors": errors.to_json()}
    path = tmp_path / ("errors.pt" if errors is not None else "cal.pt")
    return write_calibrated_model(path, {"area_mean": 1.0}, info=info)


def _classifier() -> ErrorClassifier:
    """Says cut_short when the higher end probe scores above the label's mean slice score,
    else missing_slices (a planted rule, so the test knows what to expect)."""
    k = len(CLASSIFIER_FEATURES)
    coef = np.zeros((2, k))
    coef[0, CLASSIFIER_FEATURES.index("probe_max")] = 50.0
    coef[0, CLASSIFIER_FEATURES.index("area_mean")] = -50.0
    return ErrorClassifier(kinds=("cut_short", "missing_slices"), names=CLASSIFIER_FEATURES,
                           fill=np.zeros(k), method="softmax", center=np.zeros(k),
                           scale=np.ones(k), coef=coef, intercept=np.zeros(2))


def _scan(dataset, model, out):
    set_quiet(True)
    settings = ScanSettings(model=model, workers=0, device="cpu", batch_size=16, slices=4)
    scan_dataset(dataset, out, settings=settings)
    return pd.read_parquet(out / "results.parquet")


def test_scan_names_the_likely_error_and_where_it_lies(tiny_dataset, tmp_path):
    rows = _scan(tiny_dataset, _model_with(tmp_path, _classifier()), tmp_path / "out")
    ok = rows[rows.status == "ok"]
    assert len(ok) == 36 and ok.likely_error.isin(ERROR_KINDS).all()
    assert ok.likely_error_p.between(0.5, 1.0).all()
    # the planted rule, recomputed from the scan's own slice scores
    slices = pd.read_parquet(tmp_path / "out" / "slices.parquet")
    for row in ok.itertuples():
        span = parse_slices(row.error_slices)
        assert span is not None, row
        mine = slices[(slices.case_id == row.case_id) & (slices.label == row.label)]
        first, last = int(mine.slice_index.min()), int(mine.slice_index.max())
        if row.likely_error == "cut_short":  # beyond one end of the label
            assert span[0] > last or span[1] < first
        else:  # a gap or area change inside it
            assert first - 3 <= span[0] <= span[1] <= last + 3
    csv = pd.read_csv(tmp_path / "out" / "results.csv")
    assert {"likely_error", "likely_error_p", "error_slices"} <= set(csv.columns)


def test_a_model_without_a_classifier_leaves_the_columns_empty(tiny_dataset, tmp_path):
    rows = _scan(tiny_dataset, _model_with(tmp_path, None), tmp_path / "out")
    assert rows.likely_error.isna().all() and rows.likely_error_p.isna().all()
    assert rows.error_slices.isna().all()
    assert rows.predicted_dsc.notna().any()
