"""The backend switch, the lazy CUDA-kernel probe, the kernel build cache, and input safety."""
from __future__ import annotations

import sys
import threading

import pytest
import torch

import models.ops as ops
from models.ops import backend, cpu_kernel
from models.ops.random_inputs import mamba_like_scan_inputs


@pytest.fixture
def switch(monkeypatch):
    """Set EEGMAMBA_BACKEND for one test; the cached switch and probes are reset around it."""
    probe = backend.probe_cuda_op  # the cached original, even if a test replaces it

    def set_to(name: str | None, *, missing_kernels: bool = False):
        # setenv first, so that undo() also removes what set_backend() writes into os.environ
        monkeypatch.setenv("EEGMAMBA_BACKEND", name or "auto")
        if name is None:
            monkeypatch.delenv("EEGMAMBA_BACKEND")
        if missing_kernels:  # importing these now raises ImportError, GPU machine or not
            for module in ("mamba_ssm", "causal_conv1d"):
                monkeypatch.setitem(sys.modules, module, None)
        backend.backend_name.cache_clear()
        probe.cache_clear()

    yield set_to
    monkeypatch.undo()
    backend.backend_name.cache_clear()
    probe.cache_clear()


def small_scan_inputs():
    return mamba_like_scan_inputs(2, 3, 4, 9, seed=2)


def conv_args():
    return torch.randn(2, 3, 9), torch.randn(3, 4), torch.randn(3)


def test_bad_backend_value_is_a_clear_value_error(switch):
    switch("cuda-please")
    with pytest.raises(ValueError, match=r"EEGMAMBA_BACKEND must be one of auto, cuda, torch.*cuda-please"):
        ops.backend_name()
    with pytest.raises(ValueError, match="EEGMAMBA_BACKEND"):
        ops.selective_scan_fn(**small_scan_inputs())


def test_default_is_auto_and_set_backend_overrides(switch):
    switch(None)
    assert ops.backend_name() == "auto"
    ops.set_backend("torch")
    assert ops.backend_name() == "torch"
    with pytest.raises(ValueError, match="auto, cuda, torch"):
        ops.set_backend("gpu")
    assert ops.backend_name() == "torch"  # unchanged


@pytest.mark.parametrize("op", ["scan", "conv"])
def test_cuda_backend_without_kernels_fails_at_first_use_with_the_recipe(switch, op):
    switch("cuda", missing_kernels=True)
    assert ops.backend_name() == "cuda"  # choosing it is fine; nothing is imported yet
    with pytest.raises(ops.KernelUnavailableError) as info:
        if op == "scan":
            ops.selective_scan_fn(**small_scan_inputs())
        else:
            ops.causal_conv1d_fn(*conv_args(), activation="silu")
    message = str(info.value)
    assert ("mamba-ssm" if op == "scan" else "causal-conv1d") in message
    for part in ('pip install', '".[cuda]"', "--no-build-isolation", "MAMBA_FORCE_BUILD=TRUE",
                 "CAUSAL_CONV1D_FORCE_BUILD=TRUE"):
        assert part in message


@pytest.mark.parametrize("name", ["auto", "torch"])
def test_auto_and_torch_work_without_kernels(switch, name):
    switch(name, missing_kernels=True)
    x = small_scan_inputs()
    out = ops.selective_scan_fn(**x, delta_softplus=True)
    assert torch.allclose(out, ops.selective_scan_ref(**x, delta_softplus=True), rtol=1e-5, atol=1e-6)
    conv = ops.causal_conv1d_fn(*conv_args(), activation="silu")
    assert conv.shape == (2, 3, 9)
    assert ops.describe_backend()["mamba-ssm"]["available"] is False


def test_abi_break_is_caught_and_reported(switch, monkeypatch):
    """An 'undefined symbol' OSError from a stale build must not crash auto."""
    switch("auto")

    def broken_import(name, *args, **kwargs):
        raise OSError(f"{name}: undefined symbol: _ZN3c104cuda9SetDeviceEi")

    monkeypatch.setattr(backend.importlib, "import_module", broken_import)
    kernel, why = backend.probe_cuda_op("selective_scan")
    assert kernel is None and "undefined symbol" in why and "mamba-ssm" in why


class FakeTensor:
    def __init__(self, is_cuda: bool):
        self.is_cuda = is_cuda
        self.device = "cuda:0" if is_cuda else "cpu"


