"""Which error a label likely has (``likely_error``) and where along z (``error_slices``).

A model file's label calibration may carry an *error classifier* in its JSON info (key
``"errors"``), fitted by ``qsaudit.training.error_fit`` on the same held-out candidates as the
calibration, whose degradation kinds are known. It reads the label features the calibration
reads (``qsaudit.inference.aggregate.FEATURES``: slice-score summaries, the mask's model-free
shape descriptors, the end probes) plus two facts about the structure's name
(:data:`NAME_FEATURES`), and gives a probability per kind of
``qsaudit.inference.error_kinds.ERROR_KINDS``. Three kinds of fit, chosen by cross-validated
accuracy: multinomial boosted trees (``boosted``: one forest per kind, probabilities the
softmax of the forests' scores), one-vs-rest boosted regression trees on the kind's indicator
(``trees``: probabilities are the clipped scores, normalised), or a multinomial logistic
(``softmax``) regression on standardised features. All are plain JSON, numpy only.

Those first probabilities are then calibrated (``power`` and ``bias``: ``p_k`` proportional to
``raw_k ** power * exp(bias_k)``, fitted on cross-validated predictions), so that
``likely_error_p`` is a real probability: of the labels called a kind with p = 0.7, about 70%
have that kind. The kind named is the most probable one, except that ``none`` wins whenever
``none_factor * p(none)`` is at least every other kind's probability (a decision rule fitted so
that perfect labels are called ``none`` often enough; ``likely_error_p`` is still the
calibrated probability of the kind named).

:func:`locate_error` then says where the problem lies, from the slice profile (the run of low
slice scores around the worst slice), the end probes (the end whose probe scores high is where
the label was cut short) and the slice areas (the largest gap or jump for missing slices).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qsaudit.inference.aggregate import FEATURES
from qsaudit.inference.error_kinds import ERROR_KINDS, format_slices
from qsaudit.inference.trees import Forest, Tree

NAME_FEATURES = ("paired", "target_volume")
"""From the structure's name: it has a left/right twin (only those can be on the wrong side);
it is a radiotherapy target volume (drawn by intent, not anatomy)."""
CLASSIFIER_FEATURES = FEATURES + NAME_FEATURES
"""What an error classifier may read, in order (:func:`classifier_rows` builds the rows)."""
ERRORS_FORMAT = "qsaudit-error-classifier"
INFO_KEY = "errors"  # where a calibration's info stores its error classifier
RAW_FLOOR = 1e-3  # smallest raw probability of a kind (a tree score below it counts as it)
BLOB_PIECE_SCORE = 0.5  # a separate piece scored below this is named as the extra blob


def name_features(structure: str | None) -> np.ndarray:
    """The :data:`NAME_FEATURES` of one structure name (registry lookup; 0, 0 when unknown)."""
    from qsaudit.registry import is_target_volume, lookup

    entry = lookup(structure) if structure else None
    paired = float(entry is not None and entry.pair is not None)
    target = float(bool(structure) and is_target_volume(str(structure)))
    return np.array([paired, target], dtype=np.float64)


def classifier_rows(features: np.ndarray, structures: Any) -> np.ndarray:
    """Rows (N, len(CLASSIFIER_FEATURES)) from label features (N, len(FEATURES)) or (F,) and
    the labels' structure names (N,) (or one name)."""
    x = np.atleast_2d(np.asarray(features, dtype=np.float64))
    names = [structures] if isinstance(structures, str) or structures is None else \
        list(structures)
    if len(names) != x.shape[0] or x.shape[1] != len(FEATURES):
        raise ValueError(f"classifier_rows: features {x.shape} for {len(names)} structure names")
    cache: dict[Any, np.ndarray] = {}
    extra = np.stack([cache.setdefault(n, name_features(n)) for n in names]) if names else \
        np.zeros((0, len(NAME_FEATURES)))
    return np.concatenate([x, extra], axis=1)


