"""What training reads: which caches, which windows of each go to train / validation / test for a fold.

Folds come from the manifest's `fold` column (spec §12): 1–5 is the subject's test fold, 0 means the
subject belongs to no test fold. Fold-0 subjects are never tested; they are training (or validation)
subjects in every fold.

For fold K (spec §16 #22):
* test       = the windows of the subjects whose fold is K;
* validation = a reproducible ~10 % (at least one) of the remaining subjects, chosen from (seed, fold);
* training   = the rest.
Splits are by subject, so no subject's windows ever appear in two of the three sets.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models import DatasetSpec

from ..console import UserError
from ..data.cache import WindowCache, find_caches
from ..data.registry import CORPUS_NAMES, TASKS, canonical_name, data_root
from .sampler import epoch_rng


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


def dataset_record(cache: WindowCache) -> dict:
    """What a checkpoint stores about a dataset so that a model can be used without its cache.

    The window is recorded as the cache holds it, in samples at `sfreq` (200 Hz); `predict` turns it back
    into seconds with `data.base.to_seconds`, the one conversion, so old checkpoints read the same way.
    """
    spec = dataset_spec(cache)
    return dict(name=spec.name, n_channels=spec.n_channels, n_classes=spec.n_classes, task=spec.task,
                class_names=cache.class_names, channels=cache.channels,
                window_samples=cache.window_samples, sfreq=cache.info.get("sfreq"),
                fingerprint=cache.fingerprint,
                params=cache.info.get("params", {}))  # normalisation, for `predict` on raw recordings


def available_folds(caches: dict[str, WindowCache]) -> list[int]:
    return sorted({int(f) for c in caches.values() for f in np.unique(c.folds) if f > 0})


@dataclass
class Split:
    """Manifest row indices of one dataset for one fold (int64, ascending)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    subjects: dict[str, list[str]]  # train / val / test -> subject ids

    def sizes(self) -> dict[str, int]:
        return {k: int(len(getattr(self, k))) for k in ("train", "val", "test")}


def _stable_key(name: str) -> int:
    return zlib.crc32(name.encode())  # Python's hash() is salted per process; this is not


def _cap(rows: np.ndarray, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    if limit is None or len(rows) <= limit:
        return rows
    return np.sort(rng.choice(rows, size=limit, replace=False))


def split_fold(cache: WindowCache, fold: int, *, val_fraction: float, seed: int,
               max_windows: int | None = None) -> Split:
    """Subject-grouped train / validation / test rows of `cache` for test fold `fold`."""
    subjects, folds = cache.subjects, cache.folds
    test_mask = folds == fold
    pool = sorted(set(subjects[~test_mask]))  # fold-0 subjects are in the pool: they train
    rng = epoch_rng(seed, fold, _stable_key(cache.name))
    n_val = max(1, int(val_fraction * len(pool) + 0.5)) if val_fraction > 0 else 0
    if n_val and len(pool) < 2:
        raise UserError(f"{cache.directory}: fold {fold} leaves {len(pool)} training subject(s), too few "
                        "to hold one out for validation; pass --val-fraction 0 with --select final")
    val_subjects = sorted(rng.choice(pool, size=n_val, replace=False).tolist()) if n_val else []
    val_mask = np.isin(subjects, val_subjects)
    train_mask = ~test_mask & ~val_mask
    # Subsampling for quick runs draws from its own generator so the split itself does not depend on it.
    cap_rng = epoch_rng(seed, fold, _stable_key(cache.name), 1)
    rows = {k: _cap(np.flatnonzero(m), max_windows, cap_rng)
            for k, m in (("train", train_mask), ("val", val_mask), ("test", test_mask))}
    return Split(**rows, subjects={
        "train": sorted(set(subjects[train_mask])), "val": val_subjects,
        "test": sorted(set(subjects[test_mask]))})
