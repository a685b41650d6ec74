"""`eegmamba evaluate RUN_DIR`: test metrics per fold and dataset, beside the paper's numbers."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..console import console, handle_errors
from .options import PRECISION_HELP, Device, EvalSelect, Precision, settings_as_flags


@handle_errors
def main(
    run_dir: Annotated[Path, typer.Argument(help="The --out folder of `eegmamba train`.")],
    data: Annotated[Optional[Path], typer.Option(help="Cache root [default: the one the run was trained on].")] = None,
    select: Annotated[EvalSelect, typer.Option(help="Checkpoint per fold: as the run was trained (run), lowest "
                                                    "validation loss (best-val) or the last epoch (final).")] = EvalSelect("run"),
    device: Annotated[Device, typer.Option(help="auto: CUDA when available.")] = Device.auto,
    precision: Annotated[Optional[Precision], typer.Option(
        help="[default: the one the run was trained with] " + PRECISION_HELP)] = None,
    batch_size: Annotated[int, typer.Option(help="Windows per forward pass.")] = 256,
    max_windows_per_dataset: Annotated[Optional[int], typer.Option(
        help="Random subset of at most N test windows per dataset and fold [default: the run's setting].")] = None,
    peers: Annotated[bool, typer.Option(
        "--peers/--no-peers", help="Also fit peers on the same folds and compare: EEGNet always, MiniRocket and a "
                                   "Riemannian tangent-space pipeline when pip install \"eegmamba\\[peers]\" has "
                                   "installed them; writes peers.csv and peers.png.")] = False,
    json_out: Annotated[bool, typer.Option("--json/--no-json", help="Also print results.json to stdout.")] = False,
    allow_pickle_checkpoint: Annotated[bool, typer.Option(
        "--allow-pickle-checkpoint/--no-allow-pickle-checkpoint",
        help="Also read a .pt/.pth state dict (beside checkpoint.json, instead of model.safetensors) with "
             "torch.load(weights_only=True); pickles are refused by default.")] = False,
) -> None:
    """Evaluate every trained fold of a run: ACC, AUROC, weighted F1 (+ balanced acc, kappa, macro F1, AUPRC)."""
    from ..training.evaluation import EvalConfig, all_metrics_table, evaluate_run, paper_tables

    with settings_as_flags(allow_pickle="--allow-pickle-checkpoint"):
        results = evaluate_run(EvalConfig(run_dir=run_dir, data=data,
                                          select=None if select.value == "run" else select.value,
                                          device=device.value, batch_size=batch_size,
                                          precision=precision.value if precision else None,
                                          max_windows_per_dataset=max_windows_per_dataset,
                                          allow_pickle=allow_pickle_checkpoint, peers=peers))
    for table in paper_tables(results):
        console.print(table)
    console.print(all_metrics_table(results))
    console.print(f"wrote {run_dir / 'results.csv'}, {run_dir / 'results.json'} and {run_dir / 'confusion'}/")
    if peers:
        from ..training.peer_report import peers_table
        from ..training.run_folder import RunFolder

        console.print(peers_table(results["peers"]["summary"], results["protocol"]["protocol"]))
        folder = RunFolder(run_dir)
        console.print(f"wrote {folder.peers_csv} and {folder.peers_png}")
    if json_out:
        typer.echo((run_dir / "results.json").read_text(), nl=False)
