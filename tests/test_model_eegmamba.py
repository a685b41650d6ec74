"""EEGMamba model: parameter counts, names, padding, all paper shapes, gradients, ablations."""
import pytest
import torch

from eegmamba_cli.data.registry import dataset_specs, segment_samples
from models import ABLATIONS, DatasetSpec, EEGMamba, EEGMambaConfig, ablate, preset
from models.ops import set_backend

PAPER_DATASETS = dataset_specs()  # the paper's eight datasets, in the model's index order
PAPER_SEGMENT_SAMPLES = segment_samples()




# Small width and depth: the reference scan is a Python loop over tokens (until the fast scan lands).
SMALL = EEGMambaConfig(d_model=16, n_layers=2)


def small_model(cfg=SMALL, datasets=PAPER_DATASETS, seed=0):
    torch.manual_seed(seed)
    return EEGMamba(cfg, datasets)


def test_parameter_counts_match_spec():
    """Spec §7: tokenizer 1.508 M, BiMamba block 0.135 M, MoE block 0.598 M; ~7.40 M multi-task (8 corpora),
    ~1.78 M single-task (23 channels, 2 classes)."""
    multi = EEGMamba(preset("multitask"), PAPER_DATASETS)
    assert multi.num_params() == 7_396_377
    assert abs(multi.num_params() / 7.40e6 - 1) < 0.005
    assert sum(p.numel() for p in [*multi.st.small.parameters(), *multi.st.wide.parameters()]) == 1_508_096
    assert sum(p.numel() for p in multi.layers[0].bimamba.parameters()) == 134_912
    assert sum(p.numel() for p in multi.layers[0].moe.parameters()) == 597_632
    single = EEGMamba(preset("single-task"), [DatasetSpec("chbmit", 23, 2)])
    assert single.num_params() == 1_781_634
    assert abs(single.num_params() / 1.78e6 - 1) < 0.005


def test_state_dict_names():
    keys = set(small_model().state_dict())
    for name in ("layers.0.bimamba.mixer.in_proj.weight", "layers.0.bimamba.mixer.conv1d.weight",
                 "layers.0.bimamba.mixer.conv1d.bias", "layers.0.bimamba.mixer.x_proj.weight",
                 "layers.0.bimamba.mixer.dt_proj.bias", "layers.0.bimamba.mixer.A_log",
                 "layers.0.bimamba.mixer.A_log_b", "layers.0.bimamba.mixer.D_b",
                 "layers.0.bimamba.mixer.conv1d_b.weight", "layers.0.bimamba.mixer.out_proj.weight",
                 "layers.1.moe.mixer.gate.weight", "layers.1.moe.mixer.experts.7.fc2.weight",
                 "layers.1.moe.mixer.universal.fc1.weight", "task_tokens", "st.cls_token",
                 "st.spatial.7.weight", "heads.7.weight", "norm_f.weight"):
        assert name in keys, name


def test_state_dict_independent_of_backend():
    set_backend("torch")
    try:
        a = {k: v.shape for k, v in small_model().state_dict().items()}
    finally:
        set_backend("auto")
    assert a == {k: v.shape for k, v in small_model().state_dict().items()}


def test_dataset_by_name_or_index_and_input_checks():
    m = small_model().eval()
    x = torch.randn(2, 22, 600)
    with torch.no_grad():
        assert torch.equal(m(x, "bciiv2a")[0], m(x, 7)[0])
    with pytest.raises(ValueError, match="expects input"):
        m(torch.randn(2, 23, 600), "bciiv2a")
    with pytest.raises(ValueError, match="unknown dataset"):
        m(x, "nope")
    with pytest.raises(ValueError, match="lengths"):
        m(x, 7, torch.tensor([600, 601]))


def run_padded(m, x, lengths, dataset):
    with torch.no_grad():
        padded, aux = m(x, dataset, lengths)
        alone = [m(x[b:b + 1, :, :n], dataset)[0] for b, n in enumerate(lengths.tolist())]
    return padded, torch.cat(alone), aux


