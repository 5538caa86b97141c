"""Structure priors: what the network scores a correct label of this structure.

The slice network does not rate every structure's correct label alike: on the calibration's
correct labels its area-weighted score is about 0.95 for a lung and 0.45 for the portal vein or
the costal cartilages (thin, low-contrast structures it sees less of). Read alone, a raw score
of 0.5 then means "a poor lung" or "a fine portal vein" and the calibration cannot tell which.
A *structure prior* is the median score of the correct labels (source ``perfect``) of one
structure on the calibration's real CT, one value per patient first, so a patient's resolution
and field-of-view copies count once. The calibration reads it (``name_prior``) and how far a
label's own score falls below it (``prior_gap``). Phantoms give no prior: the network's score
of a phantom's correct label does not say what it scores on a real image (session 24: priors
from phantoms too rated the real trunk CT's ribs, 0.8-0.9 on phantoms and 0.45-0.85 there, as
poor, and lowered its mean; from real CT alone every structure family there was ranked better).

Structures are keyed by their registry name (``qsaudit.registry.canonical_name``), so a label
named ``lung_left`` in the table and ``left lung`` in a scan share one prior. Numbered series
(the ribs of one side, the vertebrae, the PTV dose levels: ``qsaudit.registry.series_key``) pool
their members: a structure's prior is its own median shrunk towards its series' median by
:data:`SHRINK_PATIENTS` patients' worth, since one member may be seen on only a few patients, and
a member with none of its own takes the series'. A structure with no correct real-CT label in
the table and no series that has one has no prior (NaN). A calibration replaces a NaN feature by
its training mean, the value its phantom labels (which have no prior) mostly hold: such a label
is calibrated as the phantoms' labels teach, as every label was before priors existed.

Inside the calibration table the prior of a label is computed without that label's patient
(:func:`leave_patient_out`), so the fit and its cross-validation never see a label's own score
in its prior; the model file stores the priors of all patients (:meth:`StructurePriors.to_json`)
for the scan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SHRINK_PATIENTS = 2.0  # a series' median counts as this many patients of a member's own
PRIORS_KEY = "structure_priors"  # where a calibration's info holds them
PRIOR_FORMAT = "qsaudit-structure-priors"


def _series(structure: str) -> str | None:
    """The registry series of ``structure`` (None for a structure with no level)."""
    from qsaudit.registry import series_key

    return series_key(structure)


def _key(structure: str) -> str:
    """The name a prior is kept under: the registry's name of ``structure`` (itself when the
    registry does not know it)."""
    from qsaudit.registry import canonical_name

    return canonical_name(structure) or structure


def _per_patient(structures: np.ndarray, patients: np.ndarray, scores: np.ndarray
                 ) -> dict[str, dict[str, float]]:
    """``{structure: {patient: median score}}`` of the given labels (registry names)."""
    keys: dict[str, str] = {}
    grouped: dict[tuple[str, str], list[float]] = {}
    for s, p, v in zip(structures.tolist(), patients.tolist(), scores.tolist(), strict=True):
        if np.isfinite(v):
            key = keys.setdefault(str(s), _key(str(s)))
            grouped.setdefault((key, str(p)), []).append(float(v))
    out: dict[str, dict[str, float]] = {}
    for (s, p), values in grouped.items():
        out.setdefault(s, {})[p] = float(np.median(values))
    return out


@dataclass(frozen=True)
class StructurePriors:
    """Per structure: the median score of its correct labels and the number of patients behind
    it; per series, the same over its members' patient medians."""

    names: dict[str, tuple[float, int]] = field(default_factory=dict)
    series: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_medians(cls, medians: dict[str, dict[str, float]],
                     exclude: str | None = None) -> StructurePriors:
        """From ``{structure: {patient: median score}}`` (see :func:`_per_patient`), leaving
        out the patient ``exclude``."""
        names: dict[str, tuple[float, int]] = {}
        pooled: dict[str, list[float]] = {}
        for s, by_patient in medians.items():
            values = [v for p, v in by_patient.items() if p != exclude]
            if not values:
                continue
            names[s] = (float(np.median(values)), len(values))
            key = _series(s)
            if key is not None:
                pooled.setdefault(key, []).extend(values)
        return cls(names=names, series={k: float(np.median(v)) for k, v in pooled.items()})

    @classmethod
    def fit(cls, structures: np.ndarray, patients: np.ndarray, scores: np.ndarray
            ) -> StructurePriors:
        """The priors of correct labels ``structures``/``patients``/``scores`` (each (G,))."""
        return cls.from_medians(_per_patient(np.asarray(structures), np.asarray(patients),
                                             np.asarray(scores, dtype=np.float64)))

    def value(self, structure: str | None) -> float:
        """The prior of ``structure`` (NaN when neither it nor its series has one)."""
        if not structure:
            return float("nan")
        structure = _key(structure)
        key = _series(structure)
        pooled = self.series.get(key) if key is not None else None
        own = self.names.get(structure)
        if own is None:
            return float("nan") if pooled is None else pooled
        median, n = own
        if pooled is None:
            return median
        return (n * median + SHRINK_PATIENTS * pooled) / (n + SHRINK_PATIENTS)

    def values(self, structures: Any) -> np.ndarray:
        """The priors (N,) of ``structures`` (N,), each distinct name looked up once."""
        known: dict[str, float] = {}
        return np.array([known.setdefault(str(s), self.value(str(s))) if s is not None
                         else float("nan") for s in structures], dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (kept in a calibration's ``info[PRIORS_KEY]``)."""
        return {"format": PRIOR_FORMAT,
                "names": {s: [round(v, 6), n] for s, (v, n) in sorted(self.names.items())},
                "series": {k: round(v, 6) for k, v in sorted(self.series.items())}}

    @classmethod
    def from_json(cls, d: dict) -> StructurePriors:
        """Rebuild from :meth:`to_json`; ValueError when it is not one."""
        if not isinstance(d, dict) or d.get("format") != PRIOR_FORMAT:
            raise ValueError("structure priors: unknown format")
        try:
            names = {_key(str(s)): (float(v), int(n)) for s, (v, n) in d.get("names", {}).items()}
            series = {str(k): float(v) for k, v in d.get("series", {}).items()}
        except (TypeError, ValueError):
            raise ValueError("structure priors: malformed entries") from None
        return cls(names=names, series=series)


def calibration_priors(calibration: object | None) -> StructurePriors | None:
    """The priors a calibration stores in its ``info`` (None when it has none)."""
    stored = (getattr(calibration, "info", None) or {}).get(PRIORS_KEY)
    return None if stored is None else StructurePriors.from_json(stored)


def leave_patient_out(structures: np.ndarray, patients: np.ndarray, scores: np.ndarray,
                      correct: np.ndarray) -> np.ndarray:
    """The prior (G,) of every label's structure from the correct labels (``correct`` (G,)
    bool) of the other patients: no label's own patient is in its prior."""
    structures = np.asarray(structures).astype(str)
    patients = np.asarray(patients).astype(str)
    correct = np.asarray(correct, dtype=bool)
    medians = _per_patient(structures[correct], patients[correct],
                           np.asarray(scores, dtype=np.float64)[correct])
    out = np.full(structures.size, np.nan)
    for p in np.unique(patients):
        rows = np.flatnonzero(patients == p)
        out[rows] = StructurePriors.from_medians(medians, exclude=str(p)).values(structures[rows])
    return out
