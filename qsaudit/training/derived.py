"""Structures that a real CT defines by itself: extra trusted labels for training.

Clinical datasets label only what their task needs (OpenKBP: organs at risk of the head and
neck), yet their CT shows more. Some structures can be read off the CT with no annotator: the
lungs are the large air-filled regions inside the body, one on each side; the vertebrae are
the bone around a labelled spinal cord. Masks made this way follow real edges on real texture,
which the phantoms cannot give, and extend the real-CT vocabulary towards the trunk. They are
made only where they are unambiguous; anything else is left out:

* ``lungs``: a component that lies wholly on one side of the midline, large enough to be a
  lung, not touching the volume's in-plane border;
* ``vertebrae``: on each slice of the spinal cord's label, the bone (above :data:`BONE_HU`,
  holes filled, the canal left out) whose components come within :data:`NEAR_CORD_MM` of the
  cord, where it all stays within :data:`VERTEBRA_REACH_MM` of the cord's centre (a slice
  where it reaches further holds the skull base or a rib joined on, and is skipped) and the
  slice shows the patient around the cord. The longest run of such slices is cut into
  vertebrae at the slices of least vertebral-body bone (the discs, where the grid resolves
  them) about one vertebra's height apart, and they are named by level from the top, the first
  as C2; every second one is kept (C2, C4, C6, ...), so that the vertebrae do not outnumber
  the dataset's own labels. The levels are approximate (the run may start below C2), which
  does not matter for training: two vertebrae are never each other's wrong-structure
  candidate (:func:`qsaudit.registry.series_key`), and a slice of one is a slice of a
  vertebra.
* ``trachea``: the airway below a labelled larynx: from the air (below :data:`AIRWAY_HU`)
  under the centre of the larynx's lowest slice (the largest piece there, at least three times
  any other), followed slice by slice downwards while it stays one
  component that overlaps the slice above, keeps its size (a sudden widening is the oesophagus'
  air or a bronchus joined on) and stays inside the patient (a stoma opens to the outside); it
  stops where it divides (the carina) or the scan ends (also where a slice holds less than half
  the patient of the slice above: padding below the scanned block). Kept only when it is at least
  :data:`MIN_TRACHEA_MM` long and never runs into a labelled oesophagus.
* ``clavicles``: a component of bone (above :data:`CORTEX_HU`) shaped like a clavicle: of a
  clavicle's volume (:data:`CLAVICLE_ML`), long from side to side (:data:`CLAVICLE_SPAN_MM`,
  at least :data:`CLAVICLE_ELONGATION` times its depth and its height, no taller than
  :data:`CLAVICLE_MAX_HEIGHT_MM`), wholly on one side and well off the midline, in front of
  the labelled spinal cord by :data:`CLAVICLE_FRONT_MM`, and whole in the field of view. A
  clavicle joined to the scapula, the sternum or a rib is not one component of that shape and
  is left out; so is a side with two candidates.
* ``humeri``: the upper arm's bone where a scan of the neck reaches the shoulders: a bone
  component (above :data:`CORTEX_HU`) far out to one side (:data:`HUMERUS_OFFSET_MM` from the
  midline, beside the chest), a shaft's width (:data:`HUMERUS_WIDTH_MM` each way in-plane) and
  at least as tall as wide, of :data:`HUMERUS_ML`; it may end at the scan's upper or lower edge
  (the label then ends with the CT, as a label of that scan would) but not at its in-plane edge. A
  humerus joined to the scapula is not of that shape and is left out; so is a side with two.
* ``ribs``: the bone of the chest wall where a scan of the neck reaches the chest: bone (above
  :data:`BONE_HU`, holes filled per slice) within :data:`RIB_BAND_MM` of the lungs (the air
  regions inside the body of at least :data:`RIB_LUNG_ML`), outside the vertebral column (a
  box :data:`SPINE_BOX_MM` around the labelled spinal cord's centre on each slice). A rib lies
  against the pleura, which the scapula, the clavicle and the sternum do not. Each component
  (26-connected) of a rib's volume (:data:`RIB_ML`) and length (:data:`RIB_SPAN_MM` in-plane),
  wholly on one side, that starts at the spine (comes within :data:`RIB_SPINE_MM` of the cord's
  centre: a clavicle, the sternum or a costal cartilage does not) is one rib; they are numbered
  on each side from the top by their highest slice (rib 1 is the topmost found, so a missed one
  shifts the numbers below it; two ribs are never each other's wrong-structure candidate, and a
  slice of one is a slice of a rib). Every second one is kept (ribs 1, 3, 5, ...), so that the
  ribs do not outnumber the dataset's own labels. A rib joined to the scapula or to the
  transverse process beside it at coarse pixels is not of that size and is left out. The rib
  head beside the vertebral body lies in the spine's box and is left out of the mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LUNG_HU = -400.0        # below this, inside the body: air (lung parenchyma, airway)
BODY_HU = -500.0        # above this: the patient (and the table)
MIN_LUNG_ML = 15.0      # smaller air regions are airway, sinuses or bowel gas
MIN_SIDE_SHARE = 0.97   # a lung lies (almost) wholly on its own side of the midline
MIN_OFFSET_MM = 25.0    # its centroid sits at least this far from the midline
BONE_HU = 150.0         # above this: bone (cortex and the denser cancellous bone)
NEAR_CORD_MM = 8.0      # a vertebra's bone comes this close to the cord
VERTEBRA_REACH_MM = 50.0  # and stays this close to the cord's centre
VERTEBRA_MM = (12.0, 24.0)  # a cut between two vertebrae falls this far below the last
MIN_TISSUE_SHARE = 0.6  # of the disc within 25 mm of the cord, at least this much is patient
AIRWAY_HU = -500.0      # below this, inside the body: the airway's lumen (partial volume halfway)
TRACHEA_MM2 = (40.0, 900.0)  # a trachea's cross-section lies in this range (mm²)
MAX_WIDENING = 2.0      # a slice's airway at most this many times the slice above's
TRACHEA_START_MM = 25.0  # the first slice's airway lies this close to the larynx's centre
MIN_TRACHEA_MM = 30.0   # a shorter airway is left out
CORTEX_HU = 200.0       # above this: cortical bone (a long bone's marrow is filled per slice)
CLAVICLE_ML = (8.0, 40.0)  # a clavicle's volume (an adult's is about 15-25 ml)
CLAVICLE_SPAN_MM = (80.0, 170.0)  # its extent from side to side
CLAVICLE_ELONGATION = 1.4  # its span at least this many times its depth and its height
CLAVICLE_MAX_HEIGHT_MM = 65.0  # taller: joined to the scapula or a rib
CLAVICLE_OFFSET_MM = 40.0  # its centroid lies at least this far from the midline
CLAVICLE_FRONT_MM = 25.0  # and at least this far in front of the spinal cord
HUMERUS_ML = (10.0, 120.0)  # the part of a humerus a neck scan reaches
HUMERUS_WIDTH_MM = (20.0, 70.0)  # a shaft's (or the head's) width, each way in-plane
HUMERUS_OFFSET_MM = 140.0  # its centroid this far from the midline: beside the chest, not in it
RIB_LUNG_ML = 50.0      # the lungs: air regions inside the body at least this large
RIB_BAND_MM = 12.0      # a rib's bone lies this close to the lung (against the pleura)
SPINE_BOX_MM = (22.0, 30.0, 60.0)  # the column: this far to either side of the cord's centre,
#                         behind it and in front of it (the vertebral body, its arch)
RIB_SPINE_MM = 40.0     # a rib comes this close to the cord's centre (it starts at the spine)
RIB_ML = (1.0, 25.0)    # the part of one rib a neck scan reaches
RIB_SPAN_MM = 50.0      # and at least this long in-plane
SOURCES = ("lungs", "vertebrae", "trachea", "clavicles", "humeri", "ribs")
"""What :func:`derived_structures` can make."""
CORD = "spinal cord"
LARYNX = "larynx"
ESOPHAGUS = "esophagus"
VERTEBRA_LEVELS = (*(f"C{i}" for i in range(2, 8)), *(f"T{i}" for i in range(1, 13)),
                   *(f"L{i}" for i in range(1, 6)))


def derived_overrides(text: str) -> dict[str, object]:
    """The sample settings (``derived``, ``derived_sources``) that a ``--derived`` value asks
    for: sources comma-separated (``"lungs,vertebrae"``), an empty value for none. Raises
    :class:`UsageError` naming the first unknown source."""
    from qsaudit.errors import UsageError

    sources = tuple(v for v in text.replace(" ", "").split(",") if v)
    unknown = [v for v in sources if v not in SOURCES]
    if unknown:
        raise UsageError(f"--derived {text!r}: unknown source {unknown[0]!r}; choose from "
                         f"{', '.join(SOURCES)}")
    return {"derived": bool(sources), "derived_sources": sources or ("lungs",)}


def derived_structures(ct: np.ndarray, spacing: tuple[float, float, float], *,
                       existing: set[str] | frozenset[str] = frozenset(),
                       masks: dict[str, np.ndarray] | None = None,
                       sources: tuple[str, ...] = ("lungs",)) -> dict[str, np.ndarray]:
    """Masks of structures found from HU and connectivity alone, keyed by registry name.

    Args:
        ct: CT in HU, (X, Y, Z) in RAS (x increases towards the patient's right).
        spacing: voxel size in mm.
        existing: structures the case already has; those are never replaced.
        masks: the case's labels by registry name (``vertebrae`` needs its spinal cord,
            ``trachea`` its larynx, ``clavicles`` and ``ribs`` its spinal cord).
        sources: which of :data:`SOURCES` to make.

    Returns e.g. ``{"lung_left": mask, "lung_right": mask, "vertebra C3": mask,
    "left rib 1": mask}`` (bool, the
    CT's shape) for each structure found unambiguously; an empty dict when none is.
    """
    unknown = set(sources) - set(SOURCES)
    if unknown:
        raise ValueError(f"unknown derived source(s) {sorted(unknown)}; known: {SOURCES}")
    ct = np.asarray(ct)
    out: dict[str, np.ndarray] = {}
    body = _body(ct) if set(sources) & {"lungs", "trachea", "clavicles", "humeri", "ribs"} \
        else None
    if "lungs" in sources:
        out.update(_lungs(ct, spacing, body, existing))
    if "vertebrae" in sources and masks is not None and CORD in masks:
        out.update({k: v for k, v in _vertebrae(ct, spacing, masks[CORD]).items()
                    if k not in existing})
    if "trachea" in sources and masks is not None and LARYNX in masks \
            and "trachea" not in existing:
        trachea = _trachea(ct, spacing, body, np.asarray(masks[LARYNX], dtype=bool),
                           masks.get(ESOPHAGUS))
        if trachea is not None:
            out["trachea"] = trachea
    want_clavicles = "clavicles" in sources and masks is not None and CORD in masks
    if want_clavicles or "humeri" in sources:
        bones = _one_sided_bones(ct, spacing, body, ml=(min(CLAVICLE_ML[0], HUMERUS_ML[0]),
                                                         max(CLAVICLE_ML[1], HUMERUS_ML[1])))
        if want_clavicles:
            out.update({k: v for k, v in _clavicles(bones, spacing, masks[CORD]).items()
                        if k not in existing})
        if "humeri" in sources:
            out.update({k: v for k, v in _humeri(bones, spacing, ct.shape).items()
                        if k not in existing})
    if "ribs" in sources and masks is not None and CORD in masks:
        out.update({k: v for k, v in _ribs(ct, spacing, body, masks[CORD]).items()
                    if k not in existing})
    return out


def _lungs(ct: np.ndarray, spacing: tuple[float, float, float], body: np.ndarray,
           existing: set[str] | frozenset[str]) -> dict[str, np.ndarray]:
    """The lungs of :func:`derived_structures` (``body``: :func:`_body` of ``ct``)."""
    from scipy import ndimage as ndi

    if not body.any():
        return {}
    air = (ct < LUNG_HU) & body
    labels, n = ndi.label(air)
    if n == 0:
        return {}
    voxel_ml = float(np.prod(spacing)) / 1000.0
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    midline = _midline(body)
    x = np.arange(ct.shape[0], dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    for comp in np.flatnonzero(sizes * voxel_ml >= MIN_LUNG_ML):
        if comp == 0:
            continue
        mask = labels == comp
        box = ndi.find_objects(mask.astype(np.int8))[0]
        if box[0].start == 0 or box[1].start == 0 or box[0].stop == ct.shape[0] \
                or box[1].stop == ct.shape[1]:
            continue  # cut by the in-plane field of view: not a whole cross-section
        per_x = mask.sum(axis=(1, 2), dtype=np.int64).astype(np.float64)
        right_share = float(per_x[x > midline].sum() / per_x.sum())
        centre = float((per_x * x).sum() / per_x.sum())
        if abs(centre - midline) * float(spacing[0]) < MIN_OFFSET_MM:
            continue
        if right_share >= MIN_SIDE_SHARE:
            name = "lung_right"
        elif right_share <= 1.0 - MIN_SIDE_SHARE:
            name = "lung_left"
        else:
            continue
        if name in existing or name in out:  # two candidates for one lung: ambiguous
            out.pop(name, None)
            existing = set(existing) | {name}
            continue
        out[name] = _fill_slices(mask)
    return out


def _body(ct: np.ndarray) -> np.ndarray:
    """The patient: the largest component above :data:`BODY_HU`, its holes filled per slice."""
    from scipy import ndimage as ndi

    solid = ct > BODY_HU
    labels, n = ndi.label(solid)
    if n == 0:
        return solid
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    body = labels == int(np.argmax(sizes))
    return _fill_slices(body)


def _fill_slices(mask: np.ndarray) -> np.ndarray:
    """``mask`` with the holes of every axial slice filled (vessels inside a lung, lungs
    inside the body)."""
    from scipy import ndimage as ndi

    out = np.zeros_like(mask, dtype=bool)
    for z in np.flatnonzero(mask.any(axis=(0, 1))):
        out[:, :, z] = ndi.binary_fill_holes(mask[:, :, z])
    return out


def _midline(body: np.ndarray) -> float:
    """x index of the body's left-right centre (mean of the body voxels' x)."""
    per_x = body.sum(axis=(1, 2), dtype=np.int64).astype(np.float64)
    return float((per_x * np.arange(per_x.size)).sum() / per_x.sum())


def _column(ct: np.ndarray, spacing: tuple[float, float, float],
            cord: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The vertebral column around ``cord``, slice by slice, and its vertebral-body area (mm²)
    per slice (0 where the slice is skipped)."""
    from scipy import ndimage as ndi

    sx, sy = float(spacing[0]), float(spacing[1])
    column = np.zeros(ct.shape, dtype=bool)
    body_area = np.zeros(ct.shape[2])
    xx, yy = np.meshgrid(np.arange(ct.shape[0]) * sx, np.arange(ct.shape[1]) * sy,
                         indexing="ij")
    for z in np.flatnonzero(cord.any(axis=(0, 1))):
        c = cord[:, :, z]
        cx, cy = (np.argwhere(c) * (sx, sy)).mean(axis=0)
        radius = np.hypot(xx - cx, yy - cy)
        around = radius <= 25.0
        if (ct[:, :, z][around] > BODY_HU).mean() < MIN_TISSUE_SHARE:
            continue  # only a margin of CT around the cord: no anatomy to follow
        labels, _ = ndi.label(ct[:, :, z] > BONE_HU, structure=np.ones((3, 3)))
        near = ndi.distance_transform_edt(~c, sampling=(sx, sy)) <= NEAR_CORD_MM
        ids = np.unique(labels[near & (labels > 0)])
        if ids.size == 0:
            continue
        bone = np.isin(labels, ids)
        if radius[bone].max() > VERTEBRA_REACH_MM:
            continue  # the skull base, or a rib joined on: not a vertebra alone
        filled = ndi.binary_fill_holes(bone)
        mask = filled & ~_canal(bone, filled, ndi.binary_fill_holes(c))
        column[:, :, z] = mask
        cord_radius = np.sqrt(c.sum() * sx * sy / np.pi)
        body_area[z] = (mask & (yy > cy + cord_radius + 2.0)).sum() * sx * sy
    return column, body_area


