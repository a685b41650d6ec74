"""The run folder of `eegmamba train`: its layout, its records and which checkpoint stands for a fold.

    RUN/
      run.json                 the run record: resolved settings, model config, datasets, versions,
                               every invocation
      .lock                    held by whoever writes into RUN (train, evaluate)
      fold-K/
        run.json               the fold record: the run record plus the subjects and sizes of each split
        metrics.jsonl, .csv    one row per epoch
        last/                  the checkpoint of the latest epoch (with the optimizer state)
        best/                  the checkpoint of the lowest validation loss so far
        predictions/<dataset>.parquet   written by evaluate
      results.csv, results.json, confusion/<dataset>.png   written by evaluate
      peers.csv, peers.png     written by evaluate --peers: EEGMamba beside the peer baselines

This module is the only one that spells these names: train, evaluate, predict and the demo all go
through `RunFolder` and `FoldFolder`.
"""
from __future__ import annotations

import contextlib
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..console import UserError, console
from ..fileio import atomic_write_json, atomic_write_text, directory_lock
from ..tables import write_csv


class _Checkpoints:
    """training.checkpoint, imported on first use: the CLI reads SELECTIONS from this module at start-up,
    and checkpoint.py loads torch."""

    def __getattr__(self, name: str):
        from . import checkpoint
        return getattr(checkpoint, name)


ckpt = _Checkpoints()

RUN_RECORD = "run.json"
FOLD_PREFIX = "fold-"
BEST, LAST = "best", "last"
SELECTIONS = ("best-val", "final")  # which checkpoint stands for a fold: lowest validation loss, last epoch
DEFAULT_SELECT = SELECTIONS[0]


