"""EEGNet-8,2 (Lawhern et al. 2018), a compact convolutional network for EEG, as a peer baseline.

The network, for windows (N, C, T) at 128 Hz:
    temporal conv   F1 = 8 filters of half a second (64 samples), 'same' padding, BN
    spatial conv    depthwise over all C channels, D = 2 per temporal filter, max-norm 1, BN, ELU,
                    average pool 4, dropout
    separable conv  depthwise 16 samples then pointwise to F2 = 16, BN, ELU, average pool 8, dropout
    dense           to the classes, max-norm 0.25 per class
The max-norm constraints are applied after every optimiser step (and at initialisation), so they hold for
the weights that `fit` leaves, as the original's weight constraints do.

`EEGNetClassifier` wraps it in the fit(X, y) / predict(X) of a scikit-learn classifier so that
`peers.run_peers` fits it like the other peers. Windows sampled faster than 128 Hz are first resampled to
about 128 Hz (polyphase, with its anti-aliasing filter), as the published network was: its pools and its
separable kernel are sized for that rate, and the temporal convolution over 64 channels dominates the
cost, so at 200 Hz it saves 60 % of the time. Slower windows keep their rate, with a temporal kernel of
half a second. The recipe follows the usual within-subject use: Adam at 1e-3, mini-batches of at most
32, a fixed number of epochs with the learning rate cosine-annealed to 0, no early stopping and no
checkpoint picking, so it trains on every row it is given, like the other peers. It runs on the CPU in
one thread, seeded, so that two fits with one seed give the same weights; the process's torch RNG state
and thread count are restored when it returns.

Plain PyTorch (torch is a dependency already), so this peer needs no optional extra.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator

import numpy as np
import torch
from scipy.signal import resample_poly
from torch import nn

MIN_SAMPLES = 32  # the two average pools divide time by 4 * 8


@dataclass(frozen=True)
class EEGNetConfig:
    F1: int = 8              # temporal filters
    D: int = 2               # spatial filters per temporal filter
    F2: int = 16             # pointwise filters of the separable conv
    separable_kernel: int = 16  # 0.5 s at the 32 Hz left after the first pool of a 128 Hz input, as published
    # The paper's within-subject rate (it uses 0.25 cross-subject, where there is more data to fit):
    # the peer mostly meets one person's few dozen trials, where overfitting is the risk.
    dropout: float = 0.5
    epochs: int = 100
    resample_to: float = 128.0  # Hz; faster windows are resampled to about this rate
    batch_size: int = 32
    lr: float = 1e-3
    spatial_max_norm: float = 1.0
    dense_max_norm: float = 0.25


def temporal_kernel(sfreq: float) -> int:
    """Half a second of samples, rounded to an even count: the published 64 at 128 Hz, so the temporal
    filters can resolve rhythms down to 2 Hz at any sampling rate."""
    if not sfreq > 0:
        raise ValueError(f"EEGNet needs a positive sampling rate, got {sfreq}")
    return max(2, 2 * round(sfreq / 4))


class EEGNet(nn.Module):
    """EEGNet-F1,D for windows of `n_channels` x `n_samples`; `kernel`: the temporal filters' length."""

    def __init__(self, n_channels: int, n_samples: int, n_classes: int, kernel: int,
                 cfg: EEGNetConfig = EEGNetConfig()):
        super().__init__()
        if n_samples < MIN_SAMPLES:
            raise ValueError(f"EEGNet needs windows of at least {MIN_SAMPLES} samples at its input rate, "
                             f"got {n_samples}")
        self.cfg = cfg
        F1, F2, FD = cfg.F1, cfg.F2, cfg.F1 * cfg.D
        self.temporal = _same_in_time(1, F1, kernel)
        self.bn_temporal = _batch_norm(F1)
        self.spatial = nn.Conv2d(F1, FD, (n_channels, 1), groups=F1, bias=False)
        self.block1 = nn.Sequential(_batch_norm(FD), nn.ELU(), nn.AvgPool2d((1, 4)), nn.Dropout(cfg.dropout))
        self.separable = nn.Sequential(
            _same_in_time(FD, FD, cfg.separable_kernel, groups=FD),
            nn.Conv2d(FD, F2, 1, bias=False))
        self.block2 = nn.Sequential(_batch_norm(F2), nn.ELU(), nn.AvgPool2d((1, 8)), nn.Dropout(cfg.dropout))
        with torch.no_grad():  # the flattened width for any C and T, from one dummy window
            n_features = self._features(torch.zeros(1, n_channels, n_samples)).shape[1]
        self.dense = nn.Linear(n_features, n_classes)
        self.apply_max_norm()

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn_temporal(self.temporal(x.unsqueeze(1)))  # (B, F1, C, T)
        x = self.block1(self.spatial(x))                     # (B, F1*D, 1, T // 4)
        x = self.block2(self.separable(x))                   # (B, F2, 1, T // 32)
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, n_classes) of windows x (B, C, T)."""
        return self.dense(self._features(x))

    @torch.no_grad()
    def apply_max_norm(self) -> None:
        """Scale each spatial filter to L2 norm <= 1 and each class's dense weights to <= 0.25."""
        for weight, limit in ((self.spatial.weight, self.cfg.spatial_max_norm),
                              (self.dense.weight, self.cfg.dense_max_norm)):
            weight.copy_(torch.renorm(weight, p=2, dim=0, maxnorm=limit))