def _canal(bone: np.ndarray, filled: np.ndarray, cord: np.ndarray) -> np.ndarray:
    """The spinal canal on one slice: the hole of the bone ring (``filled``: ``bone`` with its
    holes filled) that the cord lies in (the cord itself where the ring is open)."""
    from scipy import ndimage as ndi

    labels, _ = ndi.label(filled & ~bone)
    ids = np.unique(labels[cord & (labels > 0)])
    return np.isin(labels, ids[ids > 0]) | cord


def _vertebrae(ct: np.ndarray, spacing: tuple[float, float, float],
               cord: np.ndarray) -> dict[str, np.ndarray]:
    """The vertebrae of :func:`derived_structures`, on the longest run of slices where the
    column is clear (an empty dict when that holds fewer than two vertebrae, or more levels
    than the names)."""
    column, body_area = _column(ct, spacing, np.asarray(cord, dtype=bool))
    run = _longest_run(column.any(axis=(0, 1)))
    if run is None:
        return {}
    bottom, top = run
    dz = float(spacing[2])
    lo, hi = (max(1, round(mm / dz)) for mm in VERTEBRA_MM)
    cuts = [top + 1]
    while cuts[-1] - lo > bottom:
        window = np.arange(max(cuts[-1] - hi, bottom), cuts[-1] - lo + 1)
        cuts.append(int(window[np.argmin(body_area[window])]))
    if cuts[-1] - bottom < lo:  # a last piece shorter than a vertebra: joined to the one above
        cuts.pop()
    cuts.append(bottom)
    pieces = [(cuts[i + 1], cuts[i]) for i in range(len(cuts) - 1)]
    if len(pieces) < 2 or len(pieces) > len(VERTEBRA_LEVELS):
        return {}
    out = {}
    for k, (level, (z0, z1)) in enumerate(zip(VERTEBRA_LEVELS, pieces, strict=False)):
        if k % 2:
            continue  # every second level: the vertebrae stay a share of the labels, not most
        mask = np.zeros_like(column)
        mask[:, :, z0:z1] = column[:, :, z0:z1]
        out[f"vertebra {level}"] = mask
    return out


