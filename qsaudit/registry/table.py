"""The registry's data: structures and the vocabularies that name them, read once from CSV.

Two files ship with the package (stdlib ``csv`` only, so importing the registry stays fast and
free of pandas and torch):

- ``structures.csv``: one row per canonical structure (key, name, region, side, pair, plausible
  mean-HU range, expected connected components, ``|``-separated synonyms, what a correct mask
  may hold inside: ``lumen`` or ``marrow``, see :data:`CONTENTS`).
- ``vocabularies.csv``: one row per name a source vocabulary uses (source, label value if the
  source has label ids, the name as the source spells it, the structure key; the key is empty
  for the atlas' non-structure labels "Background" and "Left to annotate").
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cache
from importlib import resources

from qsaudit.registry.normalize import NameForm, normalize_name

CONTENTS: dict[str, str] = {
    "lumen": "a hollow organ's lumen: gas, fluid or positive oral contrast",
    "marrow": "a bone's marrow space: fatty (yellow) marrow, below water",
}
"""What a correct mask may hold inside (``structures.csv``'s ``contents`` column)."""

SOURCES: tuple[str, ...] = (
    "totalseg_v1", "totalseg_v2", "abdomenatlas", "btcv", "amos", "dap_atlas", "openkbp",
)


@dataclass(frozen=True)
class Structure:
    """One anatomical structure (or radiotherapy target) with every name it goes by.

    ``hu_range`` is the plausible range of the mean CT value (HU) inside a correct mask on
    contrast-enhanced CT, or None where no sensible range exists. ``components`` is the expected
    number of 3D connected components (None if variable). ``contents`` says what a correct mask
    may hold inside beyond its tissue (:data:`CONTENTS`), or None.
    """

    key: str
    name: str
    region: str
    side: str | None
    pair: str | None
    synonyms: tuple[str, ...]
    hu_range: tuple[float, float] | None
    components: int | None
    sources: tuple[str, ...]
    contents: str | None = None


@dataclass(frozen=True)
class VocabularyEntry:
    """A name as one source vocabulary spells it; ``key`` is None for non-structure labels."""

    source: str
    label: int | None
    name: str
    key: str | None


@dataclass(frozen=True)
class Registry:
    """All structures, by key and by normalised name, plus the source vocabularies."""

    structures: tuple[Structure, ...]
    by_key: dict[str, Structure]
    by_form: dict[NameForm, Structure]
    vocabularies: tuple[VocabularyEntry, ...]


def _read_csv(filename: str) -> list[dict[str, str]]:
    text = resources.files("qsaudit.registry").joinpath(filename).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def _read_vocabularies() -> tuple[VocabularyEntry, ...]:
    entries = []
    for row in _read_csv("vocabularies.csv"):
        if row["source"] not in SOURCES:
            raise ValueError(f'vocabularies.csv: unknown source "{row["source"]}"')
        entries.append(VocabularyEntry(
            source=row["source"],
            label=int(row["label"]) if row["label"] else None,
            name=row["name"],
            key=row["key"] or None,
        ))
    return tuple(entries)


def _index(by_form: dict[NameForm, Structure], name: str, structure: Structure) -> None:
    form = normalize_name(name)
    if not form.tokens:
        raise ValueError(f'registry: name "{name}" of "{structure.key}" normalises to nothing')
    known = by_form.get(form)
    if known is not None and known.key != structure.key:
        raise ValueError(
            f'registry: name "{name}" is ambiguous ("{known.key}" and "{structure.key}")'
        )
    by_form[form] = structure


@cache
def load_registry() -> Registry:
    """Read and cross-check the registry files (cached; raises ValueError on a broken table)."""
    vocabularies = _read_vocabularies()
    spellings: dict[str, list[str]] = {}
    sources: dict[str, list[str]] = {}
    for entry in vocabularies:
        if entry.key is None:
            continue
        spellings.setdefault(entry.key, []).append(entry.name)
        if entry.source not in sources.setdefault(entry.key, []):
            sources[entry.key].append(entry.source)

    structures = []
    for row in _read_csv("structures.csv"):
        key = row["key"]
        listed = [row["name"], *[s for s in row["synonyms"].split("|") if s],
                  *spellings.get(key, [])]
        synonyms = tuple(dict.fromkeys(s for s in listed if s not in (key, row["name"])))
        hu = (float(row["hu_min"]), float(row["hu_max"])) if row["hu_min"] else None
        contents = row.get("contents") or None
        if contents not in (None, *CONTENTS):
            raise ValueError(f"structures.csv: {key}: unknown contents {contents!r}")
        structures.append(Structure(
            key=key,
            name=row["name"],
            region=row["region"],
            side=row["side"] or None,
            pair=row["pair"] or None,
            synonyms=synonyms,
            hu_range=hu,
            components=int(row["components"]) if row["components"] else None,
            sources=tuple(s for s in SOURCES if s in sources.get(key, [])),
            contents=contents,
        ))

    by_key = {s.key: s for s in structures}
    if len(by_key) != len(structures):
        raise ValueError("structures.csv: duplicate keys")
    unknown = {e.key for e in vocabularies if e.key is not None} - set(by_key)
    if unknown:
        raise ValueError(f"vocabularies.csv: keys not in structures.csv: {sorted(unknown)}")

    by_form: dict[NameForm, Structure] = {}
    for structure in structures:
        for name in (structure.key, structure.name, *structure.synonyms):
            _index(by_form, name, structure)
    return Registry(tuple(structures), by_key, by_form, vocabularies)
