"""Turn any spelling of a structure name into a comparable form.

``"kidney_left"``, ``"left kidney"``, ``"Kidney-L"``, ``"LeftKidney"``, ``"Kidney_L"`` and
``"L kidney"`` all normalise to the same :class:`NameForm`: the side (if any) and the sorted
remaining word tokens. The registry normalises its own names and synonyms the same way, so a
rewrite here only has to be applied consistently, not be anatomically exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# File suffixes that label names often still carry when they come from mask file names.
_FILE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".npy", ".npz")

_LEFT = frozenset({"l", "lt", "left", "sinister"})
_RIGHT = frozenset({"r", "rt", "right", "dexter"})
_STOP_WORDS = frozenset({"of", "the", "and", "or", "&", "+"})

# Word variants folded onto one spelling (applied to single tokens).
_WORD_VARIANTS = {
    "vertebra": "vertebrae",
    "vertebral": "vertebrae",
    "vert": "vertebrae",
    "clavicula": "clavicle",
    "costa": "rib",
    "vena": "vein",
    "venae": "vein",
    "veins": "vein",
    "arteries": "artery",
    "glands": "gland",
    "bronchie": "bronchi",
    "bronchus": "bronchi",
    "oesophagus": "esophagus",
    "oesophageal": "esophagus",
    "coeliac": "celiac",
    "kidneys": "kidney",
    "lungs": "lung",
    "ribs": "rib",
}
# Two-word spellings folded onto one word.
_PHRASES = {
    ("gall", "bladder"): "gallbladder",
    ("brain", "stem"): "brainstem",
    ("spinal", "cord"): "spinalcord",
    ("post", "cava"): "postcava",
}

_CAMEL_LOWER_UPPER = re.compile(r"(?<=[a-z])(?=[A-Z])")
_CAMEL_ACRONYM = re.compile(r"(?<=[A-Z])(?=[A-Z][a-z])")
# "PTV56" -> "PTV 56", "rib12" -> "rib 12"; a single letter before digits stays ("L1", "T12").
_WORD_DIGITS = re.compile(r"(?<=[A-Za-z]{2})(?=\d)")
_DIGITS_WORD = re.compile(r"(?<=\d)(?=[A-Za-z]{2})")
_ORDINAL = re.compile(r"\b(\d+)(?:st|nd|rd|th)\b", re.IGNORECASE)
_SEPARATORS = re.compile(r"[\s_\-./\\,;:()\[\]]+")


@dataclass(frozen=True)
class NameForm:
    """A normalised structure name: ``side`` ("left", "right" or None) and sorted word tokens."""

    side: str | None
    tokens: tuple[str, ...]


def strip_file_suffix(name: str) -> str:
    """Drop a trailing image-file suffix such as ``.nii.gz`` (case-insensitive)."""
    lowered = name.lower()
    for suffix in _FILE_SUFFIXES:
        if lowered.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def tokenize(name: str) -> list[str]:
    """Split a name into lower-case word tokens (camelCase, ``_ - . /`` and spaces all split)."""
    text = strip_file_suffix(name.strip())
    text = _ORDINAL.sub(r"\1", text)
    text = _CAMEL_LOWER_UPPER.sub(" ", text)
    text = _CAMEL_ACRONYM.sub(" ", text)
    text = _WORD_DIGITS.sub(" ", text)
    text = _DIGITS_WORD.sub(" ", text)
    return [t for t in _SEPARATORS.split(text.lower()) if t]


def _fold_phrases(tokens: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(tokens):
        pair = tuple(tokens[i : i + 2])
        if len(pair) == 2 and pair in _PHRASES:
            out.append(_PHRASES[pair])
            i += 2
        else:
            out.append(tokens[i])
            i += 1
    return out


def normalize_name(name: str) -> NameForm:
    """Normalise a structure name for lookup.

    Case-insensitive; ``_ - . /`` and spaces are alike; camelCase is split; side words
    (l/lt/left, r/rt/right) count wherever they stand; word order does not matter; common word
    variants (vertebra/vertebrae, gall bladder/gallbladder, vena/vein, ...) are folded. A name
    with both a left and a right side word keeps those words as plain tokens and has no side.
    """
    tokens = _fold_phrases(tokenize(name))
    tokens = [_WORD_VARIANTS.get(t, t) for t in tokens if t not in _STOP_WORDS]
    lefts = [t for t in tokens if t in _LEFT]
    rights = [t for t in tokens if t in _RIGHT]
    side: str | None = None
    if lefts and not rights:
        side = "left"
        tokens = [t for t in tokens if t not in _LEFT]
    elif rights and not lefts:
        side = "right"
        tokens = [t for t in tokens if t not in _RIGHT]
    return NameForm(side=side, tokens=tuple(sorted(tokens)))