@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_padded_batch_equals_each_row_alone(dtype, atol):
    m = small_model().to(dtype).eval()
    lengths = torch.tensor([800, 777, 512, 301, 64])
    x = torch.randn(5, 29, 800, dtype=dtype)
    for b, n in enumerate(lengths.tolist()):
        x[b, :, n:] = 1e3
    padded, alone, aux = run_padded(m, x, lengths, "siena")
    torch.testing.assert_close(padded, alone, atol=atol, rtol=atol)
    # pad values change nothing, logits and MoE losses included
    x2 = x.clone()
    for b, n in enumerate(lengths.tolist()):
        x2[b, :, n:] = torch.randn_like(x2[b, :, n:]) * 1e4
    with torch.no_grad():
        padded2, aux2 = m(x2, "siena", lengths)
    torch.testing.assert_close(padded2, padded, atol=atol, rtol=atol)
    torch.testing.assert_close(aux2["z"], aux["z"], atol=atol, rtol=atol)
    # all rows at full length: the padded path equals the fast path
    with torch.no_grad():
        full = torch.full((5,), 800)
        torch.testing.assert_close(m(x, "siena", full)[0], m(x, "siena")[0], atol=atol, rtol=atol)


def test_one_padded_row_has_the_aux_losses_of_the_row_alone():
    m = small_model().eval()
    x = torch.randn(1, 4, 1000)
    with torch.no_grad():
        _, aux_pad = m(x, "deap", torch.tensor([700]))
        _, aux_alone = m(x[..., :700], "deap")
    for k in ("balance", "z"):
        torch.testing.assert_close(aux_pad[k], aux_alone[k], atol=1e-5, rtol=1e-5)


def test_last_valid_sample_reaches_the_class_token():
    m = small_model().eval()
    lengths = torch.tensor([800, 650])
    x = torch.randn(2, 23, 800)
    x2 = x.clone()
    x2[1, :, 640:650] += torch.randn(23, 10)  # the last valid samples of row 1 (its last tokens)
    with torch.no_grad():
        a, _ = m(x, "chbmit", lengths)
        b, _ = m(x2, "chbmit", lengths)
    assert torch.equal(a[0], b[0]) and not torch.allclose(a[1], b[1], atol=1e-7)


@pytest.mark.parametrize("spec", PAPER_DATASETS, ids=[d.name for d in PAPER_DATASETS])
def test_forward_backward_on_every_paper_shape(spec):
    """Channels from PAPER_DATASETS and samples from PAPER_SEGMENT_SAMPLES at batch 2; a reduced
    width/depth (SMALL) keeps the reference scan fast. Real width/depth is covered by the count test."""
    m = small_model().train()
    x = torch.randn(2, spec.n_channels, PAPER_SEGMENT_SAMPLES[spec.name])
    logits, aux = m(x, spec.name)
    assert logits.shape == (2, spec.n_classes)
    total, parts = m.loss(logits, torch.randint(spec.n_classes, (2,)), aux)
    total.backward()
    assert torch.isfinite(total) and set(parts) == {"ce", "balance", "z", "total"}
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in m.parameters())


