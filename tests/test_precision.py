"""bf16 autocast on CPU: the precision switch, both presets running and agreeing with fp32, the scan in fp32."""
import math

import pytest
import torch

from eegmamba_cli import precision
from models import DatasetSpec, EEGMamba, preset
from models.moe import TaskAwareMoE, MoEConfig
from models.ops import causal_conv1d_torch, selective_scan_fast, selective_scan_ref
from models.ops.random_inputs import mamba_like_scan_inputs


def test_explicit_choices_pass_through_and_bad_ones_fail():
    assert precision.resolve_precision("fp32", "cpu") == "fp32"
    assert precision.resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, auto, got 'fp16'"):
        precision.resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="resolve 'auto' first"):
        precision.autocast("cpu", "auto")


@pytest.mark.parametrize("flags,expected", [({"avx2", "avx512f"}, "fp32"), ({"avx512f", "avx512_bf16"}, "bf16"),
                                            ({"amx_tile", "amx_bf16"}, "bf16"), (set(), "fp32")])
def test_auto_on_cpu_wants_native_bf16_units(monkeypatch, flags, expected):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    assert precision.resolve_precision("auto", "cpu") == expected


def test_autocast_contexts():
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with precision.autocast("cpu", "fp32"):
        assert (a @ b).dtype == torch.float32
    with precision.autocast("cpu", "bf16"):
        assert (a @ b).dtype == torch.bfloat16


def _structured(batch, channels, length):
    """Sines of a few frequencies plus noise: EEG-like rhythms, not white noise."""
    t = torch.arange(length) / 200.0
    freqs = torch.tensor([1.0, 6.0, 10.0, 20.0])[torch.arange(batch) % 4]  # (B,)
    wave = torch.sin(2 * math.pi * freqs[:, None, None] * t + torch.arange(channels)[None, :, None])
    return wave + 0.3 * torch.randn(batch, channels, length)


@pytest.mark.parametrize("name,channels,length", [("single-task", 1, 1000), ("multitask", 23, 400)])
@pytest.mark.parametrize("inputs", ["random", "structured"])
def test_bf16_presets_run_and_agree_with_fp32(name, channels, length, inputs):
    torch.manual_seed(0)
    model = EEGMamba(preset(name), [DatasetSpec("a", channels, 5)]).eval()
    x = torch.randn(8, channels, length) if inputs == "random" else _structured(8, channels, length)
    lengths = torch.tensor([length] * 7 + [length - 37])
    with torch.no_grad():
        ref, _ = model(x, 0, lengths)
        with precision.autocast("cpu", "bf16"):
            low, aux = model(x, 0, lengths)
    assert torch.isfinite(low).all() and torch.isfinite(aux["z"])
    scale = ref.abs().max()
    row_err = (low.float() - ref).abs().amax(dim=1) / scale  # (B,)
    top2 = ref.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 0.05 * scale  # a near-tie may flip within bf16 rounding
    agree = (low.float().argmax(1) == ref.argmax(1))[clear].float().mean()
    if name == "single-task":  # a few bf16 roundings, not a different model
        assert row_err.max() <= 0.05 and agree == 1.0
    else:
        # An untrained router has near-tied gate logits: a bf16 rounding upstream can send a row's class
        # token to another expert in one of the 8 layers, which changes that row's logits outright. Most
        # rows keep their routes and agree to bf16 rounding.
        assert row_err.median() <= 0.05 and agree >= 0.75


def test_bf16_training_step_on_the_multitask_preset():
    # The MoE sums bf16 expert outputs into an fp32 buffer (index_add needs one dtype).
    torch.manual_seed(0)
    model = EEGMamba(preset("multitask"), [DatasetSpec("a", 2, 3)]).train()
    with precision.autocast("cpu", "bf16"):
        logits, aux = model(torch.randn(2, 2, 300), 0)
        loss, _ = model.loss(logits, torch.tensor([0, 2]), aux)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all()
               for n, p in model.named_parameters() if n.startswith("layers.0.moe"))


def test_sparse_moe_equals_dense_under_autocast():
    torch.manual_seed(0)
    moe = TaskAwareMoE(16, MoEConfig()).eval()
    x, task = torch.randn(2, 9, 16), torch.randn(16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        sparse, _ = moe(x, task)
        moe.dense = True
        dense, _ = moe(x, task)
    assert sparse.dtype == torch.float32
    torch.testing.assert_close(sparse, dense.float(), atol=2e-2, rtol=0)


@pytest.mark.parametrize("scan", [selective_scan_ref, lambda *a, **k: selective_scan_fast(*a, **k, impl="loop"),
                                  selective_scan_fast], ids=["ref", "loop", "auto"])
def test_scan_ignores_autocast(scan):
    # The same bf16 inputs give bit-identical outputs inside and outside a bf16 autocast region: the
    # recurrence's matmuls are not sent to bf16.
    torch.manual_seed(0)
    t = mamba_like_scan_inputs(2, 8, 4, 64, dtype=torch.bfloat16)
    t.update(A=t["A"].float(), D=t["D"].float(), delta_bias=t["delta_bias"].float())  # fp32 parameters
    plain = scan(**t, delta_softplus=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = scan(**t, delta_softplus=True)
    assert torch.equal(plain, inside)


def test_causal_conv_stays_fp32_on_cpu_under_autocast():
    torch.manual_seed(0)
    x, w, b = torch.randn(2, 8, 50), torch.randn(8, 4), torch.randn(8)
    plain = causal_conv1d_torch(x, w, b, activation="silu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = causal_conv1d_torch(x, w, b, activation="silu")
    assert torch.equal(plain, inside)


@pytest.mark.parametrize("name", ["single-task", "multitask"])
def test_logits_stay_fp32_under_bf16_autocast(name):
    """The final norm and head run in fp32: bf16 logits would carry 8 significant bits, and windows whose
    scores differ by less would tie or swap in AUROC. Both entries (forward, classify) keep them."""
    torch.manual_seed(0)
    model = EEGMamba(preset(name), [DatasetSpec("a", 2, 3)]).eval()
    x = torch.randn(4, 2, 400)
    with torch.no_grad(), precision.autocast("cpu", "bf16"):
        outputs = [model(x, 0)[0], model.classify(x, 0)]
    for logits in outputs:
        assert logits.dtype == torch.float32
        assert (logits != logits.bfloat16().float()).any()  # not rounded to bf16 on the way
