"""Selective scan (Mamba-1 SSM): the sequential reference.

Shapes follow mamba_ssm.ops.selective_scan_interface:
u, delta, z: (B, D, L); A: (D, N); B, C: (B, N, L); D, delta_bias: (D,).

reverse=True (with lengths (B,) or None): scan each row reversed within its length and return the output
in time order, R(scan(R(u), R(delta), R(B), R(C), R(z))) (ops/reverse.py); the last state is then the
state after the row's first sample. The BiMamba's backward direction, without flipped copies on the
compiled path.

Real-valued only: mamba_ssm also accepts a complex A (with complex B, C), but every path here computes in
real fp32/fp64, where casting a complex tensor would silently drop its imaginary part; such inputs are
refused instead.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import cpu_kernel
from .backend import cuda_op
from .reverse import check_reverse, kernel_lengths, reverse_within_length
from .scan_loop import scan_core


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False, reverse=False, lengths=None):
    """Sequential scan; computes in fp32 (fp64 if any input is fp64) and returns u's dtype.

    x_t = exp(delta_t * A) * x_{t-1} + delta_t * B_t * u_t ;  y_t = <C_t, x_t> + D * u_t ;  y *= silu(z)
    """
    _check_real(u=u, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias)
    check_reverse(reverse, lengths)
    if reverse:
        return _reversed(selective_scan_ref, lengths, u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                         return_last_state)
    with _no_autocast(u):
        return _selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)


def _reversed(scan, lengths, u, delta, A, B, C, D, z, delta_bias, softplus, want_last, **kw):
    """R(scan(R(...))): the time-dependent inputs reversed within lengths, the output put back."""
    r = [None if t is None else reverse_within_length(t, lengths) for t in (u, delta, B, C, z)]
    result = scan(r[0], r[1], A, r[2], r[3], D, r[4], delta_bias, softplus, want_last, **kw)
    out, last = result if want_last else (result, None)
    out = reverse_within_length(out, lengths)
    return (out, last) if want_last else out


def _no_autocast(u):
    """The recurrence multiplies hundreds of decays: it runs in fp32 even inside a bf16 autocast region
    (autocast would otherwise send the loop's matmuls to bf16)."""
    return torch.autocast(u.device.type, enabled=False)


def _selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state):
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


# ----------------------------------------------------------------------------------------------
# Fast paths. `selective_scan_fast` picks the compiled CPU kernel or the torch loop; the
# dispatcher `selective_scan_fn` (same signature as the reference) adds the CUDA kernels.

IMPLS = ("auto", "kernel", "loop")


def _work_dtype(u, delta, A) -> torch.dtype:
    """As the reference: fp64 if any of u, delta, A is fp64, otherwise fp32 (bf16/fp16 included)."""
    return torch.float64 if torch.float64 in (u.dtype, delta.dtype, A.dtype) else torch.float32


def _check_real(**tensors) -> None:
    for name, t in tensors.items():
        if t is not None and t.is_complex():
            raise TypeError(f"selective scan: {name} is complex ({t.dtype}); only real inputs are supported "
                            "(a cast to a real dtype would drop the imaginary part)")


def _check_shapes(u, delta, A, B, C, D, z, delta_bias) -> None:
    if u.dim() != 3:
        raise ValueError(f"u must be (batch, dim, length), got shape {tuple(u.shape)}")
    batch, dim, length = u.shape
    nstate = A.shape[-1]
    expected = {"delta": (delta, (batch, dim, length)), "A": (A, (dim, nstate)),
                "B": (B, (batch, nstate, length)), "C": (C, (batch, nstate, length)),
                "D": (D, (dim,)), "z": (z, (batch, dim, length)),
                "delta_bias": (delta_bias, (dim,))}
    for name, (t, shape) in expected.items():
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f"{name} must have shape {shape} (B, D, N, L = {batch}, {dim}, "
                             f"{nstate}, {length}), got {tuple(t.shape)}")


def _needs_grad(*tensors) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _resolve_impl(impl: str, u, work: torch.dtype) -> str:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "kernel":
        if u.device.type != "cpu":
            raise ValueError("the compiled scan kernel runs on CPU tensors only")
        if cpu_kernel.load() is None:
            raise RuntimeError(f"compiled CPU scan kernel unavailable: {cpu_kernel.status()['reason']}")
        return "kernel"
    if impl == "auto" and u.device.type == "cpu" and work == torch.float32 and u.shape[-1] > 0:
        return "kernel" if cpu_kernel.load() is not None else "loop"
    return "loop"


