"""What the trainer tells its caller while it runs: one `FoldPlan` per fold, one `EpochMetrics` per epoch.

`train(cfg, on_epoch=...)` hands each finished epoch's metrics to the caller (rank 0 only), so a caller
such as the demo shows progress in its own way without reading metrics.jsonl back. Without a callback
the trainer prints `epoch_line`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class FoldPlan:
    fold: int
    sizes: dict[str, dict[str, int]]  # dataset -> {"train": windows, "val": ..., "test": ...}
    parameters: int
    steps_per_epoch: int
    epochs: int  # the last epoch this call trains to

    def sizes_line(self, order: list[str] | None = None) -> str:
        """"a 10/2/4, b 8/2/4": train/val/test windows per dataset."""
        names = order if order is not None else list(self.sizes)
        return ", ".join(f"{n} {self.sizes[n]['train']}/{self.sizes[n]['val']}/{self.sizes[n]['test']}"
                         for n in names)


@dataclass(frozen=True)
class EpochMetrics:
    plan: FoldPlan
    row: dict  # every column of the epoch's metrics.jsonl row

    @property
    def fold(self) -> int:
        return self.plan.fold

    @property
    def epoch(self) -> int:
        return self.row["epoch"]

    @property
    def train_loss(self) -> float:
        return self.row["train_loss"]

    @property
    def val_loss(self) -> float | None:
        return self.row["val_loss"]

    @property
    def is_best(self) -> bool:
        """This epoch lowered the validation loss (its checkpoint is now best/)."""
        return self.row["best_epoch"] == self.epoch and self.val_loss is not None

    @property
    def windows_per_s(self) -> float:
        return self.row["windows_per_s"]

    @property
    def time_s(self) -> float:
        return self.row["time_s"]


OnEpoch = Callable[[EpochMetrics], None]


def epoch_line(m: EpochMetrics) -> str:
    """"fold 1 epoch 3/10: train loss 0.6931, val loss 0.6900 (best), 1,234 windows/s, 2.0 s"."""
    return (f"fold {m.fold} epoch {m.epoch}/{m.plan.epochs}: train loss {m.train_loss:.4f}"
            + (f", val loss {m.val_loss:.4f}" if m.val_loss is not None else "")
            + (" (best)" if m.is_best else "")
            + f", {m.windows_per_s:,.0f} windows/s, {m.time_s:.1f} s")
