"""``scan --engine ray`` against real Ray clusters started here: one from ``ray.init`` in this
process, one from ``ray start --head`` joined by address. Results must equal a local scan's,
also after a killed actor or worker and after a killed driver."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from qsaudit.errors import DatasetError
from qsaudit.inference import ScanSettings, scan_dataset

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
TABLES = ("results.parquet", "slices.parquet")
OBJECT_STORE = 200 * 1024 ** 2


def _settings(model: Path) -> ScanSettings:
    return ScanSettings(model=model, device="cpu", precision="fp32", batch_size=4, slices=4,
                        workers=0)


def _assert_same_tables(expected: Path, got: Path) -> None:
    for name in TABLES:
        pd.testing.assert_frame_equal(pd.read_parquet(expected / name),
                                      pd.read_parquet(got / name))


@pytest.fixture(scope="module")
def ray_local():
    """A Ray instance of 2 CPUs started in this process (stopped after the module)."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("PYTHONPATH", str(ROOT))  # the workers import this checkout
    ray.init(address="local", num_cpus=2, object_store_memory=OBJECT_STORE,
             include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_head():
    """``ray start --head`` on this machine, as a user starts a cluster.

    Yields its address and the environment a driver needs to join it: Ray's token
    authentication with a token made for this cluster (never the user's own).
    """
    import secrets

    pytest.importorskip("ray")
    temp = tempfile.mkdtemp(prefix="qsray")  # short: Ray's socket paths must stay short
    log = Path(temp) / "head.log"
    token = Path(temp) / "token"
    token.write_text(secrets.token_hex(32))
    env = {**ENV, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--port", "0",
             "--num-cpus", "2", "--object-store-memory", str(OBJECT_STORE),
             "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", temp,
             "--block"], stdout=fh, stderr=subprocess.STDOUT, env=env)
    try:
        address = None
        deadline = time.monotonic() + 120
        while address is None and time.monotonic() < deadline and proc.poll() is None:
            found = re.search(r"--address='([^']+)'", log.read_text())
            address = found.group(1) if found else None
            time.sleep(0.5)
        if address is None:
            pytest.fail(f"ray start --head did not start:\n{log.read_text()[-2000:]}")
        yield address, env
    finally:
        proc.terminate()  # --block: stops every process of the head node
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model):
    """A dataset of 6 cases and its local scan."""
    from tests.inference.conftest import write_dataset

    root = tmp_path_factory.mktemp("ray")
    dataset = write_dataset(root / "dataset", cases=6)
    scan_dataset(dataset, root / "local", settings=_settings(tiny_model))
    return dataset, root / "local"


def test_ray_scan_equals_local_scan(ray_local, reference, tiny_model, tmp_path):
    from qsaudit.inference.ray_engine import RayOptions, scan_dataset_ray
    from qsaudit.inference.store import read_manifest

    dataset, local = reference
    summary = scan_dataset_ray(dataset, tmp_path / "ray", settings=_settings(tiny_model),
                               options=RayOptions(actors=1))
    assert summary.cases == 6 and summary.scanned_cases == 6
    _assert_same_tables(local, tmp_path / "ray")
    assert (tmp_path / "ray" / "report.html").is_file()
    engine = read_manifest(tmp_path / "ray")["timings"]["engine"]
    assert engine["name"] == "ray" and engine["actors"] == 1 and engine["in_flight"] >= 1
    # the folder is an ordinary results folder: the local engine resumes it (nothing left)
    again = scan_dataset(dataset, tmp_path / "ray", settings=_settings(tiny_model))
    assert again.resumed_cases == 6 and again.scanned_cases == 0


