"""One switch for the fast path: EEGMAMBA_BACKEND=auto|cuda|torch (read once, cached).

* torch: our own CPU/GPU ops (compiled CPU kernel where available, pure-PyTorch otherwise).
* cuda:  mamba-ssm / causal-conv1d kernels; an error at first use if they cannot be imported.
* auto:  the kernels for CUDA tensors when importable, our ops for everything else. Never fails.

The CUDA packages are imported lazily, on the first CUDA-tensor call (or `describe_backend()`),
never at module import: an ABI break after a torch upgrade shows up as OSError/ImportError
("undefined symbol"), which `auto` records and survives.
"""
from __future__ import annotations

import functools
import importlib
import os
from typing import Callable

BACKENDS = ("auto", "cuda", "torch")

INSTALL_RECIPE = (
    "Install the kernels with the torch you use already installed, without build isolation:\n"
    "  MAMBA_FORCE_BUILD=TRUE CAUSAL_CONV1D_FORCE_BUILD=TRUE "
    "pip install --no-build-isolation -e \".[cuda]\"\n"
    "(needs nvcc; *_FORCE_BUILD=TRUE builds locally instead of downloading a wheel; newer\n"
    "mamba-ssm releases also need MAMBA_KEEP_CUDA_BUILD=TRUE for the Mamba-1 scan). "
    "Or run with EEGMAMBA_BACKEND=auto or torch."
)

# op name -> (pip package, module, attribute)
CUDA_OPS = {
    "selective_scan": ("mamba-ssm", "mamba_ssm.ops.selective_scan_interface", "selective_scan_fn"),
    "causal_conv1d": ("causal-conv1d", "causal_conv1d", "causal_conv1d_fn"),
}


class KernelUnavailableError(RuntimeError):
    """EEGMAMBA_BACKEND=cuda, but the CUDA kernels cannot be used."""


@functools.lru_cache(maxsize=1)
def backend_name() -> str:
    name = os.environ.get("EEGMAMBA_BACKEND", "auto").strip().lower() or "auto"
    if name not in BACKENDS:
        raise ValueError(f"EEGMAMBA_BACKEND must be one of {', '.join(BACKENDS)}, got {name!r}")
    return name


def set_backend(name: str) -> None:
    """Override the switch for this process (the CLI's --backend). A bad name changes nothing."""
    name = name.strip().lower()
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    os.environ["EEGMAMBA_BACKEND"] = name
    backend_name.cache_clear()


@functools.lru_cache(maxsize=None)
def probe_cuda_op(op: str) -> tuple[Callable | None, str]:
    """(the kernel function, "") or (None, why not). Imported once per process."""
    package, module, attribute = CUDA_OPS[op]
    try:
        return getattr(importlib.import_module(module), attribute), ""
    except (ImportError, OSError, AttributeError) as err:  # OSError: undefined symbol / ABI
        return None, f"{package} not usable ({type(err).__name__}: {err})"


def cuda_op(op: str, tensor) -> Callable | None:
    """The CUDA kernel to run `op` on `tensor` under the active backend, or None for our ops."""
    name = backend_name()
    if name == "torch":
        return None
    if name == "auto":
        return probe_cuda_op(op)[0] if tensor.is_cuda else None
    kernel, why = probe_cuda_op(op)  # "cuda": the kernels are required
    if kernel is None:
        raise KernelUnavailableError(f"EEGMAMBA_BACKEND=cuda but {why}.\n{INSTALL_RECIPE}")
    if not tensor.is_cuda:
        raise KernelUnavailableError(
            f"EEGMAMBA_BACKEND=cuda runs {op} only on CUDA tensors, got a {tensor.device} tensor; "
            "use EEGMAMBA_BACKEND=auto to run CPU tensors on our own ops.")
    return kernel


def describe_backend() -> dict:
    """Environment report: the switch, the CPU scan in use (and why), the CUDA kernels."""
    import torch

    from . import cpu_kernel

    kernel = cpu_kernel.status()
    report = {
        "backend": backend_name(),
        "cpu_scan": (f"C kernel ({torch.get_num_threads()} threads)" if kernel["available"]
                     else "torch loop"),
        "cpu_kernel": kernel,
        "cuda_available": torch.cuda.is_available(),
    }
    for op, (package, _, _) in CUDA_OPS.items():
        fn, why = probe_cuda_op(op)
        report[package] = {"available": fn is not None, "reason": why}
    return report
