"""`eegmamba benchmark`: speed and memory tables (placeholder until the model lands)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..console import console, handle_errors


@handle_errors
def main(
    out: Annotated[Path, typer.Option(help="Folder for the CSV and PNG results.")] = Path("bench-out"),
) -> None:
    """Time the model, the SSM scan and the pipeline; print tables, save CSV and PNG."""
    console.print("benchmark: not implemented yet")