def selective_scan_fast(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                        return_last_state=False, reverse=False, lengths=None, impl: str = "auto"):
    """Our fast scan, same contract as `selective_scan_ref`, differentiable in every tensor.

    impl: "auto" (compiled kernel for fp32/bf16/fp16 CPU tensors when it built, else the loop),
    "kernel" (force the C kernel; computes in fp32 even for fp64 inputs) or "loop" (force the
    pure-PyTorch loop, any device, fp32 or fp64). Output has u's dtype; last state is fp32/fp64.
    """
    _check_real(u=u, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias)
    _check_shapes(u, delta, A, B, C, D, z, delta_bias)
    check_reverse(reverse, lengths)
    work = _work_dtype(u, delta, A)
    if _resolve_impl(impl, u, work) == "kernel":
        rev_len = kernel_lengths(u.shape[0], u.shape[-1], lengths) if reverse else None
        if reverse:  # B and C are small (N rows): permuted here, the (B, D, L) tensors inside the kernel
            B, C = reverse_within_length(B, lengths), reverse_within_length(C, lengths)
        with _no_autocast(u):
            out, last = _scan_kernel(u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus),
                                     bool(return_last_state), rev_len)
    elif reverse:
        with _no_autocast(u):
            out, last = _reversed(_scan_loop, lengths, u, delta, A, B, C, D, z, delta_bias,
                                  bool(delta_softplus), True)
    else:
        with _no_autocast(u):
            out, last = _scan_loop(u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus),
                                   bool(return_last_state))
    out = out.to(u.dtype)
    return (out, last) if return_last_state else out


def _scan_loop(u, delta, A, B, C, D, z, delta_bias, softplus, want_last):
    work = _work_dtype(u, delta, A)
    dt = delta.to(work)  # (B, D, L)
    if delta_bias is not None:
        dt = dt + delta_bias.to(work)[:, None]
    if softplus:
        dt = F.softplus(dt)
    u_w = u.to(work)  # (B, D, L)
    y, last = scan_core(u_w, dt, A.to(work), B.to(work), C.to(work))  # (B, D, L), (B, D, N)
    if D is not None:
        y = y + u_w * D.to(work)[:, None]
    if z is not None:
        y = y * F.silu(z.to(work))
    return y, last


def _fp32(t):
    """fp32 contiguous (autograd-tracked cast/copy); the kernel never writes into its inputs."""
    return None if t is None else t.to(torch.float32).contiguous()


def _scan_kernel(u, delta, A, B, C, D, z, delta_bias, softplus, want_last, rev_len=None):
    # The kernel wants B and C as (batch, L, N): one time step's N values contiguous (in scan order).
    args = (_fp32(u), _fp32(delta), _fp32(A), _fp32(B.transpose(1, 2)), _fp32(C.transpose(1, 2)),
            _fp32(D), _fp32(z), _fp32(delta_bias))
    if _needs_grad(*args):
        return KernelScanFn.apply(*args, softplus, rev_len)
    return cpu_kernel.scan_forward(*args, softplus, want_last, rev_len)


class KernelScanFn(torch.autograd.Function):
    """The whole scan (bias, softplus, recurrence, D skip, z gate) in the C kernel, both ways.

    Saves only its inputs; the backward recomputes each row's states (csrc/selective_scan.c).
    """

    @staticmethod
    def forward(ctx, u, delta, A, Bt, Ct, D, z, delta_bias, softplus, rev_len):
        ctx.softplus, ctx.rev_len = softplus, rev_len
        ctx.set_materialize_grads(False)  # an unused output's gradient arrives as None
        ctx.save_for_backward(u, delta, A, Bt, Ct, D, z, delta_bias)
        return cpu_kernel.scan_forward(u, delta, A, Bt, Ct, D, z, delta_bias, softplus, True, rev_len)

    @staticmethod
    def backward(ctx, dout, dlast):
        u, delta, A, Bt, Ct, D, z, delta_bias = ctx.saved_tensors
        dout = torch.zeros_like(u) if dout is None else dout.to(torch.float32).contiguous()
        dlast = None if dlast is None else dlast.to(torch.float32).contiguous()
        grads = cpu_kernel.scan_backward(u, delta, A, Bt, Ct, D, z, delta_bias, dout, dlast,
                                         ctx.softplus, ctx.rev_len)
        grads = [g if need else None for g, need in zip(grads, ctx.needs_input_grad)]
        return (*grads, None, None)


def selective_scan_fn(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                      return_last_state=False, reverse=False, lengths=None):
    """Selective scan on the active backend (EEGMAMBA_BACKEND); same contract as the reference.

    CUDA tensors go to mamba_ssm's kernel when the backend allows it; everything else to
    `selective_scan_fast` (C kernel on CPU, torch loop elsewhere). Complex inputs are refused on every
    path, the CUDA kernel's included, so a model behaves the same on every backend.
    """
    _check_real(u=u, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias)
    kernel = cuda_op("selective_scan", u)
    if kernel is None:
        return selective_scan_fast(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                   return_last_state, reverse, lengths)
    check_reverse(reverse, lengths)

    def run(u, delta, A, B, C, D, z, delta_bias, softplus, want_last):
        return kernel(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias, delta_softplus=softplus,
                      return_last_state=want_last)

    if reverse:
        return _reversed(run, lengths, u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    return run(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
