"""Causal depthwise 1-D convolution, as causal_conv1d's `causal_conv1d_fn`.

x: (B, D, L); weight: (D, W); bias: (D,) or None; activation: None | "silu" | "swish".
out[b, d, t] = bias[d] + sum_k weight[d, k] * x[b, d, t - (W - 1) + k]   (x = 0 before t = 0)

reverse=True (with lengths (B,) or None): the conv of each row reversed within its length, returned in
time order (ops/reverse.py), i.e. R(conv(R(x))): the BiMamba's backward direction.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import cpu_kernel
from .backend import cuda_op
from .reverse import check_reverse, kernel_lengths, reverse_within_length

ACTIVATIONS = (None, "silu", "swish")


def _check(x, weight, bias, activation) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be None, 'silu' or 'swish', got {activation!r}")
    if x.dim() != 3 or weight.dim() != 2 or weight.shape[0] != x.shape[1]:
        raise ValueError(f"expected x (B, D, L) and weight (D, W), got {tuple(x.shape)} and "
                         f"{tuple(weight.shape)}")
    if bias is not None and tuple(bias.shape) != (x.shape[1],):
        raise ValueError(f"bias must be (D,) = ({x.shape[1]},), got {tuple(bias.shape)}")


def _work_dtype(x) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def causal_conv1d_ref(x, weight, bias=None, activation=None, reverse=False, lengths=None):
    """The definition above, written out as a sum of shifted products (fp32 inside, fp64 for fp64)."""
    _check(x, weight, bias, activation)
    check_reverse(reverse, lengths)
    if reverse:
        return reverse_within_length(causal_conv1d_ref(reverse_within_length(x, lengths), weight, bias,
                                                       activation), lengths)
    work = _work_dtype(x)
    width, length = weight.shape[1], x.shape[-1]
    padded = F.pad(x.to(work), (width - 1, 0))  # (B, D, W-1+L): zeros stand for t < 0
    w = weight.to(work)  # (D, W)
    out = sum(w[:, k, None] * padded[:, :, k:k + length] for k in range(width))  # (B, D, L)
    if bias is not None:
        out = out + bias.to(work)[:, None]
    if activation is not None:
        out = F.silu(out)
    return out.to(x.dtype)


def causal_conv1d_torch(x, weight, bias=None, activation=None, reverse=False, lengths=None):
    """The fast torch path: one depthwise F.conv1d, left padding W-1, cut to length L."""
    _check(x, weight, bias, activation)
    check_reverse(reverse, lengths)
    if reverse:
        return reverse_within_length(causal_conv1d_torch(reverse_within_length(x, lengths), weight, bias,
                                                         activation), lengths)
    # Half precision on CPU computes in fp32 (CPU conv kernels for bf16 are slow or missing), also inside a
    # CPU autocast region, which would otherwise cast the conv back to bf16.
    work = x.dtype if x.is_cuda or x.dtype in (torch.float32, torch.float64) else torch.float32
    width, length = weight.shape[1], x.shape[-1]
    with torch.autocast(x.device.type, enabled=x.is_cuda and torch.is_autocast_enabled(x.device.type)):
        out = F.conv1d(x.to(work), weight.to(work).unsqueeze(1),
                       None if bias is None else bias.to(work),
                       padding=width - 1, groups=x.shape[1])[..., :length]  # (B, D, L)
    if activation is not None:
        out = F.silu(out)
    return out.to(x.dtype)


IMPLS = ("auto", "kernel", "torch")


def causal_conv1d_fast(x, weight, bias=None, activation=None, reverse=False, lengths=None,
                       impl: str = "auto"):
    """Our fast conv, same contract as `causal_conv1d_ref`, differentiable in x, weight and bias.

    impl: "auto" (the compiled CPU kernel for float32 CPU tensors when it built, else `causal_conv1d_torch`),
    "kernel" (force it) or "torch". The kernel computes conv and SiLU in one pass per row, where F.conv1d
    writes a padded output that SiLU then reads back (csrc/causal_conv1d.c)."""
    _check(x, weight, bias, activation)
    check_reverse(reverse, lengths)
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    use_kernel = impl == "kernel" or (
        impl == "auto" and x.device.type == "cpu" and x.dtype == torch.float32 and x.shape[-1] > 0
        and weight.dtype == torch.float32 and cpu_kernel.load() is not None)
    if not use_kernel:
        return causal_conv1d_torch(x, weight, bias, activation, reverse, lengths)
    if cpu_kernel.load() is None:
        raise RuntimeError(f"compiled CPU kernel unavailable: {cpu_kernel.status()['reason']}")
    args = [None if t is None else t.to(torch.float32).contiguous() for t in (x, weight, bias)]
    rev_len = kernel_lengths(x.shape[0], x.shape[-1], lengths) if reverse else None
    out = KernelConvFn.apply(*args, activation is not None, rev_len)
    return out.to(x.dtype)


class KernelConvFn(torch.autograd.Function):
    """Conv (+ SiLU) in the C kernel both ways; saves only its inputs (the backward recomputes the conv)."""

    @staticmethod
    def forward(ctx, x, weight, bias, silu, rev_len):
        ctx.silu, ctx.rev_len = silu, rev_len
        ctx.save_for_backward(x, weight, bias)
        return cpu_kernel.conv_forward(x, weight, bias, silu, rev_len)

    @staticmethod
    def backward(ctx, dout):
        x, weight, bias = ctx.saved_tensors
        dx, dweight, dbias = cpu_kernel.conv_backward(x, weight, bias, dout.to(torch.float32).contiguous(),
                                                      ctx.silu, ctx.rev_len)
        return dx, dweight, dbias if bias is not None else None, None, None


def causal_conv1d_fn(x, weight, bias=None, activation=None, reverse=False, lengths=None):
    """Causal conv on the active backend: causal_conv1d's kernel for CUDA tensors when allowed,
    our fast path otherwise (the compiled kernel on CPU, F.conv1d elsewhere)."""
    kernel = cuda_op("causal_conv1d", x)
    if kernel is None:
        return causal_conv1d_fast(x, weight, bias, activation, reverse, lengths)
    check_reverse(reverse, lengths)
    if reverse:
        x = reverse_within_length(x, lengths)
    out = kernel(x, weight, bias, activation=activation)
    return reverse_within_length(out, lengths) if reverse else out
