"""Thumbnails of the worst slices of a label: CT in a soft-tissue window with the mask outlined.

Slices arrive as 2D arrays indexed ``(x, y)`` in canonical RAS+ orientation (``+x`` = towards the
patient's right, ``+y`` = anterior). They are shown in the radiological convention: anterior at the
top and the patient's right on the left of the image, so row 0 is the largest ``y`` and column 0 the
largest ``x``. Coronal planes arrive as ``(x, z)`` and sagittal ones as ``(y, z)``: the same
rule puts the head at the top, the patient's right on the left (coronal) and the face on the left
(sagittal). Slice drops and truncation show best in these two.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # a reader process crops thumbnails without pandas
    import pandas as pd

# Outline colours (RGB): the scanned label, and the reference mask when one is known; the mark of
# the worst axial slice on the coronal and sagittal views; the gap between tiled slices (pixels).
OUTLINE_RGB = (255, 48, 48)
REFERENCE_RGB = (40, 220, 110)
MARK_RGB = (255, 214, 0)
VIEW_PX = 240
_GAP_PX = 4
_GAP_RGB = (255, 255, 255)


@dataclass
class PlaneView:
    """A coronal ``(x, z)`` or sagittal ``(y, z)`` plane through a label (RAS orientation).

    ``ct`` float HU and ``mask`` bool of one 2D shape; ``spacing`` (mm) along its two axes;
    ``position``: the plane's index on the third axis (y for coronal, x for sagittal);
    ``z0``/``z_step``: the volume's axial index of column 0 of the second axis and the axial
    stride (so axial slice ``z`` is at column ``(z - z0) / z_step``); ``reference``: the
    reference mask in the same plane, when one is known.
    """

    ct: np.ndarray
    mask: np.ndarray
    spacing: tuple[float, float]
    position: int = 0
    z0: int = 0
    z_step: int = 1
    reference: np.ndarray | None = None

    def __post_init__(self) -> None:
        if np.ndim(self.ct) != 2 or np.shape(self.ct) != np.shape(self.mask):
            raise ValueError(f"PlaneView: CT of shape {np.shape(self.ct)} and mask of shape "
                             f"{np.shape(self.mask)} must be the same 2D shape")
        if self.reference is not None and np.shape(self.reference) != np.shape(self.mask):
            raise ValueError("PlaneView: the reference mask must have the mask's shape")


@dataclass
class ThumbnailInputs:
    """What a scan keeps, per label, to draw its thumbnail.

    ``ct_slices``: 2D float arrays ``(X, Y)`` in HU (RAS orientation); ``mask_slices``: matching 2D
    bool arrays of the same shapes; ``slice_indices``: the axial index (RAS z) of each slice;
    ``spacing``: in-plane voxel size ``(x, y)`` in mm, used for the aspect ratio;
    ``coronal``/``sagittal``: planes through the label (None for thumbnails stored before they
    were kept); ``reference_slices``: the reference mask on each slice, when one is known.
    """

    ct_slices: list[np.ndarray]
    mask_slices: list[np.ndarray]
    slice_indices: list[int]
    spacing: tuple[float, float]
    coronal: PlaneView | None = None
    sagittal: PlaneView | None = None
    reference_slices: list[np.ndarray] | None = None

    def __post_init__(self) -> None:
        n = len(self.ct_slices)
        if n == 0:
            raise ValueError("ThumbnailInputs: no slice given")
        if len(self.mask_slices) != n or len(self.slice_indices) != n:
            raise ValueError(
                f"ThumbnailInputs: {n} CT slices but {len(self.mask_slices)} masks and "
                f"{len(self.slice_indices)} slice indices"
            )
        for ct, mask in zip(self.ct_slices, self.mask_slices, strict=True):
            if np.ndim(ct) != 2 or np.shape(ct) != np.shape(mask):
                raise ValueError(
                    f"ThumbnailInputs: CT slice of shape {np.shape(ct)} and mask of shape "
                    f"{np.shape(mask)} must be the same 2D shape"
                )
        sx, sy = (float(s) for s in self.spacing)
        if not (sx > 0 and sy > 0):
            raise ValueError(f"ThumbnailInputs: spacing {self.spacing} must be positive (mm)")
        if self.reference_slices is not None and [np.shape(r) for r in self.reference_slices] \
                != [np.shape(m) for m in self.mask_slices]:
            raise ValueError("ThumbnailInputs: reference slices must match the mask slices")


def field_of_view(lo: int, hi: int, n: int, spacing: float, *, margin_mm: float = 30.0,
                  min_half_mm: float = 60.0) -> tuple[int, int]:
    """Voxel range (half-open, inside ``0..n``) of a field of view around the mask's ``lo..hi``:
    ``margin_mm`` beyond it on each side and at least ``2 * min_half_mm`` wide."""
    half = max((hi - lo) * spacing / 2 + margin_mm, min_half_mm) / max(spacing, 1e-6)
    centre = (lo + hi) / 2
    return max(0, int(np.floor(centre - half))), min(n, int(np.ceil(centre + half)))


def cut_planes(ct: np.ndarray, mask: np.ndarray, spacing: tuple[float, float, float],
               bbox: tuple[tuple[int, int], ...], *, size: int,
               reference: np.ndarray | None = None) -> dict[str, dict]:
    """The coronal and sagittal planes through a label's fullest row and column.

    ``ct``/``mask`` (and ``reference``) are ``(X, Y, Z)`` RAS volumes, ``bbox`` the mask's
    half-open voxel ranges. Each plane covers :func:`field_of_view` around the mask, strided to
    at most ``size`` samples a side. Returns name -> {"ct" int16, "mask" bool, "spacing",
    "position", "z0", "z_step"} (and "reference" bool when given): the fields of
    :class:`PlaneView`.
    """
    (x0, x1), (y0, y1), (z0, z1) = bbox
    xs = field_of_view(x0, x1, ct.shape[0], spacing[0])
    ys = field_of_view(y0, y1, ct.shape[1], spacing[1])
    zs = field_of_view(z0, z1, ct.shape[2], spacing[2])
    step = max(1, -(-max(xs[1] - xs[0], ys[1] - ys[0]) // size))
    z_step = max(1, -(-(zs[1] - zs[0]) // size))
    box = np.asarray(mask[x0:x1, y0:y1, z0:z1], dtype=bool)
    y_at = y0 + int(np.argmax(box.sum(axis=(0, 2))))  # the fullest coronal plane
    x_at = x0 + int(np.argmax(box.sum(axis=(1, 2))))  # the fullest sagittal plane
    z_cut = slice(zs[0], zs[1], z_step)
    planes = {}
    for name, cut, along, position in (
            ("coronal", (slice(xs[0], xs[1], step), y_at, z_cut), spacing[0], y_at),
            ("sagittal", (x_at, slice(ys[0], ys[1], step), z_cut), spacing[1], x_at)):
        plane = {"ct": np.ascontiguousarray(
                     np.clip(np.rint(ct[cut]), -32768, 32767).astype(np.int16)),
                 "mask": np.ascontiguousarray(mask[cut], dtype=bool),
                 "spacing": (float(along) * step, float(spacing[2]) * z_step),
                 "position": int(position), "z0": int(zs[0]), "z_step": int(z_step)}
        if reference is not None:
            plane["reference"] = np.ascontiguousarray(reference[cut], dtype=bool)
        planes[name] = plane
    return planes


def plane_view(plane: dict) -> PlaneView:
    """A :class:`PlaneView` from a :func:`cut_planes` entry (or its stored copy)."""
    reference = plane.get("reference")
    return PlaneView(ct=np.asarray(plane["ct"], dtype=np.float32),
                     mask=np.asarray(plane["mask"], dtype=bool),
                     spacing=tuple(float(s) for s in plane["spacing"]),
                     position=int(plane["position"]), z0=int(plane["z0"]),
                     z_step=int(plane["z_step"]),
                     reference=None if reference is None else np.asarray(reference, dtype=bool))


def select_thumbnail_slices(slice_table_for_label: pd.DataFrame, k: int = 3) -> list[int]:
    """The ``k`` slices with the lowest predicted slice Dice, worst first.

    ``slice_table_for_label`` has at least ``slice_index`` and ``slice_dsc`` (``SLICE_COLUMNS``) for
    one label; slices without a prediction are ignored, ties go to the lower slice index. Returns
    fewer than ``k`` indices when the table is shorter, and ``[]`` for an empty table.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    table = slice_table_for_label[["slice_index", "slice_dsc"]].dropna()
    table = table.drop_duplicates("slice_index")
    ordered = table.sort_values(["slice_dsc", "slice_index"], kind="mergesort")
    return [int(i) for i in ordered["slice_index"].head(k)]


