"""Max pooling with the compiled training path against F.max_pool1d: values, gradients, ties, -inf, NaN."""
import pytest
import torch
import torch.nn.functional as F

from models.ops import cpu_kernel, max_pool1d, max_pool1d_ref

pytestmark = pytest.mark.skipif(cpu_kernel.load() is None, reason="the compiled CPU kernels did not build")

GEOMETRIES = [(7, 2, 3), (3, 2, 1), (3, 1, 1), (4, 3, 0), (2, 2, 1), (5, 5, 2)]  # kernel, stride, padding


def both(x, geometry, grad):
    """Values and input gradient of the op and of F.max_pool1d on the same input."""
    results = []
    for pool in (max_pool1d, max_pool1d_ref):
        leaf = x.clone().requires_grad_(True)
        out = pool(leaf, *geometry)
        out.backward(grad)
        results.append((out.detach(), leaf.grad))
    return results


SHAPES = [(g, n) for g in GEOMETRIES for n in (1, 2, 9, 350) if n + 2 * g[2] >= g[0]]  # at least one output


@pytest.mark.parametrize("geometry, length", SHAPES)
def test_values_and_gradients_equal_torch(geometry, length):
    kernel, stride, padding = geometry
    torch.manual_seed(0)
    x = torch.randn(3, 4, length)
    out_len = (length + 2 * padding - kernel) // stride + 1
    (out, grad), (ref, ref_grad) = both(x, geometry, torch.randn(3, 4, out_len))
    assert out.shape == (3, 4, out_len)
    assert torch.equal(out, ref) and torch.equal(grad, ref_grad)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_ties_go_to_the_first_maximum_as_in_torch(geometry):
    """Integer-valued inputs tie in almost every window; the gradient must land where torch puts it."""
    torch.manual_seed(1)
    x = torch.randint(0, 3, (2, 3, 40)).float()
    out_len = (40 + 2 * geometry[2] - geometry[0]) // geometry[1] + 1
    (out, grad), (ref, ref_grad) = both(x, geometry, torch.rand(2, 3, out_len))
    assert torch.equal(out, ref) and torch.equal(grad, ref_grad)


def test_windows_of_minus_inf_and_nan_as_in_torch():
    """The tokenizer sets padded samples to -inf before pooling; a NaN wins its windows."""
    x = torch.randn(2, 2, 12)
    x[0, :, 5:] = float("-inf")
    x[1, 1, 4] = float("nan")
    (out, grad), (ref, ref_grad) = both(x, (3, 2, 1), torch.ones(2, 2, 6))
    torch.testing.assert_close(out, ref, equal_nan=True)
    assert torch.equal(grad, ref_grad)
    assert out[0, 0, -1] == float("-inf") and torch.isnan(out[1, 1, 2])


def test_the_kernel_runs_only_where_a_gradient_is_needed(monkeypatch):
    calls = []
    forward = cpu_kernel.pool_forward
    monkeypatch.setattr(cpu_kernel, "pool_forward", lambda *a: calls.append(1) or forward(*a))
    x = torch.randn(2, 3, 20)
    max_pool1d(x, 3, 2, 1)
    with torch.no_grad():
        max_pool1d(x.requires_grad_(True), 3, 2, 1)
    assert calls == []
    max_pool1d(x, 3, 2, 1)
    assert calls == [1]


def test_bad_input_fails_in_one_line():
    with pytest.raises(ValueError, match=r"x must be \(B, D, L\), got shape \(4, 5\)"):
        max_pool1d(torch.randn(4, 5), 3, 2, 1)
    with pytest.raises(RuntimeError, match="padding should be at most half"):  # torch's check, both paths
        max_pool1d(torch.randn(1, 1, 9, requires_grad=True), 3, 2, 2)


def test_tokenizer_training_step_unchanged_by_the_kernel(monkeypatch):
    """The tokenizer's gradients with the compiled pooling equal those with F.max_pool1d (padded batch)."""
    from models import DatasetSpec, EEGMamba, EEGMambaConfig
    import models.st_adaptive as st

    def grads():
        torch.manual_seed(0)
        model = EEGMamba(EEGMambaConfig(d_model=16, n_layers=1, use_moe=False), [DatasetSpec("a", 2, 3)]).eval()
        x = torch.randn(3, 2, 500)
        logits, _ = model(x, 0, torch.tensor([500, 377, 256]))
        logits.sum().backward()
        return {k: p.grad for k, p in model.named_parameters() if k.startswith("st.")}

    fast = grads()
    monkeypatch.setattr(st, "max_pool1d", max_pool1d_ref)
    ref = grads()
    for name, grad in fast.items():
        assert torch.equal(grad, ref[name]), name
