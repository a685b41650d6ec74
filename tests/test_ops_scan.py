"""Selective scan: the fast paths (C kernel and torch loop, each forced) against the fp64 reference.

Error measure used throughout: relative error = max|a - b| / max|b|, b the float64 reference
(absolute max|a - b| when b is all zeros, e.g. dA at L = 1 where x_{-1} = 0).

Tolerances: fp32 outputs and gradients within 1e-5 of the fp64 reference. fp32 rounding is
6e-8 per operation; the longest sums here (over L = 1000 steps, D channels or N states) grow
that to ~1e-6 at worst (we see <= 2.6e-6), so 1e-5 leaves margin for other CPUs while still
failing on any real mistake (a wrong sign, a missing term, an off-by-one in time is >= 1e-2).
Gradients get the same 1e-5: the adjoint scan does the same kind of sums as the forward.
"""
from __future__ import annotations

import math

import pytest
import torch

from models.ops import cpu_kernel, selective_scan_fast, selective_scan_fn, selective_scan_ref
from models.ops.random_inputs import mamba_like_scan_inputs

TOL = 1e-5
NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
IMPLS = ("kernel", "loop")

# (D skip, z gate, delta_bias, softplus): every optional input on and off.
OPTIONS = {
    "all": dict(D=True, z=True, delta_bias=True, delta_softplus=True),
    "none": dict(D=False, z=False, delta_bias=False, delta_softplus=False),
    "bias-no-softplus": dict(D=False, z=False, delta_bias=True, delta_softplus=False),
    "D-softplus": dict(D=True, z=False, delta_bias=False, delta_softplus=True),
    "z-only": dict(D=False, z=True, delta_bias=False, delta_softplus=False),
}


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    scale = b.abs().max().item() if b.numel() else 0.0
    diff = (a - b).abs().max().item() if b.numel() else 0.0
    return diff / scale if scale > 0 else diff


def make_inputs(length, option, batch=2, dim=4, nstate=16, seed=0):
    """fp64 inputs (a dict of the scan's keyword arguments) with the option's optional parts."""
    opts = OPTIONS[option]
    x = mamba_like_scan_inputs(batch, dim, nstate, length, dtype=torch.float64,
                               softplus=opts["delta_softplus"], seed=seed + length)
    for name in ("D", "z", "delta_bias"):
        if not opts[name]:
            x[name] = None
    return x, opts["delta_softplus"]


def run_with_grads(scan, inputs, softplus, grad_out, grad_last, dtype):
    """Forward (out, last state) and backward with shared upstream gradients; returns leaves' grads."""
    leaves = {k: None if v is None else v.to(dtype).clone().requires_grad_() for k, v in inputs.items()}
    out, last = scan(**leaves, delta_softplus=softplus, return_last_state=True)
    loss = (out * grad_out.to(out.dtype)).sum() + (last * grad_last.to(last.dtype)).sum()
    loss.backward()
    grads = {k: v.grad for k, v in leaves.items() if v is not None}
    return out.detach(), last.detach(), grads


@pytest.fixture(scope="module")
def reference_cache():
    return {}


def reference(cache, length, option):
    """fp64 autograd through selective_scan_ref, computed once per (length, option)."""
    key = (length, option)
    if key not in cache:
        inputs, softplus = make_inputs(length, option)
        g = torch.Generator().manual_seed(1)
        grad_out = torch.randn(2, 4, length, generator=g, dtype=torch.float64)
        grad_last = torch.randn(2, 4, 16, generator=g, dtype=torch.float64)
        cache[key] = (inputs, softplus, grad_out, grad_last,
                      run_with_grads(selective_scan_ref, inputs, softplus, grad_out, grad_last,
                                     torch.float64))
    return cache[key]


def scan_impl(impl):
    if impl == "kernel" and cpu_kernel.load() is None:
        pytest.skip(f"C kernel unavailable: {cpu_kernel.status()['reason']}")
    return lambda **kw: selective_scan_fast(**kw, impl=impl)


def assert_close_all(got, ref, context):
    out, last, grads = got
    ref_out, ref_last, ref_grads = ref
    errors = {"out": rel_err(out, ref_out), "last_state": rel_err(last, ref_last)}
    errors.update({f"d{k}": rel_err(grads[k], ref_grads[k]) for k in ref_grads})
    bad = {k: f"{v:.2e}" for k, v in errors.items() if not v <= TOL}
    assert not bad, f"{context}: relative errors above {TOL}: {bad}"
    assert set(grads) == set(ref_grads)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("length", [1, 2, 127, 129, 1000])
