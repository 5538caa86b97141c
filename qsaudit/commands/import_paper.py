"""``qsaudit import-paper``: convert the released Quality Sentinel checkpoint to a qsaudit model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qsaudit.cli import app
from qsaudit.commands._common import run_command, stdout_console


@app.command("import-paper")
@run_command
def import_paper(
    checkpoint: Annotated[Path, typer.Option(
        "--checkpoint", "-c",
        help="The paper's state dict, e.g. best_resnet50_model_40_samples.pth.")],
    embeddings: Annotated[Path, typer.Option(
        "--embeddings", "-e",
        help="The paper's label_embedding.pkl (DAP Atlas id -> CLIP text embedding). "
        "A pickle: use a trusted copy.")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="qsaudit model file to write (.pt).")],
) -> None:
    """Import the paper's released checkpoint so `qsaudit scan --model` reproduces its numbers.

    The model keeps the paper's unbounded head (results show it as raw_score beside the clipped
    predicted_dsc), its preprocessing and its 10 evenly spaced slices per label.

    Example: qsaudit import-paper --checkpoint best_resnet50_model_40_samples.pth
    --embeddings label_embedding.pkl --out paper.pt
    """
    from qsaudit.commands._common import writable_folder
    from qsaudit.errors import UsageError
    from qsaudit.model.checkpoint import load_checkpoint
    from qsaudit.model.paper import import_paper_checkpoint

    if out.is_dir():
        raise UsageError(f'"{out}": --out is a folder; give a file name such as paper.pt')
    writable_folder(out.parent, what="folder of --out")
    path = import_paper_checkpoint(checkpoint, embeddings, out)
    predictor = load_checkpoint(path, device="cpu")
    cfg = predictor.config
    stdout_console().print(
        f"Wrote {path}: {cfg.backbone} at {cfg.input_size} px, "
        f"{len(predictor.vocabulary)} structures in the vocabulary, "
        f"sha256 {predictor.fingerprint[:12]}.")
