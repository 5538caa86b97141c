"""The trunk phantoms' arms below the shoulder: the humerus' lower end and the forearm bones.

:class:`TrunkLimbs` is a part of :class:`~qsaudit.phantoms.trunk.TrunkAnatomy`. With the arms
down beside the trunk, an abdominal CT cuts the arm near the elbow: the humerus there is no
round shaft but flares into the flat, wide condyles (about 6 cm across, 2 cm deep, thin cortex
over trabecular bone), turned by however the arm is rotated, and below the elbow the forearm
holds two more bones, the ulna and the radius, that belong to no TotalSegmentator label of the
trunk. A humerus label must stop where the humerus does.
"""

from __future__ import annotations

import numpy as np

from qsaudit.phantoms.canvas import Canvas
from qsaudit.phantoms.tissue import T

HUMERUS_LENGTH_MM = 300.0  # shoulder (T1 height) to the elbow, arms down
FLARE_MM = 75.0  # the lower humerus widens over this height above the elbow


class TrunkLimbs:
    """The elbow and forearm of each arm, mixed into
    :class:`~qsaudit.phantoms.trunk.TrunkAnatomy` (whose ``c``, ``arm`` and ``rng`` it
    uses)."""

    c: Canvas
    arm: tuple[float, float]
    rng: np.random.Generator

    def elbow(self, side: str, s: int, axis: np.ndarray, z_elbow: float) -> np.ndarray:
        """Paint the condyles of ``humerus_{side}`` (marrow; the caller gives the whole bone its
        cortex) and the forearm bones below them; return the condyles' bool mask.

        ``axis`` is the humerus' centre (x, y mm) at the elbow, ``z_elbow`` the elbow's height.
        """
        c = self.c
        turn = float(self.rng.uniform(-0.7, 0.7))  # rotation of the arm (rad)
        cos, sin = np.cos(turn), np.sin(turn)
        width = float(self.rng.uniform(26.0, 32.0))  # half the span of the epicondyles
        depth = float(self.rng.uniform(8.0, 10.5))
        top = z_elbow + FLARE_MM

        def along(X, Y):  # coordinates along (u) and across (v) the epicondylar axis
            dx, dy = X - axis[0], Y - axis[1]
            return s * (dx * cos + dy * sin), -dx * sin + dy * cos

        def condyles(X, Y, Z):
            t = np.clip((top - Z) / FLARE_MM, 0.0, 1.0) ** 1.6  # 0 at the shaft, 1 at the elbow
            u, v = along(X, Y)
            half_u = 10.5 + (width - 10.5) * t
            half_v = 10.5 + (depth - 10.5) * t
            return ((u / half_u) ** 2 + (v / half_v) ** 2 <= 1) & (Z > z_elbow - 12) & (Z < top)

        lo, hi = (axis[0] - 40, axis[1] - 40, z_elbow - 12), (axis[0] + 40, axis[1] + 40, top)
        box = c.box(lo, hi)
        flare = np.zeros(c.shape, dtype=bool)
        if box is not None:
            c.paint(condyles, lo, hi, struct=f"humerus_{side}", tissue=T["marrow"])
            flare[box] = condyles(*c.coords(box))
        # the forearm: the ulna behind-inside, the radius in front-outside, a few mm below
        for offset, radius in ((-0.45, 8.0), (0.5, 6.5)):
            u = offset * width
            start = np.array([axis[0] + s * u * cos, axis[1] + s * u * sin, z_elbow - 16])
            path = np.array([start, start + (s * 4.0, 6.0, -260.0)])
            outer = c.paint_tube(path, np.full(2, radius), struct=0,
                                 tissue=T["cortical_bone"],
                                 where=lambda b: c.struct[b] == 0)
            c.paint_tube(path, np.full(2, radius - 2.2), struct=0, tissue=T["yellow_marrow"],
                         where=lambda b, o=outer: o[b])
        return flare
