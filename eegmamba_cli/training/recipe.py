"""Training recipes: the paper's, and one for small data sets, chosen by the size of the training set.

A `Recipe` is every training choice that is not the data or the model's architecture: optimiser, learning
-rate schedule, batch size, epochs, early stopping, augmentation, model width and the MoE auxiliary-loss
weights. `paper` is the paper's recipe exactly (what `train` did before recipes existed); `small` is the
one measured on a few hundred trials (docs/training.md, "Recipes", says what each value is and why).
`choose_recipe` picks one: `auto` takes `small` below `SMALL_DATA_THRESHOLD` training windows.

The numbers of both recipes live here and nowhere else; a flag the user gives (`--lr`, `--epochs`, ...)
overrides the recipe's value (config.TrainConfig: None means "from the recipe").
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Literal

from .augment import Augmentations

RECIPE_CHOICES = ("auto", "small", "paper")
SCHEDULES = ("constant", "cosine")

# auto: `small` below this many training windows (summed over datasets), `paper` from it on. Below it the
# paper's batch 128 x 100 epochs makes fewer than ~1,600 optimiser steps; the paper's corpora are all above it.
SMALL_DATA_THRESHOLD = 2000


@dataclass(frozen=True)
class BatchRule:
    """Batch size `clamp(n_train // divisor, low, high)`; with divisor None, always `high`."""

    high: int
    low: int = 1
    divisor: int | None = None

    def size_for(self, n_train: int) -> int:
        if self.divisor is None:
            return self.high
        return int(min(self.high, max(self.low, n_train // self.divisor)))


@dataclass(frozen=True)
class Recipe:
    name: str
    lr: float  # AdamW peak learning rate
    weight_decay: float  # on model.param_groups' decay group
    schedule: Literal["constant", "cosine"]  # after warm-up: hold the LR, or cosine decay to 0 at the last step
    warmup: float  # fraction of all steps (epochs x steps per epoch) with a linear ramp up to `lr`
    batch: BatchRule
    epochs: int  # the most epochs a fold trains
    patience: int | None  # early stopping: epochs without a validation-loss improvement; None: never stop
    min_delta: float  # an improvement must lower the validation loss by more than this
    augment: Augmentations  # applied to training batches only
    d_model: int | None  # None: the preset's width
    layers: int | None  # None: the preset's block count
    balance_weight: float  # MoE balance-loss weight
    z_weight: float  # router z-loss weight
    val_fraction: float  # share of each fold's training part held out for validation (early stopping, best-val)
    preset: str = "multitask"  # the model preset of a run that trains one dataset and names none (--preset)

    def to_json(self) -> dict:
        return asdict(self)


PAPER = Recipe(name="paper", lr=2e-4, weight_decay=1e-6, schedule="constant", warmup=0.0,
               batch=BatchRule(high=128), epochs=100, patience=None, min_delta=0.0,
               augment=Augmentations(), d_model=None, layers=None, balance_weight=1.0, z_weight=1.0,
               val_fraction=0.1)

SMALL = Recipe(name="small", lr=1e-3, weight_decay=0.05, schedule="cosine", warmup=0.1,
               batch=BatchRule(high=32, low=16, divisor=8), epochs=60, patience=15, min_delta=0.0,
               augment=Augmentations(crop_s=0.5, amplitude_spread=0.2, channel_drop_p=0.1),
               d_model=32, layers=2, balance_weight=0.01, z_weight=0.001,
               val_fraction=0.2,  # 0.1 of a few dozen trials is 3-4 windows: too few to stop on
               preset="single-task")  # one dataset has no use for the experts routed by task

RECIPES: dict[str, Recipe] = {r.name: r for r in (PAPER, SMALL)}


def recipe_named(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r} (expected one of {', '.join(RECIPES)})") from None


def choose_recipe(choice: str, n_train_windows: int | None) -> tuple[Recipe, str]:
    """(recipe, why) for `choice` auto | small | paper; auto needs the number of training windows."""
    if choice != "auto":
        return recipe_named(choice), "as asked"
    if n_train_windows is None:
        raise ValueError("recipe auto needs the number of training windows")
    if n_train_windows < SMALL_DATA_THRESHOLD:
        return SMALL, f"{n_train_windows:,} training windows < {SMALL_DATA_THRESHOLD:,}"
    return PAPER, f"{n_train_windows:,} training windows >= {SMALL_DATA_THRESHOLD:,}"


# --- the learning-rate schedule: a pure function of the global step, so a resumed run replays it -------
def warmup_steps(total_steps: int, warmup: float) -> int:
    return int(round(warmup * total_steps))


def warmup_epochs(warmup: float, epochs: int) -> int:
    """The epochs that the linear warm-up spans (whole or in part): no candidates for best/ or stopping."""
    return min(math.ceil(warmup * epochs), epochs - 1) if warmup else 0  # the last epoch always competes


def lr_factor(step: int, total_steps: int, warmup: float, schedule: str) -> float:
    """The multiple of the peak LR for optimiser step `step` (0-based) of `total_steps`.

    Linear warm-up (step+1)/W over the first W = round(warmup x total) steps, then 1 (constant) or a
    cosine from 1 down to 0 at the last step."""
    w = warmup_steps(total_steps, warmup)
    if step < w:
        return (step + 1) / w
    if schedule == "constant":
        return 1.0
    t = min(1.0, (step - w) / max(1, total_steps - w))
    return 0.5 * (1.0 + math.cos(math.pi * t))


# --- early stopping: a pure function of the validation losses so far, so resume needs no extra state ---
@dataclass
class StopVerdict:
    stop: bool
    reference_epoch: int = 0  # the epoch (1-based) of the last improvement; 0 if none
    waited: int = 0  # epochs since then
    reason: str = field(default="")


def early_stop(val_losses: list[float | None], patience: int | None, min_delta: float,
               warmup_epochs: int = 0) -> StopVerdict:
    """Stop once `patience` epochs in a row failed to lower the best validation loss by more than
    `min_delta`. An epoch without a validation loss (None) counts as no improvement. The first
    `warmup_epochs` neither count nor compete: a barely trained model can score a lucky validation loss
    near chance, and on a few dozen trials that stopped folds at the end of their warm-up."""
    best, best_epoch, waited = math.inf, 0, 0
    for epoch, loss in enumerate(val_losses, start=1):
        if epoch <= warmup_epochs:
            continue
        if loss is not None and loss < best - min_delta:
            best, best_epoch, waited = loss, epoch, 0
        else:
            waited += 1
    if patience is None or waited < patience:
        return StopVerdict(False, best_epoch, waited)
    why = (f"early stop: validation loss has not improved by more than {min_delta:g} for {waited} epochs "
           f"(patience {patience}; best epoch {best_epoch})")
    return StopVerdict(True, best_epoch, waited, why)
