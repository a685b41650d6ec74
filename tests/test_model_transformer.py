"""Transformer baseline: same front end and interface as EEGMamba; SDPA kernels; padded batches."""
import torch

from models import DatasetSpec, EEGMambaConfig, TransformerBaseline, preset




CFG = EEGMambaConfig(d_model=16, n_layers=2, use_moe=False)
DS = [DatasetSpec("a", 3, 2), DatasetSpec("b", 1, 5)]


def test_same_width_depth_and_front_end_as_single_task_eegmamba():
    t = TransformerBaseline(preset("single-task"), [DatasetSpec("chbmit", 23, 2)])
    assert len(t.blocks) == 2 and t.blocks[0].attn.n_heads == 8
    assert t.blocks[0].mlp[0].out_features == 4 * 128
    front = sum(p.numel() for p in t.st.parameters())
    blocks = sum(p.numel() for p in t.blocks.parameters())
    assert front == 1_508_096 + 23 * 128 + 128 + 128  # tokenizer + spatial conv + class token
    assert blocks == 2 * (12 * 128 * 128 + 13 * 128)  # qkv, proj, MLP 4D, two LayerNorms


def test_forward_backward_and_aux_zeros():
    torch.manual_seed(0)
    t = TransformerBaseline(CFG, DS).train()
    logits, aux = t(torch.randn(2, 1, 900), "b")
    assert logits.shape == (2, 5) and aux["balance"] == 0 and aux["z"] == 0
    logits.sum().backward()
    assert t.blocks[0].attn.qkv.weight.grad.abs().sum() > 0


def test_math_backend_gives_the_same_logits():
    torch.manual_seed(0)
    auto = TransformerBaseline(CFG, DS).eval()
    math = TransformerBaseline(CFG, DS, attention="math").eval()
    math.load_state_dict(auto.state_dict())
    x = torch.randn(2, 3, 700)
    with torch.no_grad():
        torch.testing.assert_close(auto(x, 0)[0], math(x, 0)[0], atol=1e-5, rtol=1e-5)


def test_padded_batch_equals_each_row_alone():
    torch.manual_seed(0)
    for attention in ("auto", "math"):
        t = TransformerBaseline(CFG, DS, attention=attention).eval()
        lengths = torch.tensor([640, 500, 123])
        x = torch.randn(3, 3, 640)
        x[1, :, 500:] = 1e3
        x[2, :, 123:] = -1e3
        with torch.no_grad():
            padded, _ = t(x, "a", lengths)
            for b, n in enumerate(lengths.tolist()):
                torch.testing.assert_close(padded[b], t(x[b:b + 1, :, :n], "a")[0][0], atol=1e-5, rtol=1e-5)