def _longest_run(flags: np.ndarray) -> tuple[int, int] | None:
    """(first, last) index of the longest run of True in ``flags`` (the first of equally long
    ones); None when there is none."""
    from scipy import ndimage as ndi

    labels, n = ndi.label(flags)
    if n == 0:
        return None
    longest = int(np.argmax(np.bincount(labels.ravel())[1:])) + 1
    where = np.flatnonzero(labels == longest)
    return int(where[0]), int(where[-1])


def _trachea(ct: np.ndarray, spacing: tuple[float, float, float], body: np.ndarray,
             larynx: np.ndarray, esophagus: np.ndarray | None) -> np.ndarray | None:
    """The trachea of :func:`derived_structures` (``body``: :func:`_body` of ``ct``), or None
    where it is not clear."""
    from scipy import ndimage as ndi

    levels = np.flatnonzero(larynx.any(axis=(0, 1)))
    if levels.size == 0 or levels[0] == 0:
        return None
    sx, sy, sz = (float(v) for v in spacing)
    pixel_mm2 = sx * sy
    eso = None if esophagus is None else np.asarray(esophagus, dtype=bool)
    lowest = int(levels[0])
    cx, cy = np.argwhere(larynx[:, :, lowest]).mean(axis=0)
    xx, yy = np.meshgrid(np.arange(ct.shape[0]), np.arange(ct.shape[1]), indexing="ij")
    out = np.zeros(ct.shape, dtype=bool)
    above: np.ndarray | None = None
    for z in range(lowest - 1, -1, -1):
        if above is not None and body[:, :, z].sum() < 0.5 * body[:, :, z + 1].sum():
            break  # the scan's block ends (padding below it): the trachea ends with the CT
        air = (ct[:, :, z] < AIRWAY_HU) & body[:, :, z]
        labels, _ = ndi.label(air)
        if above is None:  # the first slice: the airway near the larynx's centre
            dist = np.hypot((xx - cx) * sx, (yy - cy) * sy)
            ids = np.unique(labels[(labels > 0) & (dist <= TRACHEA_START_MM)])
            if ids.size == 0:
                return None
            counts = np.bincount(labels.ravel())[ids]
            order = np.argsort(counts)[::-1]
            if ids.size > 1 and counts[order[1]] * 3 > counts[order[0]]:
                return None  # two airways of like size (the piriform sinuses): unclear
            ids = ids[order[:1]]
        else:
            near = ndi.binary_dilation(above)
            ids = np.unique(labels[near & (labels > 0)])
            if ids.size == 0 and (near & (ct[:, :, z] < AIRWAY_HU)).any():
                return None  # the airway leaves the patient: a stoma
            if ids.size != 1:
                break  # the airway ends or divides (the carina)
        lumen = ndi.binary_fill_holes(labels == ids[0])
        if eso is not None and (lumen & eso[:, :, z]).any():
            return None  # the airway runs into the oesophagus: not a clean trachea
        area = float(lumen.sum()) * pixel_mm2
        if not TRACHEA_MM2[0] <= area <= TRACHEA_MM2[1]:
            break
        if above is not None and area > MAX_WIDENING * float(above.sum()) * pixel_mm2:
            break
        if (ndi.binary_dilation(lumen) & ~body[:, :, z]).any():
            return None  # open to the outside (a stoma)
        out[:, :, z] = lumen
        above = lumen
    length = float(out.any(axis=(0, 1)).sum()) * sz
    return out if length >= MIN_TRACHEA_MM else None