def make_thumbnail(
    inputs: ThumbnailInputs,
    *,
    window: tuple[float, float] = (-160.0, 240.0),
    size_px: int = 160,
    margin_mm: float = 25.0,
    min_fov_mm: float = 90.0,
) -> str:
    """Render the slices side by side as one PNG and return it as a ``data:image/png`` URI.

    The CT is shown in grey through ``window`` (HU, low/high), the mask as a coloured outline. All
    slices are cropped to the same square-ish field around the union of their masks (``margin_mm``
    around it, at least ``min_fov_mm`` wide) so small organs stay visible; the longer side of each
    tile is ``size_px`` display pixels, with the in-plane spacing respected.
    """
    low, high = float(window[0]), float(window[1])
    if not high > low:
        raise ValueError(f"window {window}: high must exceed low (HU)")
    sx, sy = (float(s) for s in inputs.spacing)
    x0, x1, y0, y1 = _crop_box(inputs.mask_slices, (sx, sy), margin_mm, min_fov_mm)
    tiles = []
    for ct, mask in zip(inputs.ct_slices, inputs.mask_slices, strict=True):
        ct_crop = np.asarray(ct, dtype=np.float32)[x0:x1, y0:y1]
        mask_crop = np.asarray(mask, dtype=bool)[x0:x1, y0:y1]
        tiles.append(_render_tile(ct_crop, mask_crop, (sx, sy), low, high, size_px))
    height = max(t.shape[0] for t in tiles)
    parts = []
    for i, tile in enumerate(tiles):
        if i:
            parts.append(np.full((height, _GAP_PX, 3), _GAP_RGB, dtype=np.uint8))
        pad = np.full((height, tile.shape[1], 3), _GAP_RGB, dtype=np.uint8)
        pad[: tile.shape[0]] = tile
        parts.append(pad)
    return png_data_uri(np.concatenate(parts, axis=1))


