"""Ctrl-C in a terminal (SIGINT to the whole process group) during a scan: the scan ends within
seconds with one line saying that rerunning resumes, exit 130, no reader traceback, no process
left behind; running the same command again finishes the scan."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _command(dataset, out, model):
    return [sys.executable, "-m", "qsaudit", "scan", str(dataset), "--out", str(out),
            "--model", str(model), "--workers", "2", "--device", "cpu", "--quiet",
            "--batch-size", "4", "--slices", "4"]


def _as_in_a_terminal() -> None:
    """The scan's set-up: SIGINT at its default, as in a terminal (a job a shell starts in the
    background, as some CI runners do, inherits SIGINT ignored, and no Ctrl-C could reach it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _descendants(pid: int) -> list[int]:
    """Process ids whose parent chain leads to ``pid`` (read from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the reader processes")
@pytest.mark.parametrize("after_parts", [0, 2], ids=["during-start", "mid-scan"])
def test_ctrl_c_ends_at_once_and_resumes(make_dataset, tiny_model, tmp_path, after_parts):
    cases = 40  # enough that an unloaded machine is still scanning when the signal comes
    dataset = make_dataset(cases=cases)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "out"
    # its own process group, as a terminal's foreground job: Ctrl-C reaches every process in it
    proc = subprocess.Popen(_command(dataset, out, tiny_model), env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            process_group=0,
                            preexec_fn=_as_in_a_terminal)  # noqa: PLW1509 - one signal call
    deadline = time.monotonic() + 120
    readers: list[int] = []
    while time.monotonic() < deadline and proc.poll() is None:
        readers = _descendants(proc.pid)
        parts = len(list((out / "parts").glob("*.json")))
        if len(readers) >= 2 and parts >= after_parts:
            break
        time.sleep(0.01)
    if proc.poll() is not None or len(list((out / "parts").glob("*.json"))) >= cases:
        pytest.skip("the scan finished before it could be interrupted")
    time.sleep(0.2)  # a Ctrl-C while a reader starts is held back until the start returns
    if proc.poll() is not None:
        pytest.skip("the scan finished before it could be interrupted")
    readers = _descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the scan did not end within 20 s of Ctrl-C")
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: interrupted"), stderr
    assert "run the same command again to resume" in lines[0]
    time.sleep(0.5)
    assert not _alive(readers), "reader processes outlived the scan"
    assert not list(out.glob("results.*"))
    subprocess.run(_command(dataset, out, tiny_model), check=True, env=env, cwd=tmp_path,
                   capture_output=True)
    assert pd.read_csv(out / "results.csv")["case_id"].nunique() == cases
