"""Boosted regression trees as plain arrays: evaluated here, fitted by ``qsaudit.training.boosting``.

A label calibration may be a sum of small regression trees over the label features (slice-score
summaries and the mask's shape descriptors) instead of a linear score: trees see interactions a
linear score cannot (a blob matters more on a small organ; a flat end matters only when the
slices look good). Each tree is stored as parallel lists: ``feature`` (-1 = leaf), ``threshold``
(go left when ``x <= threshold``), ``left``/``right`` child indices and ``value`` (the leaf's
contribution). numpy only, JSON-able, no pickle.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Tree:
    """One regression tree; node 0 is the root (see the module docstring)."""

    feature: np.ndarray    # (nodes,) int, -1 for a leaf
    threshold: np.ndarray  # (nodes,) float
    left: np.ndarray       # (nodes,) int
    right: np.ndarray      # (nodes,) int
    value: np.ndarray      # (nodes,) float, used at leaves

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Leaf values for the rows of ``x`` (N, F) without NaN."""
        return Forest.pack([self]).predict(np.asarray(x, dtype=np.float64))[:, 0]

    def to_json(self) -> dict:
        """Plain lists."""
        return {"feature": self.feature.tolist(), "threshold": self.threshold.tolist(),
                "left": self.left.tolist(), "right": self.right.tolist(),
                "value": self.value.tolist()}

    @classmethod
    def from_json(cls, d: dict, n_features: int) -> Tree:
        """Rebuild and check one tree; ValueError when it is malformed."""
        feature = np.asarray(d["feature"], dtype=np.int64)
        n = feature.size
        arrays = {"threshold": np.asarray(d["threshold"], dtype=np.float64),
                  "left": np.asarray(d["left"], dtype=np.int64),
                  "right": np.asarray(d["right"], dtype=np.int64),
                  "value": np.asarray(d["value"], dtype=np.float64)}
        if n == 0 or any(a.shape != (n,) for a in arrays.values()):
            raise ValueError("tree: arrays have different sizes")
        inner = feature >= 0
        if np.any(feature >= n_features) or np.any(feature < -1):
            raise ValueError("tree: feature index out of range")
        kids = np.concatenate([arrays["left"][inner], arrays["right"][inner]])
        # children come after their parent, so evaluation always ends at a leaf
        parents = np.concatenate([np.flatnonzero(inner), np.flatnonzero(inner)])
        if kids.size and (np.any(kids >= n) or np.any(kids <= parents)):
            raise ValueError("tree: child index out of range")
        return cls(feature=feature, **arrays)


@dataclass(frozen=True)
class Forest:
    """Many trees packed into flat arrays, evaluated all at once (no Python loop per tree)."""

    roots: np.ndarray      # (T,) index of each tree's root in the flat arrays
    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray

    @classmethod
    def pack(cls, trees: list[Tree]) -> Forest:
        """Concatenate ``trees``, shifting child indices by each tree's offset."""
        sizes = np.array([t.feature.size for t in trees], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)

        def kids(name: str) -> np.ndarray:
            return np.concatenate([np.where(getattr(t, name) >= 0, getattr(t, name) + o, -1)
                                   for t, o in zip(trees, offsets, strict=True)])

        return cls(roots=offsets, left=kids("left"), right=kids("right"),
                   feature=np.concatenate([t.feature for t in trees]),
                   threshold=np.concatenate([t.threshold for t in trees]),
                   value=np.concatenate([t.value for t in trees]))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(N, T) leaf values of every tree for the rows of ``x`` (N, F) without NaN."""
        node = np.broadcast_to(self.roots, (x.shape[0], self.roots.size)).copy()
        rows = np.arange(x.shape[0])[:, None]
        while True:
            feat = self.feature[node]
            inner = feat >= 0
            if not inner.any():
                return self.value[node]
            go_left = x[rows, np.where(inner, feat, 0)] <= self.threshold[node]
            step = np.where(go_left, self.left[node], self.right[node])
            node = np.where(inner, step, node)


def predict_sum(trees: list[Tree] | Forest, x: np.ndarray, base: float,
                rate: float) -> np.ndarray:
    """``base + rate * sum(tree(x))`` for the rows of ``x`` (N, F)."""
    forest = trees if isinstance(trees, Forest) else Forest.pack(list(trees))
    return float(base) + float(rate) * forest.predict(np.asarray(x, dtype=np.float64)).sum(axis=1)


TREES_FORMAT = "qsaudit-label-calibration-trees"


@dataclass(frozen=True)
class TreeCalibration:
    """Label features -> calibrated Dice by boosted trees (fitted by ``qsaudit.training.boosting``).

    ``names``: the features used (a subset of ``qsaudit.inference.aggregate.FEATURES``);
    ``fill``: (F,) value standing in for an unknown (NaN) feature (its training mean);
    ``base`` + ``rate`` x the sum of the ``trees`` is the Dice, clipped to [0, 1].
    Same interface as ``qsaudit.inference.aggregate.LabelCalibration``.
    """

    names: tuple[str, ...]
    fill: np.ndarray
    base: float
    rate: float
    trees: tuple[Tree, ...]
    info: dict

    def apply(self, features: np.ndarray) -> np.ndarray:
        """Calibrated Dice of full feature vectors (N, len(FEATURES)) or (len(FEATURES),)."""
        from qsaudit.inference.aggregate import FEATURES

        x = np.asarray(features, dtype=np.float64)
        single = x.ndim == 1
        x = np.atleast_2d(x)[:, [FEATURES.index(n) for n in self.names]]
        x = np.where(np.isnan(x), self.fill, x)
        out = np.clip(predict_sum(self.forest, x, self.base, self.rate), 0.0, 1.0)
        return out[0] if single else out

    @cached_property
    def forest(self) -> Forest:
        """The trees packed for fast evaluation (built once)."""
        return Forest.pack(list(self.trees))

    def to_json(self) -> dict:
        """Plain JSON (stored as a model file's ``meta["calibration"]``)."""
        return {"format": TREES_FORMAT, "features": list(self.names),
                "fill": self.fill.tolist(), "base": float(self.base), "rate": float(self.rate),
                "trees": [t.to_json() for t in self.trees], "info": self.info}

    @classmethod
    def from_json(cls, d: dict) -> TreeCalibration:
        """Rebuild from :meth:`to_json`; ValueError when it is malformed."""
        from qsaudit.inference.aggregate import FEATURES

        names = tuple(d.get("features", ()))
        if d.get("format") != TREES_FORMAT or not names or any(n not in FEATURES for n in names):
            raise ValueError("label calibration: unknown format or feature list")
        fill = np.asarray(d["fill"], dtype=np.float64)
        if fill.shape != (len(names),) or not d.get("trees"):
            raise ValueError("label calibration: arrays have the wrong sizes")
        trees = tuple(Tree.from_json(t, len(names)) for t in d["trees"])
        return cls(names=names, fill=fill, base=float(d["base"]), rate=float(d["rate"]),
                   trees=trees, info=dict(d.get("info", {})))