@dataclass(frozen=True)
class View:
    """One rendered view of a card: ``name`` (axial, coronal, sagittal), a caption, the PNG."""

    name: str
    caption: str
    uri: str


def make_views(
    inputs: ThumbnailInputs,
    *,
    window: tuple[float, float] = (-160.0, 240.0),
    size_px: int = VIEW_PX,
    margin_mm: float = 30.0,
    min_fov_mm: float = 120.0,
) -> list[View]:
    """The worst axial slice, and the coronal and sagittal planes through the label when kept.

    Each view is cropped to a physical field of view around the mask (``margin_mm`` around it,
    at least ``min_fov_mm``) so a small structure keeps its surroundings; the label is outlined
    in red, a known reference mask in green, and the worst axial slice is marked (yellow ticks)
    on the other two views. Images are ``size_px`` on their longer side, meant to be shown small
    on the card and larger on click.
    """
    low, high = float(window[0]), float(window[1])
    if not high > low:
        raise ValueError(f"window {window}: high must exceed low (HU)")
    sx, sy = (float(s) for s in inputs.spacing)
    z = int(inputs.slice_indices[0])
    refs = inputs.reference_slices
    views = [View("axial", f"axial, slice {z} (the worst)", _plane_png(
        inputs.ct_slices[0], inputs.mask_slices[0], refs[0] if refs is not None else None,
        (sx, sy), low, high, size_px, margin_mm, min_fov_mm, None))]
    for name, plane in (("coronal", inputs.coronal), ("sagittal", inputs.sagittal)):
        if plane is None:
            continue
        column = round((z - plane.z0) / max(plane.z_step, 1))
        mark = column if 0 <= column < np.shape(plane.mask)[1] else None
        views.append(View(name, f"{name}, through {'y' if name == 'coronal' else 'x'} = "
                          f"{plane.position}", _plane_png(
                              plane.ct, plane.mask, plane.reference, plane.spacing, low, high,
                              size_px, margin_mm, min_fov_mm, mark)))
    return views


def _plane_png(ct: np.ndarray, mask: np.ndarray, reference: np.ndarray | None,
               spacing: tuple[float, float], low: float, high: float, size_px: int,
               margin_mm: float, min_fov_mm: float, mark: int | None) -> str:
    shown = [np.asarray(mask, dtype=bool)]
    if reference is not None:
        shown.append(np.asarray(reference, dtype=bool))
    x0, x1, y0, y1 = _crop_box(shown, spacing, margin_mm, min_fov_mm)
    crop = (slice(x0, x1), slice(y0, y1))
    tile = _render_tile(np.asarray(ct, dtype=np.float32)[crop], shown[0][crop], spacing, low,
                        high, size_px, reference=None if reference is None else shown[1][crop],
                        mark=None if mark is None or not y0 <= mark < y1 else mark - y0)
    return png_data_uri(tile)


