"""The one inference loop: a model in eval mode over batches of windows, at a precision (fp32 or bf16
autocast, decided by eegmamba_cli.precision).

Validation during training, `evaluate` and `predict` all call `logits` (directly or through
`cache_logits`), so they see the same numbers for the same windows at the same precision. A model trained
on random crops is scored on each window's centre crop of the same length (`crop`, the dataset record's
`crop_samples`: `crop_for`).
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from ..data.cache import WindowCache
from ..precision import autocast, resolve_precision
from .augment import centre_crop
from .batches import BatchReader
from .distributed import unwrap


def crop_for(record: dict) -> int:
    """The samples a head's windows lose before the model sees them (0 for models trained on whole ones)."""
    return int(record.get("crop_samples", 0))


def prefetch(load: Callable, items: Iterable, depth: int = 2) -> Iterator:
    """`map(load, items)` with up to `depth` items read ahead in a thread, so disk I/O overlaps compute."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(load, item))
            if len(pending) > depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


@torch.no_grad()
def logits(model: torch.nn.Module, batches: Iterable[np.ndarray | tuple[np.ndarray, np.ndarray | None]],
           dataset: int, device: torch.device, n_classes: int, precision: str = "auto",
           crop: int = 0) -> np.ndarray:
    """float32 logits (n, K) of `model` in eval mode on the window batches (B, C, L), in order, at
    `precision` (fp32 | bf16 | auto); a batch may come as (windows, lengths) with lengths (B,) the valid
    samples of right-padded windows (batches.py). `crop` > 0: each window's centre, `crop` samples shorter."""
    device = torch.device(device)
    precision = resolve_precision(precision, device)
    model.eval()
    net = unwrap(model)  # classify is not DDP's to wrap
    out = []
    for batch in batches:
        x, lengths = batch if isinstance(batch, tuple) else (batch, None)
        xt, lengths = centre_crop(torch.from_numpy(np.ascontiguousarray(x)), lengths, crop)
        xt = xt.to(device)
        lt = None if lengths is None else torch.from_numpy(lengths).to(device)
        with autocast(device, precision):
            batch_logits = net.classify(xt, dataset, lt)  # (B, K)
        out.append(batch_logits.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, n_classes), np.float32)


def window_logits(model: torch.nn.Module, windows: np.ndarray, dataset: int, batch_size: int,
                  device: torch.device, n_classes: int, precision: str = "auto", crop: int = 0) -> np.ndarray:
    """`logits` of an array of windows (n, C, L), `batch_size` at a time."""
    batches = (windows[i:i + batch_size] for i in range(0, len(windows), batch_size))
    return logits(model, batches, dataset, device, n_classes, precision, crop)


def cache_logits(model: torch.nn.Module, cache: WindowCache, rows: np.ndarray, dataset: int, batch_size: int,
                 device: torch.device, precision: str = "auto", crop: int = 0) -> np.ndarray:
    """`logits` of the manifest rows `rows` of `cache`, the next batches read while one runs."""
    chunks = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
    return logits(model, prefetch(BatchReader(cache), chunks), dataset, device, len(cache.class_names), precision,
                  crop)


def probabilities(logits_: np.ndarray) -> np.ndarray:
    """Softmax over classes in float64 (n, K): rows sum to 1 to float64 precision."""
    return torch.softmax(torch.from_numpy(logits_).double(), dim=1).numpy()
