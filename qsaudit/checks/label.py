"""All per-label checks of one mask at once, with the structure-specific choices made here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from qsaudit.checks.edge import flag_edge, z_ends_matter
from qsaudit.checks.mask import (
    MaskStats,
    component_sizes,
    count_components,
    flag_components,
    flag_hu,
    largest_component_share,
    mask_stats,
    masked_values,
)
from qsaudit.checks.side import flag_side, side_offset_mm, wrong_side_share


@dataclass(frozen=True)
class LabelChecks:
    """Per-label flags of one non-empty mask (True = suspicious) and what they were judged on.

    ``components``: significant 3D components (see :func:`count_components`);
    ``side_offset_mm``: centroid distance from the body midline, mm, positive = patient's right;
    ``wrong_side_share``: share (0-1) of the voxels across the midline for a lateral organ;
    ``mean_hu``: mean CT value inside the mask (HU), from the voxels the HU check read;
    ``largest_share``: share of the voxels in the largest 3D component.
    The dataset-level ``flag_volume`` and the per-case swapped-pair test are not included.
    """

    flag_edge: bool
    flag_components: bool
    flag_hu: bool
    flag_side: bool
    components: int
    side_offset_mm: float
    wrong_side_share: float
    mean_hu: float
    largest_share: float = 1.0

    def flags(self) -> dict[str, bool]:
        """The four flags by results-column name."""
        return {"flag_edge": self.flag_edge, "flag_components": self.flag_components,
                "flag_hu": self.flag_hu, "flag_side": self.flag_side}


def check_label(mask: np.ndarray, ct: np.ndarray, spacing: tuple[float, float, float], *,
                structure: Any | None, midline_x: float,
                stats: MaskStats | None = None) -> LabelChecks:
    """Run the per-label checks on one non-empty mask.

    ``mask``: bool (X, Y, Z) and ``ct``: HU (X, Y, Z), canonical RAS; ``spacing``: mm per axis;
    ``structure``: the registry :class:`~qsaudit.registry.Structure` (None = unknown name: only
    the edge and one-component checks apply); ``midline_x``: body midline (voxels along x, from
    :func:`body_profile`); ``stats``: the mask's :func:`mask_stats` if already computed.
    Raises ValueError for an empty mask (``flag_empty`` covers it) or mismatched shapes.
    """
    if mask.shape != ct.shape:
        raise ValueError(f"mask shape {mask.shape} differs from CT shape {ct.shape}")
    stats = mask_stats(mask) if stats is None else stats
    if stats.empty:
        raise ValueError("empty mask: no per-label check applies")
    key = structure.key if structure is not None else None
    sub = stats.crop(mask)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    sizes = component_sizes(sub)
    _total, significant = count_components(sub, voxel_ml=voxel_ml, sizes=sizes)
    offset = side_offset_mm(stats.centroid[0], midline_x, spacing[0])
    # Vessels are not judged against the midline: the aorta splits left of it, so the right
    # common iliac artery crosses it in normal anatomy (swapped pairs still apply).
    side = structure.side if structure is not None and structure.region != "vessels" else None
    values = masked_values(stats.crop(ct), sub)
    share = wrong_side_share(sub.sum(axis=(1, 2)), midline_x - stats.bbox[0][0], spacing[0], side)
    return LabelChecks(
        flag_edge=flag_edge(stats, mask.shape, z_ends=z_ends_matter(key)),
        flag_components=flag_components(
            significant, expected=structure.components if structure is not None else 1),
        flag_hu=flag_hu(values, hu_range=structure.hu_range if structure is not None else None),
        flag_side=flag_side(offset, side, wrong_share=share),
        components=significant,
        side_offset_mm=offset,
        wrong_side_share=share,
        mean_hu=float(values.mean()),
        largest_share=largest_component_share(sub, sizes),
    )
