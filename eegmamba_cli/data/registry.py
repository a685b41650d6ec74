"""The corpus registry, discovered from the modules under `eegmamba_cli/data/corpora/`.

Each module defines `CORPUS`, whose `info` is the corpus's only declaration. Everything here is derived
from those declarations: the registry names in the model's fixed index order (`CORPUS_NAMES`), the tasks
(`TASKS`), the aliases, the model's dataset specs, the segment lengths and the download sources. Adding a
corpus means adding one module; nothing else lists the corpora.
"""
from __future__ import annotations

import functools
import importlib
import os
import pkgutil
from pathlib import Path

from models import DatasetSpec

from . import corpora
from .base import Corpus, CorpusError


@functools.cache
def _discover() -> tuple[dict[str, Corpus], dict[str, str]]:
    """({name: corpus}, {module: why it could not be imported}); paper corpora first, in index order."""
    found, broken = {}, {}
    for module in sorted(m.name for m in pkgutil.iter_modules(corpora.__path__)):
        try:
            corpus = importlib.import_module(f"{corpora.__name__}.{module}").CORPUS
        except ImportError as err:  # a reader's dependency missing: say so for that corpus only
            broken[module] = f"{type(err).__name__}: {err}"
            continue
        found[corpus.info.name] = corpus
    indexed = sorted((c for c in found.values() if c.info.index is not None), key=lambda c: c.info.index)
    others = sorted((c for c in found.values() if c.info.index is None), key=lambda c: c.info.name)
    return {c.info.name: c for c in indexed + others}, broken


def registered() -> dict[str, Corpus]:
    """Every corpus: the paper's eight in the model's index order, then the others (custom)."""
    return dict(_discover()[0])


def names() -> list[str]:
    """Every registry name, those whose reader failed to import included (at the end)."""
    corpora_, broken = _discover()
    return [*corpora_, *sorted(set(broken) - set(corpora_))]


def paper_corpora() -> list[Corpus]:
    return [c for c in registered().values() if c.info.index is not None]


def _squash(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "")


def canonical_name(name: str) -> str:
    """The registry key for a user-typed corpus name (aliases accepted); CorpusError if unknown."""
    key = _squash(name)
    corpora_, broken = _discover()
    for corpus in corpora_.values():
        if key == corpus.info.name or key in (_squash(a) for a in corpus.info.aliases):
            return corpus.info.name
    if key in broken:
        return key
    raise CorpusError(f"unknown dataset {name!r}; known: {', '.join(corpora_)}")


def get_corpus(name: str) -> Corpus:
    key = canonical_name(name)
    corpora_, broken = _discover()
    if key in broken:
        raise CorpusError(f"{key}: the reader is not installed in this version ({broken[key]})")
    return corpora_[key]


def dataset_specs() -> tuple[DatasetSpec, ...]:
    """The model's dataset specs of the paper corpora, in index order (the checkpoint key order)."""
    return tuple(DatasetSpec(c.info.name, len(c.info.channels), len(c.info.class_names), c.info.task)
                 for c in paper_corpora())


def segment_samples() -> dict[str, int]:
    """Samples per window at 200 Hz for each paper corpus."""
    return {c.info.name: c.info.window_samples for c in paper_corpora()}


def downloadable() -> dict[str, Corpus]:
    """The corpora with an automatic download, by name."""
    return {n: c for n, c in registered().items() if c.info.download is not None}


def __getattr__(attr: str):
    # Derived lazily (PEP 562), so that importing the registry does not import every reader.
    if attr == "CORPUS_NAMES":
        return tuple(c.info.name for c in paper_corpora())
    if attr == "TASKS":
        tasks: dict[str, tuple[str, ...]] = {}
        for c in paper_corpora():
            tasks[c.info.task] = tasks.get(c.info.task, ()) + (c.info.name,)
        return tasks
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def data_root(root: str | Path | None = None) -> Path:
    """The data root: `root` if given, else $EEGMAMBA_DATA, else ./eegmamba-data.

    Raw files live under `<root>/raw/<name>/`, caches under `<root>/cache/<name>/`.
    """
    if root is not None:
        return Path(root)
    env = os.environ.get("EEGMAMBA_DATA", "").strip()
    return Path(env) if env else Path("eegmamba-data")