@dataclass(frozen=True)
class _Bone:
    """A bone component (above :data:`CORTEX_HU`) wholly on one side of the midline."""

    side: str                               # "left" or "right"
    box: tuple[slice, slice, slice]         # its bounding box in the CT
    local: np.ndarray                       # its voxels within ``box``
    ml: float                               # its volume
    centre: np.ndarray                      # its centroid (voxel x, y, z)
    offset_mm: float                        # its centroid's distance from the midline

    def extent_mm(self, spacing: tuple[float, float, float]) -> tuple[float, float, float]:
        """Its bounding box's size along x, y and z in mm."""
        return tuple((b.stop - b.start) * float(d) for b, d in zip(self.box, spacing))

    def touches(self, shape: tuple[int, ...], axes: int = 3) -> bool:
        """Whether its box reaches the volume's border along the first ``axes`` axes."""
        return any(b.start == 0 or b.stop == n for b, n in zip(self.box[:axes], shape[:axes]))


def _one_sided_bones(ct: np.ndarray, spacing: tuple[float, float, float], body: np.ndarray,
                     *, ml: tuple[float, float]) -> list[_Bone]:
    """The bone components of ``ct`` of a volume within ``ml`` that lie (almost) wholly on one
    side of the body's midline (:data:`MIN_SIDE_SHARE`); none without a body."""
    from scipy import ndimage as ndi

    if not body.any():
        return []
    midline = _midline(body)
    labels, n = ndi.label(ct > CORTEX_HU)
    sizes = np.bincount(labels.ravel(), minlength=n + 1) * float(np.prod(spacing)) / 1000.0
    bones = []
    for comp, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None or not ml[0] <= sizes[comp] <= ml[1]:
            continue
        local = labels[box] == comp
        where = np.argwhere(local) + [b.start for b in box]
        right_share = float((where[:, 0] > midline).mean())
        if MIN_SIDE_SHARE > right_share > 1.0 - MIN_SIDE_SHARE:
            continue
        centre = where.mean(axis=0)
        bones.append(_Bone(side="right" if right_share >= MIN_SIDE_SHARE else "left", box=box,
                           local=local, ml=float(sizes[comp]), centre=centre,
                           offset_mm=abs(float(centre[0]) - midline) * float(spacing[0])))
    return bones


