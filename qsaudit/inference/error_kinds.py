"""What is wrong with a label: the vocabulary of error kinds, and the curator's words for each.

The vocabulary is a public contract (the ``likely_error`` column, scripts depend on the names):

* ``none``: the label looks right;
* ``too_small``: under-segmented or eroded;
* ``too_large``: over-segmented or dilated;
* ``cut_short``: the label stops before the structure ends;
* ``missing_slices``: a gap of slices inside the structure;
* ``leak``: it spills into a neighbouring structure;
* ``extra_blob``: a separate spurious piece;
* ``shifted``: displaced;
* ``boundary_noise``: a ragged or speckled edge;
* ``wrong_side``: the left/right twin's mask;
* ``wrong_structure``: another structure's mask.

:func:`kind_of_source` is the one place where the candidate sources of training
(``qsaudit.degrade.ERRORS``, ``"perfect"``, ``"wrong_structure"``, network snapshots) and the
``error`` column of ``qsaudit demo``'s truth.csv are mapped onto it; :func:`advice` is the one
wording table (report cards, correction lists and gate messages all say it the same way).
"""

from __future__ import annotations

import math

ERROR_KINDS: tuple[str, ...] = (
    "none", "too_small", "too_large", "cut_short", "missing_slices", "leak", "extra_blob",
    "shifted", "boundary_noise", "wrong_side", "wrong_structure",
)

NONE_DSC = 0.95
"""A degraded candidate whose true Dice is at least this is indistinguishable from a right one:
its kind is ``none`` (a degradation of tiny severity)."""

SOURCE_KINDS: dict[str, str] = {
    "perfect": "none",
    "none": "none",
    "erosion": "too_small",
    # holes are missed parts of the organ and oversmoothing shrinks it: both leave the label
    # smaller than the structure, which is what a curator fixes
    "holes": "too_small",
    "oversmooth": "too_small",
    "dilation": "too_large",
    "truncation": "cut_short",
    "slice_drop": "missing_slices",
    "leakage": "leak",
    "spurious_blob": "extra_blob",
    "shift": "shifted",
    "boundary_noise": "boundary_noise",
    "lr_swap": "wrong_side",
    "wrong_structure": "wrong_structure",
}
"""Candidate source (degradation name) -> error kind. Sources not listed (network snapshots,
``empty``) have no single kind."""


def kind_of_source(source: str, true_dsc: float | None = None) -> str | None:
    """The error kind of a candidate made by ``source`` (a degradation name, ``"perfect"``,
    ``"wrong_structure"``, or an error kind itself), None when it has none (network snapshots,
    unknown sources). With its ``true_dsc``, a candidate at least :data:`NONE_DSC` is ``none``
    (whatever made it), as is a snapshot that good."""
    source = str(source or "").strip()
    if true_dsc is not None and not math.isnan(float(true_dsc)) and float(true_dsc) >= NONE_DSC:
        return "none"
    if source in ERROR_KINDS:
        return source
    return SOURCE_KINDS.get(source)


_ADVICE: dict[str, tuple[str, str]] = {
    # kind: (what is wrong, what to do) - "{where}" is filled in by advice()
    "none": ("looks right", "no change needed"),
    "too_small": ("too small", "grow it to the structure's boundary{where}"),
    "too_large": ("too large", "shrink it to the structure's boundary{where}"),
    "cut_short": ("cut short{end}", "extend it{where}"),
    "missing_slices": ("slices missing", "fill in the gap{where}"),
    "leak": ("leaks into a neighbour", "cut away the spill{where}"),
    "extra_blob": ("has a stray piece", "remove the separate blob{where}"),
    "shifted": ("shifted", "move it onto the structure{where}"),
    "boundary_noise": ("ragged edge", "smooth the boundary{where}"),
    "wrong_side": ("on the wrong side", "redraw it on the other side (left/right swapped){where}"),
    "wrong_structure": ("outlines another structure", "relabel it or redraw the right one"),
}
_END_WORDS = {"top": " at the top", "bottom": " at the bottom"}


def advice(kind: str | None, slices: str | None = None, *, inside: int | None = None,
           task: bool = False) -> str:
    """The curator's words for ``kind`` at ``slices`` (an ``error_slices`` value, e.g. "40-52").

    ``"cut short at the top: extend it over slices 40-52"``; ``task=True`` gives the action
    alone (``"extend it over slices 40-52"``, for a correction list). ``inside``: any slice of
    the label (e.g. its ``worst_slice``): a cut-short span above it is at the top (RAS z grows
    upwards), below it at the bottom. Empty for an unknown or missing kind.
    """
    if not isinstance(kind, str) or kind not in _ADVICE:
        return ""
    span = parse_slices(slices)
    what, todo = _ADVICE[kind]
    end = ""
    if span is not None and inside is not None and not _missing(inside):
        end = "top" if span[0] > int(inside) else "bottom" if span[1] < int(inside) else ""
    where = ""
    if span is not None:
        where = f" over slice {span[0]}" if span[0] == span[1] else \
            f" over slices {span[0]}-{span[1]}"
    what = what.format(end=_END_WORDS.get(end, ""))
    todo = todo.format(where=where)
    return todo if task else f"{what}: {todo}"


UNRECOGNISED = "no specific error recognised: review the whole label"
"""A correction task for a label the classifier calls ``none`` though it was picked for review."""


def row_task(row: object) -> str:
    """The correction task of one results row (a mapping or pandas row with ``likely_error``,
    ``error_slices``, ``worst_slice``): :func:`advice`, :data:`UNRECOGNISED` for ``none``, ""
    when the row has no error kind (a model without an error classifier)."""
    get = row.get if hasattr(row, "get") else (lambda k, d=None: getattr(row, k, d))
    kind = get("likely_error")
    if not isinstance(kind, str) or kind not in _ADVICE:
        return ""
    if kind == "none":
        return UNRECOGNISED
    worst = get("worst_slice")
    return advice(kind, get("error_slices"), inside=None if _missing(worst) else int(worst))


def format_slices(first: int, last: int) -> str:
    """An ``error_slices`` value: ``"40-52"``, or ``"40"`` for one slice."""
    first, last = int(min(first, last)), int(max(first, last))
    return str(first) if first == last else f"{first}-{last}"


def parse_slices(slices: object) -> tuple[int, int] | None:
    """``"40-52"`` -> ``(40, 52)``, ``"40"`` -> ``(40, 40)``; None when empty or unreadable."""
    if _missing(slices):
        return None
    text = str(slices).strip()
    head, _, tail = text.partition("-")
    try:
        first = int(head)
        last = int(tail) if tail else first
    except ValueError:
        return None
    return (first, last) if first <= last else (last, first)


def _missing(value: object) -> bool:
    """None, NaN, pandas' NA or an empty string."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, str):
        return not value.strip()
    try:
        import pandas as pd

        return bool(pd.isna(value))  # pandas.NA and friends
    except (TypeError, ValueError):
        return True
