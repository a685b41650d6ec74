"""CUDA checks (marked `cuda`: skipped without a GPU). Run them wherever a GPU exists (the fast kernels only exist there)."""
import pytest
import torch

from eegmamba_cli.data.registry import dataset_specs
from models import EEGMamba, EEGMambaConfig, TransformerBaseline
from models.ops import set_backend

PAPER_DATASETS = dataset_specs()  # the paper's eight datasets, in the model's index order

pytestmark = pytest.mark.cuda
CFG = EEGMambaConfig(d_model=64, n_layers=2)


@pytest.fixture
def restore_backend():
    yield
    set_backend("auto")


def model(seed=0):
    torch.manual_seed(seed)
    return EEGMamba(CFG, PAPER_DATASETS).eval()


def logits_with(backend, m, x, dataset, lengths=None):
    set_backend(backend)
    with torch.no_grad():
        return m(x, dataset, lengths)[0]


def test_cuda_kernels_match_torch_backend(restore_backend):
    pytest.importorskip("mamba_ssm")
    pytest.importorskip("causal_conv1d")
    m = model().cuda()
    x = torch.randn(3, 23, 800, device="cuda")
    lengths = torch.tensor([800, 613, 300], device="cuda")
    for lens in (None, lengths):
        ref = logits_with("torch", m, x, "chbmit", lens)
        fast = logits_with("cuda", m, x, "chbmit", lens)
        torch.testing.assert_close(fast, ref, atol=2e-3, rtol=2e-3)


def test_torch_backend_on_cuda_matches_cpu(restore_backend):
    m = model()
    x = torch.randn(2, 1, 6000)
    cpu = logits_with("torch", m, x, "sleepedf")
    gpu = logits_with("torch", m.cuda(), x.cuda(), "sleepedf")
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4)


def test_state_dict_moves_between_cpu_and_cuda(restore_backend):
    src = model(seed=1)
    x = torch.randn(2, 62, 4000)
    expected = logits_with("auto", src, x, "seed")
    on_gpu = model(seed=2).cuda()
    on_gpu.load_state_dict({k: v.cuda() for k, v in src.state_dict().items()})
    torch.testing.assert_close(logits_with("auto", on_gpu, x.cuda(), "seed").cpu(), expected, atol=2e-3, rtol=2e-3)
    back = model(seed=3)
    back.load_state_dict({k: v.cpu() for k, v in on_gpu.state_dict().items()})
    torch.testing.assert_close(logits_with("auto", back, x, "seed"), expected, atol=0, rtol=0)


def test_transformer_on_cuda():
    torch.manual_seed(0)
    t = TransformerBaseline(CFG, PAPER_DATASETS).eval().cuda()
    with torch.no_grad():
        assert t(torch.randn(2, 22, 600, device="cuda"), "bciiv2a")[0].shape == (2, 4)
