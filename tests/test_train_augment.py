"""The training augmentations: shapes, the identity at strength 0, the statistics they promise, seeding."""
import math

import numpy as np
import pytest
import torch

from eegmamba_cli.training.augment import (Augmentations, amplitude_scale, centre_crop, channel_dropout,
                                           gaussian_noise, random_crop, time_shift)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def batch(b=64, c=3, length=100, seed=1):
    return torch.randn(b, c, length, generator=gen(seed))


@pytest.mark.parametrize("fn", [time_shift, amplitude_scale, channel_dropout, gaussian_noise])
def test_zero_strength_is_the_identity_and_draws_nothing(fn):
    x, g = batch(), gen(3)
    before = g.get_state()
    assert fn(x, 0, g) is x
    assert torch.equal(g.get_state(), before)


@pytest.mark.parametrize("fn,strength", [(time_shift, 7), (amplitude_scale, 0.2), (channel_dropout, 0.3),
                                         (gaussian_noise, 0.5)])
def test_shape_dtype_kept_and_same_seed_same_result(fn, strength):
    x = batch()
    a, b, c = fn(x, strength, gen(5)), fn(x, strength, gen(5)), fn(x, strength, gen(6))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, x)


def test_time_shift_moves_each_window_by_at_most_max_and_fills_zeros():
    length, max_shift = 50, 6
    ramp = torch.arange(1, length + 1, dtype=torch.float32)  # no zeros, all distinct
    x = ramp.expand(400, 2, length).clone()
    out = time_shift(x, max_shift, gen(0))
    shifts = []
    for row in out:
        assert torch.equal(row[0], row[1])  # every channel moves together
        nz = row[0] != 0
        first = int(torch.argmax(nz.int()))
        s = first if first > 0 else -(int(row[0][0].item()) - 1)  # right shift: zeros first; left: starts later
        expected = torch.zeros(length)
        if s >= 0:
            expected[s:] = ramp[:length - s]
        else:
            expected[:length + s] = ramp[-s:]
        assert torch.equal(row[0], expected), s
        shifts.append(s)
    assert set(shifts) == set(range(-max_shift, max_shift + 1))  # every shift in range, both directions


def test_amplitude_scale_one_gain_per_window_uniform_in_range():
    x = torch.ones(20000, 2, 8)
    out = amplitude_scale(x, 0.2, gen(0))
    gains = out[:, 0, 0]
    assert torch.equal(out, gains[:, None, None].expand_as(out))  # one gain per window
    assert 0.8 <= float(gains.min()) and float(gains.max()) <= 1.2
    # U(0.8, 1.2): mean 1, std 0.4/sqrt(12) = 0.1155; 20000 draws: standard error ~0.0008
    assert abs(float(gains.mean()) - 1) < 0.005
    assert abs(float(gains.std()) - 0.4 / math.sqrt(12)) < 0.005


def test_channel_dropout_zeros_whole_channels_at_rate_p():
    x = torch.ones(5000, 8, 10)
    out = channel_dropout(x, 0.1, gen(0))
    per_channel = out.sum(-1)  # (B, C): 10 (kept) or 0 (dropped), nothing in between
    assert set(per_channel.unique().tolist()) == {0.0, 10.0}
    rate = float((per_channel == 0).float().mean())  # 40000 channels: standard error 0.0015
    assert abs(rate - 0.1) < 0.01


def test_gaussian_noise_adds_zero_mean_noise_of_the_given_std():
    x = batch(b=200, c=4, length=250)
    noise = gaussian_noise(x, 0.5, gen(0)) - x
    assert abs(float(noise.mean())) < 0.01 and abs(float(noise.std()) - 0.5) < 0.01


def test_augmentations_compose_in_order_and_seconds_become_samples():
    x = batch(b=8, c=2, length=200)
    aug = Augmentations(time_shift_s=0.05, amplitude_spread=0.2, channel_drop_p=0.25, noise_std=0.1)
    g1, g2 = gen(9), gen(9)
    expected = gaussian_noise(channel_dropout(amplitude_scale(time_shift(x, 10, g2), 0.2, g2), 0.25, g2), 0.1, g2)
    assert torch.equal(aug(x, 200.0, g1), expected)  # 0.05 s at 200 Hz = 10 samples
    assert aug.enabled and not Augmentations().enabled
    assert Augmentations()(x, 200.0, gen(0)) is x


def test_random_crop_keeps_contiguous_signal_at_every_offset():
    length, crop = 50, 6
    ramp = torch.arange(length, dtype=torch.float32)
    x = ramp.expand(400, 2, length).clone()
    out, lengths = random_crop(x, None, crop, gen(0))
    assert out.shape == (400, 2, length - crop) and lengths is None
    starts = out[:, 0, 0].long()
    assert torch.equal(out, (starts[:, None, None] + torch.arange(length - crop)).float().expand(400, 2, -1))
    assert set(starts.tolist()) == set(range(crop + 1))  # every offset, never past the end
    again, _ = random_crop(x, None, crop, gen(0))
    assert torch.equal(out, again)


def test_random_crop_of_a_padded_batch_stays_inside_each_window():
    x = torch.arange(40, dtype=torch.float32).expand(300, 1, 40).clone()
    lengths = np.array([40, 30, 8] * 100)  # right-padded; the last is shorter than twice the crop
    out, kept = random_crop(x, lengths, 10, gen(1))
    assert out.shape == (300, 1, 30)
    assert kept.tolist() == [30, 20, 4] * 100  # a short window loses at most half
    for row, valid, k in zip(out[:, 0], lengths, kept):
        first = int(row[0])
        assert first + k <= valid  # the valid part is signal of the window, not its padding
        assert torch.equal(row[:k], torch.arange(first, first + k, dtype=torch.float32))


def test_random_crop_zero_or_too_wide_is_the_identity_and_draws_nothing():
    x, g = batch(length=20), gen(3)
    before = g.get_state()
    for crop in (0, 10, 25):
        out, lengths = random_crop(x, np.full(len(x), 20), crop, g)
        assert out is x and lengths.tolist() == [20] * len(x)
    assert torch.equal(g.get_state(), before)


def test_centre_crop_is_the_middle_of_what_random_crop_would_keep():
    x = torch.arange(40, dtype=torch.float32).expand(3, 1, 40).clone()
    lengths = np.array([40, 31, 8])  # right-padded; the last is shorter than twice the crop
    out, kept = centre_crop(x, lengths, 10)
    _, random_kept = random_crop(x, lengths, 10, gen(0))
    assert out.shape == (3, 1, 30) and kept.tolist() == random_kept.tolist() == [30, 21, 4]
    assert [int(row[0]) for row in out[:, 0]] == [5, 5, 2]  # (valid - kept) // 2: the odd sample at the end
    assert torch.equal(out[1, 0, :21], torch.arange(5, 26, dtype=torch.float32))
    whole, none = centre_crop(x, None, 7)
    assert none is None and torch.equal(whole, x[..., 3:36])
    for crop in (0, 20, 25):  # nothing, or too wide: the batch as it is, as random_crop leaves it
        same, same_lengths = centre_crop(x, lengths, crop)
        assert same is x and same_lengths is lengths


def test_augmentations_crop_in_seconds():
    x = batch(length=200)
    out, _ = Augmentations(crop_s=0.5).crop(x, None, 100.0, gen(0))
    assert out.shape[-1] == 150 and Augmentations(crop_s=0.5).crop_samples(100.0) == 50
    assert Augmentations(crop_s=0.5).enabled and not Augmentations().enabled
