"""Batches crops across labels and cases into fixed-size forward passes.

Every forward pass has exactly ``batch_size`` crops (the last one is padded), so a crop's score
never depends on which other crops share its batch or on where a resumed scan restarted: the
network's arithmetic for one sample depends only on the batch shape, not on its neighbours.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from qsaudit.inference.prepare import PreparedCase


class SlicePredictor(Protocol):
    """What the scan needs from a model (``qsaudit.model.Predictor`` is one)."""

    config: Any
    fingerprint: str

    def predict(self, inputs: np.ndarray, names: Sequence[str], *, batch_size: int = 256
                ) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2, S, S) crops + N structure names -> (clipped [0, 1], raw) arrays (N,)."""


@dataclass
class ScoredCase:
    """A prepared case with the clipped and raw score of every scored slice, per label."""

    case: PreparedCase
    scores: list[np.ndarray] = field(default_factory=list)
    raw: list[np.ndarray] = field(default_factory=list)
    remaining: int = 0


class CrossCaseBatcher:
    """Feeds prepared cases in, yields them scored, in the order they came in.

    Holds at most one batch of crops beyond the cases waiting for their last scores, so memory
    stays bounded however many cases a scan has.
    """

    def __init__(self, predictor: SlicePredictor, batch_size: int) -> None:
        self.predictor = predictor
        self.batch_size = int(batch_size)
        self.forward_passes = 0
        self._cases: deque[ScoredCase] = deque()
        self._chunks: deque[list] = deque()  # [scored case, label index, crops, next row]
        self._buffered = 0

    def add(self, case: PreparedCase) -> Iterator[ScoredCase]:
        """Queue ``case``; yield every case completed by the full batches this makes possible."""
        scored = ScoredCase(case=case)
        for i, work in enumerate(case.labels):
            n = work.n_slices
            scored.scores.append(np.full(n, np.nan))
            scored.raw.append(np.full(n, np.nan))
            if n:
                self._chunks.append([scored, i, work.crops, 0])
                scored.remaining += n
                self._buffered += n
        self._cases.append(scored)
        while self._buffered >= self.batch_size:
            self._run_batch()
        yield from self._pop_finished()

    def flush(self) -> Iterator[ScoredCase]:
        """Score what is left (one padded batch at most per call) and yield the last cases."""
        while self._buffered > 0:
            self._run_batch()
        yield from self._pop_finished()

    def _pop_finished(self) -> Iterator[ScoredCase]:
        while self._cases and self._cases[0].remaining == 0:
            done = self._cases.popleft()
            for work in done.case.labels:
                work.crops = None  # scored: free the model inputs
            yield done

    def _run_batch(self) -> None:
        need = self.batch_size
        pieces, owners, names = [], [], []
        while need > 0 and self._chunks:
            chunk = self._chunks[0]
            scored, i, crops, start = chunk
            take = min(need, crops.shape[0] - start)
            pieces.append(crops[start:start + take])
            owners.append((scored, i, start, take))
            names.extend([scored.case.labels[i].row["structure"]] * take)
            chunk[3] = start + take
            need -= take
            if chunk[3] == crops.shape[0]:
                self._chunks.popleft()
        n = self.batch_size - need
        batch = np.concatenate(pieces)
        if need:
            batch = np.concatenate([batch, np.zeros((need, *batch.shape[1:]), batch.dtype)])
            names.extend([names[0]] * need)
        clipped, raw = self.predictor.predict(batch, names, batch_size=self.batch_size)
        self.forward_passes += 1
        pos = 0
        for scored, i, start, take in owners:
            scored.scores[i][start:start + take] = clipped[pos:pos + take]
            scored.raw[i][start:start + take] = raw[pos:pos + take]
            scored.remaining -= take
            pos += take
        self._buffered -= n
