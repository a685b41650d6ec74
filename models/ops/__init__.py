"""SSM ops: `*_ref` are the sequential truth; `*_fn` dispatch to the fast path of the active backend.

Modules hold the parameters; these functions hold the math (mamba_ssm's signatures and shapes).
"""
from .backend import KernelUnavailableError, backend_name, describe_backend, set_backend
from .causal_conv1d import causal_conv1d_fast, causal_conv1d_fn, causal_conv1d_ref, causal_conv1d_torch
from .max_pool import max_pool1d, max_pool1d_ref
from .spatial_conv import spatial_conv1d, spatial_conv1d_ref
from .selective_scan import selective_scan_fast, selective_scan_fn, selective_scan_ref

__all__ = ["selective_scan_fn", "selective_scan_ref", "selective_scan_fast",
           "causal_conv1d_fn", "causal_conv1d_ref", "causal_conv1d_torch", "causal_conv1d_fast",
           "spatial_conv1d", "spatial_conv1d_ref", "max_pool1d", "max_pool1d_ref",
           "backend_name", "set_backend", "describe_backend", "KernelUnavailableError"]
