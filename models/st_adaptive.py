"""ST-Adaptive front end (docs/design.md#tokenizer): per-dataset spatial conv, dual-path tokenizer, class token.

Variable length. A batch may be right-padded, with `lengths` (B,) giving each row's valid samples.
Every row must then produce exactly the tokens it would produce alone, at its own length:

* before every convolution the padded positions are set to 0, which is what the conv's own zero padding
  shows a lone sample at its right edge (conv biases and GELU make pads non-zero after each layer);
* before every max-pool they are set to -inf, which is what MaxPool1d's implicit padding shows;
* each layer maps a valid length n to floor((n + 2p - k) / s) + 1, so every row knows its token counts;
* the two branches are packed per row as [cls, z_s[:Ns_i], z_w[:Nw_i], pads...]: a plain concat would
  leave the small branch's padding in the middle of the sequence.

Fused front end. The spatial conv (kernel 1, no activation or norm after it) feeds straight into each
branch's first conv, so the pair is one linear map: `ops.spatial_conv1d` computes it as a single C -> D
convolution, C/D of the multiply-adds of the D -> D conv it replaces. Same parameters, same outputs up to
rounding; `spatial_conv1d_ref` (the two convs in turn) is the unfused twin. Any tokenizer norm sits after
the first conv, so it is unaffected. A wider spatial kernel does not compose exactly with the masking of
the spatial output, so it always takes the unfused path.
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import EEGMambaConfig
from .ops.max_pool import max_pool1d
from .ops.spatial_conv import spatial_conv1d

# Dual-path tokenizer as read from the paper's figure (docs/design.md#tokenizer):
# ("conv", kernel, stride) | ("pool", kernel, stride) | ("dropout",)
SMALL_BRANCH = (("conv", 15, 2), ("pool", 7, 2), ("dropout",), ("conv", 7, 1), ("conv", 7, 1), ("pool", 3, 2))
WIDE_BRANCH = (("conv", 49, 8), ("pool", 3, 2), ("dropout",), ("conv", 7, 1), ("conv", 7, 1), ("pool", 3, 2))

GROUP_NORM_GROUPS = 8  # for tokenizer_norm="group"; D=128 gives 16 channels per group


def length_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """(B,) valid lengths -> (B, size) bool, True at valid positions."""
    return torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]


def out_length(n, kernel: int, stride: int, padding: int):
    """Output length of a conv/pool layer; works on ints and on LongTensors alike."""
    return (n + 2 * padding - kernel) // stride + 1


def branch_tokens(length: int, branch=SMALL_BRANCH, padding: str = "same") -> int:
    """Tokens one branch makes from `length` samples ("same" padding gives ceil(L/8) and ceil(L/32))."""
    for layer in branch:
        if layer[0] != "dropout":
            length = out_length(length, layer[1], layer[2], layer[1] // 2 if padding == "same" else 0)
    return length


def token_count(length: int, padding: str = "same") -> int:
    """Sequence length after the front end: N_s + N_w + 1 (the class token)."""
    return branch_tokens(length, SMALL_BRANCH, padding) + branch_tokens(length, WIDE_BRANCH, padding) + 1


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d whose statistics (in training) use only the valid positions of a padded batch."""

    def forward(self, x, mask=None):  # x (B, D, L), mask (B, L)
        if mask is None:
            return super().forward(x)
        tokens = x.transpose(1, 2)  # (B, L, D)
        out = tokens.new_zeros(tokens.shape)
        out[mask] = super().forward(tokens[mask])  # (n_valid, D): BatchNorm1d accepts (N, C)
        return out.transpose(1, 2)  # (B, D, L)


