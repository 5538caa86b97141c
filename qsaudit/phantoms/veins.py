"""The trunk phantoms' great abdominal veins: the inferior vena cava and the portal system.

:class:`TrunkVeins` is a part of :class:`~qsaudit.phantoms.trunk.TrunkAnatomy` (same canvas, same
template mm). On contrast CT the IVC is a flattened oval, not a round tube, and behind the liver
it runs in a groove of the liver (the caudate lobe in front of it, the right lobe beside it),
nearly isodense with the parenchyma around it. The portal vein rises from the confluence behind
the pancreatic neck, in front of the IVC, into the liver hilum, where liver wraps it before it
divides. The edges a curator's label follows there are vein against liver, so that is what the
phantoms draw, not tubes floating in fat.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from qsaudit.phantoms.anatomy import diaphragm_top, level_z
from qsaudit.phantoms.canvas import SID, Canvas, resample_path
from qsaudit.phantoms.patient import Body
from qsaudit.phantoms.tissue import T

PORTAL = "portal_vein_and_splenic_vein"
NEAR_LIVER_MM = 25.0  # the IVC runs in the liver's groove at levels with liver this close


class TrunkVeins:
    """The IVC and the portal/splenic vein, mixed into an
    :class:`~qsaudit.phantoms.anatomy.Anatomy` (whose ``b``, ``c``, ``rng``, ``abdomen`` and
    ``_jit`` they use)."""

    b: Body
    c: Canvas
    rng: np.random.Generator
    abdomen: Callable[..., np.ndarray]
    ivc_shape: tuple[float, float]
    liver_cuff: tuple[float, float]
    _ivc_axis: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

    def draw_veins(self, rng: np.random.Generator) -> None:
        """Draw this patient's veins: how flat the IVC is (AP over lateral diameter, 0.4-0.95,
        the lower the emptier) and its tilt (radians), and how much liver wraps the IVC and the
        portal vein (mm)."""
        self.ivc_shape = (float(rng.uniform(0.4, 0.95)), float(rng.normal(0.0, 0.25)))
        self.liver_cuff = (float(rng.uniform(6.0, 16.0)), float(rng.uniform(5.0, 12.0)))

    def ivc_centre(self, z: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centre x, y and mean radius (mm) of the IVC at height ``z``."""
        zs, xs, ys, rs = self._ivc_axis
        return np.interp(z, zs, xs), np.interp(z, zs, ys), np.interp(z, zs, rs)

    def _ivc_region(self, grow: float = 0.0, ahead: float = 0.0):
        """The IVC's oval cross-section along its axis, ``grow`` mm larger all round and moved
        ``ahead`` mm forward; a region function of the canvas."""
        flat, tilt = self.ivc_shape
        cos, sin = np.cos(tilt), np.sin(tilt)
        zs = self._ivc_axis[0]

        def region(X, Y, Z):
            cx, cy, r = self.ivc_centre(Z)
            u = (X - cx) * cos + (Y - cy - ahead) * sin
            v = -(X - cx) * sin + (Y - cy - ahead) * cos
            inside = (u / (r / np.sqrt(flat) + grow)) ** 2 + (v / (r * np.sqrt(flat) + grow)) ** 2
            return (inside <= 1) & (Z >= zs[0]) & (Z <= zs[-1])
        return region

    def ivc(self, path: np.ndarray, radii: np.ndarray) -> None:
        """The IVC along ``path`` (N, 3 mm, from the top down): an oval of the drawn flatness
        with the area of a circle of ``radii``, in a groove of liver where the liver reaches it."""
        c = self.c
        pts, rad = resample_path(np.asarray(path, float), np.asarray(radii, float), 1.0)
        order = np.argsort(pts[:, 2], kind="stable")
        self._ivc_axis = (pts[order, 2], pts[order, 0], pts[order, 1], rad[order])
        reach = float(rad.max()) * 2 + 2 * NEAR_LIVER_MM
        lo = (pts[:, 0].min() - reach, pts[:, 1].min() - reach, pts[:, 2].min())
        hi = (pts[:, 0].max() + reach, pts[:, 1].max() + reach, pts[:, 2].max())
        grow, _ = self.liver_cuff
        near = self._levels_with_liver_near()
        c.paint(self._ivc_region(grow, ahead=0.5 * grow), lo, hi, struct="liver",
                tissue=T["liver"],
                where=lambda box: (self.abdomen(box) & (c.struct[box] == 0)
                                   & near[box[2]][None, None, :]))
        c.paint(self._ivc_region(), lo, hi, struct="inferior_vena_cava", tissue=T["ivc"])

    def _levels_with_liver_near(self) -> np.ndarray:
        """Per canvas slice: whether liver lies within NEAR_LIVER_MM of the IVC's oval."""
        c = self.c
        liver = c.struct == SID["liver"]
        near = np.zeros(len(c.z), dtype=bool)
        for k in np.flatnonzero(liver.any(axis=(0, 1))):
            cx, cy, r = (float(v) for v in self.ivc_centre(c.z[k]))
            if not self._ivc_axis[0][0] <= c.z[k] <= self._ivc_axis[0][-1]:
                continue
            d = r / np.sqrt(self.ivc_shape[0]) + NEAR_LIVER_MM
            box = c.box((cx - d, cy - d, c.z[k]), (cx + d, cy + d, c.z[k]))
            near[k] = box is not None and bool(liver[box[0], box[1], k].any())
        return near

    def portal_splenic(self) -> None:
        """Splenic vein along the back of the pancreas from the splenic hilum to the confluence
        behind the pancreatic neck, and the portal vein from there up and right, in front of the
        IVC, into the liver hilum, where liver wraps it and it divides into a right and a left
        branch (TotalSegmentator's ``portal_vein_and_splenic_vein``). Painted over the pancreas
        and the liver, never over the IVC."""
        b, c = self.b, self.c
        y0, z1 = b.y_vb, level_z(b, "L1")
        r_p = self.rng.uniform(6.0, 8.0)
        hz = diaphragm_top(b) - 110
        # the hilum lies in front of the IVC, about a centimetre clear of it
        _, iy, ir = (float(v) for v in self.ivc_centre(hz))
        front = iy + ir * np.sqrt(self.ivc_shape[0]) + 10.0 + r_p
        hilum = np.array([35.0, max(y0 + 45, front), hz])
        conf = np.array([14.0, y0 + 46, z1 - 6]) + self._jit(3)
        conf[1] = max(conf[1], float(self.ivc_centre(conf[2])[1]) + 8.0 + r_p)
        splenic = np.array([(-92, y0 + 2, z1 + 28), (-72, y0 + 12, z1 + 18),
                            (-30, y0 + 44, z1 + 4), (-5, y0 + 48, z1 - 2), tuple(conf)], float)
        splenic[:-1] += self.rng.normal(0, 2.5, (len(splenic) - 1, 3))
        mid = 0.5 * (conf + hilum) + (4, 0, 0)
        portal = np.array([conf, mid, hilum], float)
        right = np.array([hilum, hilum + (28, -6, 8), hilum + (55, -10, 12)], float)
        left = np.array([hilum, hilum + (-22, 10, 10), hilum + (-45, 18, 12)], float)
        vein, not_ivc = T["hepatic_vessel"], SID["inferior_vena_cava"]

        def free(box):  # the porta: fat only, so liver never covers another organ
            return self.abdomen(box) & (c.struct[box] == 0)

        def open_(box):
            return self.abdomen(box) & (c.struct[box] != not_ivc)

        _, cuff = self.liver_cuff
        upper = np.array([0.6 * mid + 0.4 * conf, mid, hilum], float)
        c.paint_tube(upper, np.array([0.6, 1.0, 1.0]) * (r_p + cuff), struct="liver",
                     tissue=T["liver"], where=free)
        c.paint_tube(splenic, np.full(len(splenic), 0.65 * r_p), struct=PORTAL, tissue=vein,
                     where=open_)
        c.paint_tube(portal, np.full(3, r_p), struct=PORTAL, tissue=vein, where=open_)
        for branch in (right, left):
            c.paint_tube(branch, np.array([0.75, 0.6, 0.45]) * r_p, struct=PORTAL, tissue=vein,
                         where=open_)
