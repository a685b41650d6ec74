"""The training-throughput benchmark returns one well-formed row per preset."""
import pytest
import torch

from eegmamba_cli.bench.train import benchmark_train


def _check(rows, device):
    assert [r["preset"] for r in rows] == ["single-task", "multitask"]
    for r in rows:
        assert r["windows_per_s"] > 0 and r["batch"] > 0 and r["window_samples"] > 0 and r["params"] > 0
        assert (r["peak_mem_mib"] is None) == (device == "cpu")


def test_quick_cpu_benchmark():
    _check(benchmark_train(quick=True, device="cpu"), "cpu")


@pytest.mark.cuda
def test_quick_cuda_benchmark():
    rows = benchmark_train(quick=True, device="cuda")
    _check(rows, "cuda")
    assert all(r["peak_mem_mib"] > 0 for r in rows)
    assert torch.cuda.is_available()
