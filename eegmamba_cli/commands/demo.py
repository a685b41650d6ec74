"""`eegmamba demo`: synthetic corpus -> preprocess -> train -> evaluate -> predict, on CPU, no downloads."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..console import UserError, console, handle_errors


@handle_errors
def main(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for everything the demo writes "
                                      "(raw/, cache/, run/, predictions/); cleared if an earlier demo made it.")]
    = Path("eegmamba-demo"),
    epochs: Annotated[Optional[int], typer.Option(help="Training epochs (default: 16, the demo model's).")]
    = None,
    minutes: Annotated[float, typer.Option(help="Cap on training time: no epoch starts after it "
                                                "(at least one runs).")] = 6.0,
    seed: Annotated[int, typer.Option(help="Seed for the synthetic corpus and for training.")] = 0,
    threads: Annotated[Optional[int], typer.Option(help="PyTorch CPU threads (default: the cores idle "
                                                        "before each epoch, at most 4).")] = None,
    tiny: Annotated[bool, typer.Option("--tiny/--no-tiny", hidden=True,
                                       help="Tests: a much smaller corpus and model, one epoch.")] = False,
) -> None:
    """Run the whole toolkit on a synthetic 8-corpus dataset: the main job end to end, in minutes on a CPU."""
    from ..demo.run import results_table, run_demo, timing_table

    if minutes <= 0:
        raise UserError(f"--minutes {minutes:g}: expected a positive number of minutes")
    if (epochs is not None and epochs < 1) or (threads is not None and threads < 1):
        raise UserError("--epochs and --threads must be at least 1")
    report = run_demo(out, minutes, seed, tiny, epochs=epochs, threads=threads)
    console.print(results_table(report.results))
    for p in report.predictions:
        agreement = f"; {p['agreement']:.0%} of windows agree with the synthetic labels" \
            if p["agreement"] is not None else ""
        console.print(f"predicted {Path(p['recording']).name}: {p['windows']} windows -> {p['csv']}, "
                      f"{p['png']}{agreement}", highlight=False)
    console.print(timing_table(report))
    console.print(f"demo-sized model: {report.parameters:,} parameters, {report.epochs} epoch(s) on CPU. "
                  f"Everything is in {out}/ (summary: {out / 'demo-summary.json'}; confusion matrices: "
                  f"{out / 'run' / 'confusion'}/).", highlight=False)
