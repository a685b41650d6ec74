"""Random selective-scan inputs in the value ranges a trained Mamba-1 layer sees (tests, benchmarks)."""
from __future__ import annotations

import math

import torch


def mamba_like_scan_inputs(batch: int, dim: int, nstate: int, length: int, *,
                           dtype: torch.dtype = torch.float32, softplus: bool = True,
                           seed: int = 0) -> dict[str, torch.Tensor]:
    """u, delta, A, B, C, D, z, delta_bias as keyword arguments of selective_scan_*.

    With softplus, delta is a raw dt_proj output: delta_bias = softplus^-1(dt0), dt0 log-uniform
    in [0.001, 0.1] (mamba_ssm's dt init), plus N(0, 1) noise and a few large (+4) values, so
    softplus(delta + bias) is mostly 0.001-0.1 with a tail up to a few units. Without softplus,
    delta is that positive step size directly. A = -exp(A_log), S4D-real init (-1..-N) jittered.
    """
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    dt0 = torch.exp(torch.rand(dim, generator=g, dtype=torch.float64)
                    * (math.log(0.1) - math.log(0.001)) + math.log(0.001))  # (D,)
    inv_softplus = dt0 + torch.log(-torch.expm1(-dt0))  # softplus^-1(dt0)
    spikes = 4.0 * (torch.rand(batch, dim, length, generator=g, dtype=torch.float64) < 0.05)
    raw = randn(batch, dim, length) + spikes  # (B, D, L)
    if softplus:
        delta, delta_bias = raw, inv_softplus
    else:
        delta = torch.nn.functional.softplus(raw + inv_softplus[:, None])
        delta_bias = 0.01 * torch.rand(dim, generator=g, dtype=torch.float64)
    A_log = torch.log(torch.arange(1, nstate + 1, dtype=torch.float64)).repeat(dim, 1)
    A = -torch.exp(A_log + 0.2 * randn(dim, nstate))  # (D, N)
    tensors = {
        "u": randn(batch, dim, length), "delta": delta, "A": A,
        "B": randn(batch, nstate, length), "C": randn(batch, nstate, length),
        "D": 1.0 + 0.3 * randn(dim), "z": randn(batch, dim, length), "delta_bias": delta_bias,
    }
    return {k: v.to(dtype) for k, v in tensors.items()}
