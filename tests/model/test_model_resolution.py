"""The model's view of a label is defined in millimetres (ModelConfig.margin_mm)."""

from __future__ import annotations

import numpy as np
import pytest

from qsaudit.errors import ModelError
from qsaudit.model.config import ModelConfig, get_preset
from qsaudit.model.preprocess import crop_slice, margin_pixels


def _disc(n: int, pixel_mm: float, radius_mm: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """A CT slice (X, Y) of ``n`` pixels of ``pixel_mm`` with a bright disc and its mask."""
    c = (np.arange(n) - (n - 1) / 2) * pixel_mm
    r = np.hypot(c[:, None], c[None, :])
    ct = np.where(r < radius_mm, 60.0, -100.0 + 0.5 * c[:, None]).astype(np.float32)
    return ct, r < radius_mm


def test_margin_in_mm_follows_the_pixel_size():
    cfg = ModelConfig(margin_mm=70.0)
    assert margin_pixels(cfg, (1.0, 1.0, 2.0)) == 70
    assert margin_pixels(cfg, (3.5, 3.5, 2.0)) == 20
    assert margin_pixels(cfg, (1.0, 1.0), scale=0.5) == 35
    # without a spacing, or for a model counted in pixels, the margin stays in pixels
    assert margin_pixels(cfg) == cfg.margin
    assert margin_pixels(ModelConfig(margin=20), (0.7, 0.7, 1.0)) == 20
    with pytest.raises(ModelError):
        ModelConfig(margin_mm=-1.0)
    with pytest.raises(ModelError):
        margin_pixels(cfg, (0.0, 0.0, 1.0))


def test_default_preset_counts_in_mm_and_the_paper_in_pixels():
    assert get_preset("default").margin_mm == pytest.approx(70.0)
    assert get_preset("paper").margin_mm is None
    # an older model file (no margin_mm key) keeps its pixel margin
    old = {k: v for k, v in ModelConfig().to_dict().items() if k != "margin_mm"}
    assert ModelConfig.from_dict(old).margin_mm is None


def test_same_anatomy_gives_the_same_view_at_any_pixel_size():
    cfg = ModelConfig(input_size=64, margin_mm=40.0)
    fine_ct, fine_mask = _disc(400, 0.5)
    coarse_ct, coarse_mask = _disc(100, 2.0)
    fine = crop_slice(fine_ct, fine_mask, config=cfg, spacing=(0.5, 0.5, 1.0))
    coarse = crop_slice(coarse_ct, coarse_mask, config=cfg, spacing=(2.0, 2.0, 1.0))
    # the mask covers the same share of the view: same anatomy, same framing
    assert (fine[1] > 0).mean() == pytest.approx((coarse[1] > 0).mean(), abs=0.02)
    assert np.abs(fine - coarse).mean() < 0.05
    # counted in pixels the two views differ: the fine slice shows a far wider field
    px = ModelConfig(input_size=64, margin=20)
    fine_px = crop_slice(fine_ct, fine_mask, config=px)
    coarse_px = crop_slice(coarse_ct, coarse_mask, config=px)
    assert abs((fine_px[1] > 0).mean() - (coarse_px[1] > 0).mean()) > 0.1
