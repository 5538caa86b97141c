"""End probes: does the structure go on beyond a label's first and last slice?

The slice model scores slices that have mask, so a label cut off flat (truncated, or its end
slices dropped) looks as good as a complete one on every slice it has. An *end probe* asks the
network about the slice just beyond each end: it shows the CT slice about ``PROBE_MM`` mm
outside the label with the label's end slice as mask. Where the organ really ends, that mask
lies on tissue that is not the organ and the network scores it low (a false-positive slice, as
in training); where the label was cut short, the organ is still there under the mask and the
score stays high. The label calibration reads the two probe scores (``probe_max``,
``probe_min``) beside the slice scores; an end at the edge of the volume has no probe.

Scan and calibration build their probes here, so they always ask the same question.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PROBE_OFFSET = 1  # slices beyond the label's end slice, when the slice spacing is unknown
PROBE_MM = 3.0  # otherwise: the slice nearest this far beyond the end (at least the next one)
LOW, HIGH = 0, 1  # probe sides: below the first slice, above the last


def probe_offset(spacing: tuple[float, ...] | None) -> int:
    """Slices between a label's end slice and its probe: about :data:`PROBE_MM` mm, so that a
    0.6 mm series is probed as far beyond the end as a 3 mm one (at least one slice)."""
    if spacing is None or len(spacing) < 3 or not float(spacing[2]) > 0:
        return PROBE_OFFSET
    return max(1, round(PROBE_MM / float(spacing[2])))


def end_probes(ct: np.ndarray, mask: np.ndarray, z_range: tuple[int, int], *,
               model_config: Any, spacing: tuple[float, ...] | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """The end-probe model inputs of one label.

    Args:
        ct: CT (X, Y, Z) in HU.
        mask: the label (X, Y, Z), boolean or 0/1; non-empty on slices ``z_range[0]`` and
            ``z_range[1] - 1``.
        z_range: half-open range of the label's slices with mask (first, last + 1).
        model_config: the model's crop settings (``qsaudit.model.config.ModelConfig``).
        spacing: voxel size in mm (X, Y, Z): sizes the crop margin and the probe's distance
            (:func:`probe_offset`); without it, one slice and the margin in pixels.

    Returns ``(crops (p, 2, S, S) float32, sides (p,) int8)`` with ``p`` <= 2: for each end
    whose probe slice lies inside the volume, the crop of that CT slice with the end slice's
    mask (cropped around that mask, as the scan crops), and its side (:data:`LOW`/:data:`HIGH`).
    """
    from qsaudit.model.preprocess import crop_slice

    first, last = int(z_range[0]), int(z_range[1]) - 1
    size = model_config.input_size
    offset = probe_offset(spacing)
    crops, sides = [], []
    for side, end, probe in ((LOW, first, first - offset), (HIGH, last, last + offset)):
        if 0 <= probe < mask.shape[2]:
            crops.append(crop_slice(ct[:, :, probe], mask[:, :, end], config=model_config,
                                    spacing=spacing))
            sides.append(side)
    if not crops:
        return np.zeros((0, 2, size, size), np.float32), np.zeros(0, np.int8)
    return (np.stack(crops).astype(np.float32, copy=False), np.asarray(sides, dtype=np.int8))


def volume_ends(z_range: tuple[int, int], z_size: int) -> int:
    """How many of a label's two ends (its first and last slice with mask, ``z_range``
    half-open) lie on the volume's first or last slice (0, 1 or 2): there the scan's field of
    view, not the label, may end the structure, and no probe can tell (a label on one slice of
    a one-slice volume counts 2)."""
    first, last = int(z_range[0]), int(z_range[1]) - 1
    return int(first <= 0) + int(last >= int(z_size) - 1)


def probe_summary(scores: np.ndarray | None) -> tuple[float, float]:
    """``(probe_max, probe_min)`` of a label's probe scores (clipped to [0, 1]); NaN, NaN when
    it has none (both ends at the volume's edge, or probes not computed)."""
    if scores is None:
        return float("nan"), float("nan")
    s = np.clip(np.asarray(scores, dtype=np.float64).ravel(), 0.0, 1.0)
    s = s[~np.isnan(s)]
    if s.size == 0:
        return float("nan"), float("nan")
    return float(s.max()), float(s.min())