def _ray_workers() -> list[tuple[int, str]]:
    """This process's Ray workers that hold cases, (pid, title): model actors and readers."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:  # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")"
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    ours, grown = {os.getpid()}, True
    while grown:  # descendants: add children of known ones until none is new
        new = {pid for pid, parent in parents.items() if parent in ours} - ours
        ours |= new
        grown = bool(new)
    found = []
    for pid in sorted(ours - {os.getpid()}):
        try:
            title = (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                     .decode(errors="replace").strip())
        except OSError:
            continue
        if title.startswith(("ray::CaseScorer", "ray::prepare_on_node", "ray::IDLE")):
            found.append((pid, title))
    return found


@pytest.mark.slow
def test_killed_actor_and_workers_cost_only_their_cases(ray_local, reference, tiny_model,
                                                        tmp_path):
    from qsaudit.inference.ray_engine import RayOptions, scan_dataset_ray

    dataset, local = reference
    killed: list[str] = []

    def kill_once(case_id: str) -> None:
        if killed:
            return
        for pid, title in _ray_workers():
            os.kill(pid, signal.SIGKILL)
            killed.append(title)

    summary = scan_dataset_ray(dataset, tmp_path / "ray", settings=_settings(tiny_model),
                               options=RayOptions(actors=1), on_case_committed=kill_once)
    assert any(t.startswith("ray::CaseScorer") for t in killed), killed
    assert summary.scanned_cases == 6
    _assert_same_tables(local, tmp_path / "ray")


def test_dataset_invisible_to_workers_names_the_node(ray_local, make_dataset, tiny_model,
                                                     tmp_path):
    import socket

    from qsaudit.inference.ray_engine import RayOptions, scan_dataset_ray

    dataset = make_dataset(cases=6)

    def hide_dataset(case_id: str) -> None:  # the driver listed it; now the workers cannot see it
        if dataset.exists():
            dataset.rename(tmp_path / "elsewhere")

    with pytest.raises(DatasetError) as err:
        scan_dataset_ray(dataset, tmp_path / "ray", settings=_settings(tiny_model),
                         options=RayOptions(actors=1, in_flight=2),
                         on_case_committed=hide_dataset)
    message = str(err.value)
    assert str(dataset) in message and "not visible on Ray node" in message
    assert socket.gethostname() in message
    assert len(list((tmp_path / "ray" / "parts").glob("*.json"))) >= 1  # committed cases kept


def _cli(dataset: Path, out: Path, model: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "qsaudit", "scan", str(dataset), "--out", str(out),
            "--model", str(model), "--device", "cpu", "--precision", "fp32", "--batch-size", "4",
            "--slices", "4", "--quiet", *extra]


@pytest.mark.slow
def test_cluster_by_address_killed_driver_then_resume(ray_head, make_dataset, tiny_model,
                                                      tmp_path):
    dataset = make_dataset(cases=16)
    local = tmp_path / "local"
    scan_dataset(dataset, local, settings=_settings(tiny_model))
    out = tmp_path / "ray"
    address, env = ray_head
    command = _cli(dataset, out, tiny_model, "--engine", "ray", "--ray-address", address)
    proc = subprocess.Popen(command, env=env, cwd=tmp_path)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list((out / "parts").glob("*.json"))) >= 3:
            break
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    parts = len(list((out / "parts").glob("*.json")))
    if (out / "results.csv").exists() or parts >= 16:
        pytest.skip("the scan finished before its driver could be killed")
    assert parts >= 3 and not list(out.glob("results.*"))
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert f"Resumed: {parts} case(s)" in done.stdout
    _assert_same_tables(local, out)


def test_missing_extra_says_how_to_install(make_dataset, tiny_model, tmp_path):
    """Ray blocked from importing, as when the extra is not installed: exit 2 and the hint."""
    dataset = make_dataset(cases=1)
    code = ("import sys\n"
            "sys.modules['ray'] = None  # import ray now fails as if it were not installed\n"
            "from qsaudit.cli import run\n"
            f"sys.argv = {_cli(dataset, tmp_path / 'out', tiny_model, '--engine', 'ray')[2:]!r}\n"
            "run()\n")
    proc = subprocess.run([sys.executable, "-c", code], env=ENV, cwd=tmp_path,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2, proc.stderr
    assert 'pip install "qsaudit[ray]"' in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_ray_options_need_the_ray_engine(make_dataset, tiny_model, tmp_path):
    from typer.testing import CliRunner

    from qsaudit.cli import app

    dataset = make_dataset(cases=1)
    args = _cli(dataset, tmp_path / "out", tiny_model)[3:]
    result = CliRunner().invoke(app, [*args, "--ray-address", "127.0.0.1:6379"])
    assert result.exit_code == 2 and "only with --engine ray" in result.output
    result = CliRunner().invoke(app, [*args, "--engine", "spark"])
    assert result.exit_code == 2 and "choose from local, ray" in result.output


def test_help_does_not_import_ray():
    code = ("import sys\nfrom qsaudit.cli import app\nsys.argv = ['qsaudit', 'scan', '--help']\n"
            "try:\n    app()\nexcept SystemExit:\n    pass\n"
            "print('ray' in sys.modules, file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True,
                          text=True, check=False)
    assert proc.stderr.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize("changes, message", [
    ({"actors": 0}, "actors = 0"), ({"in_flight": 0}, "in flight = 0"),
    ({"retries": -1}, "retries = -1"),
])
def test_ray_options_are_validated(changes, message):
    from qsaudit.errors import UsageError
    from qsaudit.inference.ray_engine import RayOptions

    with pytest.raises(UsageError, match=message):
        RayOptions(**changes)
