"""One recording through one head: channels -> the shared pipeline -> the model -> one row per window.

The windows are made exactly as `preprocess` made the training windows: the recording becomes one
`Piece` whose windows tile it from 0 s, non-overlapping, and `pipeline.preprocess_piece` filters it with
the corpus's passband at the native rate, resamples it to 200 Hz, cuts the windows and normalises them.
Only the labels differ (there are none), so the model sees what it was trained on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..console import UserError
from ..data.base import Piece, RecordingError
from ..data.pipeline import preprocess_piece
from ..data.signal import fixed_windows, resample_factor
from ..precision import resolve_precision
from ..training.inference import crop_for, probabilities, window_logits
from .channels import ChannelMatcher, Source, read_channel_map
from .model import Head
from .recording import LazyChannels, load_channels, open_recording


@dataclass
class Prediction:
    recording: Path
    head: Head
    labels: tuple[str, ...]  # the file's channel labels
    sources: list[Source]  # expected channel -> file channel(s)
    sfreq: float  # the recording's native rate
    duration_s: float
    windows: pd.DataFrame  # start_s, end_s, prediction, then one probability column per class
    precision: str = "fp32"  # what the model ran at (eegmamba_cli.precision)
    notes: list[str] = field(default_factory=list)

    @property
    def probabilities(self) -> np.ndarray:
        return self.windows[prob_columns(self.head.class_names)].to_numpy()


def prob_columns(class_names: list[str]) -> list[str]:
    """`p_<class>`, with anything but letters, digits, `+` and `-` turned into `_` ("p_left_hand")."""
    import re

    return ["p_" + re.sub(r"[^0-9A-Za-z+-]+", "_", name).strip("_") for name in class_names]


def corpus_labels(head: Head) -> dict[str, str]:
    """File labels a corpus uses for the head's channels (SHHS's `EEG` = C4-A1, BCI IV 2a's `EEG-0`...),
    as its declaration gives them; none for a dataset the registry does not know."""
    return dict(head.corpus.info.native_labels) if head.corpus is not None else {}


def match_channels(path: Path, head: Head, channel_map: Path | None):
    rec = open_recording(path)
    mapping = read_channel_map(channel_map) if channel_map else None
    matcher = ChannelMatcher(rec.labels, corpus_labels(head), mapping, source=rec.name)
    return rec, matcher.match(head.info.channels)


@dataclass
class Windows:
    """A recording cut for one head: the model's input and where each window starts."""

    labels: tuple[str, ...]
    sources: list[Source]
    sfreq: float
    duration_s: float
    data: np.ndarray  # (n, C, L) float32, as the cache would hold them
    starts_s: np.ndarray


def prepare_windows(path: Path, head: Head, channel_map: Path | None = None) -> Windows:
    """Match channels, read them lazily and run them through the shared pipeline, tiling the recording."""
    path = Path(path)
    rec, sources = match_channels(path, head, channel_map)
    return cut_windows(rec.name, rec.labels, sources, load_channels(rec, sources), head)


def prepare_raw(raw, head: Head, name: str = "raw", channel_map: Path | None = None) -> Windows:
    """An MNE Raw (the Python API's way in) through the same channel matching and pipeline as a file."""
    labels = tuple(raw.ch_names)
    mapping = read_channel_map(channel_map) if channel_map else None
    sources = ChannelMatcher(labels, corpus_labels(head), mapping, source=name).match(head.info.channels)
    return cut_windows(name, labels, sources, LazyChannels(raw, list(labels), sources, labels, name), head)


def cut_windows(name: str, labels: tuple[str, ...], sources: list[Source], signals, head: Head) -> Windows:
    """Signals (C, T) of the head's channels at their native rate -> the model's windows, tiling from 0 s."""
    sfreq, n = signals.sfreq, signals.shape[1]
    duration = n / sfreq if sfreq else 0.0
    _check_rate(name, sfreq, head)
    if duration < head.window_s:
        raise UserError(f"{name}: lasts {duration:g} s, shorter than one {head.window_s:g}-s "
                        f"{head.name} window")
    starts = fixed_windows(duration, head.window_s)
    piece = Piece(signals, sfreq, [(float(s), 0) for s in starts])
    data, starts_s = preprocess_piece(piece, head.info, head.params, passband=head.passband(sfreq),
                                      source=name)
    if len(data) == 0:  # resampling can round the length down by a sample; say so plainly
        raise UserError(f"{name}: no whole {head.window_s:g}-s window fits after resampling to 200 Hz")
    return Windows(labels, sources, sfreq, duration, data, starts_s)


def predict_recording(path: Path, head: Head, *, channel_map: Path | None = None, batch_size: int = 32,
                      device: torch.device | str = "cpu", precision: str = "auto") -> Prediction:
    """`precision`: fp32 | bf16 | auto, resolved for `device` by eegmamba_cli.precision."""
    return predict_windows(Path(path), prepare_windows(path, head, channel_map), head, batch_size=batch_size,
                           device=device, precision=precision)


def predict_windows(source: Path, windows: Windows, head: Head, *, batch_size: int = 32,
                    device: torch.device | str = "cpu", precision: str = "auto") -> Prediction:
    """The head on prepared windows: one row per window (start, end, class, probabilities)."""
    precision = resolve_precision(precision, device)
    proba = classify(head, windows.data, batch_size, device, precision)
    table = window_table(windows.starts_s, head.window_s, proba, head.class_names)
    notes = []
    tail = windows.duration_s - (windows.starts_s[-1] + head.window_s)
    if tail > 1e-6:
        notes.append(f"the last {tail:.1f} s are shorter than one window and have no prediction")
    return Prediction(source, head, windows.labels, windows.sources, windows.sfreq, windows.duration_s,
                      table, precision, notes)


def _check_rate(name: str, sfreq: float, head: Head) -> None:
    try:
        resample_factor(sfreq)  # a rate like 173.61 Hz has no usable rational factor to 200 Hz
    except RecordingError as err:
        raise UserError(f"{name}: {err}") from None
    need = head.min_sfreq()
    if sfreq < need:
        low, high = head.passband(1e9)
        raise UserError(f"{name}: sampled at {sfreq:g} Hz; the {head.name} head needs at least {need:g} Hz "
                        f"(it was trained on {low:g}-{high:g} Hz, which needs a Nyquist frequency of {high:g} Hz)")


def classify(head: Head, windows: np.ndarray, batch_size: int, device, precision: str = "auto") -> np.ndarray:
    """Class probabilities (n, K), float64, in batches, in eval mode."""
    logits = window_logits(head.model, windows, head.index, batch_size, torch.device(device),
                           len(head.class_names), precision, crop_for(head.record))
    return probabilities(logits)


def window_table(starts_s: np.ndarray, window_s: float, proba: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    table = pd.DataFrame({"start_s": np.round(starts_s, 6), "end_s": np.round(starts_s + window_s, 6),
                          "prediction": [class_names[k] for k in proba.argmax(1)]})
    for column, values in zip(prob_columns(class_names), proba.T):
        table[column] = values
    return table
