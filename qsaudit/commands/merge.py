"""``qsaudit merge``: join the shard folders of ``qsaudit scan --shard I/N`` into one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qsaudit.cli import app
from qsaudit.commands._common import DEFAULT_RESULTS_DIR, run_command


@app.command("merge")
@run_command
def merge_command(
    shards: Annotated[list[Path], typer.Argument(help="Shard results folders (all of a split).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Merged results folder.")
                   ] = DEFAULT_RESULTS_DIR,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace merged results made from other shards or settings.")] = False,
) -> None:
    """Merge sharded scan results into one results folder and report.

    Checks that the shards are complete, come from the same dataset, model and settings, and
    share no case; dataset-level flags are recomputed over all cases.

    Example: qsaudit merge shard-0 shard-1 shard-2 shard-3 --out qsaudit-report
    """
    from qsaudit.commands.scan import print_summary
    from qsaudit.inference import merge_shards

    print_summary(merge_shards(shards, out, force=force))
