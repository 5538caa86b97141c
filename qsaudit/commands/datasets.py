"""``qsaudit datasets``: show how qsaudit reads a dataset folder, without opening any volume."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from qsaudit.cli import app
from qsaudit.commands._common import run_command, stdout_console

_MAX_NAMES = 20


@app.command("datasets")
@run_command
def datasets_command(
    directory: Annotated[Path, typer.Argument(
        help="Dataset folder (or a single case folder).")],
    layout: Annotated[str | None, typer.Option(
        "--layout", "-l", help="Force the layout: per-structure, nnunet, msd, paired or single "
        "(default: detected).")] = None,
    labels: Annotated[Path | None, typer.Option(
        "--labels", help="Label table for label maps: CSV with columns value,name "
        "(or JSON).")] = None,
    preset: Annotated[str | None, typer.Option(
        "--preset", help="Known label table for label maps, e.g. btcv, amos, totalseg_v2.")] = None,
    head: Annotated[int, typer.Option(
        "--head", "-n", min=0, help="How many cases to show.")] = 10,
) -> None:
    """List a dataset's layout, cases and labels (reads only folder listings and small files).

    Example: qsaudit datasets data/AbdomenAtlas --head 5
    """
    from rich.table import Table

    from qsaudit.datasets import list_cases

    cases = list_cases(directory, layout=layout, labels_table=labels, preset=preset)
    console = stdout_console()
    names = Counter(label.name for case in cases for label in case.labels)
    missing_ct = sum(case.image is None for case in cases)
    console.print(f"Dataset: {directory}")
    console.print(f"Layout:  {cases[0].layout}")
    console.print(f"Cases:   {len(cases)}" + (f" ({missing_ct} without CT)" if missing_ct else ""))
    console.print(f"Labels:  {sum(names.values())} in {len(names)} names")
    shown = [f"{name} ({count})" for name, count in sorted(names.items())]
    if len(shown) > _MAX_NAMES:
        shown = shown[:_MAX_NAMES] + [f"... and {len(names) - _MAX_NAMES} more"]
    if shown:
        console.print("Names:   " + ", ".join(shown))
    if head == 0:
        return
    table = Table(title=f"First {min(head, len(cases))} of {len(cases)} cases")
    table.add_column("case")
    table.add_column("CT")
    table.add_column("labels", justify="right")
    table.add_column("label names")
    for case in cases[:head]:
        ct = _relative(case.image, directory) if case.image is not None else "[red]missing[/red]"
        label_names = ", ".join(label.name for label in case.labels[:6])
        if len(case.labels) > 6:
            label_names += f", ... (+{len(case.labels) - 6})"
        table.add_row(case.case_id, ct, str(len(case.labels)), label_names)
    console.print(table)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)
