"""Selective scan (Mamba-1 SSM): the sequential reference.

Shapes follow mamba_ssm.ops.selective_scan_interface:
u, delta, z: (B, D, L); A: (D, N); B, C: (B, N, L); D, delta_bias: (D,).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False):
    """Sequential scan; computes in fp32 (fp64 if any input is fp64) and returns u's dtype.

    x_t = exp(delta_t * A) * x_{t-1} + delta_t * B_t * u_t ;  y_t = <C_t, x_t> + D * u_t ;  y *= silu(z)
    """
    dtype_in = u.dtype
    work = torch.float64 if torch.float64 in (u.dtype, delta.dtype, A.dtype) else torch.float32
    u, delta, A, B, C = (t.to(work) for t in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + delta_bias.to(work)[None, :, None]
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, length = u.shape
    x = u.new_zeros(batch, dim, A.shape[1])  # (B, D, N)
    ys = []
    for t in range(length):
        dt = delta[:, :, t, None]  # (B, D, 1)
        x = torch.exp(dt * A) * x + dt * B[:, None, :, t] * u[:, :, t, None]  # (B, D, N)
        ys.append(torch.einsum("bdn,bn->bd", x, C[:, :, t]))
    y = torch.stack(ys, dim=2) if ys else u.new_zeros(batch, dim, 0)  # (B, D, L)
    out = y if D is None else y + u * D.to(work)[None, :, None]
    if z is not None:
        out = out * F.silu(z.to(work))
    out = out.to(dtype_in)
    return (out, x) if return_last_state else out
