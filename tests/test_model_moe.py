"""Task-aware MoE: routing properties, dispatch, auxiliary losses, ablations."""
import math

import pytest
import torch

from models import MoEBlock, MoEConfig, TaskAwareMoE
from models.moe import padded_rows




D_MODEL = 16


def make(seed=0, **kw):
    torch.manual_seed(seed)
    return TaskAwareMoE(D_MODEL, MoEConfig(**kw))


def test_routing_properties():
    moe = make().eval()
    x, task = torch.randn(300, D_MODEL), 0.02 * torch.randn(D_MODEL)  # the model's task-token scale
    top_idx, top_w, weights, _ = moe.route(x, task)
    assert torch.all((weights > 0).sum(-1) == 2)  # exactly k experts per token
    torch.testing.assert_close(weights.sum(-1), torch.ones(300))
    omega = 1 - weights.amax(-1)
    assert omega.min() >= 0 and omega.max() <= 0.5
    assert torch.equal(weights.gather(-1, top_idx), top_w)
    assert len(top_idx.unique()) == 8  # 300 random tokens reach every expert


def test_output_is_weighted_experts_plus_omega_universal():
    moe = make().eval()
    x, task = torch.randn(1, 40, D_MODEL), torch.randn(D_MODEL)
    with torch.no_grad():
        out, _ = moe(x, task)
        _, top_w, weights, _ = moe.route(x[0], task)
        manual = sum(weights[:, j, None] * e(x[0]) for j, e in enumerate(moe.experts))
        manual = manual + (1 - top_w.amax(-1))[:, None] * moe.universal(x[0])
    torch.testing.assert_close(out[0], manual, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("train", [False, True])
def test_dense_equals_sparse(train):
    moe = make().train(train)
    x, task = torch.randn(2, 50, D_MODEL), torch.randn(D_MODEL)
    torch.manual_seed(5)
    sparse, aux_s = moe(x, task)
    moe.dense = True
    torch.manual_seed(5)  # same gate noise
    dense, aux_d = moe(x, task)
    torch.testing.assert_close(sparse, dense, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(aux_s["balance"], aux_d["balance"])


def test_padded_rows_takes_few_sizes_and_wastes_at_most_an_eighth():
    assert [padded_rows(n) for n in (0, 1, 64, 65, 100, 128, 129, 1000, 30000)] == [
        64, 64, 64, 72, 104, 128, 144, 1024, 30720]
    sizes = {padded_rows(n) for n in range(1, 70_000)}
    assert len(sizes) == 82  # the shapes an expert can see at inference, whatever the recording's length
    assert all(n <= padded_rows(n) <= max(64, n + n / 8) for n in range(1, 70_000))


def test_cpu_inference_pads_expert_rows_and_matches_the_dense_oracle_in_float64():
    """Under no_grad on a CPU each expert runs on zero-padded rows (padded_rows); the padding rows' outputs
    are dropped, so the result equals the dense oracle's to float64 rounding."""
    moe = make(seed=3).double().eval()
    x, task = torch.randn(3, 37, D_MODEL, dtype=torch.float64), torch.randn(D_MODEL, dtype=torch.float64)
    seen = []
    hooks = [e.fc1.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0])) for e in moe.experts]
    with torch.no_grad():
        sparse, _ = moe(x, task)
        moe.dense = True
        dense, _ = moe(x, task)
    for h in hooks:
        h.remove()
    routed = [int((moe.route(x.reshape(-1, D_MODEL), task)[0] == j).sum()) for j in range(8)]
    assert seen[:8] == [padded_rows(m) for m in routed] and seen[8:] == [3 * 37] * 8  # sparse, then dense
    torch.testing.assert_close(sparse, dense, atol=1e-12, rtol=1e-12)


def test_sparse_gradients_equal_dense_in_float64():
    """The sparse dispatch sums the experts' rows in place; its gradients (input, every parameter) are the
    dense oracle's to 1e-10 in float64."""
    moe = make().double().eval()
    x, task = torch.randn(2, 50, D_MODEL, dtype=torch.float64), torch.randn(D_MODEL, dtype=torch.float64)
    weight = torch.randn(2, 50, D_MODEL, dtype=torch.float64)
    grads = []
    for dense in (False, True):
        moe.dense = dense
        moe.zero_grad(set_to_none=True)
        xi = x.clone().requires_grad_()
        out, aux = moe(xi, task)
        ((out * weight).sum() + aux["balance"] + aux["z"]).backward()
        grads.append({"input": xi.grad, **{n: p.grad for n, p in moe.named_parameters() if p.grad is not None}})
    sparse, dense = grads
    assert sparse.keys() == dense.keys()
    for name in dense:
        torch.testing.assert_close(sparse[name], dense[name], atol=1e-10, rtol=1e-10, msg=name)