def test_gradient_reaches_every_parameter_of_the_active_path():
    m = small_model(seed=3).train()
    active = 1  # chbmit
    # The loss reads only the class token, so in the LAST MoE layer only the experts that the class tokens
    # route to can get a gradient: record which ones those are.
    last = m.layers[-1].moe.mixer
    routed = {}
    route = last.route
    last.route = lambda x, task: routed.setdefault("r", route(x, task))
    logits, aux = m(torch.randn(4, 23, 800), active)
    total, _ = m.loss(logits, torch.tensor([0, 1, 0, 1]), aux)
    total.backward()
    n_tokens = len(routed["r"][0]) // 4
    cls_experts = set(routed["r"][0].view(4, n_tokens, -1)[:, 0].flatten().tolist())
    for name, p in m.named_parameters():
        other = (name.startswith(("st.spatial.", "heads.")) and not name.split(".")[-2] == str(active))
        if other:
            assert p.grad is None, name
        elif name == "task_tokens":
            assert p.grad[active].abs().sum() > 0 and p.grad[torch.arange(8) != active].abs().sum() == 0
        elif name.startswith(f"layers.{len(m.layers) - 1}.moe.mixer.experts."):
            assert p.grad is not None
            assert (p.grad.abs().sum() > 0) == (int(name.split(".")[5]) in cls_experts), name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_loss_applies_the_weights():
    m = EEGMamba(EEGMambaConfig(d_model=16, n_layers=1, balance_loss_weight=0.01, z_loss_weight=0.001),
                 PAPER_DATASETS[:1])
    logits = torch.randn(3, 2)
    aux = {"balance": torch.tensor(2.0), "z": torch.tensor(30.0)}
    total, parts = m.loss(logits, torch.tensor([0, 1, 1]), aux)
    torch.testing.assert_close(total, parts["ce"] + 0.02 + 0.03)


def test_single_task_has_zero_aux_and_plain_ce():
    m = small_model(EEGMambaConfig(d_model=16, n_layers=2, use_moe=False), [DatasetSpec("x", 3, 2)])
    logits, aux = m(torch.randn(2, 3, 300), 0)
    assert aux["balance"] == 0 and aux["z"] == 0
    total, parts = m.loss(logits, torch.tensor([0, 1]), aux)
    torch.testing.assert_close(total, parts["ce"])


def test_param_groups_exempt_tagged_and_1d_parameters():
    m = small_model()
    decay, no_decay = m.param_groups(1e-6)
    ids = lambda ps: {id(p) for p in ps}  # noqa: E731
    assert decay["weight_decay"] == 1e-6 and no_decay["weight_decay"] == 0
    assert ids(decay["params"]).isdisjoint(ids(no_decay["params"]))
    assert ids(decay["params"]) | ids(no_decay["params"]) == ids(m.parameters())
    mixer = m.layers[0].bimamba.mixer
    for p in (mixer.A_log, mixer.A_log_b, mixer.D, mixer.D_b, mixer.conv1d.bias, m.task_tokens, m.st.cls_token):
        assert id(p) in ids(no_decay["params"])
    for p in (mixer.in_proj.weight, mixer.x_proj_b.weight, m.layers[0].moe.mixer.gate.weight):
        assert id(p) in ids(decay["params"])


@pytest.mark.parametrize("name", ABLATIONS)
def test_ablations_build_run_and_have_their_parameters(name):
    cfg = ablate(SMALL, name)
    m = small_model(cfg, PAPER_DATASETS[:2])
    keys = set(m.state_dict())
    has = lambda part: any(part in k for k in keys)  # noqa: E731
    assert has("A_log_b") == (name != "unidirectional")
    assert has(".moe.") == (name != "no-moe")
    assert has("universal") == (name not in ("no-moe", "vanilla-moe", "no-universal"))
    assert ("task_tokens" in keys) == (name not in ("no-moe", "vanilla-moe", "no-task-gate"))
    if has(".moe."):
        gate_in = m.layers[0].moe.mixer.gate.in_features
        assert gate_in == (16 if name in ("vanilla-moe", "no-task-gate") else 32)
    logits, aux = m.train()(torch.randn(2, 29, 800), "siena")
    m.loss(logits, torch.tensor([0, 1]), aux)[0].backward()
    assert logits.shape == (2, 2)


def test_checkpoint_round_trip():
    a, b = small_model(seed=0).eval(), small_model(seed=1).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 1, 600)
    with torch.no_grad():
        assert torch.equal(a(x, "shhs")[0], b(x, "shhs")[0])


def test_unidirectional_ablation_logits_depend_on_the_input():
    """A forward-only scan never reaches position 0, so this variant puts the class token last."""
    m = small_model(ablate(SMALL, "unidirectional"), PAPER_DATASETS[:2]).eval()
    assert m.config.cls_position == "last"
    with torch.no_grad():
        a, _ = m(torch.randn(1, 23, 800), "chbmit")
        b, _ = m(torch.randn(1, 23, 800), "chbmit")
    assert not torch.allclose(a, b)