class MaskedGroupNorm(nn.GroupNorm):
    """GroupNorm over (channels of a group, valid positions): a row's statistics ignore its padding."""

    def forward(self, x, mask=None):  # x (B, D, L), mask (B, L)
        if mask is None:
            return super().forward(x)
        b, d, n = x.shape
        g = x.reshape(b, self.num_groups, d // self.num_groups, n)  # (B, G, D/G, L)
        m = mask[:, None, None, :].to(x.dtype)  # (B, 1, 1, L)
        count = m.sum(dim=(2, 3), keepdim=True) * (d // self.num_groups)  # (B, 1, 1, 1)
        mean = (g * m).sum(dim=(2, 3), keepdim=True) / count
        var = ((g - mean) ** 2 * m).sum(dim=(2, 3), keepdim=True) / count
        g = (g - mean) / torch.sqrt(var + self.eps)
        return g.reshape(b, d, n) * self.weight[None, :, None] + self.bias[None, :, None]


class ConvGELU(nn.Module):
    """Conv1d -> optional norm -> GELU: one convolution row of the tokenizer table."""

    def __init__(self, d_model: int, kernel: int, stride: int, padding: int, norm: str):
        super().__init__()
        self.conv = nn.Conv1d(d_model, d_model, kernel, stride=stride, padding=padding)
        if norm == "batch":
            self.norm = MaskedBatchNorm1d(d_model)
        elif norm == "group":
            self.norm = MaskedGroupNorm(GROUP_NORM_GROUPS, d_model)
        elif norm == "none":
            self.norm = None
        else:
            raise ValueError(f"tokenizer_norm must be none, batch or group, got {norm!r}")

    def forward(self, x, mask=None, conv: Callable | None = None):  # (B, D, L) -> (B, D, L')
        x = self.conv(x) if conv is None else conv(x)
        if self.norm is not None:
            x = self.norm(x, mask)
        return F.gelu(x)


class TokenizerBranch(nn.Module):
    """One path of the dual-path tokenizer: (B, D, L) samples -> (B, N, D) tokens, plus valid counts."""

    def __init__(self, d_model: int, layers, padding: str, norm: str, dropout: float):
        super().__init__()
        if padding not in ("same", "valid"):
            raise ValueError(f"tokenizer_padding must be same or valid, got {padding!r}")
        self.geometry = []  # (kernel, stride, pad) per layer, None for dropout
        modules = []
        for layer in layers:
            if layer[0] == "dropout":
                modules.append(nn.Dropout(dropout))
                self.geometry.append(None)
                continue
            kind, kernel, stride = layer
            pad = kernel // 2 if padding == "same" else 0
            if kind == "conv":
                modules.append(ConvGELU(d_model, kernel, stride, pad, norm))
            else:
                modules.append(nn.MaxPool1d(kernel, stride=stride, padding=pad))
            self.geometry.append((kernel, stride, pad))
        self.layers = nn.ModuleList(modules)

    def forward(self, x, lengths=None, first_conv: Callable | None = None):
        """x (B, D, L), lengths (B,) or None. `first_conv` replaces the first layer's convolution (the fused
        front end hands in the raw (B, C, L) input and computes spatial conv + first conv in one go)."""
        for i, (layer, geom) in enumerate(zip(self.layers, self.geometry)):
            conv = {"conv": first_conv} if i == 0 and first_conv is not None else {}
            pool = isinstance(layer, nn.MaxPool1d)
            if lengths is not None:
                x = x.masked_fill(~length_mask(lengths, x.shape[-1])[:, None, :],
                                  float("-inf") if pool else 0.0)  # (B, D, L)
                if geom is not None:
                    lengths = out_length(lengths, *geom)
            if pool:  # the module's own geometry, through the op with the compiled training path
                x = max_pool1d(x, *geom)
            elif isinstance(layer, ConvGELU) and lengths is not None:  # its norm sees the valid outputs only
                x = layer(x, length_mask(lengths, out_length(x.shape[-1], *geom)), **conv)
            else:
                x = layer(x, **conv)
        if lengths is not None:  # leave zeros, not -inf or garbage, beyond each row's tokens
            x = x.masked_fill(~length_mask(lengths, x.shape[-1])[:, None, :], 0.0)
        return x.transpose(1, 2), lengths  # (B, N, D), (B,) or None


def pack_tokens(cls, z_s, n_s, z_w, n_w):
    """Per row: [cls, z_s[:n_s], z_w[:n_w], zeros...]. Returns (B, 1+Ns+Nw, D) and the valid counts (B,)."""
    b, len_s, d = z_s.shape
    tokens = torch.cat([cls.expand(b, 1, d), z_s, z_w], dim=1)  # (B, T, D), plain concat
    t = torch.arange(tokens.shape[1], device=tokens.device)[None, :]  # (1, T)
    n = 1 + n_s + n_w  # (B,)
    # Position t of the packed row reads the concat at: t (cls and small tokens), or t shifted past the
    # small branch's padding (wide tokens), or t itself (pads, zeroed below).
    src = torch.where(t <= n_s[:, None], t, t - n_s[:, None] + len_s)  # (B, T)
    src = torch.where(t < n[:, None], src, t)
    packed = tokens.gather(1, src[..., None].expand(-1, -1, d))  # (B, T, D)
    packed = packed.masked_fill(~(t < n[:, None])[..., None], 0.0)
    return packed, n


def fused_front_end_enabled() -> bool:
    """The switch for new modules: EEGMAMBA_FUSED_FRONT_END=0 builds them on the unfused path."""
    return os.environ.get("EEGMAMBA_FUSED_FRONT_END", "1").strip() != "0"


class STAdaptive(nn.Module):
    """Spatial-adaptive conv (one per dataset) + dual-path tokenizer + class token. See docs/design.md#tokenizer.

    `fused` (decided once, at construction; an attribute, so a test or benchmark may flip it) computes the
    spatial conv and each branch's first conv as one convolution; only possible with spatial_kernel 1.
    """

    def __init__(self, config: EEGMambaConfig, channels: Sequence[int], fused: bool | None = None):
        super().__init__()
        d, k = config.d_model, config.spatial_kernel
        if k % 2 != 1:
            raise ValueError(f"spatial_kernel must be odd (length-preserving), got {k}")
        self.fused = (fused_front_end_enabled() if fused is None else fused) and k == 1
        self.padding = config.tokenizer_padding
        self.spatial = nn.ModuleList(nn.Conv1d(c, d, k, padding=k // 2) for c in channels)
        branch = dict(padding=config.tokenizer_padding, norm=config.tokenizer_norm,
                      dropout=config.tokenizer_dropout)
        self.small = TokenizerBranch(d, SMALL_BRANCH, **branch)
        self.wide = TokenizerBranch(d, WIDE_BRANCH, **branch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        nn.init.trunc_normal_(self.cls_token, std=0.02, a=-0.04, b=0.04)  # cut at 2 std
        self.cls_token._no_weight_decay = True  # a learned embedding, as ViT's cls token

    def forward(self, x, index: int, lengths=None):
        """x (B, C_i, L) -> tokens (B, N+1, D) and valid token counts (B,) (None without `lengths`)."""
        length = x.shape[-1]
        if min(branch_tokens(length, SMALL_BRANCH, self.padding),
               branch_tokens(length, WIDE_BRANCH, self.padding)) < 1:
            raise ValueError(f"{length} samples are too short for the {self.padding!r} tokenizer")
        if lengths is not None:
            x = x.masked_fill(~length_mask(lengths, length)[:, None, :], 0.0)
        if self.fused:
            z_s, n_s, z_w, n_w = self._fused_branches(x, index, lengths)
        else:
            y = self.spatial[index](x)  # (B, D, L)
            z_s, n_s = self.small(y, lengths)  # (B, Ns, D)
            z_w, n_w = self.wide(y, lengths)  # (B, Nw, D)
        if lengths is None:
            cls = self.cls_token.expand(x.shape[0], 1, -1)
            return torch.cat([cls, z_s, z_w], dim=1), None  # (B, N+1, D)
        return pack_tokens(self.cls_token, z_s, n_s, z_w, n_w)

    def _fused_branches(self, x, index: int, lengths):
        """Both branches, each starting from x (B, C, L) with one fused spatial + first convolution."""
        if lengths is None:
            valid = x.new_ones(x.shape[0], 1, x.shape[-1])  # (B, 1, L)
        else:
            valid = length_mask(lengths, x.shape[-1])[:, None, :].to(x.dtype)  # (B, 1, L)
        spatial = self.spatial[index]

        def first_conv(branch: TokenizerBranch):
            conv = branch.layers[0].conv
            return lambda v: spatial_conv1d(v, valid, spatial.weight, spatial.bias, conv.weight, conv.bias,
                                            conv.stride[0], conv.padding[0])

        z_s, n_s = self.small(x, lengths, first_conv=first_conv(self.small))  # (B, Ns, D)
        z_w, n_w = self.wide(x, lengths, first_conv=first_conv(self.wide))  # (B, Nw, D)
        return z_s, n_s, z_w, n_w


def min_length(padding: str = "same") -> int:
    """Shortest input that gives at least one token per branch."""
    return next(n for n in range(1, 1 << 16) if min(branch_tokens(n, SMALL_BRANCH, padding),
                                                   branch_tokens(n, WIDE_BRANCH, padding)) >= 1)


__all__ = ["STAdaptive", "fused_front_end_enabled", "TokenizerBranch", "token_count", "branch_tokens", "length_mask", "pack_tokens",
           "min_length", "SMALL_BRANCH", "WIDE_BRANCH"]
