"""Thumbnails: worst-slice choice, valid PNG data URIs, radiological orientation, aspect, outline."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
import pytest

from qsaudit.reports import ThumbnailInputs, make_thumbnail, select_thumbnail_slices
from qsaudit.reports.thumbnails import OUTLINE_RGB


def _decode(uri: str) -> np.ndarray:
    from matplotlib.image import imread

    assert uri.startswith("data:image/png;base64,")
    raw = base64.b64decode(uri.split(",", 1)[1], validate=True)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    img = imread(io.BytesIO(raw), format="png")
    return (img[..., :3] * 255).round().astype(np.uint8)


def _outline_pixels(img: np.ndarray) -> np.ndarray:
    return np.all(img == np.array(OUTLINE_RGB, dtype=np.uint8), axis=-1)


def test_select_thumbnail_slices_worst_first_ignoring_missing():
    table = pd.DataFrame({"slice_index": [4, 8, 12, 16, 20],
                          "slice_dsc": [0.9, 0.3, np.nan, 0.3, 0.1]})
    assert select_thumbnail_slices(table, k=3) == [20, 8, 16]
    assert select_thumbnail_slices(table, k=10) == [20, 8, 16, 4]
    assert select_thumbnail_slices(table.iloc[:0], k=3) == []
    with pytest.raises(ValueError):
        select_thumbnail_slices(table, k=0)


def test_thumbnail_is_png_with_one_tile_per_slice(thumbnail_factory):
    one = _decode(make_thumbnail(thumbnail_factory(n=1)))
    three = _decode(make_thumbnail(thumbnail_factory(n=3)))
    assert one.shape[0] == three.shape[0]
    assert three.shape[1] == 3 * one.shape[1] + 2 * 4  # three tiles and two 4-px gaps
    assert max(one.shape[:2]) == 160
    assert _outline_pixels(three).any()


def test_radiological_orientation_anterior_up_patient_right_on_left():
    ct = np.full((40, 40), -1000.0)
    ct[34:, 34:] = 1000.0  # high x (patient's right) and high y (anterior): a bright corner
    mask = np.zeros((40, 40), dtype=bool)
    img = _decode(make_thumbnail(ThumbnailInputs([ct], [mask], [0], (1.0, 1.0)), min_fov_mm=1))
    h, w = img.shape[:2]
    assert img[: h // 8, : w // 8].mean() > 200  # top-left is bright
    assert img[-h // 8:, -w // 8:].mean() < 30  # bottom-right is air
    assert not _outline_pixels(img).any()  # an empty mask draws no outline


def test_spacing_sets_aspect_ratio():
    ct = np.zeros((50, 50))
    mask = np.zeros((50, 50), dtype=bool)
    mask[20:30, 20:30] = True
    img = _decode(make_thumbnail(ThumbnailInputs([ct], [mask], [3], (1.0, 2.0)),
                                 margin_mm=500, size_px=120))
    # x spans 50 mm (columns), y spans 100 mm (rows): twice as tall as wide
    assert img.shape[0] == 120 and img.shape[1] == 60


def test_crop_zooms_on_a_small_mask():
    ct = np.zeros((400, 400))
    mask = np.zeros((400, 400), dtype=bool)
    mask[100:110, 300:310] = True
    img = _decode(make_thumbnail(ThumbnailInputs([ct], [mask], [0], (1.0, 1.0)),
                                 margin_mm=20, min_fov_mm=60))
    edge = _outline_pixels(img)
    rows, cols = np.nonzero(edge)
    # the 10-mm mask fills about 10/60 of a 160-px tile, not 10/400 of it
    assert 20 <= cols.max() - cols.min() + 1 <= 35
    assert 20 <= rows.max() - rows.min() + 1 <= 35


def test_thumbnail_inputs_are_validated():
    ct = np.zeros((8, 8))
    with pytest.raises(ValueError, match="no slice"):
        ThumbnailInputs([], [], [], (1.0, 1.0))
    with pytest.raises(ValueError, match="same 2D shape"):
        ThumbnailInputs([ct], [np.zeros((8, 9), bool)], [0], (1.0, 1.0))
    with pytest.raises(ValueError, match="masks"):
        ThumbnailInputs([ct, ct], [ct > 0], [0], (1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        ThumbnailInputs([ct], [ct > 0], [0], (0.0, 1.0))
    with pytest.raises(ValueError, match="window"):
        make_thumbnail(ThumbnailInputs([ct], [ct > 0], [0], (1.0, 1.0)), window=(100, 0))
