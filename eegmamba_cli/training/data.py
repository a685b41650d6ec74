"""What training reads: which caches, and what a checkpoint records about each.

Which windows of a cache train, validate and test in a fold: splits.py, under the run's protocol.
"""
from __future__ import annotations

from pathlib import Path

from models import DatasetSpec

from ..console import UserError
from ..data.cache import WindowCache, find_caches
from ..data.registry import CORPUS_NAMES, TASKS, canonical_name, data_root


def default_cache_root() -> Path:
    """Where `eegmamba preprocess` writes by default: `$EEGMAMBA_DATA/cache`, else `./eegmamba-data/cache`."""
    return data_root() / "cache"


def _order_key(name: str) -> tuple[int, str]:
    # The paper's fixed index order first, any other dataset after, alphabetically.
    names = CORPUS_NAMES
    return (names.index(name), "") if name in names else (len(names), name)


def resolve_datasets(tasks: str, root: Path) -> dict[str, WindowCache]:
    """`all`, task names (seizure, sleep, emotion, mi) and dataset names, comma-separated -> caches."""
    found = find_caches(root) if root.is_dir() else {}
    words = [w.strip().lower() for w in tasks.split(",") if w.strip()]
    if not words:
        raise UserError("--tasks is empty; give 'all', task names or dataset names")
    wanted: list[str] = []
    for word in words:
        if word == "all":
            if not found:
                raise UserError(f"{root}: no finished caches found; run `eegmamba preprocess` first "
                                "or point --data at the cache folder")
            wanted += list(found)
        elif word in TASKS:
            wanted += list(TASKS[word])
        else:  # a cache's own name (custom datasets too), else a corpus name or alias (chb, sleepedf20)
            wanted.append(word if word in found else canonical_name(word))
    names = sorted(dict.fromkeys(wanted), key=_order_key)
    missing = [n for n in names if n not in found]
    if missing:
        raise UserError(f"{root}: no cache for {', '.join(missing)} "
                        f"(found: {', '.join(found) or 'none'}); run `eegmamba preprocess` first")
    return {n: found[n] for n in names}


def dataset_spec(cache: WindowCache) -> DatasetSpec:
    """The model's view of a cache: what the corpus declared, as preprocessing recorded it."""
    return DatasetSpec(cache.name, len(cache.channels), len(cache.class_names), cache.info.get("task", ""))


def dataset_record(cache: WindowCache, crop_samples: int = 0) -> dict:
    """What a checkpoint stores about a dataset so that a model can be used without its cache.

    The window is recorded as the cache holds it, in samples at `sfreq` (200 Hz); `predict` turns it back
    into seconds with `data.base.to_seconds`, the one conversion, so old checkpoints read the same way.
    `crop_samples` (only when > 0, so records of models trained on whole windows are unchanged): the model
    was trained on random crops that much shorter, and is scored on centre crops (inference.crop_for).
    """
    spec = dataset_spec(cache)
    record = dict(name=spec.name, n_channels=spec.n_channels, n_classes=spec.n_classes, task=spec.task,
                  class_names=cache.class_names, channels=cache.channels,
                  window_samples=cache.window_samples, sfreq=cache.info.get("sfreq"),
                  fingerprint=cache.fingerprint,
                  params=cache.info.get("params", {}))  # normalisation, for `predict` on raw recordings
    if crop_samples > 0:
        record["crop_samples"] = int(crop_samples)
    return record
