"""Opening a user's recording for prediction: EDF, BDF, GDF, FIF, BrainVision (.vhdr) and EEGLAB (.set),
through MNE, lazily.

Only the channels a head needs are read, and only through MNE's `include` (EDF/BDF/GDF) or picks (the
others, whose channels share one rate):
without `include`, MNE brings every channel of an EDF to the file's highest rate, so an SHHS EEG would come
back upsampled to its ECG's 250 Hz and filtered and resampled from there.

The channel labels come from the file header first (our EDF and GDF parsers), because MNE renames repeated
labels (CHB-MIT's two `T8-P8` become `T8-P8-0`, `T8-P8-1`) while `include` still matches the original ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..console import UserError
from ..data.base import RecordingError
from .channels import Source

SUFFIXES = {".edf": "edf", ".bdf": "bdf", ".gdf": "gdf", ".fif": "fif", ".vhdr": "brainvision", ".set": "eeglab"}
ONE_RATE = ("fif", "brainvision", "eeglab")  # one sampling rate for every channel: opened whole, picked lazily
_VOLT = 107  # mne FIFF_UNIT_V: MNE returns volts for EEG channels; the pipeline works in µV


@dataclass(frozen=True)
class RecordingFile:
    path: Path
    kind: str  # edf | bdf | gdf | fif | brainvision | eeglab
    labels: tuple[str, ...]  # as in the file header, in file order
    rates: tuple[float | None, ...]  # per channel where the header says (None: one common rate)

    @property
    def name(self) -> str:
        return self.path.name


def open_recording(path: Path) -> RecordingFile:
    """Read the header only: channel labels and rates. One-line UserError for anything unusable."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"{path.name}: unsupported file type {path.suffix or '(none)'}; "
                        "predict reads .edf, .bdf, .gdf, .fif, .vhdr and .set")
    if kind in ("edf", "bdf"):
        from ..data.edf import read_header

        header = read_header(path)  # RecordingError (a UserError) for truncated or foreign files
        if header.reserved.startswith("EDF+D"):
            raise UserError(f"{path.name}: discontinuous EDF+D recordings are not supported")
        return RecordingFile(path, kind, header.labels, tuple(header.sfreq(i) for i in range(header.n_signals)))
    if kind == "gdf":
        from ..data.gdf import GdfError, check_complete, read_header

        try:
            header = read_header(path)
            check_complete(path, header)
        except (GdfError, OSError) as err:
            raise UserError(f"{path.name}: {err}") from None
        # equal samples per record means equal rates; the rate itself comes from MNE after `include`
        return RecordingFile(path, kind, header.labels, tuple(float(n) for n in header.samples_per_record))
    raw = _mne_open(path, kind, None)
    return RecordingFile(path, kind, tuple(raw.ch_names), (None,) * len(raw.ch_names))


def _mne_open(path: Path, kind: str, include: list[str] | None):
    import mne

    kwargs = dict(preload=False, verbose="error")
    try:
        if kind in ONE_RATE:
            reader = {"fif": mne.io.read_raw_fif, "brainvision": mne.io.read_raw_brainvision,
                      "eeglab": mne.io.read_raw_eeglab}[kind]
            return reader(path, **kwargs)
        reader = {"edf": mne.io.read_raw_edf, "bdf": mne.io.read_raw_bdf, "gdf": mne.io.read_raw_gdf}[kind]
        return reader(path, include=include, **kwargs)
    except Exception as err:  # MNE raises many types for a corrupt file
        raise UserError(f"{path.name}: cannot read ({type(err).__name__}: {' '.join(str(err).split())})") from None


class LazyChannels:
    """The expected channels as a lazy (C, T) array in µV: row i is read (and, if bipolar, subtracted)
    only when the pipeline asks for it, so a long recording never sits in memory whole."""

    def __init__(self, raw, names: list[str], sources: Sequence[Source], source_labels: Sequence[str],
                 file_name: str):
        self.raw, self.names, self.sources = raw, names, list(sources)
        self.labels, self.file_name = list(source_labels), file_name
        self.sfreq = float(raw.info["sfreq"])
        self.dtype = np.dtype(np.float64)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.sources), int(self.raw.n_times))

    @property
    def ndim(self) -> int:
        return 2

    def __len__(self) -> int:
        return len(self.sources)

    def _read(self, name: str) -> np.ndarray:
        index = self.raw.ch_names.index(name)
        data = self.raw.get_data(picks=[index])[0].astype(np.float64)
        return data * 1e6 if int(self.raw.info["chs"][index]["unit"]) == _VOLT else data

    def __getitem__(self, i: int) -> np.ndarray:
        src = self.sources[i]
        row = self._read(self.names[src.plus])
        if src.minus is not None:
            row = row - self._read(self.names[src.minus])
        check_finite(row, self.sfreq, self.file_name, src.describe(self.labels))
        return row

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.stack([self[i] for i in range(len(self))])
        return out if dtype is None else out.astype(dtype)


def check_finite(row: np.ndarray, sfreq: float, file_name: str, channel: str) -> None:
    """NaN policy: a recording with NaN or infinite samples is refused, naming the stretches.

    Filtering runs over the whole recording (as in preprocessing), so one NaN would spread into every
    window of that channel; cutting around it would change what the model sees near the gap. The user
    crops or interpolates the recording instead.
    """
    bad = ~np.isfinite(row)
    if not bad.any():
        return
    edges = np.flatnonzero(np.diff(np.concatenate([[0], bad.astype(np.int8), [0]])))
    stretches = list(zip(edges[::2], edges[1::2]))
    first = ", ".join(f"{a / sfreq:.1f}-{b / sfreq:.1f} s" for a, b in stretches[:3])
    more = f" and {len(stretches) - 3} more" if len(stretches) > 3 else ""
    raise RecordingError(f"{file_name}: channel {channel} has {int(bad.sum())} NaN or infinite samples "
                         f"({first}{more}); crop or interpolate them first, predict does not filter across gaps")


def load_channels(rec: RecordingFile, sources: Sequence[Source]) -> LazyChannels:
    """Open the recording with only the needed file channels and return them lazily, in model order."""
    needed = sorted({i for s in sources for i in (s.plus, s.minus) if i is not None})
    rates = {rec.rates[i] for i in needed}
    if len(rates) > 1:
        shown = ", ".join(f"{rec.labels[i]} ({rec.rates[i]:g})" for i in needed)
        unit = "samples per record" if rec.kind == "gdf" else "Hz"
        raise UserError(f"{rec.name}: the channels needed have different sampling rates ({shown} {unit})")
    if rec.kind in ONE_RATE:
        raw = _mne_open(rec.path, rec.kind, None)
        return LazyChannels(raw, list(raw.ch_names), sources, rec.labels, rec.name)
    wanted = {rec.labels[i] for i in needed}
    included = [i for i, label in enumerate(rec.labels) if label in wanted]  # MNE keeps file order
    raw = _mne_open(rec.path, rec.kind, sorted(wanted))
    if len(raw.ch_names) != len(included):
        raise UserError(f"{rec.name}: MNE returned {len(raw.ch_names)} channels for the {len(included)} "
                        f"requested ({', '.join(sorted(wanted))})")
    names = [""] * len(rec.labels)  # file index -> the name MNE gave that channel
    for position, index in enumerate(included):
        names[index] = raw.ch_names[position]
    return LazyChannels(raw, names, sources, rec.labels, rec.name)
