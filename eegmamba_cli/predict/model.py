"""Which checkpoint and which head `predict` uses, and how that head's training data were preprocessed.

`--model` accepts a checkpoint folder, a fold folder of a run or a run folder; which checkpoint each
stands for is the run folder's rule (training/run_folder.py `resolve_model`), the one evaluate uses.

Checkpoints are read only through `load_checkpoint` (safetensors + JSON, never unpickled).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from ..console import UserError, console
from ..data.base import CorpusError, CorpusInfo, default_passband, to_seconds
from ..data.pipeline import PreprocessParams
from ..data.registry import canonical_name, get_corpus
from ..training.checkpoint import load_checkpoint
from ..training.run_folder import resolve_model


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
        """The band the head's training data were filtered with (`--band`, else the corpus's own)."""
        own = self.corpus.passband(sfreq) if self.corpus is not None else default_passband(sfreq)
        return self.params.passband(own)

    def min_sfreq(self) -> float:
        """The lowest rate whose Nyquist frequency reaches the band's upper edge (100 Hz for 0.1-50 Hz)."""
        high = self.passband(1e9)[1]
        return 2.0 * high if high else 0.0


def resolve_checkpoint(path: Path, fold: int | None = None) -> Path:
    """The checkpoint `--model` stands for (see run_folder.resolve_model)."""
    return resolve_model(path, fold)


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
    """How the head's training data were filtered and normalised: from the checkpoint, else from its cache's
    info.json (older records lack `band` and say `zscore`: PreprocessParams.from_record reads them)."""
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
    recorded = {k: params[k] for k in ("normalize", "band", "eps") if k in params}
    try:
        return PreprocessParams.from_record({**recorded, "bad_channels": "skip"})
    except CorpusError as err:
        raise UserError(f"{record['name']}: the checkpoint records unusable preprocessing ({err})") from None
