"""The CLI shell: instant --help/--version without torch, every command documented."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from qsaudit import __version__
from qsaudit.cli import app

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "pandas", "matplotlib", "statsmodels", "open_clip", "nibabel", "scipy")


def _modules_after(args: list[str]) -> set[str]:
    code = (
        "import sys\n"
        "from qsaudit.cli import app\n"
        f"sys.argv = ['qsaudit'] + {args!r}\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
        "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          check=False)
    return set(proc.stderr.split())


def test_help_and_version_do_not_import_heavy_libraries():
    for args in (["--help"], ["--version"], ["scan", "--help"], ["bias", "--help"]):
        loaded = _modules_after(args)
        assert "qsaudit.cli" in loaded
        heavy = sorted(m for m in HEAVY if m in loaded)
        assert not heavy, f"qsaudit {' '.join(args)} imported {heavy}"


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"qsaudit {__version__}"


def _commands() -> list[str]:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    names = []
    for line in result.output.splitlines():
        m = re.match(r"^│ (\S+)\s{2,}", line)
        if m and not m.group(1).startswith("-"):
            names.append(m.group(1))
    return names


def test_every_command_is_documented_in_readme_with_an_example():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = _commands()
    assert "scan" in commands and "demo" in commands
    for name in commands:
        assert f"qsaudit {name}" in readme, f"README has no example of `qsaudit {name}`"


def test_every_command_help_ends_with_an_example():
    runner = CliRunner()
    for name in _commands():
        result = runner.invoke(app, [name, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, name
        assert "qsaudit " + name in result.output.replace("import-paper", "import-paper"), (
            f"`qsaudit {name} --help` shows no example")


def test_bad_option_value_is_one_error_line_with_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "qsaudit", "budget", "--fraction", "abc"],
                          capture_output=True, text=True, cwd=tmp_path, check=False)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and "--fraction" in lines[0]
    assert "Traceback" not in proc.stderr


def test_unknown_command_is_one_error_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "qsaudit", "bogus"], capture_output=True,
                          text=True, cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "No such command" in proc.stderr
    assert len([ln for ln in proc.stderr.splitlines() if ln.strip()]) == 1


def test_bare_qsaudit_prints_help_and_no_empty_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "qsaudit"], capture_output=True, text=True,
                          cwd=tmp_path, check=False, env={**_env(), "COLUMNS": "120"})
    assert proc.returncode == 2
    assert "Commands" in proc.stdout and "scan" in proc.stdout
    assert "Error" not in proc.stdout + proc.stderr


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_help_shows_options_as_they_are_typed():
    """Switches take no value, repeated values read <type>..., arguments are NAMEs."""
    runner = CliRunner()
    for name in ["", *_commands()]:
        args = [name, "--help"] if name else ["--help"]
        text = runner.invoke(app, args, env={"COLUMNS": "200"}).output
        assert "<bool>" not in text and "<list[" not in text, name
        assert not re.search(r"\{[a-z_]+\}", text), name
    scan = runner.invoke(app, ["scan", "--help"], env={"COLUMNS": "200"}).output
    assert re.search(r"Usage: .*scan \[OPTIONS\] DATASET\b", scan)
    assert re.search(r"--force\s{2,}Replace", scan) and re.search(r"--out\s+-o\s+<path>", scan)
    merge = runner.invoke(app, ["merge", "--help"], env={"COLUMNS": "200"}).output
    assert "SHARDS..." in merge and "<path>..." in merge


def test_help_names_the_install_command_in_full():
    """Rich markup would swallow "[ray]" in "qsaudit[ray]" and tell users to install plain
    qsaudit, which has no Ray."""
    runner = CliRunner()
    for name in ("scan", "train"):
        text = runner.invoke(app, [name, "--help"], env={"COLUMNS": "250"}).output
        assert 'pip install "qsaudit[ray]"' in " ".join(text.split()), name
