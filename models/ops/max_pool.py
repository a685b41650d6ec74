"""1-D max pooling (the tokenizer's), with a compiled CPU path for training.

`max_pool1d_ref` is F.max_pool1d. `max_pool1d` gives the same values and the same gradients: where a
gradient is needed on fp32 CPU tensors and the compiled kernels built, it pools with the C kernel
(csrc/max_pool1d.c), which keeps each maximum's position for the backward; PyTorch's own pooling with
indices runs through a generic 2-D kernel at about 10x the cost of pooling without them. Everywhere
else (inference, other dtypes and devices) F.max_pool1d runs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import cpu_kernel


def max_pool1d_ref(x, kernel: int, stride: int, padding: int):
    """x (B, D, L) -> (B, D, L_out), L_out = (L + 2 padding - kernel) // stride + 1; padding never wins."""
    return F.max_pool1d(x, kernel, stride, padding)


def max_pool1d(x, kernel: int, stride: int, padding: int):
    """Same contract as `max_pool1d_ref`."""
    if x.dim() != 3:
        raise ValueError(f"x must be (B, D, L), got shape {tuple(x.shape)}")
    use_kernel = (torch.is_grad_enabled() and x.requires_grad and x.device.type == "cpu"
                  and x.dtype == torch.float32 and 2 * padding <= kernel and cpu_kernel.load() is not None)
    if not use_kernel:
        return max_pool1d_ref(x, kernel, stride, padding)
    return _KernelMaxPool.apply(x, kernel, stride, padding)


class _KernelMaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, kernel, stride, padding):
        b, d, length = x.shape
        out, idx = cpu_kernel.pool_forward(x.contiguous().view(b * d, length), kernel, stride, padding)
        ctx.save_for_backward(idx)
        ctx.shape = (b, d, length)
        return out.view(b, d, -1)  # (B, D, L_out)

    @staticmethod
    def backward(ctx, dout):
        (idx,) = ctx.saved_tensors
        b, d, length = ctx.shape
        dx = cpu_kernel.pool_backward(dout.contiguous().view(b * d, -1), idx, length)
        return dx.view(b, d, length), None, None, None


__all__ = ["max_pool1d", "max_pool1d_ref"]
