"""The whole trunk: the abdominal anatomy plus chest, shoulder girdle, ribs and hips.

:class:`TrunkAnatomy` extends :class:`~qsaudit.phantoms.anatomy.Anatomy` (same template mm,
same painting rules) with what a chest/abdomen/pelvis CT shows: five lung lobes, trachea,
esophagus, heart, aortic arch, superior vena cava, pulmonary veins, a flattened IVC in the
liver's groove and the portal and splenic vein (:mod:`~qsaudit.phantoms.veins`),
every vertebra from C7, the spinal cord, 24 ribs (flat bands that fall steeply round the chest)
with their costal cartilages, sternum, clavicles, scapulae, humeri (arms down), femurs and
gluteal muscles, and the deep back muscles in their gutters beside the spine (the lungs stay in
front of them). With the arms down, the humerus flares into its condyles at the elbow and the
forearm bones lie below it (:mod:`~qsaudit.phantoms.limbs`); the belly is packed with bowel
loops and threaded with mesenteric vessels (:mod:`~qsaudit.phantoms.bowel`). Bones get a cortex
brighter than their marrow, about 1.2 mm thick.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from qsaudit.degrade.fields import bbox
from qsaudit.phantoms.anatomy import (
    CANAL_DEPTH,
    LEVELS,
    UPPER_LEVELS,
    Anatomy,
    diaphragm_top,
    level_z,
)
from qsaudit.phantoms.bowel import TrunkBowel
from qsaudit.phantoms.canvas import SID, Canvas
from qsaudit.phantoms.limbs import HUMERUS_LENGTH_MM, TrunkLimbs
from qsaudit.phantoms.muscles import TrunkMuscles
from qsaudit.phantoms.patient import Body
from qsaudit.phantoms.tissue import T
from qsaudit.phantoms.veins import TrunkVeins

CORTEX_MM = 1.2
MARBLED = ("autochthon_left", "autochthon_right", "iliopsoas_left", "iliopsoas_right",
           "gluteus_maximus_left", "gluteus_maximus_right", "gluteus_medius_left",
           "gluteus_medius_right")


def arm(body: Body) -> tuple[float, float]:
    """Centre distance from the body axis (x, mm) and radius (mm) of an upper arm held down
    beside the trunk; the image must reach ``x + radius`` either side to hold both arms."""
    return body.a + 6.0 + 38.0 + 0.4 * body.fat, 38.0 + 0.4 * body.fat


def skin_radius(body: Body, theta: np.ndarray) -> np.ndarray:
    """Distance (mm) from the body axis to the skin at in-plane angle ``theta``."""
    p = 2.4
    return 1.0 / ((np.abs(np.cos(theta) / body.a) ** p
                   + np.abs(np.sin(theta) / body.b) ** p) ** (1 / p))


class TrunkAnatomy(TrunkLimbs, TrunkMuscles, TrunkVeins, TrunkBowel, Anatomy):
    """Paints chest, abdomen and pelvis; ``arms_down`` puts the arms beside the chest."""

    spine_levels = UPPER_LEVELS + LEVELS
    hollow_canal = True

    def __init__(self, canvas: Canvas, body: Body, rng: np.random.Generator, *,
                 arms_down: bool):
        super().__init__(canvas, body, rng)
        self.arms_down = arms_down
        self.r_skin = self.depth + np.hypot(*np.meshgrid(canvas.x, canvas.y, indexing="ij"))
        self.z_apex = level_z(body, "T1") + 0.4 * body.level  # lung apices
        self.arm = arm(body)
        self.draw_back(rng)
        self.draw_veins(rng)

    def cage_scale(self, z) -> np.ndarray:
        """The rib cage narrows towards the apex: 1 below T4, about 0.6 at T1."""
        z4 = level_z(self.b, "T4")
        t = np.clip((np.asarray(z, float) - z4) / (self.z_apex - z4), 0.0, 1.0)
        return 1.0 - 0.42 * t ** 1.4

    def paint(self) -> None:
        self.body_wall()
        if self.arms_down:
            self.arms()
        self.thoracic()
        self.bowel()
        self.stomach_duodenum()
        self.liver()
        self.spleen()
        self.pancreas()
        self.kidneys_adrenals()
        self.gallbladder()
        self.bladder()
        self.mediastinum()
        self.vessels()
        self.portal_splenic()
        self.mesentery()
        self.muscles()
        self.gluteals()
        self.marble(MARBLED)
        self.spine()
        self.spinal_cord()
        self.pelvis()
        self.femurs()
        self.ribs()
        self.sternum()
        self.shoulder_girdle()

    # -- soft tissue ---------------------------------------------------------------------------
    def arms(self) -> None:
        """Upper arms beside the chest (fat around muscle), joined to the trunk at the shoulder."""
        b, c = self.b, self.c
        xa, ra = self.arm
        yc, top = b.y_vb + 25, level_z(b, "T1") + 30
        for s in (-1, 1):
            for r, tissue in ((ra, "subcutaneous_fat"), (ra - 0.3 * b.fat - 4, "muscle")):
                def limb(X, Y, Z, s=s, r=r):
                    shoulder = (s * X > b.a - 20) & (s * X < xa) & (np.abs(Y - yc) < r) & (
                        Z > top - 90)
                    return ((X - s * xa) ** 2 + (Y - yc) ** 2 <= r * r) | shoulder

                lo, hi = sorted((s * (b.a - 20), s * (xa + ra)))
                c.paint(limb, (lo, yc - ra, c.z[0]), (hi, yc + ra, top), struct=0,
                        tissue=T[tissue])

    def chest(self, box, *, margin: float = 4.0) -> np.ndarray:
        """Inside the rib cage above the diaphragm, ``margin`` mm inside the ribs, in front of
        the back muscles' gutters."""
        X, Y, Z = self.c.coords(box)
        # in-plane ratio to the cage radius (2-D), compared with the cage's taper along z
        ratio = (np.hypot(X, Y) + margin) / np.maximum(self._2d(self.r_skin, box) - self.inner,
                                                       1.0)
        scale = self.cage_scale(Z).astype(np.float32)
        return ((ratio <= scale) & (Z > self._2d(self.zd, box) + 4.0) & (Z < self.z_apex)
                & ~self.gutters(box, margin=margin))

    def thorax(self, box) -> np.ndarray:
        """Body cavity above the diaphragm muscle, in front of the back muscles' gutters."""
        return super().thorax(box) & ~self.gutters(box, margin=4.0)

    def thoracic(self) -> None:
        """Diaphragm, five lung lobes split by oblique and horizontal fissures, heart."""
        b, c, rng = self.b, self.c, self.rng
        super().thoracic()  # diaphragm, lower lobes at the bases, heart
        lo, hi = (-b.a, -b.b, float(self.zd.min())), (b.a, b.b, max(self.z_apex, c.z[-1] + 1))
        back, front = -b.b + self.inner, b.b - self.inner
        z_post = level_z(b, "T4") + rng.normal(0, 8)  # the oblique fissure, high at the back
        z_front = diaphragm_top(b) - 0.5 * b.level + rng.normal(0, 8)  # and low in front
        z_horiz = level_z(b, "T6") + rng.normal(0, 8)

        def fissure(Y):
            return z_post + (z_front - z_post) * (Y - back) / (front - back)

        def lobe(name, s):
            def region(X, Y, Z):
                side = s * X > 14.0
                upper = Z > fissure(Y)
                if name == "lower":
                    return side & ~upper
                if name == "upper" and s > 0:  # right: the horizontal fissure cuts off the middle
                    return side & upper & (Z > z_horiz)
                if name == "middle":
                    return side & upper & (Z <= z_horiz)
                return side & upper
            return region

        lobes = [("lower", "left", -1), ("upper", "left", -1), ("lower", "right", 1),
                 ("upper", "right", 1), ("middle", "right", 1)]
        box = c.box(lo, hi)
        if box is None:
            return
        chest = self.chest(box)
        for name, side, s in lobes:
            c.paint(lobe(name, s), lo, hi, struct=f"lung_{name}_lobe_{side}", tissue=T["lung"],
                    where=lambda bx: chest & (c.struct[bx] != SID["heart"]))
        # Anatomy's lung bases reach above the apices: that part is chest wall
        outside = (c.tissue[box] == T["lung"]) & ~chest
        c.struct[box][outside], c.tissue[box][outside] = 0, T["muscle"]
        heart = c.struct == SID["heart"]
        if heart.any():  # the myocardium: a wall around the blood pool
            box = bbox(heart, margin=1)
            sub = heart[box]
            wall = sub & (self._depth_mm(sub) <= 9.0)
            c.tissue[box][wall] = T["myocardium"]

    def mediastinum(self) -> None:
        """Trachea with its air column, esophagus, aortic arch, SVC, pulmonary trunk and veins."""
        b, c = self.b, self.c
        carina = level_z(b, "T5")
        # the tubes start above the field of view (never below their lower end)
        y0, top = b.y_vb, max(float(c.z[-1] + 5), carina + 30)
        tr = c.paint_tube(np.array([(0, y0 + 38, top), (0, y0 + 36, carina)]), np.full(2, 9.5),
                          struct="trachea", tissue=T["gas"])
        self._wall(tr, T["cartilage"])
        for s in (-1, 1):  # main bronchi: air, left to the lungs
            c.paint_tube(np.array([(0, y0 + 36, carina), (s * 40, y0 + 30, carina - 35)]),
                         np.full(2, 6.0), struct=0, tissue=T["gas"])
        stomach_top = diaphragm_top(b) - 30
        eso = c.paint_tube(np.array([(-4, y0 + 22, top), (-8, y0 + 24, carina),
                                     (-20, y0 + 30, diaphragm_top(b) - 5),
                                     (-50, y0 + 22, stomach_top)]), np.full(4, 8.0),
                           struct="esophagus", tissue=T["esophagus_wall"])
        if eso.any() and self.rng.random() < 0.5:  # sometimes air in the lumen
            box = bbox(eso, margin=1)
            c.tissue[box][self._depth_mm(eso[box]) > 5.0] = T["gas"]
        # heart centre and size as painted by Anatomy.thoracic (before its jitter)
        hz = diaphragm_top(b) + 0.9 * b.level
        ra = b.aorta_r + 2
        ya = y0 + 17 + b.aorta_r + 2
        arch_z = level_z(b, "T4")
        aorta = np.array([(8, y0 + 80, hz + 20), (12, y0 + 78, arch_z - 25),
                          (2, y0 + 60, arch_z + 8), (-14, y0 + 38, arch_z + 5),
                          (-16, ya - 22, arch_z - 20), (-14, ya - 22, level_z(b, "T5"))], float)
        c.paint_tube(aorta, np.full(len(aorta), ra), struct="aorta", tissue=T["aorta"])
        # pulmonary trunk (no TotalSegmentator label), pulmonary veins into the left atrium
        c.paint_tube(np.array([(-4, y0 + 88, hz + 15), (-10, y0 + 75, carina),
                               (-30, y0 + 50, carina - 10)]), np.full(3, 12.0),
                     struct=0, tissue=T["pulmonary_blood"])
        for s in (-1, 1):
            for dz in (-12.0, 12.0):
                c.paint_tube(np.array([(-15, y0 + 45, hz + 5), (s * 25 - 15, y0 + 40, hz + dz),
                                       (s * 60 - 15, y0 + 38, hz + 2 * dz)]),
                             np.array([7.0, 6.0, 5.0]), struct="pulmonary_vein",
                             tissue=T["pulmonary_blood"])
        c.paint_tube(np.array([(30, y0 + 62, top), (30, y0 + 66, hz + 25)]), np.full(2, 10.0),
                     struct="superior_vena_cava", tissue=T["ivc"])

    def vessel_tops(self) -> tuple[float, float]:
        # the abdominal aorta continues the descending aorta; the IVC ends in the heart
        return level_z(self.b, "T5"), diaphragm_top(self.b) + 15

    def spinal_cord(self) -> None:
        b, c = self.b, self.c
        yc = b.y_vb - CANAL_DEPTH
        c.paint(lambda X, Y, Z: ((X / 5.0) ** 2 + ((Y - yc) / 4.0) ** 2) <= 1,
                (-6, yc - 5, level_z(b, "L1")), (6, yc + 5, c.z[-1]), struct="spinal_cord",
                tissue=T["spinal_cord"])

    def _depth_mm(self, mask: np.ndarray) -> np.ndarray:
        """Distance (mm) of each voxel of ``mask`` from its surface, true to the voxel size.

        Slices may be far thicker than pixels, so a shell in voxels would not be one in mm.
        """
        return ndi.distance_transform_edt(np.pad(mask, 1),
                                          sampling=self.c.spacing)[1:-1, 1:-1, 1:-1]

    # -- bones ---------------------------------------------------------------------------------
    def _bone(self, name: str, painted: np.ndarray | None = None, *,
              cortex_mm: float = CORTEX_MM) -> None:
        """Give the bone labelled ``name`` a cortex ``cortex_mm`` thick over its marrow."""
        c = self.c
        mask = (c.struct == SID[name]) if painted is None else painted
        if not mask.any():
            return
        box = bbox(mask, margin=1)
        sub = mask[box]
        # at least the outer voxel layer: a coarse voxel holding cortex is mostly cortex
        pixel = min(float(c.x[1] - c.x[0]), float(c.y[1] - c.y[0]))
        shell = sub & (self._depth_mm(sub) <= max(cortex_mm, pixel))
        c.tissue[box][shell] = T["cortical_bone"]

    def _tube_bone(self, points, radius, name: str, marrow: str = "marrow",
                   z_scale: float = 1.0) -> None:
        painted = self.c.paint_tube(np.asarray(points, float),
                                    np.broadcast_to(np.asarray(radius, float), (len(points),)),
                                    struct=name, tissue=T[marrow], z_scale=z_scale)
        self._bone(name, painted)

    def rib_path(self, k: int, s: int) -> tuple[np.ndarray, np.ndarray]:
        """Centre line of rib ``k`` (1-12) on side ``s`` (+1 right), and of its cartilage.

        A rib leaves its vertebra almost level and falls steeply round the side of the chest:
        its front end lies two to three vertebral levels below its head (more for the lower
        ribs), so that an axial slice cuts it into a short oblique segment (about 1-2 cm), as on
        real CT, not a long band. The cartilages of the true ribs (1-7) run level or climb
        towards the sternum; those of ribs 8-10 climb to the cartilage above.
        """
        b = self.b
        zk = level_z(b, f"T{k}")
        rx, ry = self.vertebra_size(f"T{k}")
        sc = float(self.cage_scale(zk))
        phi_end = (2.55, 2.55, 2.55, 2.5, 2.45, 2.4, 2.35, 2.25, 2.15, 2.05, 1.75, 1.35)[k - 1]
        drop = b.level * (2.3 + 0.2 * min(k, 10))
        phi = np.linspace(0.75, np.pi - 0.14, 40)
        theta = np.arctan2(-np.cos(phi), s * np.sin(phi))
        r = sc * (skin_radius(b, theta) - self.inner) + 1.0
        z = zk - 4 - drop * ((phi - phi[0]) / (phi[-1] - phi[0])) ** 1.3
        arc = np.stack([s * r * np.sin(phi), -r * np.cos(phi), z], axis=1)
        head = np.array([(s * (rx + 3), b.y_vb - 0.5 * ry, zk),
                         (s * (rx + 22), b.y_vb - ry - 12, zk - 2)])
        bony = np.concatenate([head, arc[phi <= phi_end]])
        cart = arc[phi >= phi_end - 0.05].copy()
        if k <= 7:  # true ribs: the cartilage runs level, the lower ones climb to the sternum
            t = np.linspace(0, 1, len(cart))
            cart[:, 2] = cart[0, 2] + t * max(0.0, 0.3 * (k - 3)) * b.level
        if k in (8, 9, 10):  # false ribs: the cartilage climbs to the one above
            cart = arc[(phi >= phi_end - 0.05) & (phi <= phi_end + 0.5)].copy()
            t = np.linspace(0, 1, len(cart))
            cart[:, 2] += t * (1.2 + 0.5 * (k - 8)) * b.level
        elif k > 10:
            cart = arc[:0]
        return bony, cart

    def ribs(self) -> None:
        """Twelve pairs of ribs, each a curved bone from its vertebra round the chest wall."""
        cart_pts = []
        for k in range(1, 13):
            for side, s in (("left", -1), ("right", 1)):
                bony, cart = self.rib_path(k, s)
                # a flat band on edge: about 7 mm thick, 12-14 mm tall
                radius = 3.2 + 0.05 * min(k, 8)
                self._tube_bone(bony, radius, f"rib_{side}_{k}", z_scale=1.9)
                if len(cart) >= 2:
                    cart_pts.append((cart, radius * 0.9))
        for cart, radius in cart_pts:
            self.c.paint_tube(cart, np.full(len(cart), radius), struct="costal_cartilages",
                              tissue=T["cartilage"], where=lambda box: self.c.struct[box] == 0)

    def sternum(self) -> None:
        """Manubrium and body of the sternum in the front chest wall, T3 to T9 height."""
        b, c = self.b, self.c
        z_top, z_bot = level_z(b, "T2") - 0.3 * b.level, level_z(b, "T9")
        r_front = b.b - self.inner + 1.0

        def region(X, Y, Z):
            t = np.clip((z_top - Z) / (z_top - z_bot), 0, 1)
            half_w = 26 - 12 * np.clip(t * 4, 0, 1) + 2 * np.sin(np.pi * t)
            return (np.abs(X) < half_w) & (np.abs(Y - r_front) < 6) & (Z < z_top) & (Z > z_bot)

        c.paint(region, (-30, r_front - 7, z_bot), (30, r_front + 7, z_top), struct="sternum",
                tissue=T["marrow"])
        self._bone("sternum")

    def shoulder_girdle(self) -> None:
        """Clavicles, scapulae on the back of the chest, and humeri when the arms are down."""
        b, c = self.b, self.c
        z1 = level_z(b, "T1")
        front = b.b - b.fat - 6
        lat = b.a - b.fat - 12
        for side, s in (("left", -1), ("right", 1)):
            clav = np.array([(s * 22, front - 4, z1 - 5), (s * 60, front - 6, z1 + 5),
                             (s * (lat - 20), b.y_vb + 20, z1 + 15),
                             (s * lat, b.y_vb - 5, z1 + 18)])
            self._tube_bone(clav, 6.5, f"clavicula_{side}")
            z_top, z_bot = z1 + 10, level_z(b, "T7")

            def blade(X, Y, Z, s=s, z_top=z_top, z_bot=z_bot):
                t = np.clip((z_top - Z) / (z_top - z_bot), 0, 1)
                x_in = 40 + 25 * t  # vertebral border, inferior angle more lateral
                x_out = lat - (lat - 70) * t
                # the blade lies on the curved back, under the fat
                back = -b.b * (1 - np.clip(np.abs(X) / b.a, 0, 1) ** 2.4) ** (1 / 2.4)
                return ((s * X > x_in) & (s * X < x_out) & (np.abs(Y - back - b.fat - 6) < 3.5)
                        & (Z < z_top) & (Z > z_bot))

            lo, hi = (-b.a, -b.b, z_bot), (b.a, b.y_vb + 30, z_top)
            c.paint(blade, lo, hi, struct=f"scapula_{side}", tissue=T["marrow"])
            glenoid = np.array([(s * (lat - 4), b.y_vb - 10, z1 + 2),
                                (s * (lat - 16), b.y_vb - 40, z1 - 10)])
            c.paint_tube(glenoid, np.full(2, 9.0), struct=f"scapula_{side}", tissue=T["marrow"])
            self._bone(f"scapula_{side}")
            if self.arms_down:
                xa, _ = self.arm
                z_elbow = z1 - HUMERUS_LENGTH_MM
                hum = np.array([(s * (lat + 14), b.y_vb + 5, z1 - 5),
                                (s * (xa - 4), b.y_vb + 22, z1 - 70),
                                (s * xa, b.y_vb + 25, z_elbow)])
                painted = c.paint_tube(hum[:1], np.full(1, 22.0), struct=f"humerus_{side}",
                                       tissue=T["marrow"])
                painted |= c.paint_tube(hum, np.array([13.0, 11.0, 10.5]),
                                        struct=f"humerus_{side}", tissue=T["yellow_marrow"])
                painted |= self.elbow(side, s, hum[-1, :2], z_elbow)
                self._bone(f"humerus_{side}", painted & (c.struct == SID[f"humerus_{side}"]),
                           cortex_mm=3.0)

    def pelvis(self) -> None:
        super().pelvis()
        # acetabulum and pubis: the lower hip bone around the femoral head, to the symphysis
        b, c = self.b, self.c
        for side, s in (("left", -1), ("right", 1)):
            ac = self.acetabulum(s)
            ring = c.paint_tube(np.array([ac + (0, -25, 35), ac + (0, -8, 10), ac,
                                          ac + (0, 0, -20), (s * 15, b.y_vb + 95, ac[2] - 25)]),
                                np.array([12.0, 14.0, 16.0, 12.0, 9.0]), struct=f"hip_{side}",
                                tissue=T["marrow"])
            self._bone(f"hip_{side}", ring)

    def acetabulum(self, s: int) -> np.ndarray:
        b = self.b
        return np.array([s * 0.55 * (b.a - b.fat), b.y_vb + 55, level_z(b, "L5") - 150])

    def femurs(self) -> None:
        b, c = self.b, self.c
        for side, s in (("left", -1), ("right", 1)):
            ac = self.acetabulum(s)
            head = c.paint_tube(np.array([ac, ac + (s * 1, 0, 0)]), np.full(2, 22.0),
                                struct=f"femur_{side}", tissue=T["marrow"])
            troch = ac + (s * 0.3 * (b.a - b.fat), -10, -35)
            neck = c.paint_tube(np.array([ac, troch, troch + (0, 0, 30)]),
                                np.array([15.0, 18.0, 14.0]), struct=f"femur_{side}",
                                tissue=T["marrow"])
            shaft = c.paint_tube(np.array([troch, troch + (-s * 20, 10, -300)]),
                                 np.array([15.0, 13.0]), struct=f"femur_{side}",
                                 tissue=T["yellow_marrow"])
            self._bone(f"femur_{side}", head | neck | shaft, cortex_mm=3.5)
