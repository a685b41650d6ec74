"""Causal depthwise conv: the fast path (F.conv1d) against the explicit reference, in float64.

Relative error = max|a - b| / max|b|. In fp64 both paths agree to rounding (1e-12 is far above
fp64 eps yet far below any indexing mistake, which shows up at O(1)).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.ops import causal_conv1d_fast, causal_conv1d_fn, causal_conv1d_ref, causal_conv1d_torch
from models.ops import cpu_kernel

TOL64 = 1e-12


def rel_err(a, b) -> float:
    a, b = a.double(), b.double()
    scale = b.abs().max().item()
    return (a - b).abs().max().item() / scale if scale > 0 else (a - b).abs().max().item()


def conv_inputs(length, width, dim=5, batch=2, bias=True, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed + 31 * length + width)
    x = torch.randn(batch, dim, length, generator=g, dtype=torch.float64).to(dtype)
    weight = torch.randn(dim, width, generator=g, dtype=torch.float64).to(dtype)
    b = torch.randn(dim, generator=g, dtype=torch.float64).to(dtype) if bias else None
    return x, weight, b


def grads_of(conv, x, weight, bias, activation, grad_out):
    leaves = [t if t is None else t.clone().requires_grad_() for t in (x, weight, bias)]
    out = conv(*leaves, activation=activation)
    out.backward(grad_out)
    return out.detach(), [t.grad for t in leaves if t is not None]


@pytest.mark.parametrize("activation", [None, "silu", "swish"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("width", [2, 3, 4])
@pytest.mark.parametrize("length", [1, 2, 3, 129])
def test_fast_conv_matches_reference_with_grads(length, width, bias, activation):
    x, weight, b = conv_inputs(length, width, bias=bias)
    grad_out = torch.randn(2, 5, length, dtype=torch.float64)
    ref_out, ref_grads = grads_of(causal_conv1d_ref, x, weight, b, activation, grad_out)
    out, grads = grads_of(causal_conv1d_fn, x, weight, b, activation, grad_out)
    assert out.shape == x.shape and out.dtype == torch.float64
    assert rel_err(out, ref_out) <= TOL64
    for got, want in zip(grads, ref_grads):
        assert rel_err(got, want) <= TOL64


TOL32 = 1e-5  # fp32 against the fp64 reference, as the scan kernel's tests


def kernel_conv(*args, **kw):
    return causal_conv1d_fast(*args, **kw, impl="kernel")


needs_kernel = pytest.mark.skipif(cpu_kernel.load() is None, reason="no C compiler: no compiled kernel")


@needs_kernel
@pytest.mark.parametrize("activation", [None, "silu"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("width", [2, 3, 4])
@pytest.mark.parametrize("length", [1, 2, 3, 5, 939])
def test_compiled_kernel_matches_fp64_reference_with_grads(length, width, bias, activation):
    """fp32 kernel vs the fp64 reference: output and the gradients of x, weight and bias, edges included
    (lengths shorter than the kernel, where every output sees the zero padding)."""
    x, weight, b = conv_inputs(length, width, dim=6, batch=3, bias=bias)
    grad_out = torch.randn(3, 6, length, dtype=torch.float64)
    ref_out, ref_grads = grads_of(causal_conv1d_ref, x, weight, b, activation, grad_out)
    x32, w32, b32 = (None if t is None else t.float() for t in (x, weight, b))
    out, grads = grads_of(kernel_conv, x32, w32, b32, activation, grad_out.float())
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert rel_err(out, ref_out) <= TOL32
    assert len(grads) == len(ref_grads)
    for got, want in zip(grads, ref_grads):
        assert rel_err(got, want) <= TOL32


@needs_kernel
def test_auto_takes_the_kernel_for_fp32_cpu_and_torch_otherwise(monkeypatch):
    """The dispatch: float32 CPU tensors go to the compiled kernel, float64 to F.conv1d (exact tests)."""
    calls = []
    monkeypatch.setattr(cpu_kernel, "conv_forward", lambda *a: calls.append("kernel") or torch.zeros_like(a[0]))
    x, weight, b = conv_inputs(9, 4)
    causal_conv1d_fn(x, weight, b, "silu")
    assert calls == []
    causal_conv1d_fn(x.float(), weight.float(), b.float(), "silu")
    assert calls == ["kernel"]


def naive_conv(x, weight, bias):
    """out[b, d, t] = bias[d] + sum_k weight[d, k] x[b, d, t - (W-1) + k], element by element."""
    batch, dim, length = x.shape
    width = weight.shape[1]
    out = torch.zeros_like(x)
    for b in range(batch):
        for d in range(dim):
            for t in range(length):
                acc = float(bias[d])
                for k in range(width):
                    s = t - (width - 1) + k
                    if s >= 0:
                        acc += float(weight[d, k]) * float(x[b, d, s])
                out[b, d, t] = acc
    return out


def test_reference_matches_naive_loop_and_is_causal():
    x, weight, b = conv_inputs(7, 4, dim=3)
    assert rel_err(causal_conv1d_ref(x, weight, b), naive_conv(x, weight, b)) <= TOL64
    # Causality: changing x at t = 4 leaves every output before t = 4 unchanged.
    x2 = x.clone()
    x2[..., 4] += 1.0
    before, after = causal_conv1d_ref(x, weight, b), causal_conv1d_ref(x2, weight, b)
    assert torch.equal(before[..., :4], after[..., :4])
    assert not torch.equal(before[..., 4], after[..., 4])


def test_silu_and_swish_are_the_same_activation():
    x, weight, b = conv_inputs(9, 4)
    plain = causal_conv1d_ref(x, weight, b)
    assert torch.equal(causal_conv1d_ref(x, weight, b, "silu"), F.silu(plain))
    assert torch.equal(causal_conv1d_fn(x, weight, b, "swish"), causal_conv1d_fn(x, weight, b, "silu"))


def test_non_contiguous_inputs():
    x, weight, b = conv_inputs(129, 4)
    x_view = x.transpose(1, 2).contiguous().transpose(1, 2)  # (B, D, L) over (B, L, D) storage
    w_view = weight.t().contiguous().t()
    assert not x_view.is_contiguous() and not w_view.is_contiguous()
    expected = causal_conv1d_ref(x, weight, b, "silu")
    assert rel_err(causal_conv1d_fn(x_view, w_view, b, "silu"), expected) <= TOL64
    assert rel_err(causal_conv1d_ref(x_view, w_view, b, "silu"), expected) <= TOL64


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_low_precision_keeps_dtype(dtype):
    x, weight, b = conv_inputs(33, 4, dtype=dtype)
    out = causal_conv1d_fn(x, weight, b, "silu")
    assert out.dtype == dtype
    truth = causal_conv1d_ref(x.double(), weight.double(), b.double(), "silu")
    eps = {torch.bfloat16: 2 ** -8, torch.float16: 2 ** -11, torch.float32: 1e-6}[dtype]
    assert rel_err(out, truth) <= 2 * eps


def test_bad_arguments_raise_clear_errors():
    x, weight, b = conv_inputs(8, 4)
    with pytest.raises(ValueError, match="activation"):
        causal_conv1d_fn(x, weight, b, activation="relu")
    with pytest.raises(ValueError, match="weight"):
        causal_conv1d_ref(x, weight[:3], b)
    with pytest.raises(ValueError, match="bias"):
        causal_conv1d_torch(x, weight, b[:2])


# ---------------------------------------------------------------------------------------------
# CUDA: causal_conv1d's kernel vs our F.conv1d path on the GPU, both against an fp64 reference.
CUDA_ATOL = {torch.float32: 1e-5, torch.bfloat16: 2 ** -8}


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("width", [2, 3, 4])
@pytest.mark.parametrize("length", [1, 2, 129, 1000])
def test_cuda_kernel_matches_torch_path(dtype, width, length):
    from models.ops.backend import probe_cuda_op

    kernel, why = probe_cuda_op("causal_conv1d")
    if kernel is None:
        pytest.skip(why)
    x, weight, b = (t.to("cuda", dtype) for t in conv_inputs(length, width, dim=64))
    grad_out = torch.randn(2, 64, length, device="cuda", dtype=dtype)

    def run(conv, work=None):
        tensors = [t.to(work) if work else t for t in (x, weight, b)]
        out, grads = grads_of(conv, *tensors, "silu", grad_out.to(work or dtype))
        return [out] + grads

    truth = run(causal_conv1d_ref, torch.float64)
    ours = run(causal_conv1d_torch)
    theirs = run(kernel)
    for name, t, o, k in zip(("out", "dx", "dweight", "dbias"), truth, ours, theirs):
        err_ours, err_kernel = rel_err(o, t), rel_err(k, t)
        assert err_kernel <= 2 * err_ours + CUDA_ATOL[dtype], (
            f"{name} {dtype} W={width} L={length}: kernel {err_kernel:.2e} vs torch {err_ours:.2e}")


@pytest.mark.parametrize("impl", ["kernel", "torch"])
@pytest.mark.parametrize("lengths", [None, [129, 3], [129, 0]])
def test_reversed_conv_matches_reference(impl, lengths):
    """reverse=True: the conv of each row reversed within its length, put back in time order; fp32 fast
    paths against the fp64 reference (R(conv(R(x)))), output and gradients."""
    from models.ops.reverse import reverse_within_length

    if impl == "kernel" and cpu_kernel.load() is None:
        pytest.skip("no compiled kernel")
    lengths = None if lengths is None else torch.tensor(lengths)
    x, weight, b = conv_inputs(129, 4)
    grad_out = torch.randn(2, 5, 129, dtype=torch.float64)

    def spelled_out(x, weight, bias, activation):
        return reverse_within_length(causal_conv1d_ref(reverse_within_length(x, lengths), weight, bias, activation),
                                     lengths)

    truth_out, truth_grads = grads_of(spelled_out, x, weight, b, "silu", grad_out)
    ref_out, ref_grads = grads_of(lambda *a, activation: causal_conv1d_ref(*a, activation, True, lengths),
                                  x, weight, b, "silu", grad_out)
    assert rel_err(ref_out, truth_out) <= TOL64
    fast = lambda *a, activation: causal_conv1d_fast(*a, activation, True, lengths, impl=impl)  # noqa: E731
    out, grads = grads_of(fast, x.float(), weight.float(), b.float(), "silu", grad_out.float())
    assert rel_err(out, truth_out) <= TOL32
    for got, want in zip(grads, truth_grads):
        assert rel_err(got, want) <= TOL32
