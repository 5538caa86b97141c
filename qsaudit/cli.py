"""The ``qsaudit`` command line: a thin Typer layer over the library.

Each command lives in ``qsaudit/commands/<name>.py``: it parses options, calls one library
function, renders the result and sets the exit code. Heavy libraries (torch, pandas, matplotlib,
statsmodels) are imported inside the command functions so that ``qsaudit --help`` and
``qsaudit --version`` stay instant and torch-free.
"""

from __future__ import annotations

import importlib

import typer

from qsaudit import __version__

app = typer.Typer(
    name="qsaudit",
    help="Audit the label quality of CT segmentation datasets: predict the Dice score of every "
    "organ mask without the expert label.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

# Command modules, in the order they appear in --help. Each registers itself on ``app``.
COMMAND_MODULES = (
    "demo",
    "scan",
    "merge",
    "evaluate",
    "bias",
    "budget",
    "select",
    "gate",
    "train",
    "import_paper",
    "datasets",
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"qsaudit {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True,
        help="Show the version and exit.",
    ),
) -> None:
    """Audit the label quality of CT segmentation datasets."""


for _name in COMMAND_MODULES:
    try:
        importlib.import_module(f"qsaudit.commands.{_name}")
    except ModuleNotFoundError as exc:  # a command module not written yet
        if exc.name != f"qsaudit.commands.{_name}":
            raise


def run() -> None:
    """Console-script entry point: like ``app()``, but option errors are one ``Error:`` line.

    Click's standalone mode prints a boxed usage panel for a bad option value; a user (and a CI
    log) gets one red line naming the option instead, and exit code 2.
    """
    import sys

    from qsaudit.commands._common import error_line

    usage_errors, aborts = _click_exceptions()

    try:
        code = app(standalone_mode=False)
    except usage_errors as exc:
        message = " ".join(exc.format_message().split())
        hint = f" (see qsaudit {exc.ctx.info_name} --help)" if exc.ctx is not None and \
            exc.ctx.parent is not None else " (see qsaudit --help)"
        error_line(message + hint)
        sys.exit(2)
    except aborts:
        error_line("interrupted")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def _click_exceptions() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """Click's UsageError and Abort classes (Typer may vendor its own copy of click)."""
    usage: list[type] = []
    abort: list[type] = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        if hasattr(mod, "UsageError"):
            usage.append(mod.UsageError)
        if hasattr(mod, "Abort"):
            abort.append(mod.Abort)
    return tuple(usage), tuple(abort)
