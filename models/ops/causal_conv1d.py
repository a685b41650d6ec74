"""Causal depthwise 1-D convolution, as causal_conv1d's `causal_conv1d_fn`.

x: (B, D, L); weight: (D, W); bias: (D,) or None; activation: None | "silu" | "swish".
"""
from __future__ import annotations

import torch.nn.functional as F


def causal_conv1d_ref(x, weight, bias=None, activation=None):
    if activation not in (None, "silu", "swish"):
        raise ValueError(f"activation must be None, 'silu' or 'swish', got {activation!r}")
    dtype_in = x.dtype
    width = weight.shape[1]
    length = x.shape[-1]
    out = F.conv1d(x, weight.unsqueeze(1).to(x.dtype), None if bias is None else bias.to(x.dtype),
                   padding=width - 1, groups=x.shape[1])[..., :length]  # (B, D, L)
    if activation is not None:
        out = F.silu(out)
    return out.to(dtype_in)
