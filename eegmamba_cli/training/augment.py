"""EEG augmentations for training batches: small pure functions of (batch, strength, generator).

Each maps x (B, C, L) to a new tensor of the same shape and is the identity at strength 0 (without drawing
a random number); `random_crop`, applied first, shortens the batch instead. A model trained on crops is
evaluated on crops of the same length: `centre_crop` is its deterministic twin, which validation, `evaluate`
and `predict` apply (the dataset record's `crop_samples`). The model takes any length, but one trained on
3.5-s crops and scored on whole 4-s windows lost 0.2 of accuracy on EEGMMIDB (docs/training.md). The
generator is the caller's: the trainer seeds one per (fold, epoch, rank), so a resumed run draws the same
augmentations as an uninterrupted one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def random_crop(x: torch.Tensor, lengths: np.ndarray | None, crop: int,
                generator: torch.Generator) -> tuple[torch.Tensor, np.ndarray | None]:
    """Cut `crop` samples off each window, at a random split between its start and its end.

    x (B, C, L) with valid samples `lengths` (B,) (None: all L) -> (B, C, L - crop) and lengths - crop.
    Unlike a zero-filled shift, every sample the model sees is signal, and the event's timing varies by up
    to `crop` samples. No window loses more than half its samples (a padded batch's short members), and a
    batch narrower than 2 x crop is left whole."""
    def uniform(spare: np.ndarray) -> np.ndarray:  # drawn only when a crop happens
        u = torch.rand(len(spare), generator=generator, device=generator.device).numpy()
        return np.floor(u * (spare + 1)).astype(np.int64)
    return _crop(x, lengths, crop, uniform)


def centre_crop(x: torch.Tensor, lengths: np.ndarray | None, crop: int) -> tuple[torch.Tensor, np.ndarray | None]:
    """`random_crop`'s evaluation twin: the same lengths, each window's middle (spare samples split evenly,
    the odd one at the end)."""
    return _crop(x, lengths, crop, lambda spare: spare // 2)


def _crop(x: torch.Tensor, lengths: np.ndarray | None, crop: int, starts) -> tuple[torch.Tensor, np.ndarray | None]:
    """Crops of `crop` samples fewer, each starting at `starts(spare)` with spare (B,) = the samples a
    window can lose (its valid length minus what it keeps)."""
    b, c, length = x.shape
    if crop <= 0 or 2 * crop >= length:
        return x, lengths
    valid = np.full(b, length, dtype=np.int64) if lengths is None else np.asarray(lengths, dtype=np.int64)
    kept = valid - np.minimum(crop, valid // 2)  # (B,) <= length - crop
    start = starts(valid - kept)  # (B,) in [0, valid - kept]
    idx = torch.from_numpy(start)[:, None] + torch.arange(length - crop)[None, :]  # (B, L - crop)
    out = x.gather(2, idx.to(x.device)[:, None, :].expand(b, c, length - crop))
    return out, (None if lengths is None else kept)


def time_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each window by its own whole number of samples in [-max_shift, max_shift]; the samples shifted
    in are 0 (the mean of standardised EEG). The window keeps its length, so evaluation needs no change."""
    if max_shift <= 0:
        return x
    b, c, length = x.shape
    shift = torch.randint(-max_shift, max_shift + 1, (b,), generator=generator, device=generator.device)
    src = torch.arange(length, device=x.device)[None, :] - shift.to(x.device)[:, None]  # (B, L)
    inside = (src >= 0) & (src < length)  # (B, L)
    out = x.gather(2, src.clamp(0, length - 1)[:, None, :].expand(b, c, length))
    return out * inside[:, None, :].to(x.dtype)


def amplitude_scale(x: torch.Tensor, spread: float, generator: torch.Generator) -> torch.Tensor:
    """Multiply each window by one gain drawn from U(1 - spread, 1 + spread)."""
    if spread <= 0:
        return x
    u = torch.rand(x.shape[0], 1, 1, generator=generator, device=generator.device).to(x.device, x.dtype)
    return x * (1 + spread * (2 * u - 1))


def channel_dropout(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Zero each channel of each window with probability p (no rescaling: a lost electrode reads 0)."""
    if p <= 0:
        return x
    keep = torch.rand(x.shape[0], x.shape[1], 1, generator=generator, device=generator.device) >= p
    return x * keep.to(x.device, x.dtype)


def gaussian_noise(x: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """Add white noise of standard deviation `std` (in the units of the standardised input)."""
    if std <= 0:
        return x
    noise = torch.randn(x.shape, generator=generator, device=generator.device, dtype=torch.float32)
    return x + std * noise.to(x.device, x.dtype)


@dataclass(frozen=True)
class Augmentations:
    """The strengths of each augmentation; 0 turns one off. Applied in the order of the fields."""

    crop_s: float = 0.0  # train on random crops this many seconds shorter than the window
    time_shift_s: float = 0.0  # the largest shift, in seconds, either way
    amplitude_spread: float = 0.0  # gains in U(1 - spread, 1 + spread)
    channel_drop_p: float = 0.0
    noise_std: float = 0.0

    @property
    def enabled(self) -> bool:
        return any(v > 0 for v in (self.crop_s, self.time_shift_s, self.amplitude_spread, self.channel_drop_p,
                                   self.noise_std))

    def crop(self, x: torch.Tensor, lengths: np.ndarray | None, sfreq: float,
             generator: torch.Generator) -> tuple[torch.Tensor, np.ndarray | None]:
        """x (B, C, L) at `sfreq` Hz -> random crops (B, C, L - crop) and their valid lengths (random_crop)."""
        return random_crop(x, lengths, self.crop_samples(sfreq), generator)

    def crop_samples(self, sfreq: float) -> int:
        """The samples each training window loses at `sfreq` Hz, and evaluation's centre crop."""
        return int(round(self.crop_s * sfreq))

    def __call__(self, x: torch.Tensor, sfreq: float, generator: torch.Generator) -> torch.Tensor:
        """x (B, C, L) sampled at `sfreq` Hz -> an augmented batch of the same shape (after `crop`)."""
        x = time_shift(x, int(round(self.time_shift_s * sfreq)), generator)
        x = amplitude_scale(x, self.amplitude_spread, generator)
        x = channel_dropout(x, self.channel_drop_p, generator)
        return gaussian_noise(x, self.noise_std, generator)