def test_class_token_last_with_padding_matches_rows_alone():
    m = small_model(ablate(SMALL, "unidirectional"), PAPER_DATASETS[:2]).eval()
    x = torch.randn(2, 23, 1000)
    lengths = torch.tensor([1000, 640])
    with torch.no_grad():
        batch, _ = m(x, "chbmit", lengths)
        alone = torch.cat([m(x[:1], "chbmit")[0], m(x[1:, :, :640], "chbmit")[0]])
    torch.testing.assert_close(batch, alone, atol=1e-5, rtol=1e-5)


CLASSIFY_CONFIGS = {
    "single-task": EEGMambaConfig(d_model=16, n_layers=2, use_moe=False),
    "multitask": SMALL,
    "unidirectional": ablate(SMALL, "unidirectional"),  # class token last: the forward scan runs to it
    "one-layer": EEGMambaConfig(d_model=16, n_layers=1),
}


@pytest.mark.parametrize("name", list(CLASSIFY_CONFIGS))
@pytest.mark.parametrize("padded", [False, True])
def test_classify_equals_forward_logits(name, padded):
    """The inference order (last layer at the class token only) is exact: float64, padded batches too."""
    model = small_model(CLASSIFY_CONFIGS[name], [DatasetSpec("a", 3, 4), DatasetSpec("b", 2, 3)]).double().eval()
    torch.manual_seed(1)
    x = torch.randn(4, 2, 700, dtype=torch.float64)
    lengths = torch.tensor([700, 512, 301, 699]) if padded else None
    with torch.no_grad():
        full, _ = model._forward_all_tokens(x, "b", lengths)
        fast = model.classify(x, "b", lengths)
        forward, _ = model(x, "b", lengths)
    assert fast.shape == (4, 3)
    torch.testing.assert_close(fast, full, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(forward, full, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padded", [False, True])
def test_forward_without_moe_trains_on_the_class_token_order_exactly(padded):
    """Without MoE there are no auxiliary losses, so forward (training too) takes the class-token order:
    the same loss and the same gradient in every parameter as every layer on every token, float64."""
    model = small_model(CLASSIFY_CONFIGS["single-task"], [DatasetSpec("a", 2, 3)]).double()
    torch.manual_seed(1)
    x = torch.randn(3, 2, 700, dtype=torch.float64)
    y = torch.tensor([0, 2, 1])
    lengths = torch.tensor([700, 433, 650]) if padded else None

    def loss_and_grads(run):
        model.zero_grad()
        logits, aux = run(x, 0, lengths)
        loss = model.loss(logits, y, aux)[0]
        loss.backward()
        return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}

    model.eval()  # the tokenizer's dropout off, so both runs see the same tokens
    loss, grads = loss_and_grads(model)
    full_loss, full_grads = loss_and_grads(model._forward_all_tokens)
    torch.testing.assert_close(loss, full_loss, rtol=1e-12, atol=1e-12)
    assert grads.keys() == full_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, full_grads[name], rtol=1e-9, atol=1e-12, msg=name)


def test_classify_runs_the_last_forward_scan_on_the_class_token_alone(monkeypatch):
    """Every scan but the last layer's forward one covers all 1 + 88 + 22 tokens of a 700-sample window."""
    from models import ops

    seen = []
    scan = ops.selective_scan_fn

    def recording(u, *args, **kwargs):
        seen.append((u.shape[-1], bool(kwargs.get("reverse", False))))
        return scan(u, *args, **kwargs)

    monkeypatch.setattr(ops, "selective_scan_fn", recording)
    model = small_model(CLASSIFY_CONFIGS["single-task"], [DatasetSpec("a", 2, 3)]).eval()
    with torch.no_grad():
        model.classify(torch.randn(2, 2, 700), 0)
    assert seen == [(111, False), (111, True), (1, False), (111, True)]