@dataclass(frozen=True)
class ErrorClassifier:
    """Classifier rows -> probability per kind (see the module docstring).

    ``kinds``: the kinds it tells apart (a subset of ERROR_KINDS, in that order); ``names``:
    the features it reads (a subset of :data:`CLASSIFIER_FEATURES`); ``fill``: (F,) value of an
    unknown (NaN) feature. ``method`` ``"boosted"`` or ``"trees"``: ``base`` (K,), ``rate``
    and ``trees`` (one tuple of trees per kind); ``"softmax"``: ``center``/``scale`` (F,), ``coef`` (K, F),
    ``intercept`` (K,). ``power``/``bias`` (K,): the probability calibration (None: none);
    ``none_factor``: the decision rule for ``none`` (1: plain argmax);
    ``none_factor_targets``: the factor for radiotherapy target volumes when they have their
    own (None: ``none_factor`` for every label).
    """

    kinds: tuple[str, ...]
    names: tuple[str, ...]
    fill: np.ndarray
    method: str
    base: np.ndarray | None = None
    rate: float = 0.0
    trees: tuple[tuple[Tree, ...], ...] = ()
    center: np.ndarray | None = None
    scale: np.ndarray | None = None
    coef: np.ndarray | None = None
    intercept: np.ndarray | None = None
    info: dict = field(default_factory=dict)
    power: float = 1.0
    bias: np.ndarray | None = None
    none_factor: float = 1.0
    none_factor_targets: float | None = None

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        """(N, K) probabilities (rows sum to 1) of classifier rows (N, len(CLASSIFIER_FEATURES))."""
        x = np.atleast_2d(np.asarray(rows, dtype=np.float64))
        x = x[:, [CLASSIFIER_FEATURES.index(n) for n in self.names]]
        x = np.where(np.isnan(x), self.fill, x)
        if self.method == "softmax":
            raw = softmax(((x - self.center) / self.scale) @ self.coef.T + self.intercept)
        else:
            scores = np.stack([float(b) + self.rate * f.predict(x).sum(axis=1)
                               for b, f in zip(self.base, self._forests, strict=True)], axis=1)
            if self.method == "boosted":
                raw = softmax(scores)
            else:
                scores = np.clip(scores, RAW_FLOOR, None)
                raw = scores / scores.sum(axis=1, keepdims=True)
        if self.bias is None:
            return raw
        return calibrate_probabilities(raw, self.power, self.bias)

    def predict(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(kinds (N,) str, probability (N,))``: the kind named per row (the most probable,
        or ``none`` by the ``none_factor`` rule) and its probability."""
        p = self.probabilities(rows)
        best = decide(p, self.kinds, self.row_factors(rows))
        return np.asarray(self.kinds, dtype=object)[best], p[np.arange(p.shape[0]), best]

    def row_factors(self, rows: np.ndarray) -> np.ndarray:
        """The none factor (N,) of each classifier row (:func:`none_factors`)."""
        return none_factors(target_rows(rows), self.none_factor, self.none_factor_targets)

    @property
    def _forests(self) -> list[Forest]:
        cached = self.__dict__.get("_packed")
        if cached is None:
            cached = [Forest.pack(list(t)) for t in self.trees]
            object.__setattr__(self, "_packed", cached)  # frozen: cache once, by hand
        return cached

    def to_json(self) -> dict:
        """Plain JSON (stored in a calibration's ``info["errors"]``); numbers are rounded to
        6 significant digits to keep the model file small."""
        out: dict[str, Any] = {"format": ERRORS_FORMAT, "method": self.method,
                               "kinds": list(self.kinds), "features": list(self.names),
                               "fill": _round(self.fill), "info": self.info,
                               "none_factor": float(self.none_factor)}
        if self.none_factor_targets is not None:
            out["none_factor_targets"] = float(self.none_factor_targets)
        if self.bias is not None:
            out["calibration"] = {"power": float(self.power), "bias": _round(self.bias)}
        if self.method == "softmax":
            out.update(center=_round(self.center), scale=_round(self.scale),
                       coef=[_round(r) for r in self.coef], intercept=_round(self.intercept))
        else:
            out.update(base=_round(self.base), rate=float(self.rate),
                       trees=[[_tree_json(t) for t in ts] for ts in self.trees])
        return out

    @classmethod
    def from_json(cls, d: dict) -> ErrorClassifier:
        """Rebuild from :meth:`to_json`; ValueError when it is malformed."""
        kinds, names = tuple(d.get("kinds", ())), tuple(d.get("features", ()))
        if d.get("format") != ERRORS_FORMAT or not kinds or not names \
                or any(k not in ERROR_KINDS for k in kinds) \
                or any(n not in CLASSIFIER_FEATURES for n in names):
            raise ValueError("error classifier: unknown format, kinds or features")
        f, k = len(names), len(kinds)
        fill = np.asarray(d["fill"], dtype=np.float64)
        if fill.shape != (f,):
            raise ValueError("error classifier: arrays have the wrong sizes")
        rule: dict[str, Any] = {"none_factor": float(d.get("none_factor", 1.0)),
                                "info": dict(d.get("info", {}))}
        if d.get("none_factor_targets") is not None:
            rule["none_factor_targets"] = float(d["none_factor_targets"])
            if not rule["none_factor_targets"] > 0:
                raise ValueError("error classifier: none_factor_targets must be positive")
        if d.get("calibration"):
            rule["power"] = float(d["calibration"]["power"])
            rule["bias"] = np.asarray(d["calibration"]["bias"], dtype=np.float64)
            if rule["bias"].shape != (k,):
                raise ValueError("error classifier: arrays have the wrong sizes")
        if not rule["none_factor"] > 0:
            raise ValueError("error classifier: none_factor must be positive")
        if d.get("method") == "softmax":
            arrays = {n: np.asarray(d[n], dtype=np.float64)
                      for n in ("center", "scale", "coef", "intercept")}
            if arrays["coef"].shape != (k, f) or arrays["intercept"].shape != (k,) \
                    or arrays["center"].shape != (f,) or arrays["scale"].shape != (f,):
                raise ValueError("error classifier: arrays have the wrong sizes")
            return cls(kinds, names, fill, "softmax", **rule, **arrays)
        if d.get("method") not in ("trees", "boosted"):
            raise ValueError(f"error classifier: unknown method {d.get('method')!r}")
        base = np.asarray(d["base"], dtype=np.float64)
        if base.shape != (k,) or len(d.get("trees", ())) != k:
            raise ValueError("error classifier: arrays have the wrong sizes")
        trees = tuple(tuple(Tree.from_json(t, f) for t in ts) for ts in d["trees"])
        if any(not ts for ts in trees):
            raise ValueError("error classifier: a kind without trees")
        return cls(kinds, names, fill, d["method"], base=base, rate=float(d["rate"]),
                   trees=trees, **rule)


def target_rows(rows: np.ndarray) -> np.ndarray:
    """Which classifier rows (N,) are radiotherapy target volumes (their ``target_volume``
    name feature)."""
    x = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    return x[:, CLASSIFIER_FEATURES.index("target_volume")] > 0.5


def none_factors(targets: np.ndarray, none_factor: float,
                 none_factor_targets: float | None) -> np.ndarray:
    """The none factor (N,) of each label: ``none_factor_targets`` for target volumes
    (``targets`` (N,) bool) when there is one, else ``none_factor``."""
    targets = np.asarray(targets, dtype=bool)
    factors = np.full(targets.shape, float(none_factor))
    if none_factor_targets is not None:
        factors[targets] = float(none_factor_targets)
    return factors


def calibrate_probabilities(raw: np.ndarray, power: float, bias: np.ndarray) -> np.ndarray:
    """(N, K) calibrated probabilities: ``raw ** power * exp(bias)``, normalised per row
    (raw probabilities are floored at :data:`RAW_FLOOR` first)."""
    logits = float(power) * np.log(np.clip(raw, RAW_FLOOR, None)) + np.asarray(bias)
    return softmax(logits)


def decide(p: np.ndarray, kinds: tuple[str, ...],
           none_factor: float | np.ndarray = 1.0) -> np.ndarray:
    """Index (N,) of the kind named per row of probabilities ``p`` (N, K) over ``kinds``:
    the most probable, but ``none`` whenever ``none_factor * p(none)`` is at least every other
    kind's probability (``none_factor``: one for all rows, or one per row (N,))."""
    factor = np.asarray(none_factor, dtype=np.float64)
    if "none" not in kinds or np.all(factor == 1.0):
        return np.argmax(p, axis=1)
    scaled = np.array(p, dtype=np.float64, copy=True)
    scaled[:, kinds.index("none")] *= factor
    return np.argmax(scaled, axis=1)


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) scores."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _round(a: Any) -> list[float]:
    return [float(f"{v:.6g}") for v in np.asarray(a, dtype=np.float64).ravel()]


def _tree_json(tree: Tree) -> dict:
    d = tree.to_json()
    d["threshold"] = _round(tree.threshold)
    d["value"] = _round(tree.value)
    return d


def calibration_errors(calibration: Any) -> ErrorClassifier | None:
    """The error classifier stored in a label calibration's info (None when it has none).
    Raises ValueError when one is stored but damaged."""
    stored = (getattr(calibration, "info", None) or {}).get(INFO_KEY)
    if not stored:
        return None
    return ErrorClassifier.from_json(stored)


def locate_error(kind: str, *, slice_indices: np.ndarray, scores: np.ndarray,
                 z_range: tuple[int, int], z_areas: np.ndarray | None = None,
                 probe_sides: np.ndarray | None = None, probe_scores: np.ndarray | None = None,
                 z_size: int | None = None, slice_mm: float | None = None,
                 pieces: list[tuple[int, int, int]] | None = None,
                 part_slices: np.ndarray | None = None,
                 part_scores: np.ndarray | None = None) -> str:
    """Where along z a label's ``kind`` of error lies, as an ``error_slices`` value ("40-52").

    Args:
        kind: an error kind (ERROR_KINDS); ``none`` gives "".
        slice_indices: (n,) ascending axial indices of the scored slices; ``scores`` (n,) their
            predicted slice Dice.
        z_range: half-open range of the label's slices with mask.
        z_areas: (z_range[1] - z_range[0],) mask voxels per slice of that range (None: unknown).
        probe_sides / probe_scores: the end probes' sides (``qsaudit.inference.probes.LOW`` /
            ``HIGH``) and scores.
        z_size: slices in the volume (a cut-short span stops at its edge).
        slice_mm: slice spacing, to size a cut-short span (about a quarter of the label's
            length, at least the probe's distance).
        pieces / part_slices / part_scores: the label's other pieces (first, last, peak) that
            part probes showed, the slices they showed and their scores
            (``qsaudit.inference.parts``).

    ``cut_short``: the slices beyond the end whose probe scores highest; ``missing_slices``:
    the largest run of empty slices inside the label (else the largest change of area);
    ``extra_blob``: the piece besides the largest whose part probe scores lowest, when part
    probes showed one that scores below :data:`BLOB_PIECE_SCORE` or no higher than the worst
    scored slice; ``too_small``, ``too_large``, ``wrong_structure``: the whole label; the
    other kinds (and ``extra_blob`` without part probes): the
    run of low slice scores around the worst slice, up to (not including) the nearest scored
    slices that look right.
    """
    first, last = int(z_range[0]), int(z_range[1]) - 1
    if kind == "none" or kind not in ERROR_KINDS or last < first:
        return ""
    if kind == "cut_short":
        return _beyond_end(first, last, probe_sides, probe_scores, z_size, slice_mm)
    if kind == "missing_slices" and z_areas is not None and len(z_areas) == last - first + 1:
        return _gap(first, np.asarray(z_areas, dtype=np.float64))
    s = np.asarray(scores, dtype=np.float64).ravel()
    z = np.asarray(slice_indices, dtype=np.int64).ravel()
    if kind == "extra_blob" and pieces:
        found = _worst_piece(pieces, part_slices, part_scores)
        # a piece that the network rates well is not the blob: then it lies on scored slices
        if found is not None and (found[1] < BLOB_PIECE_SCORE
                                  or s.size == 0 or found[1] <= float(np.nanmin(s))):
            return format_slices(found[0][0], found[0][1])
    if kind in ("too_small", "too_large", "wrong_structure") or s.size == 0 or s.size != z.size:
        return format_slices(first, last)
    return _low_run(z, s, first, last)


def _worst_piece(pieces: list[tuple[int, int, int]], slices: np.ndarray | None,
                 scores: np.ndarray | None) -> tuple[tuple[int, int, int], float] | None:
    """The piece whose part probe (the score of its peak slice) is lowest, with that score;
    None when the scores do not match the slices or none is known."""
    if slices is None or scores is None or len(slices) != len(scores) or not len(slices):
        return None
    score_of = {z: v for z, v in zip(np.asarray(slices).tolist(),
                                     np.asarray(scores, dtype=np.float64).tolist(), strict=True)
                if not math.isnan(v)}
    known = [p for p in pieces if p[2] in score_of]
    if not known:
        return None
    worst = min(known, key=lambda p: score_of[p[2]])
    return worst, score_of[worst[2]]


def _beyond_end(first: int, last: int, sides: np.ndarray | None, scores: np.ndarray | None,
                z_size: int | None, slice_mm: float | None) -> str:
    """The slices just beyond the end whose probe says the structure goes on."""
    from qsaudit.inference.probes import HIGH, LOW, probe_offset

    length = last - first + 1
    offset = probe_offset(None if not slice_mm else (1.0, 1.0, float(slice_mm)))
    reach = max(offset, math.ceil(0.25 * length))
    side = HIGH
    if sides is not None and scores is not None and len(sides) and len(sides) == len(scores):
        side = int(np.asarray(sides)[int(np.argmax(np.asarray(scores, dtype=np.float64)))])
    elif z_size is not None and last >= z_size - 1:
        side = LOW  # no probe at all: the top is the volume's edge, so look below
    if side == LOW:
        return format_slices(max(0, first - reach), first - 1) if first > 0 else ""
    top = last + reach if z_size is None else min(z_size - 1, last + reach)
    return format_slices(last + 1, top) if top > last else ""


def _gap(first: int, areas: np.ndarray) -> str:
    """The largest run of empty slices, else the pair of slices with the largest area change."""
    empty = np.concatenate([[False], areas <= 0, [False]]).astype(np.int8)
    starts = np.flatnonzero(np.diff(empty) == 1)
    ends = np.flatnonzero(np.diff(empty) == -1)  # exclusive
    if starts.size:
        k = int(np.argmax(ends - starts))
        return format_slices(first + int(starts[k]), first + int(ends[k]) - 1)
    if areas.size < 2:
        return format_slices(first, first)
    i = int(np.argmax(np.abs(np.diff(areas))))
    return format_slices(first + i, first + i + 1)


def _low_run(z: np.ndarray, s: np.ndarray, first: int, last: int) -> str:
    """Scored slices around the worst one that score below the midpoint of the worst and the
    median, widened to just short of the nearest scored slices above it."""
    worst = int(np.argmin(s))
    threshold = 0.5 * (s[worst] + float(np.median(s)))
    lo = hi = worst
    while lo > 0 and s[lo - 1] <= threshold:
        lo -= 1
    while hi < s.size - 1 and s[hi + 1] <= threshold:
        hi += 1
    start = first if lo == 0 else int(z[lo - 1]) + 1
    stop = last if hi == s.size - 1 else int(z[hi + 1]) - 1
    return format_slices(max(first, start), min(last, stop))
