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
