"""BiMamba block: the paper's Algorithm 1 (docs/design.md#bimamba-block).

    Tn = LN(T);  x, z = in_proj(Tn)                          (shared by both directions)
    y_f = SSM_f(Conv_f(x))                                   (causal depthwise conv + SiLU, selective scan)
    y_b = Rev(SSM_b(Conv_b(Rev(x))))                         (own parameters: conv1d_b, x_proj_b, ...)
    T  <- T + out_proj((y_f + y_b) * SiLU(z))                (summed, not averaged; un-normalised residual)

Parameter names are mamba_ssm.Mamba's (`in_proj`, `conv1d`, `x_proj`, `dt_proj`, `A_log`, `D`, `out_proj`),
with `_b` twins for the backward direction, so one state_dict serves every backend. The math lives in
`models.ops` (`causal_conv1d_fn`, `selective_scan_fn`), looked up at call time so that the backend switch
picks the reference, fast CPU or CUDA implementation.

Padding: with `lengths` (B,) the backward direction reverses each row within its own length (index
len-1-t for t < len, identity on the pads), so the pads stay at the end of both scans and, the scans being
causal, never reach a valid token (docs/design.md#padding). The ops do the reversal themselves
(`reverse=True, lengths=...`, models/ops/reverse.py): the compiled CPU kernels read and write each row in
reversed order, so no flipped copy of a (B, E, L) tensor is made.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import ops
from .config import MambaConfig
from .ops.reverse import reverse_within_length  # noqa: F401  (also this module's API)


def project(weight, x):
    """weight (O, I) applied to every position of x (B, I, L) -> (B, O, L), channel-first in and out.

    One batched matmul: bmm reads a transposed x through its strides and writes (B, O, L) directly, where
    torch.matmul(weight, x) or a Linear on x.transpose(1, 2) would copy x or its output into another layout."""
    return torch.bmm(weight.expand(x.shape[0], -1, -1), x)


# Each direction's own parameters, named as mamba_ssm names them; the backward direction's carry "_b".
DIRECTION_PARAMS = ("conv1d", "x_proj", "dt_proj", "A_log", "D")


def _fp32_or_wider(t):
    """mamba_ssm runs A, D and the dt bias in fp32 under half precision; fp64 stays fp64 (exact tests)."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _dt_bias(d_inner: int, cfg: MambaConfig) -> torch.Tensor:
    """mamba_ssm's dt init: dt log-uniform in [dt_min, dt_max], floored, stored as softplus^-1(dt)."""
    dt = torch.exp(torch.rand(d_inner) * (math.log(cfg.dt_max) - math.log(cfg.dt_min)) + math.log(cfg.dt_min))
    dt = dt.clamp(min=cfg.dt_init_floor)
    return dt + torch.log(-torch.expm1(-dt))  # inverse of softplus


