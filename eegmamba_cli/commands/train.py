"""`eegmamba train`: multi-task (or single-task) training with subject-grouped folds, resumable, DDP-ready."""
from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..console import console, handle_errors
from .options import PRECISION_HELP, Ablation, Device, Precision, Select, settings_as_flags


class Preset(str, Enum):
    multitask = "multitask"
    single_task = "single-task"


@handle_errors
def main(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder: fold-K/{last,best}/, metrics, run.json.")],
    tasks: Annotated[str, typer.Option(help="'all' (every cache under --data), task names "
                                            "(seizure, sleep, emotion, mi) and/or dataset names, comma-separated.")] = "all",
    data: Annotated[Optional[Path], typer.Option(help="Cache root holding <dataset>/info.json "
                                                      "[default: $EEGMAMBA_DATA/cache, else ./eegmamba-data/cache].")] = None,
    fold: Annotated[str, typer.Option(help="Test fold 1..5, several as 1,3, or 'all'.")] = "all",
    preset: Annotated[Preset, typer.Option(help="multitask: 8 BiMamba + 8 MoE blocks; single-task: 2 BiMamba "
                                                "blocks, one dataset.")] = Preset.multitask,
    ablation: Annotated[Optional[list[Ablation]], typer.Option(help="Paper ablation variant (repeatable).")] = None,
    d_model: Annotated[Optional[int], typer.Option(help="Override the preset's hidden width D.")] = None,
    layers: Annotated[Optional[int], typer.Option(help="Override the preset's number of blocks.")] = None,
    epochs: Annotated[int, typer.Option(help="Epochs per fold.")] = 100,
    batch_size: Annotated[int, typer.Option(help="Global batch size (split across DDP ranks).")] = 128,
    lr: Annotated[float, typer.Option(help="AdamW learning rate (constant).")] = 2e-4,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay (not on A_log / D).")] = 1e-6,
    balance_weight: Annotated[float, typer.Option(help="Weight of the MoE balance loss.")] = 1.0,
    z_weight: Annotated[float, typer.Option(help="Weight of the router z-loss.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed for initialisation, splits, batch order, dropout.")] = 0,
    device: Annotated[Device, typer.Option(help="auto: CUDA when available.")] = Device.auto,
    precision: Annotated[Precision, typer.Option(help=PRECISION_HELP)] = Precision("auto"),
    resume: Annotated[bool, typer.Option("--resume/--no-resume",
                                         help="Continue from fold-K/last/ if present; --no-resume starts over.")] = True,
    select: Annotated[Select, typer.Option(help="Checkpoint `evaluate` uses: lowest validation loss or the "
                                                "final epoch.")] = Select("best-val"),
    max_windows_per_dataset: Annotated[Optional[int], typer.Option(
        help="Random subset of at most N windows per dataset and split (quick runs).")] = None,
    val_fraction: Annotated[float, typer.Option(help="Share of the training subjects held out for "
                                                     "validation (at least one).")] = 0.1,
    grad_clip: Annotated[Optional[float], typer.Option(
        help="Clip the global gradient norm to this value (default: off, as in the paper).")] = None,
) -> None:
    """Train EEGMamba on preprocessed caches, fold by fold; also runs under `torchrun` (DDP)."""
    from ..training.data import default_cache_root
    from ..training.trainer import TrainConfig, train

    cfg = TrainConfig(out=out, tasks=tasks, data=data if data is not None else default_cache_root(), fold=fold,
                      preset=preset.value, ablations=tuple(a.value for a in ablation or ()), d_model=d_model,
                      layers=layers, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                      balance_weight=balance_weight, z_weight=z_weight, seed=seed, device=device.value,
                      precision=precision.value, resume=resume, select=select.value,
                      max_windows_per_dataset=max_windows_per_dataset, val_fraction=val_fraction, grad_clip=grad_clip)
    with settings_as_flags(ablations="--ablation"):
        folds = train(cfg)
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 talks
        console.print(f"trained fold(s) {', '.join(map(str, folds))} into {out}; "
                      f"next: eegmamba evaluate {out}")
