"""ModelThreads: the model gets every core only while the readers keep ahead of it."""

import torch

from qsaudit.inference.engine import ModelThreads, _usable_cores


class _Cpu:
    device = torch.device("cpu")


def test_threads_follow_the_bottleneck():
    before = torch.get_num_threads()
    cores = _usable_cores()
    torch.set_num_threads(cores)  # the test suite runs torch on one thread
    governor = ModelThreads(_Cpu(), workers=1)
    with governor:
        assert torch.get_num_threads() == cores  # start-up: nothing to share yet
        governor.update(waited=5.0, computed=0.1)  # first case: the wait is start-up, ignored
        assert torch.get_num_threads() == cores
        for _ in range(3):  # the model waits for cases: reading is the bottleneck
            governor.update(waited=1.0, computed=0.1)
        assert torch.get_num_threads() == max(1, cores - 1)
        for _ in range(6):  # cases are always ready: the model is the bottleneck
            governor.update(waited=0.0, computed=2.0)
        assert torch.get_num_threads() == cores
    assert torch.get_num_threads() == cores  # restored to what it was on entry
    assert governor.history[0] == cores and governor.history[-1] == cores
    torch.set_num_threads(before)
    assert ModelThreads(_Cpu(), workers=1).all == min(cores, before)  # never beyond torch's


def test_inactive_without_readers_or_off_the_cpu():
    before = torch.get_num_threads()
    for governor in (ModelThreads(_Cpu(), workers=0), ModelThreads(object(), workers=2)):
        with governor:
            governor.update(waited=1.0, computed=0.0)
            governor.update(waited=1.0, computed=0.0)
            assert torch.get_num_threads() == before
        assert governor.history == []