def test_fast_scan_matches_fp64_reference(reference_cache, impl, option, length):
    inputs, softplus, grad_out, grad_last, ref = reference(reference_cache, length, option)
    got = run_with_grads(scan_impl(impl), inputs, softplus, grad_out, grad_last, torch.float32)
    assert got[0].dtype == torch.float32
    assert_close_all(got, ref, f"{impl} L={length} {option}")


def non_contiguous(t: torch.Tensor) -> torch.Tensor:
    """The same values (and autograd graph) as a view whose last dim is not unit-stride."""
    if t.dim() == 1:
        view = torch.stack([t, torch.zeros_like(t)], dim=1)[:, 0]  # stride 2
    else:
        view = t.transpose(-1, -2).contiguous().transpose(-1, -2)  # transposed storage
    assert not view.is_contiguous() and torch.equal(view, t)
    return view


@pytest.mark.parametrize("impl", IMPLS)
def test_non_contiguous_inputs(reference_cache, impl):
    inputs, softplus, grad_out, grad_last, ref = reference(reference_cache, 129, "all")
    scan = scan_impl(impl)

    def scan_on_views(**kw):
        views = {k: None if v is None else non_contiguous(v) for k, v in kw.items()
                 if k in NAMES}
        return scan(**views, delta_softplus=kw["delta_softplus"],
                    return_last_state=kw["return_last_state"])

    got = run_with_grads(scan_on_views, inputs, softplus, grad_out, grad_last, torch.float32)
    assert_close_all(got, ref, f"{impl} non-contiguous")


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("batch,dim,nstate", [(1, 6, 16), (3, 5, 5), (2, 3, 32), (2, 4, 8)])
def test_other_shapes(impl, batch, dim, nstate):
    """Batch 1 (channel blocks split across threads), odd d_state (no specialised kernel)."""
    x = mamba_like_scan_inputs(batch, dim, nstate, 77, dtype=torch.float64, seed=batch * nstate)
    grad_out = torch.randn(batch, dim, 77, dtype=torch.float64)
    grad_last = torch.randn(batch, dim, nstate, dtype=torch.float64)
    ref = run_with_grads(selective_scan_ref, x, True, grad_out, grad_last, torch.float64)
    got = run_with_grads(scan_impl(impl), x, True, grad_out, grad_last, torch.float32)
    assert_close_all(got, ref, f"{impl} B={batch} D={dim} N={nstate}")


@pytest.mark.parametrize("impl", IMPLS)
def test_partial_requires_grad_and_no_grad(impl):
    scan = scan_impl(impl)
    x = mamba_like_scan_inputs(2, 4, 16, 50, seed=3)
    with torch.no_grad():
        reference_out = selective_scan_ref(**x, delta_softplus=True)
    # Only u and A need gradients: the others must get none, and the two must be right.
    leaves = {k: v.clone().requires_grad_(k in ("u", "A")) for k, v in x.items()}
    out = scan(**leaves, delta_softplus=True)
    out.sum().backward()
    assert {k for k, v in leaves.items() if v.grad is not None} == {"u", "A"}
    ref_leaves = {k: v.double().requires_grad_(k in ("u", "A")) for k, v in x.items()}
    selective_scan_ref(**ref_leaves, delta_softplus=True).sum().backward()
    assert rel_err(leaves["u"].grad, ref_leaves["u"].grad) <= TOL
    assert rel_err(leaves["A"].grad, ref_leaves["A"].grad) <= TOL
    # Under no_grad: same values, nothing recorded for autograd.
    with torch.no_grad():
        inference = scan(**leaves, delta_softplus=True)
    assert inference.grad_fn is None and not inference.requires_grad
    assert rel_err(inference, reference_out) <= TOL
    assert torch.equal(inference, out.detach())


@pytest.mark.parametrize("impl", IMPLS)
def test_half_precision_inputs_compute_in_fp32(impl):
    """bf16/fp16 in, same dtype out, computed in fp32: error is the output rounding only."""
    scan = scan_impl(impl)
    x32 = mamba_like_scan_inputs(2, 4, 16, 64, seed=5)
    for dtype, eps in ((torch.bfloat16, 2 ** -8), (torch.float16, 2 ** -11)):
        x = {k: v.to(dtype) for k, v in x32.items()}
        out = scan(**x, delta_softplus=True)
        assert out.dtype == dtype
        truth = selective_scan_ref(**{k: v.double() for k, v in x.items()}, delta_softplus=True)
        assert rel_err(out, truth) <= 2 * eps  # rounding of the output, nothing more


