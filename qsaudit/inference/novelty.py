"""Is a label unlike what the model learnt from? Then its interval widens, and it says so.

A prediction interval sized on the calibration's held-out errors (``qsaudit.inference.intervals``)
holds for labels like the calibration labels. A label outside that experience deserves less
confidence, and the curator should know why. Two signs are checked:

* **name**: the cosine similarity of the structure name's text embedding to the nearest name of
  the labels the intervals were sized on (the calibration's ``reference_structures``: its
  real-CT labels; else the model file's training vocabulary) is below
  :data:`NAME_SIMILARITY_MIN`: a structure whose errors on real CT were never measured;
* **image**: some of the label's calibration features (slice-score summaries, the whole mask's
  shape and HU descriptors, the end probes) fall outside the range they took on the calibration
  reference labels (their 0.5-99.5% quantiles, widened by :data:`RANGE_SLACK` of the range): a
  mask, a CT or a score pattern of another kind than those the errors were measured on.

Such a label's interval is widened: each half-width becomes the larger of :data:`WIDEN` times its
own and the widest the calibration's bands reach at any predicted value (at least
:data:`MIN_HALF_WIDTH`), clipped to [0, 1]; the error bands of a bin say nothing about a label
unlike its labels. A label with a new **name** also gets an upper end of 1
(:data:`NEW_NAME_HIGH`): the slice network underrates real anatomy it was never shown on real CT
(on real fine-pixel trunk CT it scored TotalSegmentator's mostly good labels 0.58 on average,
ribs and vessels lowest), so a low score of such a structure does not show that the label is
bad; the lower end, which says how good the label at least is, keeps its widened reach. The
results say which sign fired (column ``novelty``). numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

NAME_SIMILARITY_MIN = 0.8
RANGE_QUANTILES = (0.005, 0.995)
RANGE_SLACK = 0.10
MIN_OUTLIERS = 1
WIDEN = 2.0
MIN_HALF_WIDTH = 0.15
NEW_NAME_HIGH = 1.0  # the upper end of a label whose structure was never measured on real CT
RANGES_FORMAT = "qsaudit-feature-ranges"


@dataclass(frozen=True)
class FeatureRanges:
    """Where each calibration feature lay on the calibration labels: ``names`` (F,),
    ``low``/``high`` (F,) its 0.5% and 99.5% quantiles (NaN for a feature never measured)."""

    names: tuple[str, ...]
    low: np.ndarray
    high: np.ndarray

    def outliers(self, features: np.ndarray) -> list[str]:
        """Names of the features of one label outside their widened range (a missing, NaN
        feature is never an outlier: e.g. no end probe at the volume's edge). ``features``: one
        per name of these ranges, or the full ``qsaudit.inference.aggregate.FEATURES`` vector
        (ranges stored before a feature existed read the ones they know by name)."""
        from qsaudit.inference.aggregate import FEATURES

        f = np.asarray(features, dtype=np.float64).ravel()
        if f.size != len(self.names) and f.size == len(FEATURES) \
                and all(n in FEATURES for n in self.names):
            f = f[[FEATURES.index(n) for n in self.names]]
        if f.size != len(self.names):
            raise ValueError(f"feature ranges: {len(self.names)} features, got {f.size}")
        slack = RANGE_SLACK * np.maximum(self.high - self.low, 1e-6)
        with np.errstate(invalid="ignore"):
            out = (f < self.low - slack) | (f > self.high + slack)
        out &= np.isfinite(f) & np.isfinite(self.low) & np.isfinite(self.high)
        return [n for n, o in zip(self.names, out, strict=True) if o]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (kept as ``calibration.info["feature_ranges"]``)."""
        return {"format": RANGES_FORMAT, "names": list(self.names),
                "low": [None if not math.isfinite(v) else float(v) for v in self.low],
                "high": [None if not math.isfinite(v) else float(v) for v in self.high]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FeatureRanges:
        """Rebuild from :meth:`to_json`; ValueError when it is malformed."""
        if not isinstance(d, dict) or d.get("format") != RANGES_FORMAT:
            raise ValueError("feature ranges: unknown format")
        try:
            names = tuple(str(n) for n in d["names"])
            low = np.array([np.nan if v is None else float(v) for v in d["low"]])
            high = np.array([np.nan if v is None else float(v) for v in d["high"]])
        except (KeyError, TypeError, ValueError):
            raise ValueError("feature ranges: fields missing or not numbers") from None
        if low.shape != (len(names),) or high.shape != (len(names),):
            raise ValueError("feature ranges: arrays have the wrong sizes")
        return cls(names, low, high)


def feature_ranges(features: np.ndarray, names: tuple[str, ...] | list[str]) -> FeatureRanges:
    """The :class:`FeatureRanges` of calibration labels' ``features`` (G, F), NaN ignored."""
    f = np.asarray(features, dtype=np.float64)
    lo, hi = RANGE_QUANTILES
    low = np.full(f.shape[1], np.nan)
    high = np.full(f.shape[1], np.nan)
    for j in range(f.shape[1]):
        col = f[:, j][np.isfinite(f[:, j])]
        if col.size:
            low[j], high[j] = np.quantile(col, lo), np.quantile(col, hi)
    return FeatureRanges(tuple(names), low, high)


def name_similarity(vector: np.ndarray, vocabulary: np.ndarray) -> float:
    """Largest cosine similarity of an embedding (E,) to the rows of ``vocabulary`` (V, E)
    (NaN for an empty vocabulary)."""
    v = np.asarray(vector, dtype=np.float64).ravel()
    m = np.asarray(vocabulary, dtype=np.float64)
    if m.size == 0:
        return float("nan")
    norms = np.linalg.norm(m, axis=1) * max(np.linalg.norm(v), 1e-12)
    return float(np.max(m @ v / np.maximum(norms, 1e-12)))


@dataclass(frozen=True)
class Novelty:
    """What the check found for one label: ``similarity`` of its name to the training names,
    the ``outliers`` among its features, and ``reasons`` ("name", "image") that fired."""

    similarity: float
    outliers: tuple[str, ...]

    @property
    def reasons(self) -> tuple[str, ...]:
        out = []
        if math.isfinite(self.similarity) and self.similarity < NAME_SIMILARITY_MIN:
            out.append("name")
        if len(self.outliers) >= MIN_OUTLIERS:
            out.append("image")
        return tuple(out)

    @property
    def label(self) -> str:
        """The results column: "" when the label is like the training data, else the reasons
        joined by "+" ("name", "image", "name+image")."""
        return "+".join(self.reasons)


def assess(similarity: float, features: np.ndarray | None,
           ranges: FeatureRanges | None) -> Novelty:
    """The :class:`Novelty` of a label from its name similarity and calibration features."""
    outliers: list[str] = []
    if features is not None and ranges is not None:
        outliers = ranges.outliers(features)
    return Novelty(float(similarity), tuple(outliers))


def widen(dsc: float, low: float, high: float, *, widest: tuple[float, float] = (0.0, 0.0)
          ) -> tuple[float, float]:
    """A novel label's interval: each half-width the largest of :data:`WIDEN` times its own,
    ``widest`` (the calibration bands' largest reach below / above a prediction) and
    :data:`MIN_HALF_WIDTH`, clipped to [0, 1]; NaN ends stay NaN."""
    if any(math.isnan(x) for x in (dsc, low, high)):
        return low, high
    down = max(WIDEN * (dsc - low), widest[0], MIN_HALF_WIDTH)
    up = max(WIDEN * (high - dsc), widest[1], MIN_HALF_WIDTH)
    return max(0.0, dsc - down), min(1.0, dsc + up)


def calibration_ranges(calibration: Any) -> FeatureRanges | None:
    """The feature ranges stored in a calibration (``info["feature_ranges"]``), None when it
    has none (calibrations fitted before they were kept). ValueError when damaged."""
    info = getattr(calibration, "info", None) or {}
    stored = info.get("feature_ranges")
    return None if stored is None else FeatureRanges.from_json(stored)


class NameSimilarity:
    """Cached similarity of structure names to ``names`` (default: the predictor's training
    vocabulary)."""

    def __init__(self, predictor: Any, names: list[str] | None = None) -> None:
        self._predictor = predictor
        if names is None:
            names = list(getattr(predictor, "vocabulary", []) or [])
        self._matrix = (np.asarray(predictor.embeddings(names), dtype=np.float64)
                        if names else np.zeros((0, 1)))
        self._cache: dict[str, float] = {}

    def __call__(self, name: str) -> float:
        if name not in self._cache:
            vec = np.asarray(self._predictor.embeddings([name]), dtype=np.float64)[0]
            self._cache[name] = name_similarity(vec, self._matrix)
        return self._cache[name]


class NoveltyCheck:
    """One scan's check: the model's training names and its calibration's feature ranges."""

    def __init__(self, predictor: Any, calibration: Any) -> None:
        from qsaudit.inference.intervals import calibration_bands

        info = getattr(calibration, "info", None) or {}
        self.similarity = NameSimilarity(predictor, info.get("reference_structures"))
        self.ranges = calibration_ranges(calibration)
        self.bands = calibration_bands(calibration)

    def apply(self, agg: Any, structure: str) -> tuple[Any, str, float]:
        """``(aggregate, novelty column, name similarity)`` of one label: ``agg`` (an
        ``Aggregate`` with its ``features``) with its interval widened when it is novel."""
        from dataclasses import replace

        found = assess(self.similarity(structure), agg.features, self.ranges)
        if found.reasons:
            widest = (0.0, 0.0)
            if self.bands is not None:  # the widest reach of this structure's own bands
                own = self.bands.for_structure(structure)
                widest = (float(-np.min(own.low)), float(np.max(own.high)))
            low, high = widen(agg.dsc, agg.low, agg.high, widest=widest)
            if "name" in found.reasons and not math.isnan(high):
                high = max(high, NEW_NAME_HIGH)
            agg = replace(agg, low=low, high=high)
        return agg, found.label, found.similarity