class BiMamba(nn.Module):
    """The mixer of Algorithm 1 (steps 2-5): (B, L, D) -> (B, L, D), without norm and residual."""

    def __init__(self, d_model: int, cfg: MambaConfig):
        super().__init__()
        self.d_inner = cfg.expand * d_model
        self.d_state = cfg.d_state
        self.dt_rank = cfg.resolved_dt_rank(d_model)
        self.bidirectional = cfg.bidirectional
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self._add_direction("", cfg)
        if cfg.bidirectional:
            self._add_direction("_b", cfg)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def _add_direction(self, suffix: str, cfg: MambaConfig) -> None:
        """conv1d, x_proj, dt_proj, A_log, D (+suffix), initialised as mamba_ssm.Mamba."""
        e, n, r = self.d_inner, self.d_state, self.dt_rank
        conv1d = nn.Conv1d(e, e, cfg.d_conv, groups=e, padding=cfg.d_conv - 1, bias=True)
        x_proj = nn.Linear(e, r + 2 * n, bias=False)
        dt_proj = nn.Linear(r, e, bias=True)
        nn.init.uniform_(dt_proj.weight, -r ** -0.5, r ** -0.5)
        with torch.no_grad():
            dt_proj.bias.copy_(_dt_bias(e, cfg))
        dt_proj.bias._no_reinit = True
        A_log = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32).repeat(e, 1)))  # S4D-real
        D = nn.Parameter(torch.ones(e))
        A_log._no_weight_decay = True
        D._no_weight_decay = True
        for name, value in zip(DIRECTION_PARAMS, (conv1d, x_proj, dt_proj, A_log, D)):
            setattr(self, name + suffix, value)

    def _ssm(self, x, z, reverse=False, lengths=None):
        """One direction: causal conv + SiLU, then the selective scan gated by SiLU(z). x, z (B, E, L) ->
        (B, E, L). `reverse`: the backward direction (its `_b` parameters), each row reversed within
        `lengths` inside the ops.

        Channel-first throughout: every projection is a batched matmul (`project`), whose output is
        already the (B, ·, L) layout the scan reads, so no (B, L, E) -> (B, E, L) copy is made."""
        conv1d, x_proj, dt_proj, A_log, D = (getattr(self, name + ("_b" if reverse else ""))
                                             for name in DIRECTION_PARAMS)
        x = ops.causal_conv1d_fn(x, conv1d.weight.squeeze(1), conv1d.bias, activation="silu",
                                 reverse=reverse, lengths=lengths)  # (B, E, L)
        x_dbl = project(x_proj.weight, x)  # (B, R + 2N, L)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=1)  # (B, R|N|N, L)
        dt = project(dt_proj.weight, dt)  # (B, E, L); the bias goes in as delta_bias
        A = -torch.exp(_fp32_or_wider(A_log))  # (E, N)
        return ops.selective_scan_fn(x, dt, A, B, C, _fp32_or_wider(D), z=z,
                                     delta_bias=_fp32_or_wider(dt_proj.bias), delta_softplus=True,
                                     reverse=reverse, lengths=lengths)

    def forward(self, hidden, lengths=None):  # hidden (B, L, D), lengths (B,) valid tokens or None
        w_x, w_z = self.in_proj.weight.chunk(2, dim=0)  # (E, D) each
        tokens = hidden.transpose(1, 2)  # (B, D, L), a view
        x = project(w_x, tokens)  # (B, E, L), contiguous
        z = project(w_z, tokens)  # (B, E, L)
        # (y_f + y_b) * SiLU(z), computed as y_f SiLU(z) + y_b SiLU(z): each scan applies the gate itself.
        y = self._ssm(x, z)  # (B, E, L)
        if self.bidirectional:  # summed, not averaged
            y = y + self._ssm(x, z, reverse=True, lengths=lengths)
        return project(self.out_proj.weight, y).transpose(1, 2)  # (B, L, D), a view of (B, D, L)

    def at(self, hidden, at, lengths=None):
        """The mixer's output at one position per row, at (B,) -> (B, D); the same numbers as
        `forward(hidden, lengths)[rows, at]` up to rounding, for when no other position is read.

        The forward scan is causal, so it runs on the prefix up to the last wanted position (one token for
        a class token in front); the backward scan still needs every token after it. The gate and the output
        projection, per position, run on the wanted rows only: (y_f + y_b)[at] * SiLU(z[at])."""
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        w_x, w_z = self.in_proj.weight.chunk(2, dim=0)  # (E, D) each
        x = project(w_x, hidden.transpose(1, 2))  # (B, E, L)
        end = int(at.max()) + 1
        y = self._ssm(x[..., :end].contiguous(), None)[rows, :, at]  # (B, E)
        if self.bidirectional:
            y = y + self._ssm(x, None, reverse=True, lengths=lengths)[rows, :, at]
        gate = F.silu(F.linear(hidden[rows, at], w_z))  # (B, E)
        return F.linear(y * gate, self.out_proj.weight)  # (B, D)


class BiMambaBlock(nn.Module):
    """LN -> BiMamba -> residual on the un-normalised input. Same layout as mamba_ssm's Block(norm, mixer)."""

    def __init__(self, d_model: int, cfg: MambaConfig):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.mixer = BiMamba(d_model, cfg)

    def forward(self, x, lengths=None):  # (B, L, D) -> (B, L, D)
        return x + self.mixer(self.norm(x), lengths)

    def at(self, x, at, lengths=None):  # (B, L, D), at (B,) -> (B, D): the output at one position per row
        return x[torch.arange(x.shape[0], device=x.device), at] + self.mixer.at(self.norm(x), at, lengths)
