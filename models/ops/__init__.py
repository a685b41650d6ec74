"""SSM ops: `*_ref` are the sequential truth; `*_fn` dispatch to the fast path of the active backend."""
from .backend import backend_name, set_backend
from .causal_conv1d import causal_conv1d_ref
from .selective_scan import selective_scan_ref

# Until the fast paths land, the dispatchers are the references.
selective_scan_fn = selective_scan_ref
causal_conv1d_fn = causal_conv1d_ref

__all__ = ["selective_scan_fn", "selective_scan_ref", "causal_conv1d_fn", "causal_conv1d_ref",
           "backend_name", "set_backend"]