def _one_per_side(found: list[_Bone], what: str,
                  shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """``{"left <what>": mask, "right <what>": mask}`` for each side with exactly one of
    ``found`` (its axial slices' holes filled); a side with two or more is left out."""
    out = {}
    for side in ("left", "right"):
        mine = [b for b in found if b.side == side]
        if len(mine) == 1:
            mask = np.zeros(shape, dtype=bool)
            mask[mine[0].box] = mine[0].local
            out[f"{side} {what}"] = _fill_slices(mask)
    return out


def _clavicles(bones: list[_Bone], spacing: tuple[float, float, float],
               cord: np.ndarray) -> dict[str, np.ndarray]:
    """The clavicles of :func:`derived_structures` (``left clavicle``, ``right clavicle``)
    among ``bones`` (:func:`_one_sided_bones` of the CT)."""
    cord = np.asarray(cord, dtype=bool)
    if not cord.any():
        return {}
    found = []
    for bone in bones:
        if not CLAVICLE_ML[0] <= bone.ml <= CLAVICLE_ML[1] or bone.touches(cord.shape):
            continue  # not a clavicle's volume, or cut by the field of view
        span, depth, height = bone.extent_mm(spacing)
        if not (CLAVICLE_SPAN_MM[0] <= span <= CLAVICLE_SPAN_MM[1]
                and span >= CLAVICLE_ELONGATION * max(depth, height)
                and height <= CLAVICLE_MAX_HEIGHT_MM) or bone.offset_mm < CLAVICLE_OFFSET_MM:
            continue
        cord_here = cord[:, :, bone.box[2]]
        if not cord_here.any():
            continue  # no cord at its levels: nothing to say where the front is
        front_mm = (bone.centre[1] - np.argwhere(cord_here)[:, 1].mean()) * float(spacing[1])
        if front_mm < CLAVICLE_FRONT_MM:
            continue  # at the cord's depth or behind it: a rib or the scapula
        found.append(bone)
    return _one_per_side(found, "clavicle", cord.shape)


def _humeri(bones: list[_Bone], spacing: tuple[float, float, float],
            shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """The humeri of :func:`derived_structures` (``left humerus``, ``right humerus``) among
    ``bones`` (:func:`_one_sided_bones` of the CT, whose ``shape`` it has)."""
    found = []
    for bone in bones:
        if not HUMERUS_ML[0] <= bone.ml <= HUMERUS_ML[1] or bone.touches(shape, axes=2):
            continue  # not a humerus' volume, or cut by the in-plane field of view
        width, depth, height = bone.extent_mm(spacing)
        if HUMERUS_WIDTH_MM[0] <= min(width, depth) and max(width, depth) <= HUMERUS_WIDTH_MM[1] \
                and height >= max(width, depth) and bone.offset_mm >= HUMERUS_OFFSET_MM:
            found.append(bone)
    return _one_per_side(found, "humerus", shape)


def _cord_centres(cord: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The cord's centre (voxel x, y) on every slice, that of the nearest slice with cord where
    a slice has none; None without cord."""
    zs = np.flatnonzero(cord.any(axis=(0, 1)))
    if zs.size == 0:
        return None
    centres = np.array([np.argwhere(cord[:, :, z]).mean(axis=0) for z in zs])
    nearest = np.abs(np.arange(cord.shape[2])[:, None] - zs[None, :]).argmin(axis=1)
    return centres[nearest, 0], centres[nearest, 1]


def _ribs(ct: np.ndarray, spacing: tuple[float, float, float], body: np.ndarray,
          cord: np.ndarray) -> dict[str, np.ndarray]:
    """The ribs of :func:`derived_structures` (``left rib 1``, ``left rib 3``, ...,
    ``right rib 1``, ...; ``body``: :func:`_body` of ``ct``)."""
    from scipy import ndimage as ndi

    cord = np.asarray(cord, dtype=bool)
    centres = _cord_centres(cord)
    if centres is None or not body.any():
        return {}
    sx, sy, sz = (float(v) for v in spacing)
    voxel_ml = sx * sy * sz / 1000.0
    air, n = ndi.label((ct < LUNG_HU) & body)
    sizes = np.bincount(air.ravel(), minlength=n + 1) * voxel_ml
    sizes[0] = 0.0
    lungs = np.isin(air, np.flatnonzero(sizes >= RIB_LUNG_ML))
    if not lungs.any():
        return {}
    near = _fill_slices(ct > BONE_HU) & (ndi.distance_transform_edt(~lungs, sampling=spacing)
                                         <= RIB_BAND_MM)
    dx = (np.arange(ct.shape[0])[:, None, None] - centres[0][None, None, :]) * sx
    dy = (np.arange(ct.shape[1])[None, :, None] - centres[1][None, None, :]) * sy
    side_mm, back_mm, front_mm = SPINE_BOX_MM
    near &= ~((np.abs(dx) <= side_mm) & (dy >= -back_mm) & (dy <= front_mm))
    labels, _ = ndi.label(near, structure=np.ones((3, 3, 3)))
    midline = _midline(body)
    found: dict[str, list[tuple[int, np.ndarray]]] = {"left": [], "right": []}
    for comp, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        local = labels[box] == comp
        if not RIB_ML[0] <= float(local.sum()) * voxel_ml <= RIB_ML[1]:
            continue
        if max((b.stop - b.start) * d for b, d in zip(box[:2], (sx, sy))) < RIB_SPAN_MM:
            continue
        where = np.argwhere(local) + [b.start for b in box]
        right_share = float((where[:, 0] > midline).mean())
        if MIN_SIDE_SHARE > right_share > 1.0 - MIN_SIDE_SHARE:
            continue  # crosses the midline: the sternum, or a rib joined to it
        z = where[:, 2]
        reach = np.hypot((where[:, 0] - centres[0][z]) * sx, (where[:, 1] - centres[1][z]) * sy)
        if reach.min() > RIB_SPINE_MM:
            continue  # does not start at the spine: a clavicle, the sternum, a cartilage
        mask = np.zeros(ct.shape, dtype=bool)
        mask[box] = local
        found["right" if right_share >= MIN_SIDE_SHARE else "left"].append((box[2].stop, mask))
    out = {}
    for side, ribs in found.items():
        ribs.sort(key=lambda item: -item[0])  # z grows towards the head: the topmost first
        for number, (_, mask) in enumerate(ribs, start=1):
            if number % 2:  # every second one: ribs 1, 3, 5, ...
                out[f"{side} rib {number}"] = mask
    return out
