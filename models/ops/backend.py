"""One switch for the fast path: EEGMAMBA_BACKEND=auto|cuda|torch (read once, cached).

* torch: our own CPU/GPU ops (compiled CPU kernel where available, pure-PyTorch otherwise).
* cuda:  mamba-ssm / causal-conv1d kernels; an error if they cannot be imported.
* auto:  the kernels for CUDA tensors when importable, our ops for everything else. Never fails.
"""
from __future__ import annotations

import functools
import os

BACKENDS = ("auto", "cuda", "torch")


@functools.lru_cache(maxsize=1)
def backend_name() -> str:
    name = os.environ.get("EEGMAMBA_BACKEND", "auto").strip().lower() or "auto"
    if name not in BACKENDS:
        raise ValueError(f"EEGMAMBA_BACKEND must be one of {', '.join(BACKENDS)}, got {name!r}")
    return name


def set_backend(name: str) -> None:
    """Override the switch for this process (the CLI's --backend)."""
    os.environ["EEGMAMBA_BACKEND"] = name
    backend_name.cache_clear()
    backend_name()