@dataclass(frozen=True)
class FoldFolder:
    path: Path
    number: int

    @property
    def record_path(self) -> Path:
        return self.path / RUN_RECORD

    @property
    def last(self) -> Path:
        return self.path / LAST

    @property
    def best(self) -> Path:
        return self.path / BEST

    @property
    def metrics_jsonl(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def metrics_csv(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def predictions(self) -> Path:
        return self.path / "predictions"

    def predictions_file(self, dataset: str) -> Path:
        return self.predictions / f"{dataset}.parquet"

    def has_checkpoint(self, which: Path) -> bool:
        return (which / ckpt.META_FILE).exists()

    def resumable_checkpoint(self) -> Path | None:
        """last/, or its predecessor when a save died between the two renames of `checkpoint.publish`."""
        found = [d for d in (self.last, ckpt.aside(self.last)) if self.has_checkpoint(d)]
        return found[0] if found else None

    def pick(self, select: str) -> Path | None:
        """best/ when selecting by validation loss and it exists, else last/; None if neither."""
        if select == "best-val" and self.has_checkpoint(self.best):
            return self.best
        if self.has_checkpoint(self.last):
            if select == "best-val":
                console.print(f"[yellow]warning:[/] {self.path}: no {BEST}/ checkpoint (no validation set?); "
                              f"using {LAST}/")
            return self.last
        return None

    def epochs_trained(self) -> int | None:
        """The epoch of last/ (None without one)."""
        return ckpt.read_meta(self.last)[1].get("epoch", 0) if self.last.is_dir() else None

    def stopped_early(self) -> bool:
        """Whether the fold's last metrics row says early stopping ended it (it is then complete)."""
        rows = self.read_metrics(before_epoch=10**9)
        return bool(rows and rows[-1].get("stopped"))

    def temporary(self, which: Path, epoch: int) -> Path:
        """Where a checkpoint for `which` is written before `checkpoint.publish` renames it into place."""
        return self.path / f".tmp-{which.name}-{epoch}"

    def recover(self) -> None:
        """Undo a half-finished publish of last/ or best/ and drop abandoned temporary checkpoints."""
        for final in (self.last, self.best):
            ckpt.recover(final)
        for tmp in self.path.glob(".tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True)

    def clear(self) -> None:
        """Forget this fold's checkpoints, metrics and predictions (a fresh start)."""
        for folder in (self.last, self.best, self.predictions):
            shutil.rmtree(folder, ignore_errors=True)
        for file in (self.metrics_jsonl, self.metrics_csv):
            file.unlink(missing_ok=True)

    def write_record(self, record: dict) -> None:
        atomic_write_json(self.record_path, record)

    def read_record(self) -> dict:
        return json.loads(self.record_path.read_text())

    def write_metrics(self, rows: list[dict]) -> None:
        atomic_write_text(self.metrics_jsonl, "".join(json.dumps(r) + "\n" for r in rows))
        write_csv(self.metrics_csv, rows)

    def read_metrics(self, before_epoch: int) -> list[dict]:
        """The rows of epochs before `before_epoch` (rows written after the last whole checkpoint are dropped)."""
        if not self.metrics_jsonl.exists():
            return []
        try:
            rows = [json.loads(line) for line in self.metrics_jsonl.read_text().splitlines() if line.strip()]
            return [r for r in rows if r["epoch"] < before_epoch]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UserError(f"{self.metrics_jsonl}: unreadable ({type(err).__name__}: {err}); move it away to "
                            "resume without the earlier epochs' metrics, or start the fold over") from None


class RunFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def record_path(self) -> Path:
        return self.path / RUN_RECORD

    @property
    def results_csv(self) -> Path:
        return self.path / "results.csv"

    @property
    def results_json(self) -> Path:
        return self.path / "results.json"

    @property
    def confusion(self) -> Path:
        return self.path / "confusion"

    def confusion_png(self, dataset: str) -> Path:
        return self.confusion / f"{dataset}.png"

    @property
    def peers_csv(self) -> Path:
        return self.path / "peers.csv"

    @property
    def peers_png(self) -> Path:
        return self.path / "peers.png"

    def fold(self, number: int) -> FoldFolder:
        return FoldFolder(self.path / f"{FOLD_PREFIX}{number}", number)

    def folds(self) -> list[FoldFolder]:
        """The fold folders present, by fold number."""
        found = [FoldFolder(p, int(p.name[len(FOLD_PREFIX):])) for p in self.path.glob(f"{FOLD_PREFIX}*")
                 if p.is_dir() and p.name[len(FOLD_PREFIX):].isdigit()]
        return sorted(found, key=lambda f: f.number)

    @contextlib.contextmanager
    def lock(self, holder: str) -> Iterator[None]:
        """The folder's exclusive lock (see fileio.directory_lock): one writer at a time."""
        with directory_lock(self.path, holder):
            yield

    # -- the run record --------------------------------------------------------------------------------
    def read(self) -> dict:
        """The run record, checked enough that evaluate can rebuild the splits from it."""
        if not self.record_path.is_file():
            raise UserError(f"{self.path}: not an eegmamba training run (no {RUN_RECORD}); pass the output "
                            "folder of `eegmamba train`")
        try:
            run = json.loads(self.record_path.read_text())
        except (OSError, ValueError) as err:
            raise UserError(f"{self.record_path}: unreadable ({err})") from None
        config = run.get("config") if isinstance(run, dict) else None
        needed = ("epochs", "val_fraction", "seed", "data")
        if not isinstance(config, dict) or any(k not in config for k in needed):
            raise UserError(f"{self.record_path}: not a run record of eegmamba train (no config with "
                            f"{', '.join(needed)})")
        return run

    def select(self) -> str:
        """The run's checkpoint selection; the default for a run record that is missing or unreadable."""
        try:
            return json.loads(self.record_path.read_text())["config"].get("select", DEFAULT_SELECT)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return DEFAULT_SELECT

    def invocations(self) -> list[dict]:
        """The invocations recorded so far ([] for a new run)."""
        if not self.record_path.exists():
            return []
        try:
            previous = json.loads(self.record_path.read_text())["invocations"]
            if not isinstance(previous, list):
                raise TypeError("invocations is not a list")
        except (OSError, ValueError, KeyError, TypeError):
            raise UserError(f"{self.record_path}: unreadable run record (not written by eegmamba train?); move "
                            "it away or train into another folder") from None
        return previous

    def write_record(self, record: dict) -> None:
        atomic_write_json(self.record_path, record)


# --- a model path -> one checkpoint ----------------------------------------------------------------
def is_fold_folder(path: Path) -> bool:
    return path.is_dir() and path.name.startswith(FOLD_PREFIX) and path.name[len(FOLD_PREFIX):].isdigit()


def resolve_model(path: str | Path, fold: int | None = None) -> Path:
    """The checkpoint a model path stands for.

    * a checkpoint folder (or a file in one, or a pickle file the loader may refuse), or an exported model
      folder (`eegmamba export`): itself;
    * a fold folder: its best/ checkpoint when the run selects by validation loss and one exists, else
      last/ (the rule evaluate uses);
    * a run folder: fold `fold`, or else the fold whose chosen checkpoint has the lowest recorded
      validation loss (ties and missing losses: the lowest fold number). Each fold's model saw four
      fifths of the subjects; none is better by construction, so the one that did best on its own
      held-out validation subjects is the sensible default.
    """
    path = Path(path)
    pickle_file = path.suffix.lower() in ckpt.PICKLE_SUFFIXES and path.is_file()
    if (path / ckpt.META_FILE).is_file() or path.name == ckpt.META_FILE or pickle_file:
        return path
    if (path / ckpt.EXPORT_META_FILE).is_file() and (path / ckpt.MODEL_FILE).is_file():
        return path
    if not path.is_dir():
        raise UserError(f"{path}: no such model folder (expected a run folder, a fold folder or a checkpoint "
                        "folder)")
    if is_fold_folder(path):
        return _fold_checkpoint(FoldFolder(path, int(path.name[len(FOLD_PREFIX):])), RunFolder(path.parent).select())
    run = RunFolder(path)
    folds = run.folds()
    if not folds:
        raise UserError(f"{path}: not a checkpoint, fold or run folder (no {ckpt.META_FILE}, no "
                        f"{FOLD_PREFIX}K/)")
    if fold is None:
        return _best_fold_checkpoint(run, folds)
    chosen = [f for f in folds if f.number == fold]
    if not chosen:
        raise UserError(f"{path}: no {FOLD_PREFIX}{fold}/ (folds here: {', '.join(str(f.number) for f in folds)})")
    return _fold_checkpoint(chosen[0], run.select())


def _best_fold_checkpoint(run: RunFolder, folds: list[FoldFolder]) -> Path:
    """The chosen checkpoint of the fold with the lowest recorded validation loss."""
    candidates = []
    for folder in folds:
        checkpoint = folder.pick(run.select())
        if checkpoint is not None:
            loss = ckpt.read_meta(checkpoint)[1].get("best_val_loss")
            loss = float(loss) if isinstance(loss, (int, float)) and math.isfinite(loss) else math.inf
            candidates.append((loss, folder.number, checkpoint))
    if not candidates:
        raise UserError(f"{run.path}: no fold has a checkpoint yet")
    loss, number, checkpoint = min(candidates, key=lambda c: (c[0], c[1]))
    if len(candidates) > 1:
        why = f"lowest validation loss {loss:.4f}" if math.isfinite(loss) else "lowest fold number"
        console.print(f"using fold {number} of {len(candidates)} ({why}; another fold can be chosen explicitly)",
                      highlight=False)
    return checkpoint


def _fold_checkpoint(folder: FoldFolder, select: str) -> Path:
    checkpoint = folder.pick(select)
    if checkpoint is None:
        raise UserError(f"{folder.path}: no checkpoint yet (no {BEST}/ or {LAST}/)")
    return checkpoint
