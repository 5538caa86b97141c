"""From a CT slice and a mask slice to the model's 2-channel input; which slices to score.

Numpy only (no torch) so that data-loading workers can use it. Slices come from a RAS volume as
``arr[:, :, z]``, i.e. arrays indexed ``(X, Y)``; they are transposed to image rows ``(Y, X)``
(the orientation of SimpleITK arrays, which the released Quality Sentinel was trained on).

Two preprocessing modes (``ModelConfig.preprocessing``):

- ``"qsaudit"``: a square crop centred on the bounding box of the mask, side = longest box side
  + 2 x margin, padded with air (-1024 HU, mask 0) where it leaves the image; CT window -> [0, 1]
  -> [-1, 1]; mask (0/1) -> [-1, 1].
- ``"paper"``: the released Quality Sentinel's crop (box + margin, clipped to the image, widened
  towards a square by ``diff // 2`` on each side, never padded, so it may stay rectangular);
  CT window -> [0, 1] -> (v - 0.5) / 0.25; mask -> (m - 0.5) / 0.5.

Both resize the crop to ``S x S`` with the triangle (bilinear, antialiased when shrinking)
filter of PIL's ``Image.resize(..., BILINEAR)``, the mask too, so its edge keeps partial-pixel
information. ``"qsaudit"`` resizes in float32 (both channels in one pass); ``"paper"``
reproduces the released pipeline bit for bit, including its 8-bit rounding (torchvision's
``ToPILImage`` turns float arrays into 8-bit images).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from qsaudit.errors import ModelError
from qsaudit.model.config import ModelConfig

AIR_HU = -1024.0
SAMPLING_MODES = ("even", "random", "paper")


def margin_pixels(config: ModelConfig, spacing: tuple[float, ...] | None = None, *,
                  scale: float = 1.0) -> int:
    """The crop margin in pixels of a slice with in-plane ``spacing`` (mm, first two values).

    A model with ``margin_mm`` counts its margin in millimetres (``scale`` x ``margin_mm`` over
    the mean in-plane pixel size, rounded); without it, or without a spacing, the margin is
    ``scale`` x ``margin`` pixels. Training draws ``scale`` around 1 to vary the view.
    """
    if config.margin_mm is not None and spacing is not None:
        # rounded: a float32 header's 0.9765625002 must give the exact spacing's margin
        pixel = round(0.5 * (float(spacing[0]) + float(spacing[1])), 4)
        if not pixel > 0:
            raise ModelError(f"crop: in-plane spacing {tuple(spacing)[:2]} must be positive")
        return max(0, round(scale * config.margin_mm / pixel))
    return max(0, round(scale * config.margin))


def crop_slice(ct2d: np.ndarray, mask2d: np.ndarray, *, config: ModelConfig,
               margin: int | None = None, bbox_from: np.ndarray | None = None,
               spacing: tuple[float, ...] | None = None) -> np.ndarray:
    """Crop, window, resize and normalise one slice pair into the model's input.

    Args:
        ct2d: CT slice in HU, shape ``(X, Y)``.
        mask2d: candidate mask slice, same shape (non-zero = inside).
        config: gives ``input_size`` ``S``, ``hu_window``, ``margin`` and ``preprocessing``.
        margin: crop margin in pixels (default: :func:`margin_pixels` of ``config`` and
            ``spacing``; training draws it at random).
        bbox_from: optional other mask of the same shape whose bounding box defines the crop,
            e.g. the trusted mask when the candidate is empty on this slice.
        spacing: the slice's pixel size in mm ``(sx, sy, ...)``; a model with ``margin_mm``
            needs it to size its margin (without it the margin falls back to pixels).

    Returns:
        float32 array ``(2, S, S)``: channel 0 the CT, channel 1 the mask, normalised as the
        module docstring describes.

    Raises:
        ModelError: shapes differ or the box mask is empty.
    """
    ct = np.asarray(ct2d)
    mask = np.asarray(mask2d)
    box = mask if bbox_from is None else np.asarray(bbox_from)
    if ct.ndim != 2 or ct.shape != mask.shape or box.shape != ct.shape:
        raise ModelError(f"crop_slice: CT {ct.shape}, mask {mask.shape} and box mask "
                         f"{box.shape} must be 2D arrays of one shape")
    margin = margin_pixels(config, spacing) if margin is None else int(margin)
    # (X, Y) -> image rows (Y, X)
    ct, mask, box = ct.T, mask.T, box.T
    rows = np.flatnonzero(box.any(axis=1))
    cols = np.flatnonzero(box.any(axis=0))
    if rows.size == 0:
        raise ModelError("crop_slice: the mask that defines the crop is empty on this slice")
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    lo, hi = config.hu_window
    size = config.input_size
    if config.preprocessing == "paper":
        r0, r1, c0, c1 = _paper_box(r0, r1, c0, c1, margin, ct.shape)
        ct_crop = ct[r0:r1, c0:c1].astype(np.float32)
        mask_crop = mask[r0:r1, c0:c1].astype(np.float32)
        ct01 = (np.clip(ct_crop, lo, hi) - np.float32(lo)) / np.float32(hi - lo)
        ct_ch = (_resize_as_8bit_image(ct01, size) - np.float32(0.5)) / np.float32(0.25)
        mask_ch = (_resize_as_8bit_image(mask_crop, size) - np.float32(0.5)) / np.float32(0.5)
        return np.stack([ct_ch, mask_ch]).astype(np.float32, copy=False)
    side = max(r1 - r0 + 1, c1 - c0 + 1) + 2 * margin
    top = r0 - margin - (side - (r1 - r0 + 1 + 2 * margin)) // 2
    left = c0 - margin - (side - (c1 - c0 + 1 + 2 * margin)) // 2
    ct_crop = _padded_crop(ct, top, left, side, AIR_HU)
    mask_crop = _padded_crop(mask, top, left, side, 0.0, nonzero=True)
    ct01 = (np.clip(ct_crop, lo, hi) - np.float32(lo)) / np.float32(hi - lo)
    both = resize_bilinear(np.stack([ct01, mask_crop]), size)
    return both * np.float32(2.0) - np.float32(1.0)


def _paper_box(r0: int, r1: int, c0: int, c1: int, margin: int,
               shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The released model's crop window ``[r0, r1) x [c0, c1)`` (inclusive box in, half-open out)."""
    h, w = shape
    r0, r1 = max(r0 - margin, 0), min(r1 + margin, h)
    c0, c1 = max(c0 - margin, 0), min(c1 + margin, w)
    rlen, clen = r1 - r0, c1 - c0
    if rlen > clen:
        half = (rlen - clen) // 2
        c0, c1 = max(c0 - half, 0), min(c1 + half, w)
    elif clen > rlen:
        half = (clen - rlen) // 2
        r0, r1 = max(r0 - half, 0), min(r1 + half, h)
    return r0, r1, c0, c1


