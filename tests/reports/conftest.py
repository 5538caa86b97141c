"""Tiny seeded scan results for the report tests: a results table, slice table and thumbnails."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qsaudit.columns import FLAG_COLUMNS, RESULT_COLUMNS, SLICE_COLUMNS, names
from qsaudit.reports import ThumbnailInputs

STRUCTURES = ("liver", "spleen", "kidney_left", "aorta")


def make_results(n_cases: int = 5, *, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A results table (RESULT_COLUMNS) and slice table (SLICE_COLUMNS) with planted rows.

    ``case1/spleen`` is the worst label (DSC 0.12), ``case2/aorta`` raises the edge flag and
    ``case3/liver`` is unreadable (status != ok, no prediction).
    """
    rng = np.random.default_rng(seed)
    rows, slice_rows = [], []
    for c in range(n_cases):
        for s in STRUCTURES:
            dsc = float(np.round(rng.uniform(0.55, 0.98), 3))
            row = {col: pd.NA for col in names(RESULT_COLUMNS)}
            row.update(case_id=f"case{c}", label=s, structure=s, predicted_dsc=dsc,
                       dsc_low=dsc - 0.05, dsc_high=min(dsc + 0.05, 1.0), raw_score=dsc,
                       slice_std=0.04, worst_slice=7, n_slices=6, mask_slices=12, voxels=900,
                       volume_ml=40.5, mean_hu=55.0, status="ok", error="",
                       image_path=f"/data/case{c}/ct.nii.gz",
                       label_path=f"/data/case{c}/segmentations/{s}.nii.gz")
            row.update({f: False for f in FLAG_COLUMNS})
            rows.append(row)
            for z in range(2, 14, 2):
                slice_rows.append({"case_id": f"case{c}", "label": s, "slice_index": z,
                                   "slice_dsc": float(np.clip(dsc + rng.normal(0, 0.05), 0, 1)),
                                   "mask_voxels": 80})
    results = pd.DataFrame(rows)
    slices = pd.DataFrame(slice_rows, columns=names(SLICE_COLUMNS))
    worst = (results.case_id == "case1") & (results.label == "spleen")
    results.loc[worst, ["predicted_dsc", "dsc_low", "dsc_high"]] = [0.12, 0.05, 0.2]
    results.loc[(results.case_id == "case2") & (results.label == "aorta"), "flag_edge"] = True
    bad = (results.case_id == "case3") & (results.label == "liver")
    results.loc[bad, ["predicted_dsc", "dsc_low", "dsc_high", "raw_score"]] = np.nan
    results.loc[bad, "status"] = "unreadable"
    results.loc[bad, "error"] = '"/data/case3/segmentations/liver.nii.gz": truncated gzip stream'
    results["n_flags"] = results[list(FLAG_COLUMNS)].sum(axis=1).astype("Int64")
    return results, slices


def make_thumbnail_inputs(*, seed: int = 0, n: int = 3, shape=(160, 120)) -> ThumbnailInputs:
    """A body-like ellipse of soft tissue in air with an off-centre elliptic mask on each slice."""
    rng = np.random.default_rng(seed)
    x, y = np.mgrid[0:shape[0], 0:shape[1]]
    body = ((x - shape[0] / 2) / (shape[0] * 0.45)) ** 2 + ((y - shape[1] / 2) / (shape[1] * 0.4)) ** 2
    ct = np.where(body < 1, 40.0, -1000.0) + rng.normal(0, 10, shape)
    cts, masks = [], []
    for k in range(n):
        mask = ((x - shape[0] * 0.35 - k) / 6.0) ** 2 + ((y - shape[1] * 0.55) / 5.0) ** 2 < 1
        cts.append(ct.astype(np.float32))
        masks.append(mask)
    return ThumbnailInputs(cts, masks, list(range(10, 10 + n)), (0.9, 1.2))


@pytest.fixture
def scan_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    return make_results()


@pytest.fixture
def thumbnail_factory():
    """``make_thumbnail_inputs`` as a fixture (tests call it with their own seed/shape)."""
    return make_thumbnail_inputs


@pytest.fixture
def report_inputs(scan_tables):
    """(results, slices, thumbnails) with thumbnails for the 8 worst labels."""
    from qsaudit.reports import worst_labels

    results, slices = scan_tables
    thumbs = {key: make_thumbnail_inputs(seed=i) for i, key in enumerate(worst_labels(results, 8))}
    return results, slices, thumbs
