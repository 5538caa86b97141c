"""The phantom's anatomy: parametric organs painted into a :class:`Canvas` in template mm.

Each organ is a simple shape (ellipsoid, tube, clipped region) placed relative to the spine and
the body wall, so that organs touch where real ones do (liver on the right kidney and under the
diaphragm, spleen on the left kidney and stomach, aorta on the vertebral bodies, IVC beside it).
Painting order sets precedence: bowel < solid organs < vessels < muscles and bones.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from qsaudit.degrade.fields import bbox, smooth_noise
from qsaudit.phantoms.canvas import SID, Canvas
from qsaudit.phantoms.patient import Body
from qsaudit.phantoms.tissue import T

LEVELS = ("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5")


UPPER_LEVELS = ("C7", "T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9")  # trunk phantoms


CANAL_DEPTH = 26.0  # mm from a vertebral body's centre back to the spinal canal's centre


def level_height(body: Body, name: str) -> float:
    """Height (mm) of one vertebral level: ``body.level`` from T10 down, smaller above."""
    if name not in UPPER_LEVELS:
        return body.level
    k = UPPER_LEVELS.index(name)  # C7 = 0, T9 = 9
    return body.level * (0.68 + 0.03 * k)


def level_z(body: Body, name: str) -> float:
    """Centre height (mm) of a vertebral level; L1 is at 0, higher levels are superior."""
    if name in LEVELS:
        return (LEVELS.index("L1") - LEVELS.index(name)) * body.level
    z, below = level_z(body, "T10"), body.level
    for upper in reversed(UPPER_LEVELS[UPPER_LEVELS.index(name):]):
        h = level_height(body, upper)
        z += 0.5 * (below + h)
        below = h
    return z


def diaphragm_top(body: Body) -> float:
    """Height (mm) of the right hemidiaphragm dome, the top of the abdomen."""
    return level_z(body, "T10") + 0.25 * body.level


class Anatomy:
    """Paints one patient's anatomy; ``paint()`` fills the canvas."""

    def __init__(self, canvas: Canvas, body: Body, rng: np.random.Generator):
        self.c, self.b, self.rng = canvas, body, rng
        X, Y = np.meshgrid(canvas.x, canvas.y, indexing="ij")
        theta = np.arctan2(Y, X)
        p = 2.4
        r_skin = 1.0 / ((np.abs(np.cos(theta) / body.a) ** p
                         + np.abs(np.sin(theta) / body.b) ** p) ** (1 / p))
        self.depth = (r_skin - np.hypot(X, Y)).astype(np.float32)  # mm below the skin (2-D)
        top = diaphragm_top(body)
        yc = body.y_vb + 15
        right = top - 5.5e-3 * ((X - 60) ** 2 + (Y - yc) ** 2)
        left = top - 0.35 * body.level - 5.5e-3 * ((X + 60) ** 2 + (Y - yc) ** 2)
        recess = 0.45 * np.clip(yc - Y, 0, None)  # posterior costophrenic recesses reach lower
        self.zd = (np.maximum(right, left) - recess).astype(np.float32)
        self.inner = body.fat + body.wall  # depth of the body cavity

    # -- region helpers ---------------------------------------------------------------------
    def _2d(self, arr: np.ndarray, box) -> np.ndarray:
        return arr[box[0], box[1]][:, :, None]

    def cavity(self, box, *, extra: float = 0.0) -> np.ndarray:
        """Inside the body cavity (below skin, fat and wall muscle), ``extra`` mm deeper."""
        return self._2d(self.depth, box) >= self.inner + extra

    def abdomen(self, box, *, gap: float = 4.0) -> np.ndarray:
        """Body cavity below the diaphragm (``gap`` mm under it)."""
        Z = self.c.z[box[2]][None, None, :]
        return self.cavity(box) & (Z < self._2d(self.zd, box) - gap)

    def thorax(self, box) -> np.ndarray:
        """Body cavity above the diaphragm muscle."""
        Z = self.c.z[box[2]][None, None, :]
        return self.cavity(box, extra=4.0) & (Z > self._2d(self.zd, box) + 4.0)

    def free(self, box) -> np.ndarray:
        """Abdominal voxels still holding only visceral fat."""
        return self.abdomen(box) & (self.c.tissue[box] == T["visceral_fat"])

    def _jit(self, scale: float = 6.0) -> np.ndarray:
        return self.rng.normal(0.0, scale, 3)

    # -- the body ------------------------------------------------------------------------------
    def paint(self) -> None:
        """Paint everything, in precedence order."""
        self.body_wall()
        self.thoracic()
        self.bowel()
        self.stomach_duodenum()
        self.liver()
        self.spleen()
        self.pancreas()
        self.kidneys_adrenals()
        self.gallbladder()
        self.bladder()
        self.vessels()
        self.muscles()
        self.spine()
        self.pelvis()
        self.ribs()

    def body_wall(self) -> None:
        b, c = self.b, self.c
        d = self.depth[:, :, None]
        for depth, tissue in ((0.0, T["subcutaneous_fat"]), (b.fat, T["muscle"]),
                              (self.inner, T["visceral_fat"])):
            c.tissue[np.broadcast_to(d >= depth, c.shape)] = tissue

    def thoracic(self) -> None:
        b, c = self.b, self.c
        lo, hi = (-b.a, -b.b, float(self.zd.min())), (b.a, b.b, c.z[-1] + 1)
        top = diaphragm_top(b)
        zd = self.zd

        def muscle_band(box):  # the diaphragm itself
            zz = self._2d(zd, box)
            Z = c.z[box[2]][None, None, :]
            return self.cavity(box) & (Z >= zz - 4.0) & (Z <= zz + 4.0)

        c.paint(lambda X, Y, Z: np.ones(Z.shape, bool), lo, hi, struct=0, tissue=T["muscle"],
                where=muscle_band)
        for side, s in (("left", -1), ("right", 1)):
            # at the lung bases nearly all lung is lower lobe; the lobes above are left out
            c.paint(lambda X, Y, Z, s=s: s * X > 14.0, lo, hi, struct=f"lung_lower_lobe_{side}",
                    tissue=T["lung"], where=self.thorax)
        hc = np.array([-22.0, b.y_vb + 78, top + 0.9 * b.level]) + self._jit(4)
        hr = np.array([62.0, 48.0, 55.0]) * b.organ
        c.paint(lambda X, Y, Z: ((X - hc[0]) / hr[0]) ** 2 + ((Y - hc[1]) / hr[1]) ** 2
                + ((Z - hc[2]) / hr[2]) ** 2 <= 1, hc - hr, hc + hr, struct="heart",
                tissue=T["blood_heart"], where=self.thorax)

    def bowel(self) -> None:
        b, c, rng = self.b, self.c, self.rng
        lo = np.array([-75.0, b.y_vb + 35, level_z(b, "L5") - 30])
        hi = np.array([75.0, b.b - self.inner - 15, level_z(b, "L2")])
        r = 13.5 * b.jitter["bowel"]
        for _ in range(10):
            pts = wander(rng, lo + rng.random(3) * (hi - lo), steps=30, step_mm=9.0, keep=0.75,
                         turn=0.5, lo=lo, hi=hi)
            tube = c.paint_tube(pts, np.full(len(pts), r), struct="small_bowel",
                                tissue=T["bowel_fluid"], where=self.free)
            self._wall(tube, T["bowel_wall"])
        # colon: a frame around the small bowel, ending in the rectum
        y0 = b.y_vb
        front = b.b - self.inner - 22
        path = np.array([
            (88, y0 + 45, level_z(b, "L4")), (95, y0 + 30, level_z(b, "L3")),
            (88, y0 + 45, level_z(b, "L1") - 10), (40, front, level_z(b, "L2")),
            (-10, front, level_z(b, "L2") - 15), (-55, front - 10, level_z(b, "L1") - 10),
            (-88, y0 + 40, level_z(b, "T12")), (-100, y0 + 25, level_z(b, "L2")),
            (-95, y0 + 25, level_z(b, "L4")), (-60, y0 + 45, level_z(b, "L5") - 30),
            (-15, y0 + 55, level_z(b, "L5") - 55), (0, y0 - 5, level_z(b, "L5") - 75),
            (0, y0 - 15, level_z(b, "L5") - 140)], float)
        path[1:-1, :2] += rng.normal(0, 5, (len(path) - 2, 2))
        radii = np.array([27, 24, 22, 20, 20, 20, 20, 18, 18, 17, 16, 18, 16], float)
        tube = c.paint_tube(path, radii, struct="colon", tissue=T["stool"], where=self.abdomen)
        gas = smooth_gas(tube, c, rng, share=0.35)
        c.tissue[gas] = T["gas"]

    def _wall(self, tube: np.ndarray, tissue: int) -> None:
        if not tube.any():
            return
        box = bbox(tube, margin=1)
        sub = tube[box]
        rim = sub & ~ndi.binary_erosion(sub)
        self.c.tissue[box][rim & (self.c.struct[box] == self.c.struct[box][sub].max())] = tissue

    def stomach_duodenum(self) -> None:
        b, c = self.b, self.c
        y0, top = b.y_vb, diaphragm_top(b)
        s = b.jitter["stomach"] * b.organ
        path = np.array([(-55, y0 + 20, top - 30), (-62, y0 + 45, top - 65),
                         (-45, y0 + 70, top - 105), (-10, y0 + 85, top - 125),
                         (22, y0 + 80, top - 122), (30, y0 + 72, top - 120)], float)
        path[:, :3] += self._jit(5)
        radii = np.array([36, 34, 28, 22, 16, 12], float) * s
        tube = c.paint_tube(path, radii, struct="stomach", tissue=T["stomach_content"],
                            where=self.abdomen)
        self._wall(tube, T["stomach_wall"])
        ys = c.y[None, :, None]
        if tube.any():  # trunk phantoms may leave the stomach out of the field of view
            level = np.quantile(np.broadcast_to(ys, tube.shape)[tube],
                                self.rng.uniform(0.7, 0.85))
            c.tissue[tube & (ys > level) & ~(c.tissue == T["stomach_wall"])] = T["gas"]
        duo = np.array([(30, y0 + 72, top - 120), (55, y0 + 50, top - 128),
                        (60, y0 + 38, top - 165), (22, y0 + 36, top - 180),
                        (-18, y0 + 40, top - 168)], float)
        tube = c.paint_tube(duo, np.full(5, 12.0 * s), struct="duodenum",
                            tissue=T["bowel_fluid"], where=self.abdomen)
        self._wall(tube, T["bowel_wall"])

    def liver(self) -> None:
        b, c = self.b, self.c
        s = b.jitter["liver"] * b.organ
        top = diaphragm_top(b)
        cx, cz = 40.0, top - 70 * s
        rx, ry, rz = 130 * s, 120 * s, 100 * s
        y0 = b.y_vb

        def region(X, Y, Z):
            ell = ((X - cx) / rx) ** 2 + ((Y - 5) / ry) ** 2 + ((Z - cz) / rz) ** 2 <= 1
            left_lobe = (X > 10) | ((Y > 12 + 0.55 * (10 - X)) & (Z > top - 95 + 0.3 * (10 - X)))
            inferior = Z > top - 175 * s + 0.38 * (130 - X)
            not_spine = ((X + 5) / 55) ** 2 + ((Y - y0 + 5) / 42) ** 2 > 1
            return ell & left_lobe & inferior & not_spine

        lo = (cx - rx, -b.b, cz - rz)
        hi = (cx + rx, b.b, top + 5)
        c.paint(region, lo, hi, struct="liver", tissue=T["liver"], where=self.abdomen)
        liver = c.struct == SID["liver"]
        hilum = np.array([35.0, y0 + 45, top - 110])
        for _ in range(7):  # portal and hepatic veins branching from the hilum
            d = self.rng.normal(size=3) * (1.0, 0.7, 0.6) + (0.6, 0, 0.4)
            d /= np.linalg.norm(d)
            pts = np.array([hilum + d * t for t in (0, 40, 80, 120)])
            pts += self.rng.normal(0, 6, pts.shape)
            c.paint_tube(pts, np.array([6.0, 4.5, 3.5, 2.5]), struct="liver",
                         tissue=T["hepatic_vessel"], where=lambda box: liver[box])

    def spleen(self) -> None:
        b, c = self.b, self.c
        s = b.jitter["spleen"] * b.organ
        centre = np.array([-(b.a - self.inner - 28), b.y_vb - 20, level_z(b, "T11") - 15])
        centre += self._jit(4)
        ang = np.deg2rad(-50)
        r1, r2, r3 = 60 * s, 24 * s, 52 * s

        def region(X, Y, Z):
            u = (X - centre[0]) * np.cos(ang) + (Y - centre[1]) * np.sin(ang)
            v = -(X - centre[0]) * np.sin(ang) + (Y - centre[1]) * np.cos(ang)
            return (u / r2) ** 2 + (v / r1) ** 2 + ((Z - centre[2]) / r3) ** 2 <= 1

        c.paint(region, centre - 70, centre + 70, struct="spleen", tissue=T["spleen"],
                where=self.abdomen)

    def pancreas(self) -> None:
        b, c = self.b, self.c
        y0, s = b.y_vb, b.jitter["pancreas"] * b.organ
        z1 = level_z(b, "L1")
        pts = np.array([(38, y0 + 52, z1 - 25), (10, y0 + 62, z1 - 8), (-30, y0 + 55, z1 + 2),
                        (-72, y0 + 22, z1 + 16), (-88, y0 + 8, z1 + 24)], float)
        pts += self.rng.normal(0, 3, pts.shape)
        c.paint_tube(pts, np.array([15, 11, 11, 9, 8]) * s, struct="pancreas",
                     tissue=T["pancreas"], where=self.abdomen)

    def kidneys_adrenals(self) -> None:
        b, c = self.b, self.c
        s = b.jitter["kidney"] * b.organ
        for side, sign, zc in (("left", -1, level_z(b, "L1") - 0.2 * b.level),
                               ("right", 1, level_z(b, "L1") - 0.7 * b.level)):
            centre = np.array([sign * 72.0, b.y_vb - 8, zc]) + self._jit(4)
            r = np.array([26.0, 22.0, 52.0]) * s
            hil = np.array([-sign * 0.8, 0.6, 0.0])

            def rho(X, Y, Z, centre=centre, r=r):
                return np.sqrt(((X - centre[0]) / r[0]) ** 2 + ((Y - centre[1]) / r[1]) ** 2
                               + ((Z - centre[2]) / r[2]) ** 2)

            def hilum(X, Y, Z, centre=centre, r=r, hil=hil):
                proj = ((X - centre[0]) / r[0]) * hil[0] + ((Y - centre[1]) / r[1]) * hil[1]
                return (proj > 0.25) & (np.abs(Z - centre[2]) < 0.4 * r[2])

            lo, hi = centre - r, centre + r
            name = f"kidney_{side}"
            c.paint(lambda X, Y, Z, f=rho: f(X, Y, Z) <= 1, lo, hi, struct=name,
                    tissue=T["kidney_cortex"], where=self.abdomen)
            mine = c.struct == SID[name]
            c.paint(lambda X, Y, Z, f=rho: (f(X, Y, Z) > 0.35) & (f(X, Y, Z) < 0.72), lo, hi,
                    struct=name, tissue=T["kidney_medulla"], where=lambda box, m=mine: m[box])
            c.paint(lambda X, Y, Z, f=rho, h=hilum: h(X, Y, Z) & (f(X, Y, Z) < 0.9), lo, hi,
                    struct=name, tissue=T["renal_pelvis"], where=lambda box, m=mine: m[box])
            c.paint(lambda X, Y, Z, f=rho, h=hilum: h(X, Y, Z) & (f(X, Y, Z) >= 0.9), lo, hi,
                    struct=0, tissue=T["renal_sinus_fat"], where=lambda box, m=mine: m[box])
            ac = np.array([sign * 45.0, b.y_vb + 8, centre[2] + r[2] + 4])
            ar = np.array([5.0, 13.0, 16.0])
            c.paint(lambda X, Y, Z, ac=ac, ar=ar: (((X - ac[0]) / ar[0]) ** 2
                    + ((Y - ac[1]) / ar[1]) ** 2 + ((Z - ac[2]) / ar[2]) ** 2) <= 1,
                    ac - ar, ac + ar, struct=f"adrenal_gland_{side}", tissue=T["adrenal"],
                    where=self.abdomen)

    def gallbladder(self) -> None:
        b, c = self.b, self.c
        top = diaphragm_top(b)
        gc = np.array([48.0, b.y_vb + 80, top - 130]) + self._jit(4)
        gr = np.array([15.0, 17.0, 32.0]) * b.organ

        def region(X, Y, Z):
            taper = 1.0 + 0.35 * np.clip((Z - gc[2]) / gr[2], -1, 1)  # fundus down, neck up
            return (((X - gc[0]) / gr[0] * taper) ** 2 + ((Y - gc[1]) / gr[1] * taper) ** 2
                    + ((Z - gc[2]) / gr[2]) ** 2) <= 1

        c.paint(region, gc - gr, gc + gr, struct="gallbladder", tissue=T["gallbladder_bile"],
                where=self.abdomen)

    def bladder(self) -> None:
        b, c = self.b, self.c
        fill = b.jitter["bladder"] * self.rng.uniform(0.7, 1.1)
        bc = np.array([0.0, b.y_vb + 85, level_z(b, "L5") - 115])
        br = np.array([45.0, 35.0, 35.0]) * fill
        c.paint(lambda X, Y, Z: (((X - bc[0]) / br[0]) ** 2 + ((Y - bc[1]) / br[1]) ** 2
                + ((Z - bc[2]) / br[2]) ** 2) <= 1, bc - br, bc + br, struct="urinary_bladder",
                tissue=T["urine"], where=self.cavity)

    def vessel_tops(self) -> tuple[float, float]:
        """Heights (mm) where the abdominal aorta and the IVC start: above the field of view."""
        top = float(self.c.z[-1] + 5)
        return top, top

    def vessels(self) -> None:
        b, c = self.b, self.c
        y0 = b.y_vb
        top_aorta, top_ivc = self.vessel_tops()
        bif = level_z(b, "L4") + 0.3 * b.level
        ra = b.aorta_r
        ya = y0 + 17 + ra + 2
        aorta = np.array([(-14, ya - 22, top_aorta), (-14, ya - 12, diaphragm_top(b) - 20),
                          (-12, ya, bif)], float)
        c.paint_tube(aorta, np.array([ra + 1, ra, ra - 1]), struct="aorta", tissue=T["aorta"])
        conf = level_z(b, "L5") + 0.2 * b.level
        self.ivc(np.array([(28, y0 + 60, top_ivc), (28, y0 + 40, diaphragm_top(b) - 40),
                           (24, y0 + 32, level_z(b, "L2")), (18, y0 + 30, conf)], float),
                 np.array([14.0, 13.0, 11.0, 11.0]))
        low = level_z(b, "L5") - 120
        for side, s in (("left", -1), ("right", 1)):
            c.paint_tube(np.array([(-12, ya, bif), (s * 35, y0 + 42, bif - 60),
                                   (s * 62, y0 + 55, low)], float), np.array([7.0, 6.5, 6.0]),
                         struct=f"iliac_artery_{side}", tissue=T["iliac_artery"])
            c.paint_tube(np.array([(18, y0 + 30, conf), (s * 35, y0 + 24, conf - 50),
                                   (s * 60, y0 + 38, low)], float), np.array([9.0, 8.5, 8.0]),
                         struct=f"iliac_vena_{side}", tissue=T["iliac_vein"])

    def ivc(self, path: np.ndarray, radii: np.ndarray) -> None:
        """The inferior vena cava along ``path`` (N, 3 mm, from the top down): a round tube."""
        self.c.paint_tube(path, radii, struct="inferior_vena_cava", tissue=T["ivc"])

    def muscles(self) -> None:
        """The back muscles (autochthon) and iliopsoas of each side."""
        for side, s in (("left", -1), ("right", 1)):
            self.autochthon(side, s)
            self.iliopsoas(side, s)

    def autochthon(self, side: str, s: int) -> None:
        """The deep back muscles of one side (``s`` +1 right): an ellipse beside the spine."""
        b, c = self.b, self.c
        y0 = b.y_vb
        back = -b.b + self.inner
        sacrum_top = level_z(b, "L5") - 0.5 * b.level
        yc = (back + y0 - 30) / 2

        def erector(X, Y, Z):
            return (((X - s * 36) / 28) ** 2 + ((Y - yc) / 24) ** 2 <= 1) & (Z > sacrum_top)

        c.paint(erector, (-80, -b.b, c.z[0]), (80, y0, c.z[-1]), struct=f"autochthon_{side}",
                tissue=T["muscle"], where=lambda box: self._2d(self.depth, box) > b.fat)

    def iliopsoas(self, side: str, s: int) -> None:
        """Psoas of one side: from L1 down beside the spine, widening into the pelvis."""
        b, c = self.b, self.c
        y0 = b.y_vb
        z1 = level_z(b, "L1")

        def psoas(X, Y, Z):
            t = np.clip(z1 - Z, 0, None)
            r = np.clip(5 + 0.16 * t, 5, 26)
            cx = s * (26 + 0.13 * t)
            cy = y0 - 4 + 0.12 * t
            return ((X - cx) ** 2 + (Y - cy) ** 2 <= r * r) & (Z < z1 + 10)

        c.paint(psoas, (-120, y0 - 40, c.z[0]), (120, y0 + 70, z1 + 10),
                struct=f"iliopsoas_{side}", tissue=T["muscle"], where=self.cavity)

    spine_levels: tuple[str, ...] = LEVELS
    hollow_canal = False  # leave the spinal canal out of the vertebrae (trunk phantoms)

    def vertebra_size(self, name: str) -> tuple[float, float]:
        """Half width and half depth (mm) of a vertebral body."""
        if name in UPPER_LEVELS:  # from 14 x 12 mm at C7 to 18 x 15 mm at T9
            k = UPPER_LEVELS.index(name) / (len(UPPER_LEVELS) - 1)
            return 14.0 + 4.0 * k, 12.0 + 3.0 * k
        return (23.0, 17.0) if name.startswith("L") else (18.0, 15.0)

    def spine(self) -> None:
        b, c = self.b, self.c
        y0 = b.y_vb
        bone = np.zeros(c.shape, dtype=bool)
        yc0, hollow = y0 - CANAL_DEPTH, self.hollow_canal
        for name in self.spine_levels:
            zc, h = level_z(b, name), level_height(b, name)
            lumbar = name.startswith("L")
            rx, ry = self.vertebra_size(name)
            yc_canal = y0 - ry - 9

            def vertebra(X, Y, Z, zc=zc, rx=rx, ry=ry, yc=yc_canal, lumbar=lumbar, h=h):
                body = (((X / rx) ** 2 + ((Y - y0) / ry) ** 2) <= 1) & (np.abs(Z - zc) < 0.38 * h)
                zp = zc - 0.08 * h
                ring = (((X / 16) ** 2 + ((Y - yc) / 14) ** 2) <= 1) & (np.abs(Z - zp) < 0.3 * h)
                spinous = ((np.abs(X) < 3.5) & (Y < yc - 8) & (Y > yc - 30)
                           & (np.abs(Z - zp + 0.3 * (Y - yc + 8)) < 0.15 * h))
                tp = ((np.abs(X) > 12) & (np.abs(X) < (36 if lumbar else 28))
                      & (np.abs(Y - yc - 2) < 4) & (np.abs(Z - zp) < 0.08 * h))
                out = body | ring | spinous | tp
                if hollow:
                    out &= ((X / 9) ** 2 + ((Y - yc0) / 7.5) ** 2) > 1
                return out

            lo, hi = (-50, yc_canal - 45, zc - 0.5 * h), (50, y0 + ry + 1, zc + 0.5 * h)
            c.paint(vertebra, lo, hi, struct=f"vertebrae_{name}", tissue=T["marrow"])
            box = c.box(lo, hi)
            if box is not None:
                bone[box] |= c.struct[box] == SID[f"vertebrae_{name}"]
            disc_z = zc - 0.5 * h
            c.paint(lambda X, Y, Z, dz=disc_z, h=h: (((X / 22) ** 2 + ((Y - y0) / 16) ** 2) <= 1)
                    & (np.abs(Z - dz) < 0.12 * h), (-25, y0 - 18, disc_z - 8),
                    (25, y0 + 18, disc_z + 8), struct=0, tissue=T["disc"])
        self.canal(yc0)
        self._cortex(bone)

    def canal(self, yc: float) -> None:
        c = self.c
        c.paint(lambda X, Y, Z: ((X / 9) ** 2 + ((Y - yc) / 7.5) ** 2) <= 1,
                (-10, yc - 9, c.z[0]), (10, yc + 9, c.z[-1]), struct=0, tissue=T["csf"],
                where=lambda box: c.struct[box] == 0)

    def _cortex(self, bone: np.ndarray) -> None:
        shell = bone & ~ndi.binary_erosion(bone, iterations=1)
        self.c.tissue[shell] = T["cortical_bone"]

    def pelvis(self) -> None:
        b, c = self.b, self.c
        y0, h = b.y_vb, b.level
        top = level_z(b, "L5") - 0.5 * h
        bone = np.zeros(c.shape, dtype=bool)

        def sacrum(X, Y, Z):
            t = np.clip(top - Z, 0, None)
            half_w = np.clip(52 - 0.35 * t, 14, None)
            yc = y0 - 0.5 * t + 0.004 * X ** 2  # concave front, wings (alae) swept back
            half_d = np.clip(17 - 0.06 * t, 7, None) * (1 - 0.4 * (X / half_w) ** 2)
            canal = (X ** 2 / 64 + (Y - yc + half_d * 0.3) ** 2 / 16) <= 1
            return (np.abs(X) < half_w) & (np.abs(Y - yc) < half_d) & (Z < top) & ~canal

        lo, hi = (-55, y0 - 80, top - 140), (55, y0 + 20, top)
        c.paint(sacrum, lo, hi, struct="sacrum", tissue=T["marrow"])
        bone |= c.struct == SID["sacrum"]
        for side, s in (("left", -1), ("right", 1)):
            hc = np.array([s * 40.0, y0 + 5, top - 40])
            hr = np.array([75.0, 70.0, 80.0]) * (b.a / 150)

            def wing(X, Y, Z, hc=hc, hr=hr, s=s):
                e = ((X - hc[0]) / hr[0]) ** 2 + ((Y - hc[1]) / hr[1]) ** 2 \
                    + ((Z - hc[2]) / hr[2]) ** 2
                return ((e <= 1) & (e >= 0.78) & (s * (X - hc[0]) > -10) & (Y < hc[1] + 45)
                        & (Z > hc[2] - 70))

            c.paint(wing, hc - hr, hc + hr, struct=f"hip_{side}", tissue=T["marrow"],
                    where=lambda box: self._2d(self.depth, box) >= b.fat)
            bone |= c.struct == SID[f"hip_{side}"]
        self._cortex(bone)

    def ribs(self) -> None:
        """Unlabelled ribs in the chest wall: oblique bands that run lower anteriorly."""
        b, c = self.b, self.c
        start = level_z(b, "L1") + 0.3 * b.level
        pitch = 0.95 * b.level
        box_lo, box_hi = (-b.a, -b.b, start - 60), (b.a, b.b, c.z[-1])
        box = c.box(box_lo, box_hi)
        if box is None:
            return
        X, Y, Z = c.coords(box)
        dd = self.depth[box[0], box[1]][:, :, None]
        phi = np.arctan2(np.abs(X), -Y)  # 0 at the spine, pi at the sternum
        zz = Z + 95.0 * phi / np.pi  # each rib runs down from the spine to the front
        sel = ((np.mod(zz - start, pitch) < 0.3 * pitch) & (dd > b.fat + 2) & (dd < b.fat + 8)
               & (zz > start) & (phi > 0.35) & (phi < 2.7))
        sel &= c.struct[box] == 0
        c.tissue[box][sel] = T["cortical_bone"]


