"""One place that decides whether progress is shown. Progress goes to stderr, never stdout."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_QUIET = False


def set_quiet(quiet: bool) -> None:
    """Silence (or re-enable) every progress bar and status line of this process."""
    global _QUIET
    _QUIET = bool(quiet)


def is_quiet() -> bool:
    """True when progress output is silenced."""
    return _QUIET


def stderr_console():
    """A Rich console on stderr (quiet consoles print nothing)."""
    from rich.console import Console

    return Console(stderr=True, quiet=_QUIET)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items`` with a Rich progress bar on stderr (silent when quiet)."""
    if _QUIET:
        yield from items
        return
    from rich.progress import track as rich_track

    yield from rich_track(items, description=description, total=total, console=stderr_console(),
                          transient=True)


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """A spinner with ``message`` on stderr while a slow step runs (nothing when quiet)."""
    if _QUIET:
        yield
        return
    with stderr_console().status(message):
        yield


def progress_bar():
    """A Rich ``Progress`` on stderr for manual task updates; disabled when quiet."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                    console=stderr_console(), disable=_QUIET, transient=False)
