"""Selective-scan speed: the mamba_ssm-style reference vs our torch loop vs the compiled CPU kernel.

`benchmark_scan()` returns one row per (op, implementation); the `eegmamba benchmark` command
prints, saves and plots them. Times are medians over `repeats` runs after one warm-up run.
"""
from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from models.ops import selective_scan_fast
from models.ops.cpu_kernel import status as kernel_status
from models.ops.random_inputs import mamba_like_scan_inputs


def selective_scan_mamba_style(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                               delta_softplus=False, return_last_state=False):
    """The baseline, written the way mamba_ssm's `selective_scan_ref` is: materialise
    exp(delta A) and delta B u as (B, D, L, N) tensors up front, then loop over time (fp32)."""
    dtype_in = u.dtype
    u, delta, A, B, C = (t.float() for t in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + delta_bias.float()[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, nstate = u.shape[0], A.shape[0], A.shape[1]
    x = A.new_zeros(batch, dim, nstate)  # (B, D, N)
    delta_A = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))  # (B, D, L, N)
    delta_B_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)  # (B, D, L, N)
    ys = []
    for i in range(u.shape[2]):
        x = delta_A[:, :, i] * x + delta_B_u[:, :, i]  # (B, D, N)
        ys.append(torch.einsum("bdn,bn->bd", x, C[:, :, i]))  # (B, D)
    out = torch.stack(ys, dim=2)  # (B, D, L)
    if D is not None:
        out = out + u * D.float()[:, None]
    if z is not None:
        out = out * F.silu(z.float())
    out = out.to(dtype_in)
    return (out, x) if return_last_state else out


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: first-use kernel build, allocator, thread pool
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _forward(scan, inputs):
    def run():
        with torch.no_grad():
            scan(**inputs, delta_softplus=True)
    return run


def _forward_backward(scan, inputs):
    leaves = {k: v.clone().requires_grad_() for k, v in inputs.items()}
    grad_out = torch.randn_like(inputs["u"])

    def run():
        for t in leaves.values():
            t.grad = None
        out = scan(**leaves, delta_softplus=True)
        out.backward(grad_out)
    return run


REFERENCE_NAMES = {"scan fwd": "mamba-style reference (fp32)",
                   "scan fwd+bwd": "autograd through mamba-style reference (fp32)"}


def _implementations(op: str):
    """(name, scan) pairs; the first is the reference that speedups are measured against."""
    impls = [(REFERENCE_NAMES[op], selective_scan_mamba_style),
             ("torch loop", lambda **kw: selective_scan_fast(**kw, impl="loop"))]
    if kernel_status()["available"]:
        impls.append(("fast (C kernel)", lambda **kw: selective_scan_fast(**kw, impl="kernel")))
    return impls


def benchmark_scan(quick: bool = False, repeats: int = 5) -> list[dict]:
    """Rows {op, impl, B, D, N, L, threads, seconds, speedup_vs_ref}; ref = the mamba-style row.

    Full: forward at L=2048 and forward+backward at L=256 (B=4, D=256, N=16), `repeats` runs.
    quick=True: L=512 / L=32 and at most 2 runs (about 5 s on 2 idle cores).
    """
    batch, dim, nstate = 4, 256, 16
    fwd_len, bwd_len = (512, 32) if quick else (2048, 256)
    repeats = min(repeats, 2) if quick else repeats
    rows = []
    for op, length, make in (("scan fwd", fwd_len, _forward),
                             ("scan fwd+bwd", bwd_len, _forward_backward)):
        inputs = mamba_like_scan_inputs(batch, dim, nstate, length, seed=length)
        ref_seconds = None
        for name, scan in _implementations(op):
            seconds = _median_seconds(make(scan, inputs), repeats)
            ref_seconds = ref_seconds or seconds
            rows.append({"op": op, "impl": name, "B": batch, "D": dim, "N": nstate, "L": length,
                         "threads": torch.get_num_threads(), "seconds": seconds,
                         "speedup_vs_ref": ref_seconds / seconds})
    return rows
