"""Public entry points: :func:`degrade` one mask with a named error, or a random one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qsaudit.degrade.metrics import dice
from qsaudit.degrade.operations import OPERATIONS, Context

ERRORS: tuple[str, ...] = (
    "erosion", "dilation", "boundary_noise", "holes", "slice_drop", "truncation",
    "leakage", "shift", "lr_swap", "spurious_blob", "oversmooth", "empty",
)


@dataclass(frozen=True)
class Degraded:
    """A degraded mask and its exact 3D Dice against the mask it was made from.

    ``mask``: bool (X, Y, Z); ``dsc`` in [0, 1]; ``error`` one of :data:`ERRORS` or "none";
    ``severity`` in [0, 1] as requested.
    """

    mask: np.ndarray
    dsc: float
    error: str
    severity: float


def _check_spacing(spacing: Sequence[float]) -> tuple[float, float, float]:
    sp = tuple(float(v) for v in spacing)
    if len(sp) != 3 or not all(np.isfinite(v) and v > 0 for v in sp):
        raise ValueError(f"spacing must be three positive numbers (mm), got {spacing!r}")
    return sp  # type: ignore[return-value]


def degrade(mask: np.ndarray, error: str, severity: float, rng: np.random.Generator, *,
            spacing: Sequence[float] = (1.0, 1.0, 1.0),
            neighbours: dict[str, np.ndarray] | None = None,
            body: np.ndarray | None = None) -> Degraded:
    """Apply the degradation ``error`` at ``severity`` (0 = nearly perfect, 1 = very bad).

    ``mask`` is the correct bool mask, shape (X, Y, Z) in RAS (axis 0 left-right, axis 2 axial);
    ``spacing`` its voxel size in mm. ``neighbours`` (name -> bool mask, same shape) are the
    structures ``leakage`` may spill into; ``body`` (bool) keeps growth inside the patient and
    sets the midline for ``lr_swap``. ``error="none"`` returns the mask unchanged (Dice 1.0).
    An empty input mask is returned unchanged by every error but "empty".
    Raises ValueError for an unknown error, a severity outside [0, 1] or mismatched shapes.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"mask must be 3D, got shape {mask.shape}")
    if error != "none" and error not in OPERATIONS:
        raise ValueError(f"unknown degradation {error!r}; expected one of {', '.join(ERRORS)}")
    severity = float(severity)
    if not 0.0 <= severity <= 1.0:
        raise ValueError(f"severity must be in [0, 1], got {severity}")
    for name, other in {**(neighbours or {}), **({"body": body} if body is not None else {})}.items():
        if np.shape(other) != mask.shape:
            raise ValueError(f"{name!r} has shape {np.shape(other)}, mask has {mask.shape}")
    sp = _check_spacing(spacing)
    if error == "none" or (not mask.any() and error != "empty"):
        return Degraded(mask.copy(), 1.0, error, severity)
    ctx = Context(spacing=sp, rng=rng,
                  neighbours={k: np.asarray(v, dtype=bool) for k, v in neighbours.items()}
                  if neighbours else None,
                  body=None if body is None else np.asarray(body, dtype=bool))
    out = OPERATIONS[error](mask, severity, ctx)
    return Degraded(out, dice(out, mask), error, severity)


def random_degradation(mask: np.ndarray, rng: np.random.Generator, *,
                       spacing: Sequence[float] = (1.0, 1.0, 1.0),
                       neighbours: dict[str, np.ndarray] | None = None,
                       body: np.ndarray | None = None,
                       errors: Sequence[str] = ERRORS) -> Degraded:
    """A degradation drawn uniformly from ``errors`` with a severity uniform in [0, 1].

    Over many draws the true Dice covers [0, 1] roughly evenly (see tests/degrade).
    """
    if not errors:
        raise ValueError("errors must name at least one degradation")
    error = str(errors[int(rng.integers(len(errors)))])
    severity = float(rng.random())
    return degrade(mask, error, severity, rng, spacing=spacing, neighbours=neighbours, body=body)
