"""Dynamic sampling (docs/design.md#dynamic-sampling): every batch comes from one dataset, chosen in proportion to what is left.

Within an epoch, r_d is the number of dataset d's training samples not drawn yet. Each step picks d with
probability r_d / Σr and takes the next ≤ batch_size samples of d's own shuffled order, so large datasets
dominate early and small ones late, and the epoch ends when every sample has been drawn exactly once.
The last, partial batch of each dataset is kept.

The whole epoch is a pure function of (seed, epoch): nothing is carried over from earlier epochs, which
is what makes `--resume` from an epoch boundary exact.

Under DDP every rank computes the same global sequence of batches and takes its own slice of each batch
(`shard`), so all ranks run the same number of steps on the same dataset at the same time; the global
batch size is the `--batch-size` of a single-process run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Batch:
    dataset: int  # index into the model's dataset list
    rows: np.ndarray  # int64 positions into that dataset's training index array


def epoch_rng(seed: int, epoch: int, *keys: int) -> np.random.Generator:
    """A generator that depends only on (seed, epoch, keys): the project's one source of sampler randomness."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), *map(int, keys)]))


class DynamicSampler:
    """The batch sequence of one epoch over several datasets of sizes `sizes`."""

    def __init__(self, sizes: Sequence[int], batch_size: int, seed: int):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.sizes = [int(n) for n in sizes]
        self.batch_size = int(batch_size)
        self.seed = int(seed)

    def steps_per_epoch(self) -> int:
        return sum(-(-n // self.batch_size) for n in self.sizes)  # Σ ⌈n_d / B⌉

    def epoch(self, epoch: int) -> list[Batch]:
        rng = epoch_rng(self.seed, epoch)
        orders = [rng.permutation(n) for n in self.sizes]  # each dataset's own shuffled order
        taken = [0] * len(self.sizes)
        remaining = np.array(self.sizes, dtype=np.float64)
        batches: list[Batch] = []
        while remaining.sum() > 0:
            d = int(rng.choice(len(self.sizes), p=remaining / remaining.sum()))
            stop = min(taken[d] + self.batch_size, self.sizes[d])
            batches.append(Batch(d, orders[d][taken[d]:stop]))
            remaining[d] -= stop - taken[d]
            taken[d] = stop
        return batches


def shard(rows: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """Rank `rank`'s contiguous slice of one global batch; sizes differ by at most one, and may be 0."""
    return np.array_split(rows, world_size)[rank]


def rank_share(rows: np.ndarray, rank: int, world_size: int) -> tuple[np.ndarray, int, float]:
    """This rank's part of one global batch: (rows to compute, how many of them count, loss scale).

    DDP averages gradients over ranks, so scaling rank r's mean loss by n_r·W/n makes the average the
    gradient of the global batch's mean loss. A rank whose slice is empty still computes one row, because
    DDP needs every rank in every all-reduce, and its loss scale is 0.
    """
    mine = shard(rows, rank, world_size)
    if len(mine) == 0:
        return rows[:1], 0, 0.0
    return mine, len(mine), len(mine) * world_size / len(rows)