def test_fp64_inputs_stay_fp64_on_the_auto_path():
    x = mamba_like_scan_inputs(2, 3, 16, 40, dtype=torch.float64, seed=7)
    out = selective_scan_fast(**x, delta_softplus=True)
    assert out.dtype == torch.float64
    assert rel_err(out, selective_scan_ref(**x, delta_softplus=True)) <= 1e-12


def test_loop_backward_passes_gradcheck():
    """The torch loop's hand-written adjoint against finite differences (independent of the ref)."""
    x = mamba_like_scan_inputs(1, 2, 3, 5, dtype=torch.float64, seed=11)
    args = [x[k].clone().requires_grad_() for k in NAMES]

    def f(*tensors):
        out, last = selective_scan_fast(*tensors, delta_softplus=True, return_last_state=True,
                                        impl="loop")
        return out, last

    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-7, rtol=1e-5)


def naive_scan(u, delta, A, B, C, D, z, delta_bias, softplus):
    """Per-element Python loops over plain floats: the definition, with nothing vectorised."""
    batch, dim, length = u.shape
    nstate = A.shape[1]
    out = torch.zeros(batch, dim, length, dtype=torch.float64)
    last = torch.zeros(batch, dim, nstate, dtype=torch.float64)
    for b in range(batch):
        for d in range(dim):
            x = [0.0] * nstate
            for t in range(length):
                dt = float(delta[b, d, t]) + float(delta_bias[d])
                if softplus:
                    dt = math.log1p(math.exp(dt))
                y = 0.0
                for n in range(nstate):
                    x[n] = math.exp(dt * float(A[d, n])) * x[n] + dt * float(B[b, n, t]) * float(u[b, d, t])
                    y += float(C[b, n, t]) * x[n]
                y += float(D[d]) * float(u[b, d, t])
                zt = float(z[b, d, t])
                out[b, d, t] = y * zt / (1.0 + math.exp(-zt))
            last[b, d] = torch.tensor(x, dtype=torch.float64)
    return out, last


@pytest.mark.parametrize("softplus", [True, False])
def test_reference_matches_naive_loop(softplus):
    x = mamba_like_scan_inputs(2, 3, 4, 6, dtype=torch.float64, softplus=softplus, seed=13)
    expected_out, expected_last = naive_scan(*(x[k] for k in NAMES), softplus)
    out, last = selective_scan_ref(**x, delta_softplus=softplus, return_last_state=True)
    assert rel_err(out, expected_out) <= 1e-12
    assert rel_err(last, expected_last) <= 1e-12


# ---------------------------------------------------------------------------------------------
# CUDA: mamba_ssm's kernel vs our torch loop on the GPU, both judged against an fp64 reference.
# FlashAttention style: kernel error <= 2 x (our torch path's error at the same precision) + atol.

# atol: our fp32 tolerance class; for bf16 one rounding step of the bf16 outputs/gradients.
CUDA_ATOL = {torch.float32: 1e-5, torch.bfloat16: 2 ** -8}


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("length", [1, 2, 127, 129, 1000])
def test_cuda_kernel_matches_torch_path(dtype, length):
    from models.ops.backend import probe_cuda_op

    kernel, why = probe_cuda_op("selective_scan")
    if kernel is None:
        pytest.skip(why)
    x = mamba_like_scan_inputs(2, 64, 16, length, seed=length)
    # mamba_ssm's dtype contract: u, delta, B, C, z in the input dtype; A, D, delta_bias fp32.
    low = {k: (v if k in ("A", "D", "delta_bias") else v.to(dtype)).cuda() for k, v in x.items()}
    grad_out = torch.randn(2, 64, length, device="cuda")

    def fwd_bwd(scan, tensors, work=None):
        leaves = {k: (v.to(work) if work else v).clone().requires_grad_() for k, v in tensors.items()}
        out = scan(**leaves, delta_softplus=True)
        out.backward(grad_out.to(out.dtype))
        return [out.detach()] + [leaves[k].grad for k in NAMES]

    truth = fwd_bwd(selective_scan_ref, low, torch.float64)
    ours = fwd_bwd(lambda **kw: selective_scan_fast(**kw, impl="loop"), low)
    theirs = fwd_bwd(kernel, low)
    for name, t, o, k in zip(("out",) + NAMES, truth, ours, theirs):
        err_ours, err_kernel = rel_err(o, t), rel_err(k, t)
        assert err_kernel <= 2 * err_ours + CUDA_ATOL[dtype], (
            f"{name} {dtype} L={length}: kernel {err_kernel:.2e} vs torch path {err_ours:.2e}")


