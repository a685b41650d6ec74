"""The Python API: a trained model in a notebook, and a preprocessed cache as a PyTorch Dataset.

    model = from_pretrained("my-export")           # an export folder, run, fold or checkpoint folder,
                                                   # or a Hugging Face Hub repo id (with the [hub] extra)
    table = model.predict(raw, dataset="sleepedf")  # an MNE Raw, a recording file, or an array
    ds = CacheDataset("cache/sleepedf", fold=1, split="train")

`predict` goes through the code `eegmamba predict` runs: the same channel matching, filter, resampling to
200 Hz, windowing and normalisation (data/pipeline.py), then training/inference.py. Worked examples:
docs/python-api.md.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from .console import UserError
from .data.cache import WindowCache
from .predict.model import Head, choose_dataset, load_head
from .predict.run import predict_recording, predict_windows, prepare_raw
from .training import checkpoint as ckpt
from .training.run_folder import resolve_model

__all__ = ["EEGMambaModel", "from_pretrained", "CacheDataset"]

HUB_HINT = 'install the Hugging Face Hub client with: pip install "eegmamba[hub]"'


class EEGMambaModel:
    """A trained EEGMamba with its heads' preprocessing. Build it with `from_pretrained`."""

    def __init__(self, checkpoint: Path, meta: dict, device: str | torch.device = "cpu"):
        self.checkpoint, self.meta, self.device = Path(checkpoint), meta, torch.device(device)
        self._heads: dict[str, Head] = {}

    @property
    def datasets(self) -> list[str]:
        """The heads, by dataset name."""
        return [d["name"] for d in self.meta["datasets"]]

    def head(self, dataset: str | None = None) -> Head:
        """One head with its channels, classes, window and preprocessing (`dataset` may be left out when
        the model has one head)."""
        name = self.datasets[choose_dataset(self.meta, dataset, self.checkpoint)]
        if name not in self._heads:
            self._heads[name] = load_head(self.checkpoint, name, self.device)
        return self._heads[name]

    @property
    def module(self) -> torch.nn.Module:
        """The underlying torch model (`EEGMamba`), in eval mode, for a training loop of your own."""
        return self.head(self.datasets[0]).model

    def predict(self, data, *, dataset: str | None = None, sfreq: float | None = None,
                ch_names: Sequence[str] | None = None, batch_size: int = 32, precision: str = "fp32",
                channel_map: str | Path | None = None) -> pd.DataFrame:
        """Classify every window of `data`: one row per window (start_s, end_s, prediction, p_<class>...).

        `data` is a recording file (.edf, .bdf, .gdf, .fif, .vhdr, .set), an MNE Raw, or an array (C, T)
        in volts, as MNE holds EEG, with `sfreq` and `ch_names`. Channels are matched to the head's by
        name (aliases, references, bipolar derivations), as `eegmamba predict` matches them."""
        head = self.head(dataset)
        mapping = Path(channel_map) if channel_map is not None else None
        if isinstance(data, (str, Path)):
            return predict_recording(Path(data), head, channel_map=mapping, batch_size=batch_size,
                                     device=self.device, precision=precision).windows
        raw, name = _as_raw(data, sfreq, ch_names)
        windows = prepare_raw(raw, head, name, mapping)
        return predict_windows(Path(name), windows, head, batch_size=batch_size, device=self.device,
                               precision=precision).windows

    def save_pretrained(self, out: str | Path) -> Path:
        """Write this model as an export folder (config.json, model.safetensors, README.md)."""
        from .training.export import export_model

        return export_model(self.checkpoint, out)

    def push_to_hub(self, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
        """Export to a temporary folder and upload it as a Hugging Face Hub model repository; returns its
        URL. Needs the [hub] extra and network access."""
        hub = _hub()
        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save_pretrained(Path(tmp) / "model")
            api = hub.HfApi(token=token)
            api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
            api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model")
        return f"https://huggingface.co/{repo_id}"


def from_pretrained(source: str | Path, *, fold: int | None = None, device: str = "cpu",
                    revision: str | None = None, cache_dir: str | Path | None = None) -> EEGMambaModel:
    """A trained model from a local folder (an export, a run, a fold or a checkpoint folder) or, when no
    such folder exists and the [hub] extra is installed, a Hugging Face Hub repo id ("user/name")."""
    path = Path(source)
    if not path.exists():
        path = _download(str(source), revision, cache_dir)
    directory, meta = ckpt.read_meta(resolve_model(path, fold))
    ckpt.load_state_dict(directory)  # verify the weights now (sha256, no pickle), not at the first predict
    return EEGMambaModel(directory, meta, device)


def _hub():
    try:
        import huggingface_hub
    except ImportError:
        raise UserError(f"the Hugging Face Hub needs huggingface_hub; {HUB_HINT}") from None
    return huggingface_hub


def _download(repo_id: str, revision: str | None, cache_dir) -> Path:
    try:
        hub = _hub()
    except UserError:
        raise UserError(f"{repo_id}: no such folder; to download it from the Hugging Face Hub, {HUB_HINT}") from None
    try:
        return Path(hub.snapshot_download(repo_id, revision=revision, cache_dir=cache_dir))
    except Exception as err:  # offline, unknown repo, bad id: huggingface_hub raises many types
        raise UserError(f"{repo_id}: not a local folder, and the Hub gave {type(err).__name__}: "
                        f"{' '.join(str(err).split())[:300]}") from None


def _as_raw(data, sfreq: float | None, ch_names: Sequence[str] | None):
    """An MNE Raw and a name for messages, from a Raw or a (C, T) array in volts."""
    import mne

    if isinstance(data, mne.io.BaseRaw):
        return data, (Path(data.filenames[0]).name if data.filenames and data.filenames[0] else "raw")
    array = np.asarray(data, dtype=np.float64)
    if array.ndim != 2:
        raise UserError(f"array: expected (channels, samples), got shape {array.shape}")
    if sfreq is None or ch_names is None:
        raise UserError("array: give sfreq= and ch_names= with an array (an MNE Raw carries both)")
    if len(ch_names) != array.shape[0]:
        raise UserError(f"array: {array.shape[0]} channels but {len(ch_names)} ch_names")
    info = mne.create_info(list(ch_names), float(sfreq), ch_types="eeg", verbose="error")
    return mne.io.RawArray(array, info, verbose="error"), "array"


class CacheDataset(torch.utils.data.Dataset):
    """The windows of a preprocessed cache as (x (C, L) float32 tensor, label int), for your own loop.

    `cache`: a cache folder (holding info.json), or a cache root with `dataset` naming one under it.
    `split`: "all", or "train" / "val" / "test" of fold `fold` under `protocol`, made exactly as `train`
    makes them for the same protocol, seed and validation share."""

    def __init__(self, cache: str | Path, dataset: str | None = None, *, split: str = "all",
                 fold: int | None = None, protocol: str = "subject-kfold", seed: int = 0,
                 val_fraction: float = 0.1, n_folds: int | None = None):
        self.cache = WindowCache(Path(cache) / dataset if dataset else Path(cache))
        self.rows = self._rows(split, fold, protocol, seed, val_fraction, n_folds)

    def _rows(self, split, fold, protocol, seed, val_fraction, n_folds) -> np.ndarray:
        if split == "all":
            return np.arange(len(self.cache), dtype=np.int64)
        if split not in ("train", "val", "test") or fold is None:
            raise UserError(f"{self.cache.directory}: split must be 'all', or 'train', 'val' or 'test' with a "
                            f"fold (got split={split!r}, fold={fold!r})")
        from .training.protocols import ProtocolError, parse_protocol
        from .training.splits import dataset_folds

        try:
            chosen = parse_protocol(protocol, folds=n_folds, seed=seed, val_fraction=val_fraction)
        except ProtocolError as err:
            raise UserError(f"{self.cache.directory}: {err}") from None
        folds = dataset_folds(self.cache, chosen).splits
        if fold not in folds:
            raise UserError(f"{self.cache.directory}: no fold {fold} under {protocol} (folds: "
                            f"{', '.join(map(str, folds))})")
        return getattr(folds[fold], split)

    @property
    def class_names(self) -> list[str]:
        return list(self.cache.class_names)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        row = self.rows[i]
        x = self.cache.windows(np.array([row]))[0]  # at the cache's width (short windows zero-padded)
        return torch.from_numpy(np.ascontiguousarray(x)), int(self.cache.labels[row])
