"""`eegmamba predict RECORDING --model RUN`: a trained head on one EDF/BDF/GDF/FIF recording."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..console import UserError, console, handle_errors
from .options import PRECISION_HELP, Device, Precision, settings_as_flags


@handle_errors
def main(
    recording: Annotated[Path, typer.Argument(help="The recording: .edf, .bdf, .gdf or .fif.")],
    model: Annotated[Path, typer.Option("--model", "-m", help="A run folder (the --out of `train`), one of "
                                        "its fold-K/ folders, a checkpoint folder, or an `eegmamba export` "
                                        "folder.")],
    dataset: Annotated[Optional[str], typer.Option(help="The head to use, e.g. sleepedf or chbmit "
                                                        "(default: the model's only head).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Per-window predictions: .csv or .json "
                                                "(default: CSV on stdout).")] = None,
    plot: Annotated[Optional[Path], typer.Option(help="PNG: hypnogram (sleep), seizure probability "
                                                      "(seizure) or class probabilities.")] = None,
    channel_map: Annotated[Optional[Path], typer.Option(help="JSON or TSV: model channel -> file channel "
                                                             "(overrides the automatic matching).")] = None,
    fold: Annotated[Optional[int], typer.Option(help="With a run folder: the fold whose model to use "
                                                     "(default: the lowest validation loss).")] = None,
    device: Annotated[Device, typer.Option(help="auto: CUDA when available.")] = Device.auto,
    precision: Annotated[Precision, typer.Option(help=PRECISION_HELP)] = Precision("auto"),
    batch_size: Annotated[int, typer.Option(help="Windows per forward pass.")] = 32,
    allow_pickle_checkpoint: Annotated[bool, typer.Option(
        "--allow-pickle-checkpoint/--no-allow-pickle-checkpoint",
        help="Also read a .pt/.pth state dict beside a checkpoint.json, with torch.load(weights_only=True). "
             "Off by default: unpickling an untrusted file can run code.")] = False,
) -> None:
    """Predict every window of a recording: one row per window, a summary, and optionally a plot."""
    from ..predict import load_head, predict_recording
    from ..predict.output import save_plot, summary_tables, write_windows
    from ..precision import resolve_precision
    from ..training.distributed import resolve_device

    if out is not None and out.suffix.lower() not in (".csv", ".json"):
        raise UserError(f"{out}: --out must end in .csv or .json")
    if plot is not None and plot.suffix.lower() != ".png":
        raise UserError(f"{plot}: --plot must end in .png")
    with settings_as_flags():
        run_device = resolve_device(device.value)
    run_precision = resolve_precision(precision.value, run_device)
    head = load_head(model, dataset, run_device, fold, allow_pickle=allow_pickle_checkpoint)
    console.print(f"model: {head.checkpoint} (head {head.name}, {head.task}, "
                  f"{head.window_s:g}-s windows; {run_device.type}, {run_precision})", highlight=False)
    prediction = predict_recording(recording, head, channel_map=channel_map, batch_size=max(1, batch_size),
                                   device=run_device, precision=run_precision)
    for table in summary_tables(prediction):
        console.print(table)
    for note in prediction.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    if out is not None:
        write_windows(prediction, out)
        console.print(f"wrote {out}", highlight=False)
    else:
        typer.echo(prediction.windows.to_csv(index=False, float_format="%.6g"), nl=False)
    if plot is not None:
        save_plot(prediction, plot)
        console.print(f"wrote {plot}", highlight=False)
