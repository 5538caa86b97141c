"""The trunk phantoms' labelled muscles: the deep back muscles in their gutters, and the gluteals.

:class:`TrunkMuscles` is a part of :class:`~qsaudit.phantoms.trunk.TrunkAnatomy` (it paints on
the same canvas, in the same template mm). The deep back muscles (TotalSegmentator's
``autochthon``) fill the gutter beside the spine: medially against the spinous processes and
laminae, in front on the transverse processes and the necks of the ribs, behind under the
thoracolumbar fascia and the thin back-wall muscles, bulging back beside the spinous processes.
The edges a curator's label follows there are bone, muscle against muscle and a thin fat plane,
so that is what the phantoms draw, not an ellipse floating in fat. Real muscle is marbled: thin
planes of fat run between its bundles, more with age and inactivity, and the label keeps them.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from qsaudit.degrade.fields import bbox, smooth_noise
from qsaudit.phantoms.anatomy import CANAL_DEPTH, level_z
from qsaudit.phantoms.canvas import SID, Canvas
from qsaudit.phantoms.patient import Body
from qsaudit.phantoms.tissue import T


class TrunkMuscles:
    """Back muscles and gluteals, mixed into an :class:`~qsaudit.phantoms.anatomy.Anatomy`
    (whose ``b``, ``c``, ``depth`` and ``_2d`` they use)."""

    b: Body
    c: Canvas
    rng: np.random.Generator
    depth: np.ndarray
    back_cover: tuple[float, float]
    fascia: float
    bulge: float

    def draw_back(self, rng: np.random.Generator) -> None:
        """Draw this patient's back: the muscle over the deep back muscles (trapezius,
        latissimus; mm at chest and lumbar level), the fat plane of the thoracolumbar fascia
        behind them (often invisible) and how far they bulge back beside the spine (mm)."""
        self.back_cover = (float(rng.uniform(2.0, 7.0)), float(rng.uniform(0.0, 2.5)))
        fascia = rng.uniform(0.6, 2.0)
        self.fascia = float(rng.choice([0.0, fascia]))
        self.bulge = float(rng.uniform(0.15, 0.6) * self.b.fat)

    def lumbar(self, Z) -> np.ndarray:
        """0 in the chest, rising from T12 to 1 at L2 and below."""
        z_top, z_low = level_z(self.b, "T12"), level_z(self.b, "L2")
        return np.clip((z_top - Z) / (z_top - z_low), 0.0, 1.0)

    def gutter_reach(self, Z) -> np.ndarray:
        """Lateral reach (mm from the midline) of the deep back muscles at height ``Z``."""
        return (40.0 + 16.0 * self.lumbar(Z)) * (self.b.a / 150.0)

    def across(self, X, Z, s: int, *, margin: float = 0.0) -> np.ndarray:
        """Position across the gutter on side ``s``: 0 at the spinous processes (2 mm from the
        midline), 1 at its lateral edge (grown by ``margin`` mm)."""
        return (s * X - 2.0) / (self.gutter_reach(Z) + margin)

    def gutter(self, X, Y, Z, s: int, *, margin: float = 0.0) -> np.ndarray:
        """The deep back muscles' space on side ``s`` (+1 right), grown by ``margin`` mm.

        Beside the spine, from the spinous processes out to about 4-6 cm, from the laminae and
        transverse processes back to the body wall: thickest beside the spine, with a rounded
        lateral edge, wider in the lumbar region than in the chest. The lungs stay in front of
        it (``chest``, ``thorax``).
        """
        b = self.b
        canal = b.y_vb - CANAL_DEPTH + 2.0  # 2 mm in front of the spinal canal's centre
        u = np.clip(self.across(X, Z, s, margin=margin), 0.0, None)
        back = -b.b + b.fat  # the posterior border (the fascia) at the midline
        # in front: on the laminae behind the canal, beside it on the transverse processes
        front = np.where(s * X < 15.0 - margin, canal - 12.0, canal + 5.0) + margin
        y_front = back + (front - back) * np.sqrt(np.clip(1.0 - u ** 2.5, 0.0, None))
        return (s * X > 2.0 - margin) & (u <= 1.0) & (Y <= y_front)

    def gutters(self, box, *, margin: float = 0.0) -> np.ndarray:
        """Voxels of ``box`` in either side's :meth:`gutter`, grown by ``margin`` mm."""
        X, Y, Z = self.c.coords(box)
        return self.gutter(X, Y, Z, 1, margin=margin) | self.gutter(X, Y, Z, -1, margin=margin)

    def autochthon(self, side: str, s: int) -> None:
        """Paint the deep back muscles of one side (``s`` +1 right) into their gutter.

        The bones, painted later, carve their shapes out of the muscle; a thin fat plane sits
        behind it when this patient's fascia shows.
        """
        b, c = self.b, self.c
        sacrum_top = level_z(b, "L5") - 0.5 * b.level
        (cover_chest, cover_lumbar), fascia = self.back_cover, self.fascia

        def region(X, Y, Z):
            return self.gutter(X, Y, Z, s) & (Z > sacrum_top)

        def cover(box):  # depth (mm) where the muscle's fascia starts, per voxel of ``box``
            X, _, Z = c.coords(box)
            t = self.lumbar(Z)
            # the muscles bulge back beside the spine, deepening the midline furrow
            u = np.clip(self.across(X, Z, s), 0.0, 1.0)
            return (b.fat + cover_chest + (cover_lumbar - cover_chest) * t
                    - self.bulge * np.clip(np.sin(np.pi * u), 0.0, None) ** 0.8)

        def under_cover(box):
            depth = self._2d(self.depth, box)
            return (depth >= cover(box) + fascia) & (c.struct[box] == 0)

        xs = sorted((s * 2.0, s * (2.0 + 60.0 * b.a / 150.0)))
        ys = (-b.b, b.y_vb - 10.0)
        c.paint(region, (xs[0], ys[0], sacrum_top), (xs[1], ys[1], c.z[-1]),
                struct=f"autochthon_{side}", tissue=T["muscle"], where=under_cover)
        if fascia > 0:  # the fat plane just behind the muscle
            sid = SID[f"autochthon_{side}"]

            def plane(box):
                grown = ndi.binary_dilation(c.struct[box] == sid, iterations=2)
                depth = self._2d(self.depth, box)
                start = cover(box)
                return grown & (c.struct[box] == 0) & (depth >= start) & (
                    depth < start + fascia)

            c.paint(lambda X, Y, Z: np.True_, (xs[0] - 5, ys[0], sacrum_top),
                    (xs[1] + 5, ys[1], c.z[-1]), struct=0, tissue=T["subcutaneous_fat"],
                    where=plane)

    def gluteals(self) -> None:
        """Gluteus medius beside the iliac wings, gluteus maximus behind the pelvis."""
        b, c = self.b, self.c
        y0 = b.y_vb
        l5 = level_z(b, "L5")
        body = lambda box: (self._2d(self.depth, box) > b.fat) & (c.struct[box] == 0)
        for side, s in (("left", -1), ("right", 1)):
            def medius(X, Y, Z, s=s):
                t = np.clip((l5 - 30 - Z) / 120, 0, 1)
                return ((s * X > 40 + 0.45 * b.a + 10 * t) & (Y < y0 + 40 - 30 * t) & (Y > y0 - 55)
                        & (Z < l5 - 30) & (Z > l5 - 150))

            c.paint(medius, (-b.a, -b.b, l5 - 150), (b.a, b.b, l5 - 30),
                    struct=f"gluteus_medius_{side}", tissue=T["muscle"], where=body)

            def maximus(X, Y, Z, s=s):
                t = np.clip((l5 - 60 - Z) / 150, 0, 1)
                return ((s * X > 12) & (Y < y0 - 45 + 40 * t) & (Z < l5 - 60))

            c.paint(maximus, (-b.a, -b.b, c.z[0]), (b.a, b.b, l5 - 60),
                    struct=f"gluteus_maximus_{side}", tissue=T["muscle"], where=body)

    def marble(self, names: tuple[str, ...]) -> None:
        """Thin fat planes between the bundles of the labelled muscles ``names`` (label kept).

        One share of fat per patient, most lean (0-15% of the muscle, a few up to 25%): the
        voxels near the zero crossings of a smooth random field (about 6 mm grain), i.e.
        sheets and threads rather than blobs.
        """
        c = self.c
        share = float(self.rng.uniform(0.0, 0.5) ** 2)
        if share < 0.01:
            return
        for name in names:
            mask = c.struct == SID[name]
            if not mask.any():
                continue
            box = bbox(mask)
            field = np.abs(smooth_noise(mask[box].shape, c.spacing, 6.0, self.rng))
            inside = mask[box]
            cut = np.quantile(field[inside], share)
            c.tissue[box][inside & (field < cut)] = T["subcutaneous_fat"]