def test_noise_only_in_training():
    moe = make()
    x, task = torch.randn(200, D_MODEL), torch.randn(D_MODEL)
    moe.eval()
    a, b = moe.route(x, task), moe.route(x, task)
    assert torch.equal(a[2], b[2])  # deterministic
    clean_top = torch.softmax(a[3].topk(2, dim=-1).values, -1)
    torch.testing.assert_close(a[1], clean_top)  # eval routes on the clean logits
    moe.train()
    noisy = moe.route(x, task)
    assert torch.equal(noisy[3], a[3])  # the clean logits do not change
    assert not torch.equal(noisy[2], a[2])  # the weights do
    quiet = make(noisy_gating=False).train()
    assert quiet.noise is None
    assert torch.equal(quiet.route(x, task)[2], quiet.eval().route(x, task)[2])


def test_task_token_steers_the_gate_only_when_task_aware():
    x = torch.randn(20, D_MODEL)
    aware = make().eval()
    assert aware.gate.in_features == 2 * D_MODEL
    assert not torch.equal(aware.route(x, torch.randn(D_MODEL))[3], aware.route(x, torch.randn(D_MODEL))[3])
    plain = make(task_aware_gate=False).eval()
    assert plain.gate.in_features == D_MODEL and plain.noise.in_features == D_MODEL
    assert torch.equal(plain.route(x, torch.randn(D_MODEL))[3], plain.route(x, None)[3])


def test_without_universal_expert():
    moe = make(universal_expert=False).eval()
    assert moe.universal is None
    x, task = torch.randn(1, 10, D_MODEL), torch.randn(D_MODEL)
    with torch.no_grad():
        out, _ = moe(x, task)
        _, _, weights, _ = moe.route(x[0], task)
        manual = sum(weights[:, j, None] * e(x[0]) for j, e in enumerate(moe.experts))  # no omega term
    torch.testing.assert_close(out[0], manual, atol=1e-6, rtol=1e-6)


def test_aux_losses_on_a_hand_made_example():
    """4 experts, top-2, gate = fixed matrix, 3 tokens: every number below was worked out by hand."""
    moe = TaskAwareMoE(2, MoEConfig(n_experts=4, top_k=2, task_aware_gate=False)).eval()
    with torch.no_grad():
        moe.gate.weight.copy_(torch.tensor([[1.0, 0], [0, 1], [1, 1], [-1, 0]]))
    x = torch.tensor([[[1.0, 0.5], [-1, 3], [-2, -1]]])  # (1, 3, 2)
    logits = [[1, 0.5, 1.5, -1], [-1, 3, 2, 1], [-2, -1, -3, 2]]  # W x, by hand
    top2 = [{2: 1.5, 0: 1.0}, {1: 3.0, 2: 2.0}, {3: 2.0, 1: -1.0}]
    importance = [0.0] * 4
    for row in top2:
        norm = sum(math.exp(v) for v in row.values())
        for j, v in row.items():
            importance[j] += math.exp(v) / norm
    mean = sum(importance) / 4  # = 3 tokens / 4 experts
    std = math.sqrt(sum((i - mean) ** 2 for i in importance) / 4)
    z = sum(math.log(sum(math.exp(v) for v in row)) ** 2 for row in logits) / 3
    _, _, _, clean = moe.route(x[0])
    torch.testing.assert_close(clean, torch.tensor(logits))
    _, aux = moe(x)
    assert mean == pytest.approx(0.75)
    assert aux["balance"].item() == pytest.approx(std / mean, rel=1e-5)
    assert aux["z"].item() == pytest.approx(z, rel=1e-5)
    # a padded token, however extreme, is masked out of both losses
    xp = torch.cat([x, torch.tensor([[[50.0, -70.0]]])], dim=1)
    _, aux_p = moe(xp, mask=torch.tensor([[True, True, True, False]]))
    assert aux_p["balance"].item() == pytest.approx(std / mean, rel=1e-5)
    assert aux_p["z"].item() == pytest.approx(z, rel=1e-5)


def test_balance_loss_trains_the_gate():
    moe = make().train()
    _, aux = moe(torch.randn(2, 30, D_MODEL), torch.randn(D_MODEL))
    (aux["balance"] + aux["z"]).backward()
    assert moe.gate.weight.grad.abs().sum() > 0 and moe.noise.weight.grad.abs().sum() > 0


def test_block_is_pre_ln_residual():
    torch.manual_seed(0)
    blk = MoEBlock(D_MODEL, MoEConfig()).eval()
    x, task = 3 + 2 * torch.randn(1, 7, D_MODEL), torch.randn(D_MODEL)
    with torch.no_grad():
        out, _ = blk(x, task)
        torch.testing.assert_close(out, x + blk.mixer(blk.norm(x), task)[0])
