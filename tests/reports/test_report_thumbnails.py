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


def _colour(img: np.ndarray, rgb) -> np.ndarray:
    return np.all(img == np.array(rgb, dtype=np.uint8), axis=-1)


def _volume_with_a_small_organ():
    """A 200 x 160 x 60 body (1 x 1 x 3 mm) with a 6-mm bright organ high up (superior) and to
    the patient's right, its reference shifted 2 mm to the left."""
    x, y, z = np.mgrid[0:200, 0:160, 0:60]
    ct = np.where(((x - 100) / 90) ** 2 + ((y - 80) / 70) ** 2 < 1, 40.0, -1000.0)
    ct[(z >= 50) & (x >= 120)] = 300.0  # bone-bright block: superior and to the right
    organ = ((x - 140) / 3) ** 2 + ((y - 80) / 3) ** 2 + ((z - 52) / 1.2) ** 2 < 1
    reference = np.roll(organ, -2, axis=0)
    return ct, organ, reference


def test_three_views_keep_context_orientation_and_both_outlines():
    from qsaudit.reports.thumbnails import (
        MARK_RGB,
        REFERENCE_RGB,
        cut_planes,
        make_views,
        plane_view,
    )

    ct, organ, reference = _volume_with_a_small_organ()
    bbox = tuple((int(h[0]), int(h[-1]) + 1) for h in
                 (np.flatnonzero(organ.any(axis=a)) for a in ((1, 2), (0, 2), (0, 1))))
    planes = cut_planes(ct, organ, (1.0, 1.0, 3.0), bbox, size=160, reference=reference)
    assert abs(planes["coronal"]["position"] - 80) <= 1  # through the organ's fullest row
    assert abs(planes["sagittal"]["position"] - 140) <= 1
    z = 52
    inputs = ThumbnailInputs([ct[:, :, z]], [organ[:, :, z]], [z], (1.0, 1.0),
                             coronal=plane_view(planes["coronal"]),
                             sagittal=plane_view(planes["sagittal"]),
                             reference_slices=[reference[:, :, z]])
    views = make_views(inputs)
    assert [v.name for v in views] == ["axial", "coronal", "sagittal"]
    axial, coronal, sagittal = (_decode(v.uri) for v in views)
    # the reference is shifted along x: apart from the label on the axial and coronal views,
    # on the sagittal one it lies under the label's own (red) outline
    assert _colour(axial, REFERENCE_RGB).any() and _colour(coronal, REFERENCE_RGB).any()
    for img in (axial, coronal, sagittal):
        assert _outline_pixels(img).any()
        # a 6-mm organ keeps its surroundings: at least 120 mm of field, so under a tenth wide
        cols = np.nonzero(_outline_pixels(img))[1]
        assert cols.max() - cols.min() + 1 < img.shape[1] / 8
    # coronal: the head at the top (the bright block is superior) and the patient's right on
    # the left; the reference (2 mm to the patient's left) lies right of the label
    h, w = coronal.shape[:2]
    assert coronal[: h // 3, : w // 3].mean() > coronal[-h // 3:, : w // 3].mean() + 50
    label_cols = np.nonzero(_outline_pixels(coronal))[1]
    ref_cols = np.nonzero(_colour(coronal, REFERENCE_RGB))[1]
    assert ref_cols.mean() > label_cols.mean()
    # the worst axial slice is marked by ticks on both edges of the coronal and sagittal views
    for img in (coronal, sagittal):
        ticks = _colour(img, MARK_RGB)
        assert ticks[:, :3].any() and ticks[:, -3:].any()
    assert not _colour(axial, MARK_RGB).any()


def test_views_need_the_planes_and_old_thumbnails_keep_the_tiled_slices(thumbnail_factory):
    from qsaudit.reports.thumbnails import make_views

    views = make_views(thumbnail_factory(n=3))
    assert [v.name for v in views] == ["axial"]
