"""`eegmamba train`: multi-task (or single-task) training, fold by fold under an evaluation protocol, resumable,
DDP-ready."""
from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..console import UserError, console, handle_errors
from .options import PRECISION_HELP, Ablation, Device, Precision, Select, settings_as_flags


class Protocol(str, Enum):
    subject_kfold = "subject-kfold"
    loso = "loso"
    cross_session = "cross-session"
    within_subject = "within-subject"
    held_out = "held-out"


class Recipe(str, Enum):  # training.recipe.RECIPE_CHOICES (importing it would load torch at start-up)
    auto = "auto"
    small = "small"
    paper = "paper"


class Schedule(str, Enum):  # training.recipe.SCHEDULES
    constant = "constant"
    cosine = "cosine"


class Freeze(str, Enum):  # training.config.FREEZE_CHOICES
    none = "none"
    backbone = "backbone"
    tokenizer = "tokenizer"


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
    fold: Annotated[str, typer.Option(help="Which of the protocol's folds to train: a number, several as 1,3, "
                                           "or 'all'.")] = "all",
    protocol: Annotated[Optional[Protocol], typer.Option(
        help="Which windows test in each fold: subject-kfold (the paper's folds for its corpora, subject-grouped "
             "k-fold elsewhere), loso, cross-session, within-subject, held-out [default: held-out with "
             "--test-subjects/--test-sessions, else subject-kfold].")] = None,
    folds: Annotated[Optional[int], typer.Option(
        help="Number of folds for subject-kfold and within-subject [default: 5, or the corpus's fixed folds].")] = None,
    test_subjects: Annotated[Optional[str], typer.Option(
        help="held-out: the test subjects, comma-separated.")] = None,
    test_sessions: Annotated[Optional[str], typer.Option(
        help="held-out or cross-session: the test sessions (runs, for one-session data), comma-separated.")] = None,
    preset: Annotated[Optional[Preset], typer.Option(
        help="multitask: 8 BiMamba + 8 MoE blocks; single-task: 2 BiMamba blocks, one dataset [default: "
             "single-task when the small recipe trains one dataset, else multitask].")] = None,
    ablation: Annotated[Optional[list[Ablation]], typer.Option(help="Paper ablation variant (repeatable).")] = None,
    recipe: Annotated[Recipe, typer.Option(help="small: for a few hundred to a few thousand training windows; "
                                                "paper: the paper's; auto: small below a number of training "
                                                "windows per fold (printed at start), else paper. Options "
                                                "below left unset take the recipe's values.")] = Recipe.auto,
    d_model: Annotated[Optional[int], typer.Option(help="Hidden width D; default: the recipe's, else the preset's.")] = None,
    layers: Annotated[Optional[int], typer.Option(help="Number of blocks; default: the recipe's, else the preset's.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Most epochs per fold; default: the recipe's.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Global batch size, split across DDP ranks; "
                                                           "default: the recipe's.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="AdamW peak learning rate; default: the recipe's.")] = None,
    schedule: Annotated[Optional[Schedule], typer.Option(help="LR after the warm-up: constant, or cosine "
                                                              "decay to 0; default: the recipe's.")] = None,
    warmup: Annotated[Optional[float], typer.Option(help="Fraction of all steps with a linear LR warm-up; "
                                                         "default: the recipe's.")] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="AdamW weight decay (not on A_log / D, biases, "
                                                               "norms); default: the recipe's.")] = None,
    patience: Annotated[Optional[int], typer.Option(help="Stop a fold after this many epochs without a lower "
                                                         "validation loss; 0: never; default: the recipe's.")] = None,
    augment: Annotated[bool, typer.Option("--augment/--no-augment",
                                          help="Augment training batches as the recipe says.")] = True,
    balance_weight: Annotated[Optional[float], typer.Option(help="Weight of the MoE balance loss; "
                                                                 "default: the recipe's.")] = None,
    z_weight: Annotated[Optional[float], typer.Option(help="Weight of the router z-loss; default: the recipe's.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for initialisation, splits, batch order, dropout.")] = 0,
    device: Annotated[Device, typer.Option(help="auto: CUDA when available.")] = Device.auto,
    precision: Annotated[Precision, typer.Option(help=PRECISION_HELP)] = Precision("auto"),
    resume: Annotated[bool, typer.Option("--resume/--no-resume",
                                         help="Continue from fold-K/last/ if present; --no-resume starts over.")] = True,
    select: Annotated[Select, typer.Option(help="Checkpoint `evaluate` uses: lowest validation loss or the "
                                                "final epoch.")] = Select("best-val"),
    max_windows_per_dataset: Annotated[Optional[int], typer.Option(
        help="Random subset of at most N windows per dataset and split (quick runs).")] = None,
    val_fraction: Annotated[Optional[float], typer.Option(
        help="Share of each fold's training part held out for validation, grouped as the protocol groups "
             "(0 to 0.5) [default: the recipe's: paper 0.1, small 0.2].")] = None,
    grad_clip: Annotated[Optional[float], typer.Option(
        help="Clip the global gradient norm to this value (default: off, as in the paper).")] = None,
    train_fraction: Annotated[Optional[float], typer.Option(
        help="Train on this share of each fold's training windows (per class, drawn by --seed); validation "
             "and test windows are untouched. For learning curves.")] = None,
    init_from: Annotated[Optional[Path], typer.Option(
        help="Fine-tune: start from a trained run (its best fold), fold or checkpoint folder, or an "
             "`eegmamba export` folder. Its architecture replaces the recipe's; datasets it knows keep their "
             "heads, new ones get fresh ones. See docs/commands/train.md#fine-tuning.")] = None,
    freeze: Annotated[Freeze, typer.Option(
        help="With --init-from: shared parts that do not learn: backbone (tokenizer, class token, blocks, "
             "final norm: only the per-dataset parts train) or tokenizer.")] = Freeze.none,
    pretrained_lr_factor: Annotated[float, typer.Option(
        help="With --init-from: learning-rate multiplier for the loaded parts (e.g. 0.1).")] = 1.0,
) -> None:
    """Train EEGMamba on preprocessed caches, fold by fold; also runs under `torchrun` (DDP)."""
    from ..training.data import default_cache_root
    from ..training.trainer import TrainConfig, train
    from ..training.transfer import TransferError

    cfg = TrainConfig(out=out, tasks=tasks, data=data if data is not None else default_cache_root(), fold=fold,
                      preset=preset.value if preset else None, ablations=tuple(a.value for a in ablation or ()),
                      recipe=recipe.value,
                      d_model=d_model, layers=layers, epochs=epochs, batch_size=batch_size, lr=lr,
                      schedule=schedule.value if schedule else None, warmup=warmup, weight_decay=weight_decay,
                      patience=patience, augment=augment, balance_weight=balance_weight, z_weight=z_weight,
                      seed=seed, device=device.value, precision=precision.value, resume=resume, select=select.value,
                      max_windows_per_dataset=max_windows_per_dataset, val_fraction=val_fraction,
                      grad_clip=grad_clip,
                      protocol=protocol.value if protocol else ("held-out" if test_subjects or test_sessions
                                                                else "subject-kfold"),
                      n_folds=folds, test_subjects=_names(test_subjects), test_sessions=_names(test_sessions),
                      train_fraction=train_fraction, init_from=init_from, freeze=freeze.value,
                      pretrained_lr_factor=pretrained_lr_factor)
    with settings_as_flags(ablations="--ablation", n_folds="--folds"):
        try:
            folds = train(cfg)
        except TransferError as err:
            raise UserError(f"--init-from {init_from}: {err}") from None
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 talks
        console.print(f"trained fold(s) {', '.join(map(str, folds))} into {out}; "
                      f"next: eegmamba evaluate {out}")


def _names(value: str | None) -> tuple[str, ...]:
    """Comma-separated names as the config holds them; empty names are left for its checks to refuse."""
    return () if value is None else tuple(v.strip() for v in value.split(","))
