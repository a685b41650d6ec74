"""`eegmamba export RUN --out DIR`: a trained run as one self-describing model folder (Hugging Face layout)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..console import console, handle_errors


@handle_errors
def main(
    run: Annotated[Path, typer.Argument(help="A run folder (the --out of `train`), one of its fold-K/ folders, "
                                             "or a checkpoint folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The model folder to write: config.json, "
                                      "model.safetensors, README.md (new, empty, or an earlier export).")],
    fold: Annotated[Optional[int], typer.Option(help="With a run folder: the fold whose model to export "
                                                     "(default: the lowest validation loss).")] = None,
) -> None:
    """Export a trained model with its preprocessing and a model card, for `predict --model`,
    `train --init-from`, the Python API and the Hugging Face Hub."""
    from ..training.export import export_model

    folder = export_model(run, out, fold)
    console.print(f"exported {folder} (config.json, model.safetensors, README.md); "
                  f"use: eegmamba predict RECORDING --model {folder}", highlight=False)
