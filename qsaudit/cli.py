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


def _plain_help(params: list) -> list:
    """Show parameters in help as a user types them: a switch takes no value (no ``<bool>``),
    a repeated value reads ``<path>...`` (not ``<list[Path]>``), an argument is its upper-case
    name (``DATASET``, not ``{dataset}``). Applied in place; idempotent."""
    from typer.core import TyperArgument, TyperOption

    for param in params:
        if isinstance(param, TyperOption):
            if param.is_flag:
                param.metavar = ""
            elif param.metavar is None and param.type_descriptor.is_list:
                param.metavar = f"<{_element_type(param)}>..."
        elif isinstance(param, TyperArgument) and not isinstance(param, _Argument):
            param.__class__ = _Argument
            param.metavar = param.metavar or param._rich_display_name()
    return params


def _element_type(param) -> str:
    import typing

    args = typing.get_args(param.type_descriptor.annotation)
    return param._bare_type(args[0]).lower() if args else "value"


def _argument_class():
    from typer.core import TyperArgument

    class Argument(TyperArgument):
        """A positional argument shown as ``NAME`` (``[NAME]`` when optional, ``NAME...``
        when repeated), with its type in the plain form of :func:`_plain_help`."""

        def display_type_rich(self, ctx) -> str | None:
            if self.type_descriptor.is_list:
                return f"<{_element_type(self)}>..."
            return super().display_type_rich(ctx)

        def _rich_display_name(self) -> str:
            return self.metavar or self.name.upper() + ("..." if self.nargs != 1 else "")

        def _usage_display_name(self) -> str:
            name = self._rich_display_name()
            return name if self.required else f"[{name}]"

    return Argument


_Argument = _argument_class()


class _Command(typer.core.TyperCommand):
    def get_params(self, ctx):  # see _plain_help
        return _plain_help(super().get_params(ctx))


class _Group(typer.core.TyperGroup):
    def get_params(self, ctx):  # see _plain_help
        return _plain_help(super().get_params(ctx))


app = typer.Typer(
    cls=_Group,
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
for _info in app.registered_commands:  # every command's help in the plain form
    if _info.cls in (None, typer.core.TyperCommand):
        _info.cls = _Command


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
        if not message:  # no command given: the help was printed, there is nothing to add
            sys.exit(2)
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
