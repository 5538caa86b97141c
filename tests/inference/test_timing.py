import pytest

from qsaudit.inference.timing import beyond_share, children_cpu_seconds, cpu_now, time_breakdown


def _timings(**extra):
    return {"total_seconds": 10.0, "model_seconds": 6.0, "network_seconds": 5.0,
            "setup_seconds": 1.0, "wait_seconds": 1.5, "commit_seconds": 0.5,
            "finish_seconds": 0.5, "read_seconds": 4.0, "reader_cpu_seconds": 3.5,
            "reader_decode_seconds": 1.0, "reader_decode_cpu_seconds": 0.8, **extra}


def test_wall_parts_add_up_and_cpu_parts_appear_only_when_recorded():
    parts = time_breakdown(_timings())
    main = ["setup", "network", "batching", "waiting_for_readers", "writing",
            "tables_and_report", "other"]
    assert sum(parts[k] for k in main) == pytest.approx(parts["total"])
    assert parts["other"] == pytest.approx(0.5) and parts["readers_other"] == pytest.approx(3.0)
    assert not any(k.startswith("cpu_") for k in parts)
    assert "beyond_decoding_and_network" not in parts


def test_the_share_beyond_counts_every_process_cpu_seconds():
    parts = time_breakdown(_timings(main_cpu_seconds=9.0, network_cpu_seconds=6.0,
                                    reader_process_cpu_seconds=4.5))
    assert parts["cpu_main"] == 9.0 and parts["cpu_readers"] == 4.5
    # beyond: main 9 - network 6, readers 4.5 - decoding 0.8 (their start-up included)
    assert parts["beyond_decoding_and_network"] == pytest.approx((3.0 + 3.7) / 13.5, abs=1e-4)


def test_reading_in_the_main_process_is_moved_to_the_readers():
    parts = time_breakdown(_timings(main_cpu_seconds=12.0, network_cpu_seconds=6.0))
    assert parts["cpu_main"] == pytest.approx(12.0 - 3.5)
    assert parts["cpu_readers"] == pytest.approx(3.5)
    assert parts["beyond_decoding_and_network"] == pytest.approx((2.5 + 2.7) / 12.0, abs=1e-4)


def test_the_share_is_bounded_and_defined_without_work():
    assert beyond_share({"cpu_main": 0.0, "cpu_network": 0.0, "cpu_readers": 0.0,
                         "cpu_readers_decoding": 0.0}) == 0.0
    assert beyond_share({"cpu_main": 2.0, "cpu_network": 2.0, "cpu_readers": 1.0,
                         "cpu_readers_decoding": 1.0}) == 0.0


def test_children_cpu_seconds_grow_when_a_child_works_and_is_reaped():
    import subprocess
    import sys

    before = children_cpu_seconds()
    subprocess.run([sys.executable, "-c", "sum(i * i for i in range(3_000_000))"], check=True)
    assert children_cpu_seconds() > before
    own, children = cpu_now()
    assert own > 0 and children >= before
