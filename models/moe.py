"""Task-aware mixture of experts (docs/design.md#task-aware-mixture-of-experts).

Per token, over all N+1 tokens (class token included):

    T_cat = [T, t_task]                                         (B, L, 2D); [T] alone without task-aware gate
    G     = W_g T_cat + eps * softplus(W_noise T_cat)           eps ~ N(0, I), training mode only
    e     = softmax(TopK(G, k))                                 others -inf, so the k weights sum to 1
    out   = sum_i e_i E_i(T) + omega E_u(T),  omega = 1 - max_i e_i    (in [0, 0.5] for k = 2)

Auxiliary losses, per layer, over valid (non-padded) tokens only:

    balance = std(I) / mean(I), I_j = sum over tokens of e_j   (population std over the experts)
    z       = mean over tokens of logsumexp(clean gate logits)^2

The gate and noise projections have no bias, as in Shazeer et al. 2017. Unlike Shazeer (zero init) they
keep PyTorch's default Linear init (our choice), so the experts are routed by the input from the first step.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import MoEConfig


def padded_rows(n: int) -> int:
    """The row count an expert runs on for `n` routed rows in CPU inference: n rounded up to one of at most
    8 sizes per power of two (at most 1/8 more rows), never below 64.

    Why: PyTorch's CPU matrix products build and cache a kernel per matrix shape (oneDNN's primitive
    cache), and the experts see a different row count in almost every batch, so a long recording filled
    that cache: a multitask model's memory grew with the length of the night. A few sizes keep the cache
    small. Zero rows appended to an expert's input give rows of output that are dropped."""
    if n <= 64:
        return 64
    step = 1 << (n.bit_length() - 4)  # n in [2^k, 2^(k+1)) -> multiples of 2^(k-3)
    return -(-n // step) * step


class Expert(nn.Module):
    """Linear(D, 2D) -> GELU -> Linear(2D, D), no dropout (the paper's expert figure; GELU is our reading)."""

    def __init__(self, d_model: int, hidden_mult: int):
        super().__init__()
        self.fc1 = nn.Linear(d_model, hidden_mult * d_model)
        self.fc2 = nn.Linear(hidden_mult * d_model, d_model)

    def forward(self, x):  # (M, D) -> (M, D)
        return self.fc2(F.gelu(self.fc1(x)))


class TaskAwareMoE(nn.Module):
    """Noisy top-k gate over `n_experts` experts, plus an optional always-on universal expert."""

    def __init__(self, d_model: int, cfg: MoEConfig):
        super().__init__()
        if not 1 <= cfg.top_k <= cfg.n_experts:
            raise ValueError(f"top_k must be in [1, n_experts], got {cfg.top_k} of {cfg.n_experts}")
        self.cfg = cfg
        gate_in = 2 * d_model if cfg.task_aware_gate else d_model
        self.gate = nn.Linear(gate_in, cfg.n_experts, bias=False)
        self.noise = nn.Linear(gate_in, cfg.n_experts, bias=False) if cfg.noisy_gating else None
        self.experts = nn.ModuleList(Expert(d_model, cfg.expert_hidden_mult) for _ in range(cfg.n_experts))
        self.universal = Expert(d_model, cfg.expert_hidden_mult) if cfg.universal_expert else None
        self.dense = False  # True: run every expert on every token (the test oracle for the sparse dispatch)

    def route(self, x, task=None):
        """x (M, D), task (D,) -> top-k indices (M, k) and weights (M, k), all weights e (M, E), clean logits."""
        gate_in = x
        if self.cfg.task_aware_gate:
            if task is None:
                raise ValueError("the task-aware gate needs the task token")
            gate_in = torch.cat([x, task.expand(x.shape[0], -1)], dim=-1)  # (M, 2D)
        # The router stays in fp32 under autocast (as in Switch Transformer): a bf16 rounding of a near-tie
        # would send the token to another expert, and the gate is a negligible share of the arithmetic.
        with torch.autocast(x.device.type, enabled=False):
            gate_in = gate_in if gate_in.dtype == torch.float64 else gate_in.float()
            clean = self.gate(gate_in)  # (M, E)
            logits = clean
            if self.noise is not None and self.training:
                logits = clean + torch.randn_like(clean) * F.softplus(self.noise(gate_in))
        top_logits, top_idx = logits.topk(self.cfg.top_k, dim=-1)  # (M, k)
        top_w = torch.softmax(top_logits, dim=-1)  # (M, k), = softmax over logits with the rest at -inf
        weights = torch.zeros_like(logits).scatter(-1, top_idx, top_w)  # (M, E)
        return top_idx, top_w, weights, clean

    def _sparse(self, x, top_idx, top_w):
        """Each expert runs only on the tokens routed to it.

        The sum is kept in x's dtype: under autocast the experts return bf16 while x (a LayerNorm output)
        stays fp32, and index_add needs one dtype. In place: the out-of-place index_add copied the whole
        (M, D) sum once per expert, and its backward needs only the contributions' rows, not `out`."""
        out = torch.zeros_like(x)  # (M, D)
        pad = x.device.type == "cpu" and not torch.is_grad_enabled()  # inference on a CPU: see padded_rows
        for j, expert in enumerate(self.experts):
            token, slot = torch.where(top_idx == j)  # tokens that picked expert j, and in which top-k slot
            rows = x[token]  # (m_j, D)
            if pad:
                rows = F.pad(rows, (0, 0, 0, padded_rows(len(token)) - len(token)))  # (m_pad, D), zeros after
            contribution = expert(rows)[: len(token)] * top_w[token, slot, None]  # (m_j, D)
            out.index_add_(0, token, contribution.to(out.dtype))
        return out

    def _dense(self, x, weights):
        outs = torch.stack([expert(x) for expert in self.experts], dim=1)  # (M, E, D)
        return (weights[..., None] * outs).sum(dim=1)  # (M, D)

    def forward(self, x, task=None, mask=None):
        """x (B, L, D), task (D,) or None, mask (B, L) valid tokens or None -> (B, L, D), aux losses."""
        b, n, d = x.shape
        flat = x.reshape(b * n, d)  # (M, D)
        top_idx, top_w, weights, clean = self.route(flat, task)
        out = self._dense(flat, weights) if self.dense else self._sparse(flat, top_idx, top_w)
        if self.universal is not None:
            omega = 1.0 - top_w.amax(dim=-1)  # (M,)
            out = out + omega[:, None] * self.universal(flat)
        valid = None if mask is None else mask.reshape(b * n)
        return out.reshape(b, n, d), aux_losses(weights, clean, valid)


def aux_losses(weights, clean_logits, valid=None):
    """weights e (M, E), clean gate logits (M, E), valid (M,) bool or None -> {"balance", "z"} scalars."""
    keep = torch.ones_like(weights[:, 0]) if valid is None else valid.to(weights.dtype)  # (M,)
    importance = (weights * keep[:, None]).sum(dim=0)  # (E,)
    balance = importance.std(correction=0) / (importance.mean() + 1e-9)
    z = (torch.logsumexp(clean_logits, dim=-1) ** 2 * keep).sum() / keep.sum().clamp(min=1.0)
    return {"balance": balance, "z": z}


class MoEBlock(nn.Module):
    """Pre-LN + residual around the task-aware MoE, like the BiMamba block: T <- T + MoE(LN(T))."""

    def __init__(self, d_model: int, cfg: MoEConfig):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.mixer = TaskAwareMoE(d_model, cfg)

    def forward(self, x, task=None, mask=None):  # (B, L, D) -> (B, L, D), aux
        out, aux = self.mixer(self.norm(x), task, mask)
        return x + out, aux
