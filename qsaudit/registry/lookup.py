"""Resolve structure names from any vocabulary to one canonical structure.

Unknown names are never rejected: :func:`lookup` returns None for them and
:func:`canonical_name` / :func:`canonical_key` hand them back unchanged (stripped).
"""

from __future__ import annotations

import re

from qsaudit.errors import UsageError
from qsaudit.registry.normalize import normalize_name
from qsaudit.registry.table import SOURCES, Structure, load_registry

# radiotherapy target volumes by name: planning / clinical / gross / internal target volume,
# then anything but a longer word (PTV70, PTV_high, CTV 1, GTVp, GTVn)
_TARGET_NAME = re.compile(r"^(?:ptv|ctv|gtv|itv)(?![a-z]{3})", re.IGNORECASE)

LABEL_PRESETS: tuple[str, ...] = ("btcv", "amos", "totalseg_v1", "totalseg_v2", "dap_atlas")


def lookup(name: str) -> Structure | None:
    """The structure that ``name`` (any known spelling or synonym) denotes; None if unknown."""
    registry = load_registry()
    found = registry.by_key.get(name.strip())
    if found is not None:
        return found
    return registry.by_form.get(normalize_name(name))


def canonical_name(name: str) -> str:
    """The canonical human-readable name (e.g. "left kidney"), or ``name`` stripped if unknown."""
    structure = lookup(name)
    return structure.name if structure is not None else name.strip()


def canonical_key(name: str) -> str:
    """The snake_case key (e.g. "kidney_left"), or ``name`` stripped if unknown."""
    structure = lookup(name)
    return structure.key if structure is not None else name.strip()


def all_structures() -> tuple[Structure, ...]:
    """Every structure of the registry, in the registry's (region-grouped) order."""
    return load_registry().structures


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise UsageError(f'"{source}": unknown vocabulary (choose from {", ".join(SOURCES)})')


def vocabulary(source: str) -> tuple[str, ...]:
    """The structure names of one source, spelled as that source spells them.

    Sources: "totalseg_v1" (104 names), "totalseg_v2" (117), "abdomenatlas" (25, AbdomenAtlas
    1.1; its first 9 are AbdomenAtlas 1.0), "btcv" (13), "amos" (15), "dap_atlas" (143, without
    "Background" and "Left to annotate"), "openkbp" (10). Ordered by label value where the source
    has label values. Raises UsageError for an unknown source.
    """
    _check_source(source)
    entries = [e for e in load_registry().vocabularies if e.source == source and e.key]
    return tuple(e.name for e in entries)


def preset_labels(preset: str) -> dict[int, str]:
    """Label value -> name as the dataset spells it, for a dataset with fixed label ids.

    "btcv" gives 1..13, "amos" 1..15; "totalseg_v1" / "totalseg_v2" give TotalSegmentator's
    multi-label ids (1..104 / 1..117); "dap_atlas" gives the atlas' structures 2..144. Background
    and other non-structure labels are not included. Raises UsageError for an unknown preset.
    """
    if preset not in LABEL_PRESETS:
        raise UsageError(
            f'"{preset}": unknown label preset (choose from {", ".join(LABEL_PRESETS)})'
        )
    entries = load_registry().vocabularies
    return {e.label: e.name for e in entries
            if e.source == preset and e.key and e.label is not None}


def dap_atlas_labels() -> dict[int, str]:
    """The paper's training atlas: label value (0..144) -> name as in the atlas' label table.

    Includes 0 "Background" and 1 "Left to annotate", which are not structures.
    """
    entries = load_registry().vocabularies
    return {e.label: e.name for e in entries if e.source == "dap_atlas" and e.label is not None}


def contralateral(name: str) -> Structure | None:
    """The structure on the other side (left kidney -> right kidney); None if unpaired/unknown."""
    structure = lookup(name)
    if structure is None or structure.pair is None:
        return None
    return load_registry().by_key[structure.pair]


def is_target_volume(name: str) -> bool:
    """True for a radiotherapy target volume: a clinical margin around a tumour rather than an
    edge the CT shows, so its label quality is harder to judge from the image. Known names count
    by their region (``target``: PTV56/63/70 and their spellings); names the registry does not
    know count when they start with PTV, CTV, GTV or ITV (``PTV60``, ``CTV_high``, ``GTVp``)."""
    structure = lookup(name)
    if structure is not None:
        return structure.region == "target"
    return _TARGET_NAME.match(name.strip()) is not None


_LEVEL = re.compile(r"(?:_[CTLS]?|(?<=ptv))\d+$")


def series_key(name: str) -> str | None:
    """The series a numbered structure belongs to, its level left out: ``"rib_left"`` for
    every left rib, ``"vertebrae"`` for C1..S1, ``"ptv"`` for PTV56/63/70; None for a
    structure with no level (or one the registry does not know).

    Members of a series look alike on a single axial slice (a slice of rib 5 is a slice of a
    rib, whichever its number): which one a mask shows is a question of counting in 3D, not of
    whether the mask follows the image."""
    structure = lookup(name)
    if structure is None:
        return None
    stem, n = _LEVEL.subn("", structure.key)
    return stem if n else None


FAMILIES = ("organs", "bones", "vessels", "muscles", "bowel", "lungs", "targets", "other")
"""Structure families the accuracy is reported by (:func:`structure_family`)."""

_BOWEL = frozenset({"esophagus", "stomach", "duodenum", "small_bowel", "colon"})
_LUNG_PREFIXES = ("lung", "trachea", "bronch")


def structure_family(name: str) -> str:
    """The family of a structure (one of :data:`FAMILIES`) from its registry entry: bones
    (skeleton), vessels, muscles, bowel (oesophagus to colon), lungs and airway, radiotherapy
    targets, organs (the other abdominal, thoracic, pelvic, head-and-neck and nervous-system
    structures); names the registry does not know are ``other`` (or ``targets`` by name)."""
    structure = lookup(name)
    if structure is None:
        return "targets" if is_target_volume(name) else "other"
    key, region = structure.key, structure.region
    if key in _BOWEL:
        return "bowel"
    if key.startswith(_LUNG_PREFIXES):
        return "lungs"
    return {"skeleton": "bones", "vessels": "vessels", "muscles": "muscles",
            "target": "targets"}.get(region, "organs")
