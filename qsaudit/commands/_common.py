"""What every command shares: error translation, quiet mode and the results-folder option.

Library code raises :class:`qsaudit.errors.QsauditError`; :func:`run_command` turns it into one
red ``Error: …`` line on stderr and exit code 1 (2 for :class:`UsageError`), never a traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from qsaudit.errors import QsauditError, UsageError

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_RESULTS_DIR = Path("qsaudit-report")

QuietOption = typer.Option(False, "--quiet", "-q", help="No progress output on stderr.")
ResultsOption = typer.Option(
    DEFAULT_RESULTS_DIR, "--results", "-r",
    help="Results folder written by `qsaudit scan` (default: ./qsaudit-report).",
)


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
        except UsageError as exc:
            error_line(str(exc))
            raise typer.Exit(2) from None
        except QsauditError as exc:
            error_line(str(exc))
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            error_line("interrupted")
            raise typer.Exit(130) from None
        except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            where = f'"{exc.filename}": ' if getattr(exc, "filename", None) else ""
            error_line(f"{where}{exc.strerror or exc}")
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def set_quiet(quiet: bool) -> None:
    """Apply ``--quiet`` to every progress bar of this process."""
    from qsaudit import progress

    progress.set_quiet(quiet)


def stdout_console():
    """A Rich console on stdout for results (tables, summaries)."""
    from rich.console import Console

    return Console(file=sys.stdout, highlight=False, soft_wrap=True)