@pytest.mark.parametrize("impl", IMPLS)
def test_extreme_values_stay_finite_and_correct(impl):
    """Softplus above its threshold (20) and deep in the tail, saturated gates, dt A ~ -1000."""
    x = mamba_like_scan_inputs(2, 4, 16, 64, dtype=torch.float64, seed=17)
    x["delta"] = x["delta"] * 20.0  # raw dt from about -80 to +100
    x["z"] = x["z"] * 40.0  # silu(z) saturates at 0 and at z
    grad_out = torch.randn(2, 4, 64, dtype=torch.float64)
    grad_last = torch.randn(2, 4, 16, dtype=torch.float64)
    ref = run_with_grads(selective_scan_ref, x, True, grad_out, grad_last, torch.float64)
    got = run_with_grads(scan_impl(impl), x, True, grad_out, grad_last, torch.float32)
    assert all(torch.isfinite(t).all() for t in (got[0], got[1], *got[2].values()))
    assert_close_all(got, ref, f"{impl} extreme values")


@pytest.mark.parametrize("scan", [selective_scan_ref, selective_scan_fn,
                                  lambda **kw: selective_scan_fast(**kw, impl="kernel"),
                                  lambda **kw: selective_scan_fast(**kw, impl="loop")],
                         ids=["ref", "fn", "kernel", "loop"])
@pytest.mark.parametrize("name", ["A", "B"])
def test_complex_inputs_refused_not_truncated(scan, name):
    """Casting a complex A to fp32 would keep only its real part: a different model, silently."""
    x = mamba_like_scan_inputs(1, 2, 4, 8, dtype=torch.float32, seed=3)
    x[name] = torch.complex(x[name], torch.ones_like(x[name]))
    with pytest.raises(TypeError, match=rf"^selective scan: {name} is complex \(torch\.complex64\); only real"):
        scan(**x)


REVERSALS = {"flip": None, "padded": [37, 1], "full-and-empty": [37, 0]}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("option", ["all", "none"])
@pytest.mark.parametrize("reversal", list(REVERSALS))
def test_reversed_scan_matches_reference(impl, option, reversal):
    """reverse=True (the BiMamba's backward direction): the kernel reads and writes each row in reversed
    order within its length, the loop flips around itself; both against the fp64 reference, which is
    R(scan(R(.))) spelled out with reverse_within_length. Outputs, last state and every gradient."""
    from models.ops.reverse import reverse_within_length

    length = 37
    lengths = None if REVERSALS[reversal] is None else torch.tensor(REVERSALS[reversal])
    inputs, softplus = make_inputs(length, option)
    g = torch.Generator().manual_seed(2)
    grad_out = torch.randn(2, 4, length, generator=g, dtype=torch.float64)
    grad_last = torch.randn(2, 4, 16, generator=g, dtype=torch.float64)

    def spelled_out(**kw):
        rev = {k: (reverse_within_length(v, lengths) if k in ("u", "delta", "B", "C", "z") and v is not None
                   else v) for k, v in kw.items() if k not in ("delta_softplus", "return_last_state")}
        out, last = selective_scan_ref(**rev, delta_softplus=kw["delta_softplus"], return_last_state=True)
        return reverse_within_length(out, lengths), last

    def reversed_ref(**kw):
        return selective_scan_ref(**kw, reverse=True, lengths=lengths)

    truth = run_with_grads(spelled_out, inputs, softplus, grad_out, grad_last, torch.float64)
    assert_close_all(run_with_grads(reversed_ref, inputs, softplus, grad_out, grad_last, torch.float64),
                     truth, "reference with reverse")
    fast = scan_impl(impl)
    got = run_with_grads(lambda **kw: fast(**kw, reverse=True, lengths=lengths), inputs, softplus, grad_out,
                         grad_last, torch.float32)
    assert_close_all(got, truth, f"{impl} reversed ({reversal})")
    if lengths is not None:  # the pads of a row are scanned after its valid part, in their own places
        assert not torch.equal(got[0][1, :, 1:], got[0][1, :, 1:].flip(-1))


def test_lengths_without_reverse_are_refused():
    inputs, softplus = make_inputs(5, "all")
    with pytest.raises(ValueError, match="reverse=True"):
        selective_scan_fast(**inputs, lengths=torch.tensor([5, 5]))
