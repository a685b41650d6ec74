"""Which windows of each dataset train, validate and test in each fold, under the run's protocol.

The protocol (training/protocols.py) is chosen at `train` time and applied to a table built from each
cache's manifest (`protocol_table`). Every split is a pure function of (seed, protocol, dataset): the
protocol's splitters are seeded with the run's seed, and the optional per-dataset cap on windows draws
from its own generator keyed by (seed, fold, dataset). A resumed run, and `evaluate`, therefore rebuild
exactly the rows a fold trained, validated and tested on.

Fold numbers are shared across datasets: fold K of a multi-task run is fold K of every dataset. A dataset
whose protocol makes fewer folds than another (loso over corpora of different sizes) trains on all its
windows in the folds it lacks, and is neither validated nor tested there.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..console import UserError
from ..data.cache import WindowCache
from ..data.registry import CORPUS_NAMES
from .protocols import Protocol, ProtocolError, describe, make_folds
from .sampler import epoch_rng


@dataclass
class Split:
    """Manifest row indices of one dataset for one fold (int64, ascending), and what the fold holds out."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    holds_out: dict = field(default_factory=dict)  # protocols.Fold.holds_out; {} where the dataset has no such fold
    subjects: dict[str, list[str]] = field(default_factory=dict)  # train / val / test -> subject ids

    def sizes(self) -> dict[str, int]:
        return {k: int(len(getattr(self, k))) for k in ("train", "val", "test")}


def protocol_table(cache: WindowCache, *, fixed_folds: bool | None = None) -> pd.DataFrame:
    """One row per window of `cache`: subject, session, run, event, label (and fold) for make_folds.

    `run` and `event` come from the manifest when it has them. Without them a recording stands for a run
    and each window for its own event. `fold` (the corpus's fixed test folds) is kept for the paper's
    corpora, whose folds are the published ones; other caches get grouped k-fold. `fixed_folds=True` keeps
    it for every cache (runs trained before protocols existed split that way)."""
    m = cache.manifest
    table = pd.DataFrame({"subject": m["subject"].astype(str).to_numpy(),
                          "session": m["session"].astype(str).to_numpy(),
                          "run": (m["run"] if "run" in m.columns else m["recording"]).astype(str).to_numpy(),
                          "label": m["label"].to_numpy()})
    if "event" in m.columns:
        table["event"] = m["event"].astype(str).to_numpy()
    else:
        table["event"] = (m["recording"].astype(str) + "#" + m["window"].astype(str)).to_numpy()
    if fixed_folds if fixed_folds is not None else cache.name in CORPUS_NAMES:
        table["fold"] = m["fold"].to_numpy()
    return table


@dataclass
class DatasetFolds:
    """One dataset's folds under the protocol: the Split of each fold number and protocols.describe()."""

    splits: dict[int, Split]
    description: dict


def dataset_folds(cache: WindowCache, protocol: Protocol, *, max_windows: int | None = None,
                  fixed_folds: bool | None = None, train_fraction: float | None = None) -> DatasetFolds:
    """Every fold of `cache` under `protocol`; a table that cannot give sound folds is one line naming it.

    `train_fraction`: keep that share of each fold's training windows, per class (learning curves);
    validation and test windows are untouched."""
    table = protocol_table(cache, fixed_folds=fixed_folds)
    try:
        folds = make_folds(protocol, table)
    except ProtocolError as err:
        raise UserError(f"{cache.directory}: {err}") from None
    subjects = table["subject"].to_numpy()
    splits = {}
    for f in folds:
        # Subsampling for quick runs draws from its own generator so the split itself does not depend on it.
        rng = epoch_rng(protocol.seed, f.number, _stable_key(cache.name), 1)
        rows = {k: _cap(getattr(f, k), max_windows, rng) for k in ("train", "val", "test")}
        if train_fraction is not None and train_fraction < 1:
            rows["train"] = stratified_share(rows["train"], table["label"].to_numpy(), train_fraction,
                                             epoch_rng(protocol.seed, f.number, _stable_key(cache.name), 2))
        splits[f.number] = Split(**rows, holds_out=f.holds_out,
                                 subjects={k: sorted(set(subjects[v].tolist())) for k, v in rows.items()})
    return DatasetFolds(splits, describe(protocol, folds))


def split_for(folds: DatasetFolds, number: int, n_windows: int) -> Split:
    """Fold `number` of a dataset; all its windows train when its protocol made no such fold."""
    if number in folds.splits:
        return folds.splits[number]
    empty = np.zeros(0, dtype=np.int64)
    return Split(np.arange(n_windows, dtype=np.int64), empty, empty, {}, {})


def fold_numbers(per_dataset: dict[str, DatasetFolds]) -> list[int]:
    return sorted({n for d in per_dataset.values() for n in d.splits})


def _stable_key(name: str) -> int:
    return zlib.crc32(name.encode())  # Python's hash() is salted per process; this is not


def stratified_share(rows: np.ndarray, labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """`fraction` of `rows`, drawn per class (at least one window of each class present), ascending."""
    kept = []
    for label in np.unique(labels[rows]):
        of_class = rows[labels[rows] == label]
        kept.append(rng.choice(of_class, size=max(1, round(fraction * len(of_class))), replace=False))
    return np.sort(np.concatenate(kept)).astype(np.int64) if kept else rows.astype(np.int64)


def _cap(rows: np.ndarray, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    if limit is None or len(rows) <= limit:
        return rows.astype(np.int64)
    return np.sort(rng.choice(rows, size=limit, replace=False)).astype(np.int64)
