"""The trunk phantoms' bowel and mesentery: a belly packed with loops, threaded with vessels.

:class:`TrunkBowel` is a part of :class:`~qsaudit.phantoms.trunk.TrunkAnatomy`. On real CT the
abdomen below the liver and stomach is packed: small-bowel loops of every calibre lie against
each other and against the solid organs, holding fluid, gas or swallowed (oral) contrast, and
the little fat left between them carries the mesenteric vessels as bright dots and threads.
Organs that float apart in clear fat are a phantom's look, not a patient's; a network that
learnt its boundaries there would not know the edges a curator's label follows in a real belly.
"""

from __future__ import annotations

import numpy as np

from qsaudit.phantoms.anatomy import level_z, smooth_gas, wander
from qsaudit.phantoms.canvas import Canvas
from qsaudit.phantoms.patient import Body
from qsaudit.phantoms.tissue import T

LOOP_STEP_MM = 8.0


class TrunkBowel:
    """Extra small-bowel loops and mesenteric vessels, mixed into
    :class:`~qsaudit.phantoms.trunk.TrunkAnatomy` before
    :class:`~qsaudit.phantoms.anatomy.Anatomy` (whose ``bowel`` it extends)."""

    b: Body
    c: Canvas
    rng: np.random.Generator
    inner: float

    def _belly(self) -> tuple[np.ndarray, np.ndarray]:
        """The mm box (lo, hi) that bowel loops and mesentery fill."""
        b = self.b
        lo = np.array([-(b.a - self.inner - 10), b.y_vb + 10, level_z(b, "L5") - 70])
        hi = np.array([b.a - self.inner - 10, b.b - self.inner - 6, level_z(b, "L1")])
        return lo, hi

    def bowel(self) -> None:
        """The abdominal phantom's loops and colon, then more loops wherever fat is left."""
        super().bowel()  # type: ignore[misc]
        c, rng = self.c, self.rng
        lo, hi = self._belly()
        box = c.box(tuple(lo), tuple(hi))
        if box is None:
            return
        # loops start in fat that is still free, so they fill the gaps the others left; the
        # candidates are read on a ~4 mm lattice (fine grids hold tens of millions of voxels)
        step = tuple(max(1, round(4.0 / s)) for s in c.spacing)
        lattice = np.argwhere(self.free(box)[::step[0], ::step[1], ::step[2]])  # type: ignore[attr-defined]
        if len(lattice) == 0:
            return
        n_loops = int(rng.integers(30, 50))
        for i in rng.integers(len(lattice), size=20 * n_loops):
            if n_loops == 0:
                break
            idx = tuple(int(lattice[i][a]) * step[a] + box[a].start for a in range(3))
            if c.struct[idx] != 0 or c.tissue[idx] != T["visceral_fat"]:
                continue
            n_loops -= 1
            start = np.array([c.x[idx[0]], c.y[idx[1]], c.z[idx[2]]], dtype=float)
            pts = wander(rng, start, steps=(12, 30), step_mm=LOOP_STEP_MM, keep=0.7, turn=0.55,
                         lo=lo, hi=hi)
            u = rng.random()
            content = ("oral_contrast" if u < 0.25 else "gas" if u < 0.35 else "bowel_fluid")
            radius = rng.uniform(8.0, 14.0)
            tube = c.paint_tube(pts, np.full(len(pts), radius), struct="small_bowel",
                                tissue=T[content], where=self.free)  # type: ignore[attr-defined]
            if content != "gas" and rng.random() < 0.3:  # a gas bubble at the top of the loop
                c.tissue[smooth_gas(tube, c, rng, share=0.25)] = T["gas"]
            self._wall(tube, T["bowel_wall"])  # type: ignore[attr-defined]

    def mesentery(self) -> None:
        """Mesenteric arteries and veins: thin threads of blood through the fat that is left."""
        c, rng = self.c, self.rng
        lo, hi = self._belly()

        def fat(box):
            return (c.struct[box] == 0) & (c.tissue[box] == T["visceral_fat"])

        for k in range(int(rng.integers(15, 35))):
            pts = wander(rng, lo + rng.random(3) * (hi - lo), steps=(5, 15), step_mm=6.0,
                         keep=0.8, turn=0.4, lo=lo, hi=hi)
            # small arteries and veins enhance with the phase as the iliac ones do
            tissue = T["iliac_artery"] if k % 2 else T["iliac_vein"]
            c.paint_tube(pts, np.full(len(pts), rng.uniform(1.0, 2.8)), struct=0,
                         tissue=tissue, where=fat)
