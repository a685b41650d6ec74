"""Spatial convolution (kernel 1) followed by a strided convolution: one linear map, computed cheaply.

The front end mixes C input channels into D features at every sample, zeroes the samples beyond each
row's valid length, and feeds the result to a D -> D convolution (kernel K, stride s, zero padding p):

    y[:, t] = (W_s x[:, t] + b_s) * valid[t]                    (D, L)    valid: 1 inside the row, 0 after
    z[:, j] = b + sum_k W[:, :, k] y[:, s j + k - p]             (D, L')   y = 0 outside [0, L)

Both maps are linear, so z is one C -> D convolution with the composed weight W[:, :, k] W_s, plus the
spatial bias pushed through the same kernel. That bias only exists where y is a valid sample (not in the
conv's zero padding, not on a padded row's tail), so it enters as one more input channel: the `valid`
indicator itself, with weight W[:, :, k] b_s. The D x D x K products per output drop to (C + 1) x D x K.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _check(x, valid, spatial_weight, conv_weight) -> None:
    if spatial_weight.dim() != 3 or spatial_weight.shape[-1] != 1:
        raise ValueError(f"the spatial weight must be (D, C, 1), got {tuple(spatial_weight.shape)}")
    if x.dim() != 3 or x.shape[1] != spatial_weight.shape[1]:
        raise ValueError(f"x must be (B, {spatial_weight.shape[1]}, L), got {tuple(x.shape)}")
    if tuple(valid.shape) != (x.shape[0], 1, x.shape[2]):
        raise ValueError(f"valid must be (B, 1, L) = {(x.shape[0], 1, x.shape[2])}, got {tuple(valid.shape)}")
    if conv_weight.dim() != 3 or conv_weight.shape[1] != spatial_weight.shape[0]:
        raise ValueError(f"the conv weight must be (D_out, {spatial_weight.shape[0]}, K), "
                         f"got {tuple(conv_weight.shape)}")


def spatial_conv1d_ref(x, valid, spatial_weight, spatial_bias, conv_weight, conv_bias, stride: int,
                       padding: int):
    """The two convolutions as written: x (B, C, L), valid (B, 1, L) 1 or 0 per sample -> (B, D_out, L').

    Samples where valid is 0 count as zeros (the fused form multiplies x by valid, the cheap side)."""
    _check(x, valid, spatial_weight, conv_weight)
    y = F.conv1d(x, spatial_weight, spatial_bias) * valid  # (B, D, L)
    return F.conv1d(y, conv_weight, conv_bias, stride=stride, padding=padding)  # (B, D_out, L')


def spatial_conv1d(x, valid, spatial_weight, spatial_bias, conv_weight, conv_bias, stride: int,
                   padding: int):
    """Same contract as `spatial_conv1d_ref`, as one (C + 1) -> D_out convolution."""
    _check(x, valid, spatial_weight, conv_weight)
    weight = torch.einsum("odk,dc->ock", conv_weight, spatial_weight[..., 0])  # (D_out, C, K)
    if spatial_bias is not None:
        bias_weight = torch.einsum("odk,d->ok", conv_weight, spatial_bias)[:, None]  # (D_out, 1, K)
        weight = torch.cat([weight, bias_weight], dim=1)  # (D_out, C+1, K)
        x = torch.cat([x * valid, valid.to(x.dtype)], dim=1)  # (B, C+1, L)
    else:
        x = x * valid
    return F.conv1d(x, weight, conv_bias, stride=stride, padding=padding)  # (B, D_out, L')


__all__ = ["spatial_conv1d", "spatial_conv1d_ref"]
