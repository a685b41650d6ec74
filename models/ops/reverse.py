"""Reversal in time within each row's valid length: the backward direction of a BiMamba.

A right-padded row of n valid samples is reversed as [x_{n-1}, ..., x_0, pads...]: position t reads
n-1-t for t < n and keeps its own sample after, so the pads stay at the end and a causal op run on the
reversed row never lets them reach a valid sample. The permutation is its own inverse.

The ops take `reverse=True, lengths=...` to compute op(R(x)) put back in time order, R(op(R(x))): the
`_ref` paths and the torch fallbacks do exactly that with `reverse_within_length`; the compiled CPU
kernels read and write their rows in the permuted order instead (`kernel_lengths`), so the model makes
no flipped copy of any (B, E, L) tensor.
"""
from __future__ import annotations

import torch


def reverse_within_length(x, lengths=None):
    """Reverse the last axis of x (B, ..., L) per row within lengths (B,); a plain flip without lengths."""
    if lengths is None:
        return x.flip(-1)
    t = torch.arange(x.shape[-1], device=x.device)  # (L,)
    n = lengths.to(x.device).reshape(-1, *([1] * (x.dim() - 1)))  # (B, 1, ..., 1)
    index = torch.where(t < n, n - 1 - t, t)  # (B, 1, ..., L), an involution
    return x.gather(-1, index.expand_as(x))


def kernel_lengths(batch: int, length: int, lengths=None) -> torch.Tensor:
    """The kernels' rev_len: (B,) int64, each row's valid length, all of L without `lengths`."""
    if lengths is None:
        return torch.full((batch,), length, dtype=torch.int64)
    if tuple(lengths.shape) != (batch,):
        raise ValueError(f"lengths must have shape ({batch},), got {tuple(lengths.shape)}")
    lengths = lengths.to("cpu", torch.int64).contiguous()
    if batch and (int(lengths.min()) < 0 or int(lengths.max()) > length):
        raise ValueError(f"lengths must lie in [0, {length}]")
    return lengths


def check_reverse(reverse: bool, lengths) -> None:
    if lengths is not None and not reverse:
        raise ValueError("lengths only says where each row is reversed; pass it with reverse=True")


__all__ = ["reverse_within_length", "kernel_lengths", "check_reverse"]
