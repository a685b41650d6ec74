"""Fused spatial + first tokenizer conv: equal to the two convolutions in turn (float64, rel err <= 1e-6).

The op is checked against its `_ref` twin; the model with `st.fused = True` against the same weights with
`st.fused = False`, on logits and on the gradients w.r.t. the input and every parameter.
"""
import pytest
import torch

from models import DatasetSpec, EEGMamba, EEGMambaConfig, preset
from models.ops import spatial_conv1d, spatial_conv1d_ref
from models.st_adaptive import STAdaptive

REL = 1e-6


def rel_err(a, b, floor: float = 1e-300) -> float:
    """Max abs difference over the reference's max abs; `floor` for references that are zero in exact
    arithmetic (a conv bias followed by batch norm gets a gradient of pure rounding noise)."""
    return ((a - b).abs().max() / b.abs().max().clamp(min=floor)).item()


@pytest.mark.parametrize("kernel,stride,padding", [(15, 2, 7), (49, 8, 24), (15, 2, 0), (49, 8, 0)])
@pytest.mark.parametrize("channels", [1, 23])
def test_op_matches_reference_with_gradients(kernel, stride, padding, channels):
    torch.manual_seed(0)
    b, d, length = 3, 16, 211  # odd length: the last stride window is partial
    lengths = torch.tensor([length, 150, 60])
    valid = (torch.arange(length)[None, :] < lengths[:, None])[:, None].double()  # (B, 1, L)
    x = (torch.randn(b, channels, length, dtype=torch.float64) * valid).requires_grad_()
    params = [torch.randn(d, channels, 1, dtype=torch.float64), torch.randn(d, dtype=torch.float64),
              torch.randn(d, d, kernel, dtype=torch.float64), torch.randn(d, dtype=torch.float64)]
    params = [p.requires_grad_() for p in params]
    outs, grads = [], []
    for fn in (spatial_conv1d, spatial_conv1d_ref):
        out = fn(x, valid, *params, stride, padding)
        outs.append(out)
        grads.append(torch.autograd.grad((out * torch.cos(out)).sum(), [x, *params]))
    assert outs[0].shape == outs[1].shape
    assert rel_err(outs[0], outs[1]) <= REL
    for g_fast, g_ref in zip(*grads):
        assert rel_err(g_fast, g_ref) <= REL


def test_op_needs_the_spatial_bias_only_on_valid_samples():
    # A zero input: the output is the spatial bias pushed through the conv, and the edges (zero padding)
    # and the padded tail must not see it. Checked against numbers worked out by hand for one channel.
    x = torch.zeros(1, 1, 5, dtype=torch.float64)
    valid = torch.tensor([[[1.0, 1.0, 1.0, 0.0, 0.0]]], dtype=torch.float64)
    spatial_w = torch.ones(1, 1, 1, dtype=torch.float64)
    spatial_b = torch.tensor([2.0], dtype=torch.float64)
    conv_w = torch.ones(1, 1, 3, dtype=torch.float64)  # sums three neighbours
    out = spatial_conv1d(x, valid, spatial_w, spatial_b, conv_w, None, 1, 1)
    assert out.flatten().tolist() == [4.0, 6.0, 4.0, 2.0, 0.0]
    assert torch.equal(out, spatial_conv1d_ref(x, valid, spatial_w, spatial_b, conv_w, None, 1, 1))


def test_op_rejects_a_wide_spatial_kernel():
    with pytest.raises(ValueError, match=r"spatial weight must be \(D, C, 1\)"):
        spatial_conv1d(torch.zeros(1, 2, 9), torch.ones(1, 1, 9), torch.zeros(4, 2, 3), None,
                       torch.zeros(4, 4, 3), None, 1, 1)


def _grads_both_ways(model, x, lengths):
    """Logits and gradients (input first, then every parameter by name) for fused and unfused paths."""
    results = []
    for fused in (True, False):
        model.st.fused = fused
        model.zero_grad(set_to_none=True)
        xi = x.clone().requires_grad_()
        torch.manual_seed(1)  # same dropout/noise draws (if any) on both paths
        logits, aux = model(xi, 0, lengths)
        loss = (logits * torch.sin(logits)).sum() + aux["balance"] + aux["z"]
        loss.backward()
        grads = {"input": xi.grad}
        grads.update({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
        results.append((logits.detach(), grads))
    return results


def _check_equal(model, x, lengths):
    (logits_f, grads_f), (logits_r, grads_r) = _grads_both_ways(model, x, lengths)
    assert rel_err(logits_f, logits_r) <= REL
    assert grads_f.keys() == grads_r.keys()
    assert {n for n in grads_r if n.startswith("st.spatial")} == {"st.spatial.0.weight", "st.spatial.0.bias"}
    floor = 1e-9 * max(g.abs().max().item() for g in grads_r.values())
    for name in grads_r:
        assert rel_err(grads_f[name], grads_r[name], floor) <= REL, name


@pytest.mark.parametrize("channels,length", [(1, 1001), (23, 803)])
@pytest.mark.parametrize("padded", [False, True])
def test_single_task_model_fused_equals_unfused(channels, length, padded):
    torch.manual_seed(0)
    cfg = preset("single-task")
    model = EEGMamba(cfg, [DatasetSpec("a", channels, 5)]).double().train()
    model.st.small.layers[2].p = model.st.wide.layers[2].p = 0.0  # dropout off, batch statistics kept
    x = torch.randn(3, channels, length, dtype=torch.float64)
    lengths = torch.tensor([length, length - 6, 333]) if padded else None
    _check_equal(model, x, lengths)


@pytest.mark.parametrize("norm,padding", [("batch", "same"), ("group", "same"), ("none", "valid"),
                                          ("group", "valid")])
def test_fusion_holds_with_every_tokenizer_norm_and_padding(norm, padding):
    # The norm sits after the first conv, so it sees the same conv output on both paths.
    torch.manual_seed(0)
    cfg = EEGMambaConfig(d_model=32, n_layers=1, tokenizer_norm=norm, tokenizer_padding=padding,
                         tokenizer_dropout=0.0)
    model = EEGMamba(cfg, [DatasetSpec("a", 3, 4)]).double().train()
    _check_equal(model, torch.randn(3, 3, 517, dtype=torch.float64), torch.tensor([517, 400, 301]))


def test_multitask_model_fused_equals_unfused():
    torch.manual_seed(0)
    cfg = EEGMambaConfig(d_model=32, n_layers=2)
    model = EEGMamba(cfg, [DatasetSpec("a", 23, 2)]).double().eval()
    _check_equal(model, torch.randn(2, 23, 801, dtype=torch.float64), torch.tensor([801, 421]))


def test_switch_is_cached_and_keeps_the_parameters(monkeypatch):
    monkeypatch.setenv("EEGMAMBA_FUSED_FRONT_END", "0")
    unfused = STAdaptive(EEGMambaConfig(d_model=8), [2])
    monkeypatch.setenv("EEGMAMBA_FUSED_FRONT_END", "1")
    fused = STAdaptive(EEGMambaConfig(d_model=8), [2])
    assert (unfused.fused, fused.fused) == (False, True)
    assert list(unfused.state_dict()) == list(fused.state_dict())
    # a wider spatial kernel does not compose with the masking of its output: unfused whatever the switch
    assert STAdaptive(EEGMambaConfig(d_model=8, spatial_kernel=3), [2], fused=True).fused is False
