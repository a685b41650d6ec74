"""BiMamba block (the paper's Algorithm 1): names, init, directions, padding."""

import pytest
import torch
import torch.nn.functional as F

from models import BiMamba, BiMambaBlock, MambaConfig
from models.bimamba import reverse_within_length




D_MODEL = 16  # small: the reference scan is a Python loop over tokens


def naive_direction(x, conv1d, x_proj, dt_proj, A_log, D):
    """One direction written out step by step, independently of models.ops. x (E, L) -> (E, L)."""
    e, length = x.shape
    w = conv1d.weight[:, 0, :]  # (E, W)
    width = w.shape[1]
    xp = F.pad(x, (width - 1, 0))
    xc = torch.stack([(xp[:, t:t + width] * w).sum(-1) for t in range(length)], dim=1) + conv1d.bias[:, None]
    xc = F.silu(xc)  # (E, L)
    r, n = dt_proj.weight.shape[1], A_log.shape[1]
    A = -torch.exp(A_log)
    h = torch.zeros(e, n)
    ys = []
    for t in range(length):
        proj = x_proj.weight @ xc[:, t]  # (R + 2N,)
        dt = F.softplus(dt_proj.weight @ proj[:r] + dt_proj.bias)  # (E,)
        B, C = proj[r:r + n], proj[r + n:]
        h = torch.exp(dt[:, None] * A) * h + dt[:, None] * B[None, :] * xc[:, t, None]
        ys.append(h @ C + D * xc[:, t])
    return torch.stack(ys, dim=1)


def naive_bimamba(m, hidden):
    """Algorithm 1 for one sequence hidden (L, D_model), with explicit flips."""
    x, z = (m.in_proj.weight @ hidden.T).chunk(2, dim=0)  # (E, L) each
    y = naive_direction(x, m.conv1d, m.x_proj, m.dt_proj, m.A_log, m.D)
    if m.bidirectional:
        y_b = naive_direction(x.flip(-1), m.conv1d_b, m.x_proj_b, m.dt_proj_b, m.A_log_b, m.D_b).flip(-1)
        y = y + y_b
    return (m.out_proj.weight @ (y * F.silu(z))).T  # (L, D_model)


def test_parameter_names_shapes_and_init():
    cfg = MambaConfig()
    m = BiMamba(128, cfg)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    fwd = {"in_proj.weight": (512, 128), "conv1d.weight": (256, 1, 4), "conv1d.bias": (256,),
           "x_proj.weight": (40, 256), "dt_proj.weight": (256, 8), "dt_proj.bias": (256,),
           "A_log": (256, 16), "D": (256,), "out_proj.weight": (128, 256)}
    bwd = {k.replace(".", "_b.", 1) if "." in k else k + "_b": v for k, v in fwd.items()
           if not k.startswith(("in_proj", "out_proj"))}
    assert shapes == {**fwd, **bwd}
    for s in ("", "_b"):
        assert torch.allclose(getattr(m, "A_log" + s), torch.log(torch.arange(1, 17.0)).expand(256, 16))
        assert torch.equal(getattr(m, "D" + s), torch.ones(256))
        dt = F.softplus(getattr(m, "dt_proj" + s).bias)
        assert dt.min() >= cfg.dt_min * 0.999 and dt.max() <= cfg.dt_max * 1.001
        assert getattr(m, "A_log" + s)._no_weight_decay and getattr(m, "D" + s)._no_weight_decay
    assert m.in_proj.bias is None and m.out_proj.bias is None


def test_forward_and_backward_parameters_are_distinct():
    m = BiMamba(D_MODEL, MambaConfig())
    for name in ("conv1d.weight", "conv1d.bias", "x_proj.weight", "dt_proj.weight", "dt_proj.bias", "A_log", "D"):
        f = m.get_parameter(name)
        b = m.get_parameter(name.replace(".", "_b.", 1) if "." in name else name + "_b")
        assert f is not b and f.data_ptr() != b.data_ptr()
    assert not torch.equal(m.conv1d.weight, m.conv1d_b.weight)  # independently initialised


def test_unidirectional_has_no_backward_parameters():
    m = BiMamba(D_MODEL, MambaConfig(bidirectional=False))
    assert not [k for k in m.state_dict() if "_b" in k]


@pytest.mark.parametrize("bidirectional", [True, False])
def test_matches_naive_algorithm_1(bidirectional):
    torch.manual_seed(0)
    m = BiMamba(D_MODEL, MambaConfig(bidirectional=bidirectional)).double()
    with torch.no_grad():
        for p in m.parameters():  # move away from the symmetric init so that a swapped param would show
            p.add_(0.05 * torch.randn_like(p))
        hidden = torch.randn(2, 13, D_MODEL, dtype=torch.float64)
        out = m(hidden)
        for b in range(2):
            torch.testing.assert_close(out[b], naive_bimamba(m, hidden[b]), atol=1e-10, rtol=1e-8)