def test_dispatch_rules(switch, monkeypatch):
    """auto: kernel only for CUDA tensors; torch: never; cuda: always, and CPU tensors refused."""
    def fake_kernel(*args, **kwargs):
        raise AssertionError("not called here")

    monkeypatch.setattr(backend, "probe_cuda_op", lambda op: (fake_kernel, ""))
    switch("auto")
    assert backend.cuda_op("selective_scan", FakeTensor(True)) is fake_kernel
    assert backend.cuda_op("selective_scan", FakeTensor(False)) is None
    switch("torch")
    assert backend.cuda_op("selective_scan", FakeTensor(True)) is None
    switch("cuda")
    assert backend.cuda_op("causal_conv1d", FakeTensor(True)) is fake_kernel
    with pytest.raises(ops.KernelUnavailableError, match="CUDA tensors"):
        backend.cuda_op("causal_conv1d", FakeTensor(False))


def test_scan_falls_back_to_the_torch_loop_when_the_c_kernel_is_unavailable(monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("the C kernel was called although it is unavailable")

    monkeypatch.setattr(cpu_kernel, "load", lambda: None)
    monkeypatch.setattr(cpu_kernel, "scan_forward", must_not_run)
    monkeypatch.setattr(cpu_kernel, "scan_backward", must_not_run)
    monkeypatch.setitem(cpu_kernel._STATUS, "available", False)
    monkeypatch.setitem(cpu_kernel._STATUS, "reason", "no C compiler found")
    x = {k: v.requires_grad_() for k, v in small_scan_inputs().items()}
    out = ops.selective_scan_fn(**x, delta_softplus=True)
    out.sum().backward()
    assert x["u"].grad is not None
    report = ops.describe_backend()
    assert report["cpu_scan"] == "torch loop" and "compiler" in report["cpu_kernel"]["reason"]
    with pytest.raises(RuntimeError, match="no C compiler found"):
        ops.selective_scan_fast(**small_scan_inputs(), impl="kernel")


@pytest.mark.parametrize("impl", ["kernel", "loop"])
def test_inputs_are_never_modified_in_place(impl):
    if impl == "kernel" and cpu_kernel.load() is None:
        pytest.skip("C kernel unavailable")
    x = {k: v.requires_grad_() for k, v in small_scan_inputs().items()}
    before = {k: v.detach().clone() for k, v in x.items()}
    out, last = ops.selective_scan_fast(**x, delta_softplus=True, return_last_state=True, impl=impl)
    (out.sum() + last.sum()).backward()
    for k, v in x.items():
        assert torch.equal(v.detach(), before[k]), f"{k} was modified"
    conv = [t.requires_grad_() for t in conv_args()]
    conv_before = [t.detach().clone() for t in conv]
    ops.causal_conv1d_fn(*conv, activation="silu").sum().backward()
    assert all(torch.equal(t.detach(), c) for t, c in zip(conv, conv_before))


def test_kernel_build_is_cached_and_atomic(tmp_path):
    if cpu_kernel.find_compiler() is None:
        pytest.skip("no C compiler")
    first, compiled = cpu_kernel.build(tmp_path)
    assert compiled and first.exists()
    mtime = first.stat().st_mtime_ns
    second, compiled_again = cpu_kernel.build(tmp_path)
    assert second == first and not compiled_again and first.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temp files left behind


def test_concurrent_builds_agree(tmp_path):
    """Two builders racing on an empty cache both end with the same complete library."""
    if cpu_kernel.find_compiler() is None:
        pytest.skip("no C compiler")
    results = []
    threads = [threading.Thread(target=lambda: results.append(cpu_kernel.build(tmp_path)[0]))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and results[0] == results[1]
    assert [p.name for p in tmp_path.iterdir()] == [results[0].name]
    import ctypes

    assert hasattr(ctypes.CDLL(str(results[0])), "ss_bwd_f32")


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("EEGMAMBA_CACHE_DIR", str(tmp_path))
    assert cpu_kernel.cache_dir() == tmp_path / "kernels"
    monkeypatch.delenv("EEGMAMBA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cpu_kernel.cache_dir() == tmp_path / "xdg" / "eegmamba" / "kernels"


def test_describe_backend_reports_the_cpu_kernel():
    report = ops.describe_backend()
    assert report["backend"] in ("auto", "cuda", "torch")
    kernel = report["cpu_kernel"]
    assert kernel["available"] is (cpu_kernel.load() is not None)
    if kernel["available"]:
        assert report["cpu_scan"].startswith("C kernel") and kernel["path"].endswith(".so")
    else:
        assert report["cpu_scan"] == "torch loop" and kernel["reason"]
