"""Size probes: would the label score higher a little smaller, or a little larger?

A label drawn too large (a dilated contour, a boundary placed in the fat around an organ) or too
small (an eroded one) can look plausible on every slice, and the network's score of a slice says
only how good it looks, not which way it is wrong. A *size probe* asks the network about the same
slice twice more: once with the label's mask shrunk and once with it grown by
:data:`SIZE_PROBE_SHARE` of the crop's side (about two of the network's input pixels, so that the
change is visible at any organ size and pixel size), cropped in the same view. Where the label
is right, both changes make it worse and score lower; where it is too large, the shrunk mask
scores higher (and the grown one lower); where it is too small, the other way round. The label
calibration reads the two differences to the slice's own score (``shrink_gain``,
``grow_gain``).

The probed slice is the scored slice with the largest mask area (the first of equals), which
shows the most boundary. Scan and calibration build their size probes here, so they always ask
the same question.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SIZE_PROBE_SHARE = 0.02  # of the crop's side: about 2 px of a 96 px input
SHRINK, GROW = 0, 1  # the order of the two size probes


def probed_slice(areas: np.ndarray) -> int:
    """Index (into the scored slices) of the slice the size probes show: the largest mask
    area, the first of equals."""
    a = np.asarray(areas, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError("probed_slice: no scored slice")
    return int(np.argmax(a))


def probe_radius(mask2d: np.ndarray, *, model_config: Any,
                 spacing: tuple[float, ...] | None = None) -> int:
    """How many pixels of the slice the size probes shrink and grow its mask by:
    :data:`SIZE_PROBE_SHARE` of the side of the square crop the scan cuts around it (at least
    one pixel)."""
    from qsaudit.model.preprocess import margin_pixels

    m = np.asarray(mask2d, dtype=bool)
    xs, ys = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    if xs.size == 0:
        return 1
    side = max(xs[-1] - xs[0] + 1, ys[-1] - ys[0] + 1) + 2 * margin_pixels(model_config, spacing)
    return max(1, round(SIZE_PROBE_SHARE * side))


def size_probes(ct: np.ndarray, mask: np.ndarray, z: int, *, model_config: Any,
                spacing: tuple[float, ...] | None = None) -> np.ndarray:
    """The size-probe model inputs (2, 2, S, S) float32 of one label: slice ``z`` with the
    mask shrunk (:data:`SHRINK`) and grown (:data:`GROW`) by :func:`probe_radius` pixels (a disk),
    each cropped in the view of the slice's own mask (a mask shrunk to nothing is shown empty)."""
    from scipy import ndimage

    from qsaudit.model.preprocess import crop_slice

    m = np.asarray(mask[:, :, int(z)], dtype=bool)
    r = probe_radius(m, model_config=model_config, spacing=spacing)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disk = yy * yy + xx * xx <= r * r
    xs, ys = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    box = (slice(max(0, xs[0] - r - 1), xs[-1] + r + 2), slice(max(0, ys[0] - r - 1), ys[-1] + r + 2))
    shrunk, grown = np.zeros_like(m), np.zeros_like(m)
    shrunk[box] = ndimage.binary_erosion(m[box], structure=disk)  # the image's edge erodes too
    grown[box] = ndimage.binary_dilation(m[box], structure=disk)
    ct2d = ct[:, :, int(z)]
    return np.stack([crop_slice(ct2d, shrunk, config=model_config, bbox_from=m, spacing=spacing),
                     crop_slice(ct2d, grown, config=model_config, bbox_from=m, spacing=spacing)]
                    ).astype(np.float32, copy=False)


def size_summary(scores: np.ndarray | None, slice_scores: np.ndarray,
                 areas: np.ndarray) -> tuple[float, float]:
    """``(shrink_gain, grow_gain)``: the size probes' scores minus the probed slice's own score
    (all clipped to [0, 1]); NaN, NaN when the probes were not computed (None) or not both
    scored."""
    if scores is None:
        return float("nan"), float("nan")
    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size != 2 or np.isnan(s).any():
        return float("nan"), float("nan")
    own = float(np.clip(np.asarray(slice_scores, dtype=np.float64).ravel()[probed_slice(areas)],
                        0.0, 1.0))
    s = np.clip(s, 0.0, 1.0)
    return float(s[SHRINK] - own), float(s[GROW] - own)
