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
from scipy import ndimage as ndi

from qsaudit.phantoms.anatomy import diaphragm_top, level_z
from qsaudit.phantoms.canvas import SID, Canvas, resample_path
from qsaudit.phantoms.patient import Body
from qsaudit.phantoms.tissue import T

PORTAL = "portal_vein_and_splenic_vein"
NEAR_LIVER_MM = 25.0  # the IVC runs in the liver's groove at levels with liver this close
PORTAL_CLEARANCE = 8.0  # mm between the portal vein and the IVC's front edge, at least


class TrunkVeins:
    """The IVC and the portal/splenic vein, mixed into an
    :class:`~qsaudit.phantoms.anatomy.Anatomy` (whose ``b``, ``c``, ``rng``, ``abdomen`` and
    ``_jit`` they use)."""

    b: Body
    c: Canvas
    rng: np.random.Generator
    abdomen: Callable[..., np.ndarray]
    _jit: Callable[..., np.ndarray]
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
        """Centre x, y and mean radius (mm) of the IVC at height ``z`` (after :meth:`ivc`)."""
        zs, xs, ys, rs = self._ivc_axis
        return np.interp(z, zs, xs), np.interp(z, zs, ys), np.interp(z, zs, rs)

    def _ivc_axes(self, r: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Semi-axes (mm) of the IVC's oval, across and front to back before its tilt, for the
        mean radius ``r`` (same area as the circle)."""
        flat = self.ivc_shape[0]
        return r / np.sqrt(flat), r * np.sqrt(flat)

    def ivc_front(self, z: float) -> float:
        """y (mm) of the IVC's front edge at height ``z``: its tilted oval's reach forward."""
        _, cy, r = (float(v) for v in self.ivc_centre(z))
        across, deep = self._ivc_axes(r)
        tilt = self.ivc_shape[1]
        return cy + float(np.hypot(across * np.sin(tilt), deep * np.cos(tilt)))

    def _ivc_region(self, grow: float = 0.0, ahead: float = 0.0
                    ) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
        """The IVC's oval cross-section along its axis, ``grow`` mm larger all round and moved
        ``ahead`` mm forward; a region function of the canvas (paint it within the IVC's z
        range)."""
        tilt = self.ivc_shape[1]
        cos, sin = np.cos(tilt), np.sin(tilt)

        def region(X, Y, Z):
            cx, cy, r = self.ivc_centre(Z)
            across, deep = self._ivc_axes(r)
            u = (X - cx) * cos + (Y - cy - ahead) * sin
            v = -(X - cx) * sin + (Y - cy - ahead) * cos
            return (u / (across + grow)) ** 2 + (v / (deep + grow)) ** 2 <= 1
        return region

    def ivc(self, path: np.ndarray, radii: np.ndarray) -> None:
        """The IVC along ``path`` (N, 3 mm, from the top down, z falling throughout): an oval
        of the drawn flatness with the area of a circle of ``radii``, in a groove of liver
        (in front of it and beside it, not behind) at the levels where the liver reaches it."""
        c = self.c
        pts, rad = resample_path(np.asarray(path, float), np.asarray(radii, float), 1.0)
        order = np.argsort(pts[:, 2], kind="stable")
        self._ivc_axis = (pts[order, 2], pts[order, 0], pts[order, 1], rad[order])
        grow, _ = self.liver_cuff
        reach = float(self._ivc_axes(rad.max())[0]) + 2 * grow + NEAR_LIVER_MM
        lo = (pts[:, 0].min() - reach, pts[:, 1].min() - reach, pts[:, 2].min())
        hi = (pts[:, 0].max() + reach, pts[:, 1].max() + reach, pts[:, 2].max())
        box = c.box(lo, hi)
        if box is None:
            return
        near = self._levels_with_liver_near()[box[2]][None, None, :]
        wrap = self._ivc_region(grow, ahead=grow)(*c.coords(box)) & near
        self._grow_liver(box, wrap & self.abdomen(box) & (c.struct[box] == 0))
        c.paint(self._ivc_region(), lo, hi, struct="inferior_vena_cava", tissue=T["ivc"])

    def _grow_liver(self, box: tuple[slice, slice, slice], grown: np.ndarray) -> None:
        """Paint the ``grown`` voxels of ``box`` as liver where they join the liver (3D)."""
        c = self.c
        liver = c.struct[box] == SID["liver"]
        parts, _ = ndi.label(grown | liver)
        joined = np.isin(parts, np.unique(parts[liver]))
        keep = grown & joined & (parts > 0)
        c.struct[box][keep] = SID["liver"]
        c.tissue[box][keep] = T["liver"]

    def _levels_with_liver_near(self) -> np.ndarray:
        """Per canvas slice: whether liver lies within NEAR_LIVER_MM of the IVC's oval (a
        square around it) at that level."""
        c = self.c
        liver = c.struct == SID["liver"]
        near = np.zeros(len(c.z), dtype=bool)
        zs = self._ivc_axis[0]
        for k in np.flatnonzero(liver.any(axis=(0, 1))):
            if not zs[0] <= c.z[k] <= zs[-1]:
                continue
            cx, cy, r = (float(v) for v in self.ivc_centre(c.z[k]))
            d = float(self._ivc_axes(r)[0]) + NEAR_LIVER_MM
            box = c.box((cx - d, cy - d, c.z[k]), (cx + d, cy + d, c.z[k]))
            near[k] = box is not None and bool(liver[box[0], box[1], k].any())
        return near

    def portal_splenic(self) -> None:
        """Splenic vein along the back of the pancreas from the splenic hilum to the confluence
        behind the pancreatic neck, and the portal vein from there up and right, in front of the
        IVC, into the liver hilum, where liver wraps it and it divides into a right and a left
        branch (TotalSegmentator's ``portal_vein_and_splenic_vein``). Painted over the pancreas
        and the liver, never over the IVC; after :meth:`ivc`, whose position it reads."""
        b, c = self.b, self.c
        y0, z1 = b.y_vb, level_z(b, "L1")
        r_p = self.rng.uniform(6.0, 8.0)
        hz = diaphragm_top(b) - 110
        # the portal vein runs in front of the IVC, about a centimetre clear of it
        clear = PORTAL_CLEARANCE + r_p
        hilum = np.array([35.0, max(y0 + 45, self.ivc_front(hz) + clear), hz])
        conf = np.array([14.0, y0 + 46, z1 - 6]) + self._jit(3)
        conf[1] = max(conf[1], self.ivc_front(conf[2]) + clear)
        splenic = np.array([(-92, y0 + 2, z1 + 28), (-72, y0 + 12, z1 + 18),
                            (-30, y0 + 44, z1 + 4), (-5, y0 + 48, z1 - 2), tuple(conf)], float)
        splenic[:-1] += self.rng.normal(0, 2.5, (len(splenic) - 1, 3))
        mid = 0.5 * (conf + hilum) + (4, 0, 0)
        mid[1] = max(mid[1], self.ivc_front(mid[2]) + clear)
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
        radii = np.array([0.6, 1.0, 1.0]) * (r_p + cuff)
        box = c.box(tuple(upper.min(axis=0) - radii.max()), tuple(upper.max(axis=0) + radii.max()))
        if box is not None:  # liver round the porta, where it joins the liver
            self._grow_liver(box, c.tube(upper, radii)[box] & free(box))
        c.paint_tube(splenic, np.full(len(splenic), 0.65 * r_p), struct=PORTAL, tissue=vein,
                     where=open_)
        c.paint_tube(portal, np.full(3, r_p), struct=PORTAL, tissue=vein, where=open_)
        for branch in (right, left):
            c.paint_tube(branch, np.array([0.75, 0.6, 0.45]) * r_p, struct=PORTAL, tissue=vein,
                         where=open_)
