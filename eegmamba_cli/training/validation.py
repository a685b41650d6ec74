"""The validation pass after each epoch: cross-entropy and accuracy per dataset, summed over DDP ranks."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..data.cache import WindowCache
from .splits import Split
from .distributed import DistInfo, all_reduce_sum
from .inference import cache_logits


def validation_sums(model: torch.nn.Module, caches: dict[str, WindowCache], splits: dict[str, Split],
                    labels: dict[str, np.ndarray], batch_size: int, device: torch.device,
                    info: DistInfo, precision: str = "auto",
                    crops: dict[str, int] | None = None) -> dict[str, tuple[float, float, float]]:
    """Per dataset: (Σ CE, Σ correct, n) over its validation windows, centre-cropped by `crops[name]`
    samples (the training crop). Each rank scores its own share of them; the sums are all-reduced, so every
    rank returns the totals."""
    out = torch.zeros(len(caches), 3, dtype=torch.float64, device=device)
    for d, (name, split) in enumerate(splits.items()):
        mine = np.array_split(split.val, info.world_size)[info.rank]
        if len(mine) == 0:
            continue
        logits = torch.from_numpy(cache_logits(model, caches[name], mine, d, batch_size, device, precision,
                                                     (crops or {}).get(name, 0)))
        y = torch.from_numpy(labels[name][mine])
        out[d, 0] += F.cross_entropy(logits, y, reduction="sum").item()
        out[d, 1] += (logits.argmax(1) == y).sum().item()
        out[d, 2] += len(mine)
    all_reduce_sum(out, info)
    return {name: tuple(out[d].tolist()) for d, name in enumerate(caches)}


def selection_loss(val_losses: list[float]) -> float | None:
    """The model-selection criterion: the unweighted mean over datasets of each dataset's mean validation
    CE, so a small corpus counts as much as SHHS. None without validation windows."""
    return float(np.mean(val_losses)) if val_losses else None
