"""ST-Adaptive front end: token counts (docs/design.md#tokenizer) and right-padded batches."""
import pytest
import torch

from models import EEGMambaConfig
from models.st_adaptive import SMALL_BRANCH, WIDE_BRANCH, STAdaptive, branch_tokens, pack_tokens, token_count




# Spec §2.2: L -> (N_s, N_w) with "same" padding, and N_s + N_w + 1 with "valid" padding.
SAME = {600: (75, 19), 800: (100, 25), 4000: (500, 125), 6000: (750, 188), 12000: (1500, 375),
        2000: (250, 63), 10000: (1250, 313), 40000: (5000, 1250)}
SAME_TOTAL = {600: 95, 800: 126, 4000: 626, 6000: 939, 12000: 1876, 2000: 314, 10000: 1564, 40000: 6251}
VALID_TOTAL = {600: 76, 800: 107, 4000: 607, 6000: 920, 12000: 1857, 2000: 295, 10000: 1545, 40000: 6232}
VALID_SPLIT = {600: (65, 10), 800: (90, 16)}


@pytest.mark.parametrize("length", sorted(SAME_TOTAL))
def test_token_count_table(length):
    assert (branch_tokens(length, SMALL_BRANCH), branch_tokens(length, WIDE_BRANCH)) == SAME[length]
    assert token_count(length, "same") == SAME_TOTAL[length]
    assert token_count(length, "valid") == VALID_TOTAL[length]
    if length in VALID_SPLIT:
        assert (branch_tokens(length, SMALL_BRANCH, "valid"),
                branch_tokens(length, WIDE_BRANCH, "valid")) == VALID_SPLIT[length]


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("length", [600, 6000, 40000])
def test_module_token_shapes_match_table(padding, length):
    # d_model only changes the width, not the token count: keep it tiny for speed
    st = STAdaptive(EEGMambaConfig(d_model=4, tokenizer_padding=padding), [3]).eval()
    with torch.no_grad():
        tokens, n = st(torch.randn(1, 3, length), 0)
    expected = (SAME_TOTAL if padding == "same" else VALID_TOTAL)[length]
    assert tokens.shape == (1, expected, 4) and n is None


def test_class_token_is_first_and_trunc_normal():
    st = STAdaptive(EEGMambaConfig(d_model=64), [2]).eval()
    with torch.no_grad():
        tokens, _ = st(torch.randn(2, 2, 100), 0)
    assert torch.equal(tokens[:, 0], st.cls_token[0].expand(2, -1))
    assert st.cls_token.abs().max() <= 0.04 + 1e-6  # truncated at 2 std
    assert 0.005 < st.cls_token.std() < 0.05


def test_one_spatial_conv_per_dataset():
    st = STAdaptive(EEGMambaConfig(d_model=8), [1, 1, 5])
    assert [c.in_channels for c in st.spatial] == [1, 1, 5]
    assert st.spatial[0].weight is not st.spatial[1].weight  # same channel count, own weights


@pytest.mark.parametrize("norm,padding", [("none", "same"), ("group", "same"), ("batch", "same"),
                                          ("none", "valid")])
def test_padded_rows_equal_lone_rows(norm, padding):
    torch.manual_seed(0)
    cfg = EEGMambaConfig(d_model=16, tokenizer_norm=norm, tokenizer_padding=padding, spatial_kernel=3)
    st = STAdaptive(cfg, [2]).eval()
    if norm == "batch":  # non-trivial running statistics
        for m in st.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    full = 700
    lengths = torch.tensor([700, 601, 480, 333, 290])
    x = torch.randn(len(lengths), 2, full)
    for b, n in enumerate(lengths):
        x[b, :, n:] = 1e3  # garbage in the pads
    with torch.no_grad():
        tokens, n_tok = st(x, 0, lengths)
        for b, n in enumerate(lengths.tolist()):
            alone, _ = st(x[b:b + 1, :, :n], 0)
            assert n_tok[b] == alone.shape[1] == token_count(n, padding)
            torch.testing.assert_close(tokens[b, :n_tok[b]], alone[0], atol=1e-5, rtol=1e-5)
            assert torch.all(tokens[b, n_tok[b]:] == 0)


def test_pack_tokens_layout():
    cls = torch.full((1, 1, 1), -1.0)
    z_s = torch.tensor([[1.0, 2, 3], [1, 2, 0]])[..., None]  # row 1 has 2 valid small tokens
    z_w = torch.tensor([[10.0, 20], [10, 0]])[..., None]  # row 1 has 1 valid wide token
    packed, n = pack_tokens(cls, z_s, torch.tensor([3, 2]), z_w, torch.tensor([2, 1]))
    assert packed[..., 0].tolist() == [[-1, 1, 2, 3, 10, 20], [-1, 1, 2, 10, 0, 0]]
    assert n.tolist() == [6, 4]
