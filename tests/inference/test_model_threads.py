"""ModelThreads: the model gets every core only while the readers keep ahead of it."""

import torch

from qsaudit.cpu import usable_cores
from qsaudit.inference.engine import ModelThreads


class _Cpu:
    device = torch.device("cpu")


def _run(governor, seconds_by_threads, cases):
    for _ in range(cases):
        t = torch.get_num_threads()
        governor.update(waited=0.0, computed=seconds_by_threads[t])


def test_the_faster_setting_is_kept_and_retried():
    before = torch.get_num_threads()
    cores = usable_cores()
    torch.set_num_threads(cores)  # the test suite runs torch on one thread
    shared = max(1, cores - 1)
    try:
        governor = ModelThreads(_Cpu(), workers=1)
        with governor:
            assert torch.get_num_threads() == cores  # start-up
            # a small model: stalls when it takes the readers' core
            _run(governor, {cores: 2.0, shared: 1.0}, 1 + 2 * ModelThreads.PROBE)
            assert torch.get_num_threads() == shared
            _run(governor, {cores: 2.0, shared: 1.0}, 10)
            assert torch.get_num_threads() == shared
            # the data change (say, larger crops): the next trial picks every core
            _run(governor, {cores: 1.0, shared: 3.0},
                 ModelThreads.REPROBE + 2 * ModelThreads.PROBE)
            assert torch.get_num_threads() == cores
        assert torch.get_num_threads() == cores  # restored to what it was on entry
        if shared != cores:
            assert governor.history[:4] == [cores, shared, cores, shared][:4]
        torch.set_num_threads(before)
        assert ModelThreads(_Cpu(), workers=1).all == min(cores, before)  # never beyond torch's
    finally:
        torch.set_num_threads(before)


def test_inactive_without_readers_or_off_the_cpu():
    before = torch.get_num_threads()
    for governor in (ModelThreads(_Cpu(), workers=0), ModelThreads(object(), workers=2)):
        with governor:
            governor.update(waited=1.0, computed=0.0)
            governor.update(waited=1.0, computed=0.0)
            assert torch.get_num_threads() == before
        assert governor.history == []
