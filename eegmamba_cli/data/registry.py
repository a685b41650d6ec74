"""The corpus registry: one module per corpus under `eegmamba_cli/data/corpora/`, in the model's index order."""
from __future__ import annotations

import importlib
import os
from pathlib import Path

from ..console import UserError
from .base import Corpus

# The fixed dataset index order of the spec (§1); also the order of models.PAPER_DATASETS.
CORPUS_NAMES = ("siena", "chbmit", "sleepedf", "shhs", "deap", "seed", "shu", "bciiv2a")
TASKS = {"seizure": ("siena", "chbmit"), "sleep": ("sleepedf", "shhs"),
         "emotion": ("deap", "seed"), "mi": ("shu", "bciiv2a")}


def canonical_name(name: str) -> str:
    """The registry key for a user-typed corpus name (aliases accepted); UserError if unknown."""
    key = name.strip().lower().replace("-", "").replace("_", "")
    aliases = {"chb": "chbmit", "sleepedf20": "sleepedf", "bci2a": "bciiv2a", "bciiv": "bciiv2a"}
    key = aliases.get(key, key)
    if key not in CORPUS_NAMES and key != "custom":
        raise UserError(f"unknown dataset {name!r}; known: {', '.join(CORPUS_NAMES)}, custom")
    return key


def get_corpus(name: str) -> Corpus:
    key = canonical_name(name)
    return importlib.import_module(f"{__package__}.corpora.{key}").CORPUS


def all_corpora() -> list[Corpus]:
    return [get_corpus(n) for n in CORPUS_NAMES]


def data_root(root: str | Path | None = None) -> Path:
    """The data root: `root` if given, else $EEGMAMBA_DATA, else ./eegmamba-data.

    Raw files live under `<root>/raw/<name>/`, caches under `<root>/cache/<name>/`.
    """
    if root is not None:
        return Path(root)
    env = os.environ.get("EEGMAMBA_DATA", "").strip()
    return Path(env) if env else Path("eegmamba-data")
