"""What every command shares: error translation, quiet mode and the results-folder option.

Library code raises :class:`qsaudit.errors.QsauditError`; :func:`run_command` turns it into one
red ``Error: …`` line on stderr and the error's exit code, never a traceback. Exit codes, the
same for every command: 0 ok, 1 a quality finding (``gate``) or a run that failed for a reason
outside its inputs, 2 bad arguments or unusable inputs, 130 interrupted.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from qsaudit.errors import QsauditError, UsageError

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_RESULTS_DIR = Path("qsaudit-report")
INTERRUPTED = "interrupted"

QuietOption = typer.Option(False, "--quiet", "-q", help="No progress output on stderr.")
ResultsOption = typer.Option(
    DEFAULT_RESULTS_DIR, "--results", "-r",
    help="Results folder written by `qsaudit scan` (default: ./qsaudit-report).",
)


class Interrupted(KeyboardInterrupt):
    """A Ctrl-C with the line to show for it (e.g. that rerunning the command resumes)."""


def error_line(message: str) -> None:
    """Print ``Error: message`` in red on stderr."""
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"[bold red]Error:[/bold red] {_escape(message)}")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(str(text))


def run_command(func: F) -> F:
    """Decorator for command functions: library errors become one line and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except QsauditError as exc:
            error_line(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt as exc:
            error_line(str(exc) if isinstance(exc, Interrupted) else INTERRUPTED)
            raise typer.Exit(130) from None
        except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
            error_line(os_error_message(exc))
            raise typer.Exit(2) from None
        except OSError as exc:  # disk full, read-only file system, I/O error, …
            error_line(os_error_message(exc))
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def os_error_message(exc: OSError) -> str:
    """One line for an operating-system error: the file(s) it names and the system's reason."""
    names = [f'"{n}"' for n in (exc.filename, exc.filename2) if n not in (None, "")]
    reason = exc.strerror or (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return f"{' -> '.join(names)}: {reason}" if names else reason


def writable_folder(folder: str | Path, *, what: str = "output folder") -> Path:
    """Create ``folder`` if needed and prove that a file can be written in it.

    Called before any work so that an unwritable ``--out`` fails at once, with nothing written.
    Raises :class:`UsageError` naming the folder and the reason.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f'"{folder}": the {what} is a file, not a folder')
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".qsaudit-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f'"{folder}": cannot write the {what} '
                         f"({exc.strerror or type(exc).__name__})") from None
    return folder


def record(results: str | Path, name: str, files, summary, *, passed: bool | None = None) -> None:
    """Summarise analysis ``name`` on the home page (report.html) of the results folder it read.

    The analysis' own files are already written: a home page that cannot be updated (a
    read-only results folder) costs a warning line, not the command's result.
    """
    from qsaudit.analyses.results import results_dir
    from qsaudit.reports.hub import record_analysis

    try:
        record_analysis(results_dir(results), name, files=files, summary=summary, passed=passed)
    except OSError as exc:
        from qsaudit.progress import stderr_console

        stderr_console().print(f"report.html not updated: {_escape(os_error_message(exc))}")


def set_quiet(quiet: bool) -> None:
    """Apply ``--quiet`` to every progress bar of this process."""
    from qsaudit import progress

    progress.set_quiet(quiet)


def stdout_console():
    """A Rich console on stdout for results (tables, summaries)."""
    from rich.console import Console

    return Console(file=sys.stdout, highlight=False, soft_wrap=True)
