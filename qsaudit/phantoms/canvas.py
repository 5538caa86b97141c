"""A painting surface in millimetres: shapes are painted, in order, into two label maps.

``struct`` holds the labelled structure of each voxel (index into :data:`STRUCTURES`, 0 = none)
and ``tissue`` its tissue class (index into :data:`qsaudit.phantoms.tissue.TISSUES`). A later
paint wins, so every voxel has exactly one structure: masks never overlap, and organs painted
over a neighbour's margin touch it.
Coordinates are template millimetres: x to the patient's left-right (+ = right), y posterior ->
anterior (+ = anterior), z inferior -> superior (+ = superior), origin at the L1 body centre
level on the body's midline.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

STRUCTURES: tuple[str, ...] = (
    "",  # 0: no structure
    "liver", "spleen", "kidney_left", "kidney_right", "adrenal_gland_left", "adrenal_gland_right",
    "gallbladder", "stomach", "pancreas", "duodenum", "small_bowel", "colon", "urinary_bladder",
    "aorta", "inferior_vena_cava", "iliac_artery_left", "iliac_artery_right", "iliac_vena_left",
    "iliac_vena_right", "heart", "lung_lower_lobe_left", "lung_lower_lobe_right",
    "vertebrae_T10", "vertebrae_T11",
    "vertebrae_T12", "vertebrae_L1", "vertebrae_L2", "vertebrae_L3", "vertebrae_L4",
    "vertebrae_L5", "sacrum", "hip_left", "hip_right", "autochthon_left", "autochthon_right",
    "iliopsoas_left", "iliopsoas_right",
    # trunk phantoms only (``region="trunk"``); appended so the abdominal ids never change
    *(f"rib_{side}_{k}" for side in ("left", "right") for k in range(1, 13)),
    "costal_cartilages", "sternum", "clavicula_left", "clavicula_right", "scapula_left",
    "scapula_right", "humerus_left", "humerus_right", "femur_left", "femur_right",
    "vertebrae_C7", *(f"vertebrae_T{k}" for k in range(1, 10)),
    "lung_upper_lobe_left", "lung_upper_lobe_right", "lung_middle_lobe_right", "trachea",
    "esophagus", "superior_vena_cava", "pulmonary_vein", "spinal_cord",
    "gluteus_maximus_left", "gluteus_maximus_right", "gluteus_medius_left",
    "gluteus_medius_right", "portal_vein_and_splenic_vein",
)
assert len(STRUCTURES) < 256  # struct maps are uint8
SID = {name: i for i, name in enumerate(STRUCTURES)}

Region = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


class Canvas:
    """Two uint8 label maps over a grid with 1-D mm coordinates ``x``, ``y``, ``z``."""

    def __init__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray):
        self.x, self.y, self.z = (np.asarray(v, dtype=np.float32) for v in (x, y, z))
        self.shape = (len(x), len(y), len(z))
        self.struct = np.zeros(self.shape, dtype=np.uint8)
        self.tissue = np.zeros(self.shape, dtype=np.uint8)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size (mm) along x, y, z (1.0 along an axis of a single voxel)."""
        return tuple(float(a[1] - a[0]) if len(a) > 1 else 1.0
                     for a in (self.x, self.y, self.z))  # type: ignore[return-value]

    def box(self, lo: tuple[float, float, float], hi: tuple[float, float, float]
            ) -> tuple[slice, slice, slice] | None:
        """Index slices covering the mm box [lo, hi]; None when it misses the grid."""
        out = []
        for axis, a, b in zip((self.x, self.y, self.z), lo, hi, strict=True):
            i0 = int(np.searchsorted(axis, a, side="left"))
            i1 = int(np.searchsorted(axis, b, side="right"))
            if i1 <= i0:
                return None
            out.append(slice(i0, i1))
        return tuple(out)  # type: ignore[return-value]

    def coords(self, box: tuple[slice, slice, slice]) -> tuple[np.ndarray, ...]:
        """Broadcastable mm coordinates (X, Y, Z) of a box."""
        return (self.x[box[0]][:, None, None], self.y[box[1]][None, :, None],
                self.z[box[2]][None, None, :])

    def paint(self, region: Region, lo, hi, *, struct: str | int, tissue: int,
              where: Callable[[tuple[slice, ...]], np.ndarray] | None = None) -> None:
        """Paint ``region(X, Y, Z) -> bool`` inside the mm box [lo, hi].

        ``where(box) -> bool`` (optional) limits painting to voxels it allows.
        """
        box = self.box(lo, hi)
        if box is None:
            return
        sel = np.broadcast_to(region(*self.coords(box)), self.struct[box].shape)
        if where is not None:
            sel = sel & where(box)
        sid = SID[struct] if isinstance(struct, str) else struct
        self.struct[box][sel] = sid
        self.tissue[box][sel] = tissue

    def tube(self, points: np.ndarray, radii: np.ndarray, *, step: float | None = None,
             z_scale: float = 1.0) -> np.ndarray:
        """Full-volume bool mask of the tube :meth:`paint_tube` would paint (nothing painted)."""
        mask = np.zeros(self.shape, dtype=bool)
        outer, local = self._tube_box(points, radii, step=step, z_scale=z_scale)
        if outer is not None:
            mask[outer] = local
        return mask

    def _tube_box(self, points: np.ndarray, radii: np.ndarray, *, step: float | None,
                  z_scale: float) -> tuple[tuple[slice, slice, slice] | None, np.ndarray]:
        """The index box of a tube (None off the grid) and its bool mask within that box."""
        radii = np.asarray(radii, float)
        step = step or max(1.0, 0.35 * float(radii.min()))  # ridges under 2% of the radius
        pts, rad = resample_path(np.asarray(points, float), radii, step)
        # work inside the bounding box of the whole tube: fine grids are large
        half = rad[:, None] * np.array([1.0, 1.0, float(z_scale)])
        outer = self.box(tuple((pts - half).min(axis=0)), tuple((pts + half).max(axis=0)))
        if outer is None:
            return None, np.zeros((0, 0, 0), dtype=bool)
        local = np.zeros(tuple(s.stop - s.start for s in outer), dtype=bool)
        start = [s.start for s in outer]
        for p, r, h in zip(pts, rad, half, strict=True):
            box = self.box(tuple(p - h), tuple(p + h))
            if box is None:
                continue
            X, Y, Z = self.coords(box)
            ball = (X - p[0]) ** 2 + (Y - p[1]) ** 2 + ((Z - p[2]) / z_scale) ** 2 <= r * r
            local[tuple(slice(b.start - o, b.stop - o) for b, o in zip(box, start, strict=True))
                  ] |= ball
        return outer, local

    def paint_tube(self, points: np.ndarray, radii: np.ndarray, *, struct: str | int,
                   tissue: int, step: float | None = None,
                   where: Callable[[tuple[slice, ...]], np.ndarray] | None = None,
                   z_scale: float = 1.0) -> np.ndarray:
        """Paint a tube through ``points`` (N, 3 mm) with radii (N,) as a chain of spheres.

        ``z_scale`` > 1 stretches each sphere along z into a spheroid ``z_scale`` times as tall:
        a flat band standing on edge, such as a rib. Returns the full-volume bool mask of what
        was painted.
        """
        painted = np.zeros(self.shape, dtype=bool)
        outer, local = self._tube_box(points, radii, step=step, z_scale=z_scale)
        if outer is None:
            return painted
        if where is not None:
            local &= where(outer)
        sid = SID[struct] if isinstance(struct, str) else struct
        self.struct[outer][local] = sid
        self.tissue[outer][local] = tissue
        painted[outer] = local
        return painted


def resample_path(points: np.ndarray, radii: np.ndarray, step: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``step`` mm along a polyline, with linearly interpolated radii."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(2, int(np.ceil(arc[-1] / step)) + 1)
    t = np.linspace(0.0, arc[-1], n)
    pts = np.stack([np.interp(t, arc, points[:, i]) for i in range(3)], axis=1)
    return pts, np.interp(t, arc, radii)
