"""crop_slice geometry and normalisation, the PIL-equivalent resize, and sample_slices."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from qsaudit.errors import ModelError
from qsaudit.model.config import PRESETS, ModelConfig
from qsaudit.model.preprocess import crop_slice, resize_bilinear, sample_slices


def _box_mask(shape, xs, ys):
    m = np.zeros(shape, dtype=np.uint8)
    m[xs[0]:xs[1] + 1, ys[0]:ys[1] + 1] = 1
    return m


def test_qsaudit_crop_is_centred_square_around_the_box():
    x, _ = np.meshgrid(np.arange(60), np.arange(50), indexing="ij")
    ct = (-200.0 + 4.0 * x).astype(np.float32)  # windowed value = x / 100
    mask = _box_mask((60, 50), (20, 29), (10, 15))  # 10 wide in X, 6 in Y
    cfg = ModelConfig(input_size=14, margin=2)  # side = 10 + 2*2 = 14: no resampling
    out = crop_slice(ct, mask, config=cfg)
    assert out.shape == (2, 14, 14) and out.dtype == np.float32
    inside = np.argwhere(out[1] > 0)
    # rows are Y, columns X; the 6 x 10 box sits in the middle of the 14 x 14 crop
    assert inside[:, 0].min() == 4 and inside[:, 0].max() == 9
    assert inside[:, 1].min() == 2 and inside[:, 1].max() == 11
    assert set(np.unique(out[1])) == {-1.0, 1.0}
    left = 20 - 2  # first X column of the crop
    expected = 2.0 * (np.arange(14) + left) / 100.0 - 1.0
    np.testing.assert_allclose(out[0, 7], expected, atol=1e-6)


def test_qsaudit_crop_pads_with_air_outside_the_image():
    ct = np.full((40, 40), 1000.0, dtype=np.float32)
    mask = _box_mask((40, 40), (0, 4), (0, 4))
    cfg = ModelConfig(input_size=15, margin=5)  # side 15, starts 5 pixels outside the image
    out = crop_slice(ct, mask, config=cfg)
    np.testing.assert_array_equal(out[0, :5, :], -1.0)  # air -> bottom of the window
    np.testing.assert_array_equal(out[0, :, :5], -1.0)
    np.testing.assert_array_equal(out[0, 5:, 5:], 1.0)  # 1000 HU -> top of the window
    np.testing.assert_array_equal(out[1, 5:10, 5:10], 1.0)
    assert (out[1] > 0).sum() == 25


def test_bbox_from_defines_the_crop_when_the_candidate_is_empty():
    x, _ = np.meshgrid(np.arange(60), np.arange(50), indexing="ij")
    ct = (-200.0 + 4.0 * x).astype(np.float32)
    empty = np.zeros((60, 50), dtype=np.uint8)
    truth = _box_mask((60, 50), (20, 29), (10, 15))
    cfg = ModelConfig(input_size=14, margin=2)
    out = crop_slice(ct, empty, config=cfg, bbox_from=truth)
    np.testing.assert_array_equal(out[1], -1.0)
    np.testing.assert_allclose(out[0, 0, 0], 2.0 * 18 / 100.0 - 1.0, atol=1e-6)
    with pytest.raises(ModelError, match="empty"):
        crop_slice(ct, empty, config=cfg)


def test_margin_override_changes_the_crop():
    ct = np.zeros((64, 64), dtype=np.float32)
    mask = _box_mask((64, 64), (30, 33), (30, 33))
    cfg = ModelConfig(input_size=24, margin=10)
    tight = crop_slice(ct, mask, config=cfg, margin=0)
    assert (tight[1] > 0.9).mean() > 0.9  # the box fills the crop
    wide = crop_slice(ct, mask, config=cfg)
    assert (wide[1] > 0.9).mean() < 0.2


def test_paper_mode_normalisation_and_orientation():
    ct = np.zeros((80, 60), dtype=np.float32)  # 0 HU -> 0.5 -> 8 bits: 127/255
    ct[:40] = 200.0  # low X half at the top of the window -> (1 - 0.5) / 0.25 = 2
    mask = np.ones((80, 60), dtype=np.uint8)
    cfg = PRESETS["paper"].replace(input_size=32)
    out = crop_slice(ct, mask, config=cfg)
    np.testing.assert_allclose(out[1], 1.0)  # (1 - 0.5) / 0.5
    # X runs along columns: left half 2, right half mid-grey (the paper rounds to 8 bits)
    np.testing.assert_allclose(out[0, :, :15], 2.0, atol=1e-6)
    np.testing.assert_allclose(out[0, :, 17:], (127 / 255 - 0.5) / 0.25, atol=1e-6)


def test_paper_mode_crop_is_clipped_not_padded():
    ct = np.full((60, 50), 1000.0, dtype=np.float32)  # all at the top of the window
    mask = _box_mask((60, 50), (0, 3), (0, 3))
    cfg = PRESETS["paper"].replace(input_size=16)
    out = crop_slice(ct, mask, config=cfg)
    np.testing.assert_allclose(out[0], 2.0)  # no air padding anywhere


@pytest.mark.parametrize("shape", [(37, 53), (300, 280), (5, 400), (256, 256)])
def test_resize_matches_pil_bilinear(shape):
    img = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    ref = np.asarray(Image.fromarray(img, mode="F").resize((64, 48), Image.BILINEAR))
    np.testing.assert_allclose(resize_bilinear(img, (48, 64)), ref, atol=1e-5)


def _slab_mask(first: int, last: int, depth: int = 40) -> np.ndarray:
    m = np.zeros((8, 8, depth), dtype=bool)
    m[2:5, 2:5, first:last + 1] = True
    return m


def test_sample_slices_even_and_paper():
    mask = _slab_mask(10, 29)  # 20 mask slices
    np.testing.assert_array_equal(sample_slices(mask, 5), [10, 15, 20, 24, 29])
    np.testing.assert_array_equal(sample_slices(mask, 5, mode="paper"), [10, 14, 18, 22, 26])


def test_sample_slices_random_is_seeded_and_within_mask():
    mask = _slab_mask(10, 29)
    a = sample_slices(mask, 6, rng=np.random.default_rng(3), mode="random")
    b = sample_slices(mask, 6, rng=np.random.default_rng(3), mode="random")
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(a)) == 6 and a.min() >= 10 and a.max() <= 29
    assert np.all(np.diff(a) > 0)


def test_sample_slices_few_or_none():
    np.testing.assert_array_equal(sample_slices(_slab_mask(3, 5), 10), [3, 4, 5])
    assert sample_slices(np.zeros((4, 4, 4)), 10).size == 0
    with pytest.raises(ModelError):
        sample_slices(_slab_mask(3, 5), 0)
    with pytest.raises(ModelError, match="mode"):
        sample_slices(_slab_mask(3, 5), 2, mode="bogus")


def test_config_round_trip_and_validation():
    cfg = PRESETS["paper"]
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ModelError, match="backbone"):
        ModelConfig(backbone="vgg")
    with pytest.raises(ModelError, match="unknown field"):
        ModelConfig.from_dict({"depth": 3})


def test_preprocess_and_config_do_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, qsaudit.model.preprocess, qsaudit.model.config; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
