"""SSM ops: `*_ref` are the sequential truth; `*_fn` dispatch to the fast path of the active backend.

Modules hold the parameters; these functions hold the math (mamba_ssm's signatures and shapes).
"""
from .backend import KernelUnavailableError, backend_name, set_backend
from .causal_conv1d import causal_conv1d_fn, causal_conv1d_ref, causal_conv1d_torch
from .selective_scan import selective_scan_ref

# Until the fast scan lands, the dispatcher is the reference.
selective_scan_fn = selective_scan_ref

__all__ = ["selective_scan_fn", "selective_scan_ref",
           "causal_conv1d_fn", "causal_conv1d_ref", "causal_conv1d_torch",
           "backend_name", "set_backend", "KernelUnavailableError"]
