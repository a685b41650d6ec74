"""Transformer baseline for the benchmark: EEGMamba's front end with attention in place of BiMamba.

Same ST-Adaptive front end and class token, same width D and depth, then pre-LN encoder blocks
(LN -> 8-head self-attention -> residual; LN -> MLP 4D with GELU -> residual), final LN, token 0, head.

Attention runs through `torch.nn.functional.scaled_dot_product_attention`, and which kernel that picks
matters for any memory comparison:

* CPU (torch 2.x): `_scaled_dot_product_flash_attention_for_cpu`, a blocked flash kernel, with or without
  a key-padding mask. It never materialises the L x L matrix, so attention memory grows linearly.
* CUDA: FlashAttention for fp16/bf16, the memory-efficient kernel for fp32 (also linear), cuDNN on some
  GPUs. The math kernel only when no fused kernel applies.
* `attention="math"` forces `SDPBackend.MATH`, which materialises the (B, heads, L, L) scores as the
  paper's Transformer baselines (AttnSleep, EEG Conformer) do. The benchmark uses it by default and
  records which kernel really ran (see `eegmamba_cli.bench.model`).
"""
from __future__ import annotations

import contextlib
from typing import Sequence

import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from .config import DatasetSpec, EEGMambaConfig
from .eegmamba import DatasetRouter
from .st_adaptive import STAdaptive, length_mask

ATTENTION_MODES = ("auto", "math")


class SelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by {n_heads} heads")
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x, key_mask=None):  # x (B, L, D), key_mask (B, L) True = attend
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)  # (B, H, L, d)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, L)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, H, L, d)
        return self.proj(y.transpose(1, 2).reshape(b, n, d))  # (B, L, D)


class EncoderBlock(nn.Module):
    def __init__(self, d_model: int, n_heads: int, mlp_mult: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, mlp_mult * d_model), nn.GELU(),
                                 nn.Linear(mlp_mult * d_model, d_model))

    def forward(self, x, key_mask=None):  # (B, L, D) -> (B, L, D)
        x = x + self.attn(self.norm1(x), key_mask)
        return x + self.mlp(self.norm2(x))


class TransformerBaseline(DatasetRouter):
    """Same interface as EEGMamba: forward(x, dataset, lengths=None) -> (logits, aux of zeros)."""

    def __init__(self, config: EEGMambaConfig, datasets: Sequence[DatasetSpec], n_heads: int = 8,
                 mlp_mult: int = 4, attention: str = "auto"):
        super().__init__()
        if attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {', '.join(ATTENTION_MODES)}, got {attention!r}")
        self.config = config
        self.datasets = tuple(datasets)
        self.attention = attention
        d = config.d_model
        self.st = STAdaptive(config, [spec.n_channels for spec in self.datasets])
        self.blocks = nn.ModuleList(EncoderBlock(d, n_heads, mlp_mult) for _ in range(config.n_layers))
        self.norm_f = nn.LayerNorm(d) if config.final_norm else nn.Identity()
        self.heads = nn.ModuleList(nn.Linear(d, spec.n_classes) for spec in self.datasets)

    def forward(self, x, dataset: str | int, lengths=None):
        i = self.dataset_index(dataset)
        self.check_input(x, i, lengths)
        tokens, n = self.st(x, i, lengths)  # (B, N+1, D)
        key_mask = None if n is None else length_mask(n, tokens.shape[1])  # (B, N+1)
        kernel = sdpa_kernel(SDPBackend.MATH) if self.attention == "math" else contextlib.nullcontext()
        with kernel:
            for block in self.blocks:
                tokens = block(tokens, key_mask)
        logits = self.heads[i](self.norm_f(tokens[:, 0]))  # (B, K_i)
        zero = tokens.new_zeros(())
        return logits, {"balance": zero, "z": zero}
