"""Per-patient body parameters drawn from sex and age (sizes in mm)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Body:
    """Body habitus of one phantom patient; all lengths in mm.

    ``a``/``b``: half width (left-right) and half depth (antero-posterior) of the abdomen;
    ``fat``: subcutaneous fat thickness; ``wall``: abdominal wall muscle thickness; ``level``:
    height of one vertebral level (body + disc); ``organ``: overall organ scale (about 1);
    ``jitter``: per-organ scale factors keyed by organ name.
    """

    a: float
    b: float
    fat: float
    wall: float
    level: float
    organ: float
    aorta_r: float
    jitter: dict[str, float]

    @property
    def y_vb(self) -> float:
        """Antero-posterior position of the vertebral body centre."""
        return -0.28 * self.b


def draw_body(rng: np.random.Generator, *, sex: str, age: int) -> Body:
    """Random body habitus: males larger, subcutaneous fat thicker in women and with age."""
    male = sex == "M"
    years = float(np.clip(age, 18, 95))
    fat = (14.0 if male else 22.0) + 0.22 * (years - 20) + rng.normal(0, 5)
    fat = float(np.clip(fat, 5, 50))
    wall = float(np.clip((13.0 if male else 10.0) - 0.05 * (years - 20) + rng.normal(0, 1.5), 5, 18))
    core_a = (128.0 if male else 118.0) + rng.normal(0, 8)
    core_b = (80.0 if male else 74.0) + rng.normal(0, 6) + 0.1 * (years - 20)
    names = ("liver", "spleen", "kidney", "stomach", "pancreas", "bowel", "bladder")
    return Body(
        a=float(core_a + fat), b=float(core_b + fat), fat=fat, wall=wall,
        level=float((35.0 if male else 32.5) * rng.uniform(0.94, 1.06)),
        organ=float((1.0 if male else 0.93) * rng.uniform(0.93, 1.07)),
        aorta_r=float(np.clip(9.0 + 0.045 * (years - 20) + rng.normal(0, 0.8), 8, 16)),
        jitter={n: float(rng.uniform(0.88, 1.12)) for n in names},
    )
