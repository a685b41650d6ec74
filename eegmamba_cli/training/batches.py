"""Batches as the model takes them: windows of variable length cropped to the batch's longest member.

A cache whose windows differ in length (a manifest column `length`: the valid samples of each window, the
array right-padded to the cache's width) gives each batch its lengths, so the model masks the padding
(`EEGMamba.forward(x, dataset, lengths)`). Cropping to the longest member of the batch spares the compute
on columns that are padding in every window. A cache without the column gives full windows and no lengths.
Training, validation and inference all read batches through `BatchReader`.
"""
from __future__ import annotations

import numpy as np

from ..data.cache import WindowCache

LENGTH_COLUMN = "length"


def crop_to_longest(x: np.ndarray, lengths: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Windows (B, C, L) right-padded to L, valid samples `lengths` (B,) -> (B, C, max(lengths)), lengths.

    Without lengths the batch is returned as it is."""
    if lengths is None:
        return x, None
    lengths = np.asarray(lengths)
    if lengths.shape != (len(x),) or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(f"lengths must be one whole number per window: {len(x)} windows, lengths {lengths.shape} "
                         f"{lengths.dtype}")
    if len(x) and (lengths.min() < 1 or lengths.max() > x.shape[-1]):
        raise ValueError(f"lengths must be from 1 to the window width {x.shape[-1]}, got {lengths.min()} to "
                         f"{lengths.max()}")
    longest = int(lengths.max()) if len(x) else x.shape[-1]
    return np.ascontiguousarray(x[..., :longest]), lengths.astype(np.int64)


class BatchReader:
    """`reader(rows)` -> (windows (B, C, L_batch) float32, lengths (B,) int64 or None) for manifest rows."""

    def __init__(self, cache: WindowCache):
        self.cache = cache
        manifest = cache.manifest
        self.lengths = manifest[LENGTH_COLUMN].to_numpy(np.int64) if LENGTH_COLUMN in manifest.columns else None

    def __call__(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        x = self.cache.windows(rows)
        return crop_to_longest(x, None if self.lengths is None else self.lengths[rows])
