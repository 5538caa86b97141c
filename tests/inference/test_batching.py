"""Cross-case batching: fixed-size forward passes, scores routed to the right slices."""

import numpy as np

from qsaudit.inference.batching import CrossCaseBatcher
from qsaudit.inference.prepare import LabelWork, PreparedCase


class FakePredictor:
    """Score = mean of the crop's first channel, so each score names the crop it came from."""

    config = None
    fingerprint = "fake"

    def __init__(self):
        self.calls = []

    def predict(self, inputs, names, *, batch_size=256):
        self.calls.append((inputs.shape[0], batch_size, len(names)))
        raw = inputs[:, 0].mean(axis=(1, 2)).astype(np.float64)
        return np.clip(raw, 0, 1), raw


def _case(case_id, sizes, base):
    labels = []
    for j, n in enumerate(sizes):
        crops = None
        if n:
            values = base + j * 0.1 + np.arange(n) * 0.01
            crops = np.broadcast_to(values[:, None, None, None], (n, 2, 4, 4)).astype(np.float32)
        labels.append(LabelWork(label=f"l{j}", row={"structure": f"l{j}"}, crops=crops))
    return PreparedCase(case_id=case_id, labels=labels, body_area_mm2=1.0, seconds=0.0)


def test_batches_have_fixed_size_and_scores_follow_their_crops():
    fake = FakePredictor()
    batcher = CrossCaseBatcher(fake, batch_size=4)
    done = []
    for i, sizes in enumerate([(3, 0, 2), (0,), (5, 1)]):
        done += list(batcher.add(_case(f"c{i}", sizes, base=0.1 * i)))
    done += list(batcher.flush())
    assert [d.case.case_id for d in done] == ["c0", "c1", "c2"]
    assert all(n == 4 and b == 4 and m == 4 for n, b, m in fake.calls)
    assert len(fake.calls) == 3  # 11 crops -> 3 passes, the last one padded
    for d in done:
        for j, (work, scores) in enumerate(zip(d.case.labels, d.scores, strict=True)):
            assert work.crops is None
            expected = 0.1 * int(d.case.case_id[1]) + j * 0.1 + np.arange(scores.size) * 0.01
            assert np.allclose(scores, expected, atol=1e-6)
