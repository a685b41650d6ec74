"""Which checkpoint and which head `predict` uses, and how that head's training data were preprocessed.

`--model` accepts:
* a checkpoint folder (holding checkpoint.json and model.safetensors), used as is;
* a fold folder `fold-K/` of a run: its best/ checkpoint when the run selects by validation loss and one
  exists, else last/ (the same rule as `evaluate`);
* a run folder (the `--out` of `eegmamba train`): with `--fold K` that fold, otherwise the fold whose chosen
  checkpoint has the lowest recorded validation loss (ties and missing losses: the lowest fold number).
  Each fold's model saw four fifths of the subjects; none is better by construction, so the one that did
  best on its own held-out validation subjects is the sensible default.

Checkpoints are read only through `load_checkpoint` (safetensors + JSON, never unpickled).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

from ..console import UserError, console
from ..data.base import CorpusError, CorpusInfo, default_passband, to_seconds
from ..data.pipeline import PreprocessParams
from ..data.registry import canonical_name, get_corpus
from ..training.checkpoint import META_FILE, PICKLE_SUFFIXES, load_checkpoint, read_meta
from ..training.evaluation import pick_checkpoint


@dataclass
class Head:
    """One dataset head of a loaded model, with everything needed to feed it."""

    model: object  # EEGMamba in eval mode on its device
    checkpoint: Path
    index: int  # the dataset index the model is called with
    record: dict  # the checkpoint's dataset record: name, task, channels, class_names, window_samples...
    info: CorpusInfo  # the corpus description with the checkpoint's channels, classes and window
    corpus: object | None  # the registry corpus (for its passband and native labels), None for others
    params: PreprocessParams

    @property
    def name(self) -> str:
        return self.record["name"]

    @property
    def task(self) -> str:
        return self.record.get("task") or self.info.task

    @property
    def class_names(self) -> list[str]:
        return list(self.record["class_names"])

    @property
    def window_s(self) -> float:
        return self.info.window_s

    def passband(self, sfreq: float) -> tuple[float | None, float | None]:
        return self.corpus.passband(sfreq) if self.corpus is not None else default_passband(sfreq)

    def min_sfreq(self) -> float:
        """The lowest rate whose Nyquist frequency reaches the band's upper edge (100 Hz for 0.1-50 Hz)."""
        high = self.passband(1e9)[1]
        return 2.0 * high if high else 0.0


def resolve_checkpoint(path: Path, fold: int | None = None) -> Path:
    path = Path(path)
    pickle_file = path.suffix.lower() in PICKLE_SUFFIXES and path.is_file()  # load_checkpoint refuses it
    if (path / META_FILE).is_file() or path.name == META_FILE or pickle_file:  # unless the caller allows it
        return path
    if not path.is_dir():
        raise UserError(f"{path}: no such model folder (expected a run folder, fold-K/ or a checkpoint folder)")
    if _is_fold_dir(path):
        return _fold_checkpoint(path, _select_of(path.parent))
    folds = sorted((p for p in path.glob("fold-*") if _is_fold_dir(p)), key=lambda p: int(p.name[5:]))
    if not folds:
        raise UserError(f"{path}: not a checkpoint, fold or run folder (no {META_FILE}, no fold-K/)")
    select = _select_of(path)
    if fold is not None:
        chosen = [p for p in folds if int(p.name[5:]) == fold]
        if not chosen:
            raise UserError(f"{path}: no fold-{fold}/ (folds here: {', '.join(p.name[5:] for p in folds)})")
        return _fold_checkpoint(chosen[0], select)
    candidates = []
    for fold_dir in folds:
        checkpoint = pick_checkpoint(fold_dir, select)
        if checkpoint is not None:
            loss = read_meta(checkpoint)[1].get("best_val_loss")
            loss = float(loss) if isinstance(loss, (int, float)) and math.isfinite(loss) else math.inf
            candidates.append((loss, int(fold_dir.name[5:]), checkpoint))
    if not candidates:
        raise UserError(f"{path}: no fold has a checkpoint yet")
    loss, number, checkpoint = min(candidates, key=lambda c: (c[0], c[1]))
    if len(candidates) > 1:
        why = f"lowest validation loss {loss:.4f}" if math.isfinite(loss) else "lowest fold number"
        console.print(f"using fold {number} of {len(candidates)} ({why}; choose another with --fold)",
                      highlight=False)
    return checkpoint