def png_data_uri(rgb: np.ndarray) -> str:
    """Encode an ``(H, W, 3)`` uint8 image as a base64 ``data:image/png`` URI (Pillow;
    matplotlib's ``imsave`` wraps the same encoder behind a much heavier import).

    zlib level 3: on CT thumbnails it encodes twice as fast as Pillow's default level 6, for
    a report about 7% larger (40 worst labels of a 400-label scan: 0.24 s less)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB").save(
        buf, format="PNG", compress_level=3)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _crop_box(
    masks: list[np.ndarray], spacing: tuple[float, float], margin_mm: float, min_fov_mm: float
) -> tuple[int, int, int, int]:
    """Voxel bounds ``(x0, x1, y0, y1)`` around the union of the masks (whole slice if empty)."""
    shape = np.shape(masks[0])
    union = np.zeros(shape, dtype=bool)
    for m in masks:
        if np.shape(m) == shape:
            union |= np.asarray(m, dtype=bool)
    if not union.any():
        return 0, shape[0], 0, shape[1]
    bounds = []
    for axis, (n, sp) in enumerate(zip(shape, spacing, strict=True)):
        hits = np.flatnonzero(union.any(axis=1 - axis))
        lo, hi = float(hits[0]), float(hits[-1] + 1)
        half = max((hi - lo) * sp / 2 + margin_mm, min_fov_mm / 2) / sp
        centre = (lo + hi) / 2
        a, b = int(np.floor(centre - half)), int(np.ceil(centre + half))
        bounds += [max(a, 0), min(b, n)]
    return bounds[0], bounds[1], bounds[2], bounds[3]


def _render_tile(
    ct: np.ndarray, mask: np.ndarray, spacing: tuple[float, float], low: float, high: float,
    size_px: int, *, reference: np.ndarray | None = None, mark: int | None = None,
) -> np.ndarray:
    """One ``(H, W, 3)`` uint8 tile in radiological orientation; ``reference``: a second mask
    outlined in :data:`REFERENCE_RGB`; ``mark``: an index on the second (vertical) axis marked
    by ticks at both edges."""
    # (x, y) RAS -> image rows = y with anterior up, columns = x with the patient's right on the left
    ct_img = ct.T[::-1, ::-1]
    mask_img = mask.T[::-1, ::-1]
    sx, sy = spacing
    height_mm, width_mm = ct_img.shape[0] * sy, ct_img.shape[1] * sx
    scale = size_px / max(height_mm, width_mm)
    out_h = max(1, round(height_mm * scale))
    out_w = max(1, round(width_mm * scale))
    rows = np.minimum((np.arange(out_h) + 0.5) / out_h * ct_img.shape[0], ct_img.shape[0] - 1)
    cols = np.minimum((np.arange(out_w) + 0.5) / out_w * ct_img.shape[1], ct_img.shape[1] - 1)
    ri, ci = rows.astype(int)[:, None], cols.astype(int)[None, :]
    grey = np.clip((ct_img[ri, ci] - low) / (high - low), 0.0, 1.0)
    grey = np.nan_to_num(grey, nan=0.0)
    rgb = np.repeat((grey * 255).round().astype(np.uint8)[..., None], 3, axis=2)
    if reference is not None:
        rgb[_outline(np.asarray(reference, dtype=bool).T[::-1, ::-1][ri, ci])] = REFERENCE_RGB
    edge = _outline(mask_img[ri, ci])
    rgb[edge] = OUTLINE_RGB
    if mark is not None:
        marked = np.flatnonzero(ri[:, 0] == ct_img.shape[0] - 1 - mark)
        if len(marked):
            row, tick = int(marked[len(marked) // 2]), max(3, out_w // 12)
            rows_marked = slice(max(0, row - 1), row + 1)
            rgb[rows_marked, :tick] = MARK_RGB
            rgb[rows_marked, out_w - tick:] = MARK_RGB
    return rgb


def _outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with at least one 4-neighbour outside it (image borders count as out)."""
    padded = np.pad(mask, 1, constant_values=False)
    inner = (
        padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    )
    return mask & ~inner
