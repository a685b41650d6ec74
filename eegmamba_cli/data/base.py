"""What every corpus reader provides, and what the shared preprocessing pipeline consumes.

A corpus module (`eegmamba_cli/data/corpora/<name>.py`) defines one `Corpus` subclass instance `CORPUS`:
it finds the recordings under a raw folder (`find_recordings`) and reads one into a `Recording` made of
`Piece`s: stretches of continuous signal at the native rate, in µV, channels already selected and ordered
as the corpus declares, each with the start times and labels of the windows to cut from it. The pipeline
(`eegmamba_cli/data/pipeline.py`) filters each piece at its native rate, resamples it to 200 Hz, cuts the
windows, z-scores them and writes the cache. Loaders never filter, resample or window themselves.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..console import UserError

TARGET_SFREQ = 200.0


class RecordingError(UserError):
    """One recording cannot be used (truncated file, missing channel, bad labels...).

    The message names the file and the problem in one line; preprocessing skips the recording and
    reports it (or stops under --strict).
    """


@dataclass
class Piece:
    """A stretch of continuous signal, filtered as a whole (a night, a trial, a run)."""

    data: np.ndarray  # (C, T) float64 or float32, µV, native rate; or a lazy (C, T) whose rows are read
                      # on access (edf.EdfSignals): the pipeline reads it one channel at a time
    sfreq: float
    windows: list[tuple[float, int]]  # (start in s from the piece start, label index)
    offset_s: float = 0.0  # where the piece starts in the recording, for the manifest's start_s


@dataclass
class RecordingRef:
    """A recording found on disk, before it is read."""

    id: str  # unique within the corpus and a safe file name (cache arrays are named after it)
    subject: str  # the subject id, as `fold_of` accepts it (e.g. "PN00", "chb01", "00" for SC400xx)
    session: str
    paths: list[Path]  # the files it is read from (signal first, then label files)
    extra: dict = field(default_factory=dict)


@dataclass
class Recording:
    ref: RecordingRef
    pieces: list[Piece]
    notes: list[str] = field(default_factory=list)  # one-line warnings the pipeline prints (not errors)


@dataclass(frozen=True)
class CorpusInfo:
    name: str  # registry key, as on the command line: siena, chbmit, sleepedf, ...
    title: str
    task: str  # seizure | sleep | emotion | mi | custom
    channels: tuple[str, ...]  # canonical names, in the order the model sees them
    native_sfreq: float | None
    window_s: float
    class_names: tuple[str, ...]
    access: str  # "open" or "agreement"
    url: str
    licence: str
    citation: str
    raw_hint: str = ""  # where the user's downloaded files are expected, e.g. "PNxx/PNxx-k.edf"

    @property
    def window_samples(self) -> int:
        return int(round(self.window_s * TARGET_SFREQ))


def default_passband(sfreq: float) -> tuple[float | None, float | None]:
    """0.1-50 Hz; high-pass only when 50 Hz >= Nyquist (Sleep-EDF at 100 Hz). EEGMAMBA.md §11."""
    low, high = 0.1, 50.0
    return (low, high if high < sfreq / 2 else None)


class Corpus(ABC):
    info: CorpusInfo

    @abstractmethod
    def find_recordings(self, raw: Path, subjects: set[str] | None = None) -> list[RecordingRef]:
        """The recordings under `raw` (optionally only these subjects), in a stable order."""

    @abstractmethod
    def read(self, ref: RecordingRef, options: dict | None = None) -> Recording:
        """Read one recording; raise RecordingError (one line, naming the file) when it is unusable."""

    @abstractmethod
    def fold_of(self, subject: str) -> int:
        """The paper's 5-fold table (spec §12): 1..5, or 0 for a subject in no fold."""

    def passband(self, sfreq: float) -> tuple[float | None, float | None]:
        """Band-pass edges for a piece at `sfreq`: 0.1-50 Hz, high-pass only when 50 Hz >= Nyquist."""
        return default_passband(sfreq)

    def default_options(self) -> dict:
        """Corpus options (`preprocess --option key=value`) with their defaults.

        When this is non-empty, the pipeline fills in the defaults (they enter the cache fingerprint)
        and refuses unknown keys; a corpus that declares nothing receives the options as given.
        """
        return {}

    def configure(self, raw: Path, options: dict) -> "Corpus":
        """The corpus as one run sees it, for options that change discovery, channels, classes or folds
        (e.g. CHB-MIT's file subset, the custom corpus's labels). Default: the corpus itself."""
        return self


def fold_from_table(number: int, folds: dict) -> int:
    """The paper's fold (spec §12) whose subject numbers contain `number`; 0 when no fold lists it."""
    return next((fold for fold, ids in folds.items() if number in ids), 0)