def smooth_gas(region: np.ndarray, c: Canvas, rng: np.random.Generator, *,
               share: float) -> np.ndarray:
    """A blobby ``share`` of ``region`` (bowel gas pockets), as a bool volume."""
    field = smooth_noise(region.shape, c.spacing, 14.0, rng)
    vals = field[region]
    if vals.size == 0:
        return region
    return region & (field > np.quantile(vals, 1 - share))


def wander(rng: np.random.Generator, start: np.ndarray, *, steps: int | tuple[int, int],
           step_mm: float, keep: float, turn: float, lo: np.ndarray, hi: np.ndarray
           ) -> np.ndarray:
    """A random walk through the mm box [``lo``, ``hi``] from ``start``: the centre line of a
    bowel loop or a small vessel.

    Each of ``steps`` moves (a number, or a ``(low, high)`` range drawn after the first heading)
    goes ``step_mm`` along a heading that is ``keep`` parts the last one and ``turn`` parts a
    random one. Returns the ``(moves + 1, 3)`` points, clipped to the box.
    """
    p = np.asarray(start, dtype=float).copy()
    v = rng.normal(size=3)
    n = steps if isinstance(steps, int) else int(rng.integers(*steps))
    pts = [p.copy()]
    for _ in range(n):
        v = keep * v / np.linalg.norm(v) + turn * rng.normal(size=3)
        v /= np.linalg.norm(v)
        p = np.clip(p + step_mm * v, lo, hi)
        pts.append(p.copy())
    return np.array(pts)