def test_gradients_match_naive_algorithm_1():
    """The channel-first projections (bmm on strided views) give the naive algorithm's gradients, in
    float64 to 1e-6 relative, for the input and every parameter."""
    torch.manual_seed(0)
    m = BiMamba(D_MODEL, MambaConfig()).double()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    hidden = torch.randn(2, 11, D_MODEL, dtype=torch.float64)
    weight = torch.randn(2, 11, D_MODEL, dtype=torch.float64)

    def grads(forward):
        m.zero_grad(set_to_none=True)
        h = hidden.clone().requires_grad_()
        (forward(h) * weight).sum().backward()
        return {"input": h.grad, **{n: p.grad for n, p in m.named_parameters()}}

    ours = grads(m)
    naive = grads(lambda h: torch.stack([naive_bimamba(m, h[b]) for b in range(h.shape[0])]))
    for name, g in naive.items():
        err = ((ours[name] - g).abs().max() / g.abs().max()).item()
        assert err <= 1e-6, f"{name}: relative error {err:.1e}"


def test_block_residual_adds_unnormalised_input():
    torch.manual_seed(0)
    blk = BiMambaBlock(D_MODEL, MambaConfig()).eval()
    x = 5 + 3 * torch.randn(1, 9, D_MODEL)
    with torch.no_grad():
        torch.testing.assert_close(blk(x), x + blk.mixer(blk.norm(x)))


def test_reverse_within_length():
    x = torch.arange(6.0).repeat(2, 1, 1)  # (2, 1, 6)
    out = reverse_within_length(x, torch.tensor([6, 4]))
    assert out[:, 0].tolist() == [[5, 4, 3, 2, 1, 0], [3, 2, 1, 0, 4, 5]]
    assert torch.equal(reverse_within_length(out, torch.tensor([6, 4])), x)  # an involution
    assert torch.equal(reverse_within_length(x), x.flip(-1))


@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_padded_batch_equals_lone_rows(dtype, atol):
    torch.manual_seed(1)
    m = BiMambaBlock(D_MODEL, MambaConfig()).to(dtype)
    lengths = torch.tensor([20, 17, 9, 1])
    x = torch.randn(4, 20, D_MODEL, dtype=dtype)
    with torch.no_grad():
        out = m(x, lengths)
        for b, n in enumerate(lengths.tolist()):
            torch.testing.assert_close(out[b, :n], m(x[b:b + 1, :n])[0], atol=atol, rtol=atol)
        # a garbage pad changes nothing valid
        x2 = x.clone()
        x2[1, 17:] = 1e4
        x2[2, 9:] = -1e4
        out2 = m(x2, lengths)
        for b, n in enumerate(lengths.tolist()):
            assert torch.equal(out2[b, :n], out[b, :n])


@pytest.mark.parametrize("bidirectional", [True, False])
def test_last_valid_token_reaches_token_0_only_backwards(bidirectional):
    torch.manual_seed(2)
    m = BiMambaBlock(D_MODEL, MambaConfig(bidirectional=bidirectional))
    lengths = torch.tensor([12, 7])
    x = torch.randn(2, 12, D_MODEL)
    x2 = x.clone()
    x2[1, 6] += torch.randn(D_MODEL)  # the last valid token of row 1 (not a constant: LN would remove it)
    with torch.no_grad():
        changed = (m(x, lengths)[1, 0] - m(x2, lengths)[1, 0]).abs().max()
    # Bidirectional: the backward scan carries the last token to token 0. Forward-only: token 0 sees only
    # itself (so a forward-only model classifying from a leading class token ignores its input).
    assert (changed > 1e-6) if bidirectional else (changed == 0)


@pytest.mark.parametrize("lengths", [None, [13, 9, 1]])
def test_fp32_fast_paths_match_fp64_with_padding(lengths):
    """fp32 runs the compiled CPU kernels (conv, scan, the backward direction reversed inside them); the
    float64 copy runs the torch paths. Outputs on valid tokens and all gradients agree to 1e-5."""
    torch.manual_seed(0)
    m32 = BiMamba(D_MODEL, MambaConfig())
    with torch.no_grad():
        for p in m32.parameters():
            p.add_(0.05 * torch.randn_like(p))
    m64 = BiMamba(D_MODEL, MambaConfig()).double()
    m64.load_state_dict(m32.state_dict())
    hidden = torch.randn(3, 13, D_MODEL, dtype=torch.float64)
    lengths = None if lengths is None else torch.tensor(lengths)
    valid = torch.ones(3, 13, 1) if lengths is None else (torch.arange(13)[None, :] < lengths[:, None])[..., None]

    def run(m, dtype):
        m.zero_grad(set_to_none=True)
        h = hidden.to(dtype).requires_grad_()
        out = m(h, lengths) * valid.to(dtype)
        (out * torch.sin(out.detach())).sum().backward()
        return out.detach(), {"input": h.grad, **{n: p.grad for n, p in m.named_parameters()}}

    (out32, g32), (out64, g64) = run(m32, torch.float32), run(m64, torch.float64)
    assert ((out32.double() - out64).abs().max() / out64.abs().max()).item() <= 1e-5
    for name, g in g64.items():
        assert ((g32[name].double() - g).abs().max() / g.abs().max()).item() <= 1e-5, name