def _is_fold_dir(path: Path) -> bool:
    return path.is_dir() and path.name.startswith("fold-") and path.name[5:].isdigit()


def _select_of(run_dir: Path) -> str:
    try:
        return json.loads((run_dir / "run.json").read_text())["config"].get("select", "best-val")
    except (OSError, ValueError, KeyError, TypeError):
        return "best-val"


def _fold_checkpoint(fold_dir: Path, select: str) -> Path:
    checkpoint = pick_checkpoint(fold_dir, select)
    if checkpoint is None:
        raise UserError(f"{fold_dir}: no checkpoint yet (no best/ or last/)")
    return checkpoint


def choose_dataset(meta: dict, wanted: str | None, where: Path) -> int:
    names = [d["name"] for d in meta["datasets"]]
    if wanted is None:
        if len(names) == 1:
            return 0
        raise UserError(f"{where}: the model has {len(names)} heads; choose one with --dataset "
                        f"({', '.join(names)})")
    key = wanted.strip().lower()
    if key not in names:
        try:
            key = canonical_name(wanted)
        except UserError:
            pass
    if key not in names:
        raise UserError(f"{where}: no head {wanted!r}; this model has {', '.join(names)}")
    return names.index(key)


def load_head(model_path: Path, dataset: str | None, device, fold: int | None = None,
              allow_pickle: bool = False) -> Head:
    """The head `dataset` of a model. `allow_pickle` (--allow-pickle-checkpoint) also accepts a .pt state
    dict beside a checkpoint.json, read with torch.load(weights_only=True); see training/checkpoint.py."""
    checkpoint = resolve_checkpoint(model_path, fold)
    model, meta = load_checkpoint(checkpoint, device, allow_pickle=allow_pickle)
    index = choose_dataset(meta, dataset, checkpoint)
    model.eval()
    record = meta["datasets"][index]
    corpus = _registry_corpus(record["name"])
    window_s = to_seconds(record["window_samples"], record.get("sfreq"))  # as the cache recorded it
    base = corpus.info if corpus is not None else CorpusInfo(
        name=record["name"], title=record["name"], task=record.get("task", "custom"), channels=(),
        native_sfreq=None, window_s=window_s, class_names=(), access="local", url="", licence="", citation="")
    info = replace(base, channels=tuple(record["channels"]), class_names=tuple(record["class_names"]),
                   window_s=window_s)
    return Head(model, checkpoint, index, record, info, corpus, _params(record, meta))


def _registry_corpus(name: str):
    try:
        return get_corpus(name)
    except CorpusError:
        return None  # a custom dataset: default passband, no native labels


def _params(record: dict, meta: dict) -> PreprocessParams:
    """The normalisation the head was trained with: from the checkpoint, else from its cache's info.json."""
    params = record.get("params")
    if params is None:
        cache_info = Path(str(meta.get("train", {}).get("data", ""))) / record["name"] / "info.json"
        try:
            info = json.loads(cache_info.read_text())
            if info.get("fingerprint") == record.get("fingerprint"):
                params = info.get("params")
        except (OSError, ValueError):
            pass
    if params is None:
        console.print(f"[yellow]note:[/] the checkpoint does not record how {record['name']} was normalised; "
                      "assuming the default per-window z-score", highlight=False)
        params = {}
    return PreprocessParams(normalize=params.get("normalize", "zscore"), eps=float(params.get("eps", 1e-6)),
                            bad_channels="skip")