def _padded_crop(img: np.ndarray, top: int, left: int, side: int, fill: float, *,
                 nonzero: bool = False) -> np.ndarray:
    """float32 ``img[top:top+side, left:left+side]`` with ``fill`` where the window leaves the
    image (``nonzero``: 1.0 where ``img != 0``). Only the window is converted, not the slice."""
    out = np.full((side, side), fill, dtype=np.float32)
    h, w = img.shape
    sr0, sr1 = max(top, 0), min(top + side, h)
    sc0, sc1 = max(left, 0), min(left + side, w)
    if sr1 > sr0 and sc1 > sc0:
        window = img[sr0:sr1, sc0:sc1]
        out[sr0 - top:sr1 - top, sc0 - left:sc1 - left] = window != 0 if nonzero else window
    return out


def resize_bilinear(img: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize a 2D image, or a stack ``(..., H, W)`` of them, to ``size`` (``S`` or
    ``(rows, cols)``) with PIL's bilinear filter.

    Pixel centres are aligned (half-pixel convention); when shrinking, the triangle filter widens
    by the scale factor, so the result is antialiased. Computed in float32 (PIL's "F" images
    store float32; its double accumulation differs by ~1e-7), columns first, then rows, like
    PIL. Returns float32.
    """
    out_r, out_c = (size, size) if isinstance(size, int | np.integer) else size
    img = np.asarray(img, dtype=np.float32)
    if img.ndim < 2:
        raise ModelError(f"resize: need a 2D image or a stack of them, got shape {img.shape}")
    wr = _resize_weights32(img.shape[-2], int(out_r))
    wc = _resize_weights32(img.shape[-1], int(out_c))
    return np.matmul(wr, np.matmul(img, wc.T))


@lru_cache(maxsize=256)
def _resize_weights32(n_in: int, n_out: int) -> np.ndarray:
    w = _resize_weights(n_in, n_out).astype(np.float32)
    w.setflags(write=False)
    return w


_PIL_PRECISION_BITS = 22  # fixed-point bits of PIL's 8-bit resampling (32 - 8 - 2)


def _resize_as_8bit_image(img01: np.ndarray, size: int) -> np.ndarray:
    """The paper's torchvision path for a float image in [0, 1], reproduced bit for bit.

    ``ToPILImage`` turns a float array into an 8-bit image (``uint8(v * 255)``, truncating),
    PIL resizes it with fixed-point bilinear weights (each pass rounded to 8 bits) and
    ``ToTensor`` divides by 255. Returns float32 in [0, 1].
    """
    q = (img01.astype(np.float32) * np.float32(255)).astype(np.uint8).astype(np.float64)
    wr = _resize_weights_fixed(q.shape[0], size)
    wc = _resize_weights_fixed(q.shape[1], size)
    half = float(1 << (_PIL_PRECISION_BITS - 1))
    # integer-valued float64 products and sums stay exact (< 2**53)
    tmp = _clip8(q @ wc.T + half)
    out = _clip8(wr @ tmp + half)
    return (out.astype(np.float32) / np.float32(255)).astype(np.float32)


def _clip8(acc: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(acc / (1 << _PIL_PRECISION_BITS)), 0, 255)


@lru_cache(maxsize=256)
def _resize_weights_fixed(n_in: int, n_out: int) -> np.ndarray:
    """:func:`_resize_weights` rounded to PIL's fixed-point integers (as float64)."""
    w = np.floor(_resize_weights(n_in, n_out) * (1 << _PIL_PRECISION_BITS) + 0.5)
    w.setflags(write=False)
    return w


@lru_cache(maxsize=256)
def _resize_weights(n_in: int, n_out: int) -> np.ndarray:
    """Weight matrix ``(n_out, n_in)`` of the triangle filter; rows sum to 1."""
    if n_in < 1 or n_out < 1:
        raise ModelError(f"resize: cannot resize {n_in} pixels to {n_out}")
    scale = n_in / n_out
    stretch = max(scale, 1.0)
    support = stretch
    weights = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        centre = (i + 0.5) * scale
        first = max(int(centre - support + 0.5), 0)
        stop = min(int(centre + support + 0.5), n_in)
        x = np.arange(first, stop)
        w = np.clip(1.0 - np.abs((x - centre + 0.5) / stretch), 0.0, None)
        total = w.sum()
        if total > 0:
            weights[i, first:stop] = w / total
    weights.setflags(write=False)
    return weights


def sample_slices(mask: np.ndarray, k: int, *, rng: np.random.Generator | None = None,
                  mode: str = "even") -> np.ndarray:
    """Indices of up to ``k`` axial slices (axis 2) that contain mask, ascending.

    Args:
        mask: volume ``(X, Y, Z)``, non-zero = inside.
        k: number of slices wanted (>= 1); all mask slices are returned if there are fewer.
        rng: random generator for ``mode="random"`` (a fresh unseeded one if omitted).
        mode: ``"even"`` evenly spaced from the first to the last mask slice (rounded
            ``linspace``, unique); ``"random"`` drawn without replacement; ``"paper"`` the
            released model's choice ``valid[int(n / k * i)]`` for ``i < k``.

    Returns:
        int64 array of slice indices (empty if the mask is empty).
    """
    if k < 1:
        raise ModelError(f"sample_slices: k = {k}, must be >= 1")
    if mode not in SAMPLING_MODES:
        raise ModelError(f'sample_slices: mode "{mode}" unknown (choose from '
                         f'{", ".join(SAMPLING_MODES)})')
    m = np.asarray(mask)
    if m.ndim != 3:
        raise ModelError(f"sample_slices: mask must be 3D (X, Y, Z), got shape {m.shape}")
    # any() over the in-plane axes reads the array in place; reshape would copy a
    # non-contiguous (reoriented) mask for every label.
    valid = np.flatnonzero(m.any(axis=(0, 1))).astype(np.int64)
    n = valid.size
    if n <= k:
        return valid
    if mode == "even":
        pick = np.unique(np.round(np.linspace(0, n - 1, k)).astype(np.int64))
    elif mode == "random":
        gen = rng if rng is not None else np.random.default_rng()
        pick = np.sort(gen.choice(n, size=k, replace=False))
    else:
        pick = np.array([int(n / k * i) for i in range(k)], dtype=np.int64)
    return valid[pick]