def _same_in_time(n_in: int, n_out: int, kernel: int, groups: int = 1) -> nn.Sequential:
    """A bias-free convolution along time that keeps the length ('same'), padded explicitly: torch's own
    'same' copies the input for an even kernel and warns about it."""
    left = (kernel - 1) // 2
    return nn.Sequential(nn.ZeroPad2d((left, kernel - 1 - left, 0, 0)),
                         nn.Conv2d(n_in, n_out, (1, kernel), groups=groups, bias=False))


def _batch_norm(n: int) -> nn.BatchNorm2d:
    # The original's epsilon (1e-3), but PyTorch's momentum 0.1 instead of its 0.01 (Keras 0.99): a few dozen
    # trials make one or two steps an epoch, too few for the slow running statistics to forget their
    # initial values, and the fitted network then predicted a single class at test time.
    return nn.BatchNorm2d(n, momentum=0.1, eps=1e-3)


def resampling(sfreq: float, target: float) -> tuple[int, int]:
    """(up, down) for scipy's resample_poly taking `sfreq` to about `target` Hz; (1, 1) at or below it."""
    if sfreq <= target:
        return 1, 1
    ratio = Fraction(target / sfreq).limit_denominator(1000)
    return ratio.numerator, ratio.denominator


class EEGNetClassifier:
    """fit(X (N, C, T), y) / predict(X) around EEGNet, for `peers.run_peers`; X sampled at `sfreq` Hz."""

    def __init__(self, sfreq: float, seed: int = 0, config: EEGNetConfig = EEGNetConfig()):
        self.up, self.down = resampling(sfreq, config.resample_to)
        self.kernel = temporal_kernel(sfreq * self.up / self.down)
        self.seed = int(seed)
        self.config = config

    def _inputs(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if (self.up, self.down) != (1, 1):
            X = resample_poly(X, self.up, self.down, axis=-1).astype(np.float32)
        return X

    def fit(self, X: np.ndarray, y: np.ndarray) -> "EEGNetClassifier":
        X = self._inputs(X)
        self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
        # One scale for every window: the network then sees the same numbers whether the windows are in
        # volts or z-scores (batch norm's epsilon would swamp signals of 1e-5).
        self.scale_ = float(X.std()) or 1.0
        cfg = self.config
        with _one_thread_seeded(self.seed):
            self.model_ = EEGNet(X.shape[1], X.shape[2], len(self.classes_), self.kernel, cfg)
            optimiser = torch.optim.Adam(self.model_.parameters(), lr=cfg.lr)
            shuffle = np.random.default_rng(self.seed)
            n_batches = -(-len(X) // cfg.batch_size)
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=cfg.epochs * n_batches)
            inputs = torch.from_numpy(X / self.scale_)
            targets = torch.from_numpy(codes.astype(np.int64))
            self.model_.train()
            for _ in range(cfg.epochs):
                # equal-sized batches: no last batch of one or two windows for batch norm to fit
                for batch in np.array_split(shuffle.permutation(len(X)), n_batches):
                    loss = nn.functional.cross_entropy(self.model_(inputs[batch]), targets[batch])
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
                    schedule.step()
                    self.model_.apply_max_norm()
        self.model_.eval()
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        inputs = torch.from_numpy(self._inputs(X) / self.scale_)
        with _one_thread_seeded(self.seed), torch.no_grad():
            logits = torch.cat([self.model_(part) for part in inputs.split(256)])
        return self.classes_[logits.argmax(1).numpy()]


@contextmanager
def _one_thread_seeded(seed: int) -> Iterator[None]:
    """torch on one thread with its RNG seeded, both restored on exit: reproducible fits that leave the
    calling process as they found it."""
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)
