"""What every corpus declares and provides, and what the shared preprocessing pipeline consumes.

A corpus is one module under `eegmamba_cli/data/corpora/` defining one `Corpus` subclass and its instance
`CORPUS`. The class is the corpus's only declaration: `info` (a `CorpusInfo`: identity, task, channels,
window, classes, fold table, download source, native channel labels) and `Options` (a frozen dataclass of
its `preprocess --option` settings). Everything else (the registry's names and tasks, the model's dataset
specs, the paper tables, the download table, the demo's subjects, the CLI's choices) is derived from it.

A corpus finds the recordings under a raw folder (`find_recordings`) and reads one into a `Recording`
made of `Piece`s: stretches of continuous signal at the native rate, in µV, channels already selected and
ordered as the corpus declares, each with the start times and labels of the windows to cut from it. The
pipeline (`eegmamba_cli/data/pipeline.py`) filters each piece at its native rate, resamples it to
200 Hz, normalises, cuts the windows and writes the cache. Loaders never filter, resample or window.

Window lengths are declared in seconds (`CorpusInfo.window_s`); `to_samples` and `to_seconds` are the
only conversions to and from samples at the 200-Hz target rate, which caches and checkpoints record.
"""
from __future__ import annotations

import copy
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..console import UserError

TARGET_SFREQ = 200.0


def to_samples(seconds: float) -> int:
    """A window length in seconds -> samples at the 200-Hz target rate."""
    return int(round(float(seconds) * TARGET_SFREQ))


def to_seconds(samples: int, sfreq: float | None = None) -> float:
    """A window length in samples (at `sfreq`, default the 200-Hz target rate) -> seconds."""
    return int(samples) / float(sfreq or TARGET_SFREQ)


class CorpusError(UserError):
    """A corpus cannot be set up as asked (bad option value, missing subject list...); one line."""


class RecordingError(CorpusError):
    """One recording cannot be used (truncated file, missing channel, bad labels...).

    The message names the file and the problem in one line; preprocessing skips the recording and
    reports it (or stops when asked to be strict).
    """


class OptionError(CorpusError):
    """A corpus option has a value the corpus cannot use; `key` names the option."""

    def __init__(self, message: str, key: str):
        super().__init__(message)
        self.key = key


class DownloadError(CorpusError):
    """A download could not be completed or verified; the message is one line naming the file."""


@dataclass
class Piece:
    """A stretch of continuous signal, filtered as a whole (a night, a trial, a run)."""

    data: np.ndarray  # (C, T) float64 or float32, µV, native rate; or a lazy (C, T) whose rows are read
                      # on access (edf.EdfSignals): the pipeline reads it one channel at a time
    sfreq: float
    windows: list[tuple[float, int]]  # (start in s from the piece start, label index)
    offset_s: float = 0.0  # where the piece starts in the recording, for the manifest's start_s
    # Per window, the source event (trial) it was cut from, numbered within the piece: windows of one
    # event share it, so evaluation can keep them on one side of a split. None: each window is its own.
    events: list[int] | None = None
    # Per window, its own length in seconds (`--window event`: one window per event, of the event's
    # length); stored zero-padded to the dataset's window. None: every window is the dataset's window.
    lengths_s: list[float] | None = None


@dataclass
class RecordingRef:
    """A recording found on disk, before it is read."""

    id: str  # unique within the corpus and a safe file name (cache arrays are named after it)
    subject: str  # the subject id, as `fold_of` accepts it (e.g. "PN00", "chb01", "00" for SC400xx)
    session: str
    paths: list[Path]  # the files it is read from (signal first, then label files)
    extra: dict = field(default_factory=dict)
    run: str = "1"  # the run within the session (BIDS `run-`), as the manifest records it


@dataclass
class Recording:
    ref: RecordingRef
    pieces: list[Piece]
    notes: list[str] = field(default_factory=list)  # one-line warnings the pipeline prints (not errors)


# (checksums {relative path: sha256}, subjects or None, read_index(name) -> text, options) -> paths
Selector = Callable[[dict, "set[str] | None", Callable[[str], str], object], "list[str]"]


@dataclass(frozen=True)
class PhysioNet:
    """Where an open corpus is downloaded from, and which of its files the default preprocessing needs."""

    project: str  # https://physionet.org/files/<project>/<version>/
    select: Selector
    version: str = "1.0.0"

    @property
    def url(self) -> str:
        return f"https://physionet.org/files/{self.project}/{self.version}/"


class FrozenMap(Mapping):
    """A read-only mapping that pickles (MappingProxyType does not, and preprocess workers receive the
    bound corpus, declaration included, by pickle)."""

    def __init__(self, mapping: Mapping | None = None):
        self._data = dict(mapping or {})

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


def _frozen(mapping: Mapping | None = None) -> Mapping:
    return FrozenMap(mapping)


@dataclass(frozen=True)
class CorpusInfo:
    name: str  # registry key, as on the command line: siena, chbmit, sleepedf, ...
    title: str
    task: str  # seizure | sleep | emotion | mi | custom
    channels: tuple[str, ...]  # canonical names, in the order the model sees them
    native_sfreq: float | None
    window_s: float  # the one declared window unit; samples at 200 Hz come from `to_samples`
    class_names: tuple[str, ...]
    access: str  # "open", "agreement" or "local"
    url: str
    licence: str
    citation: str
    raw_hint: str = ""  # where the user's downloaded files are expected, e.g. "PNxx/PNxx-k.edf"
    index: int | None = None  # position in the model's fixed dataset order; None: not a paper corpus
    display_name: str = ""  # as in the paper's tables (SleepEDF-20, BCI-IV-2a)
    aliases: tuple[str, ...] = ()  # other spellings accepted on the command line (compared squashed)
    folds: Mapping[int, Collection[int]] = field(default_factory=_frozen, compare=False)  # fold -> subject numbers
    download: PhysioNet | None = None  # None: the user fetches the files by hand
    native_labels: Mapping[str, str] = field(default_factory=_frozen, compare=False)  # file label -> channel
    normalize: str = "window"  # the pipeline's default normalisation for this corpus (see PreprocessParams)

    def __post_init__(self):
        # read-only views, so that no caller can edit a declaration shared by the whole process
        object.__setattr__(self, "folds", _frozen(self.folds))
        object.__setattr__(self, "native_labels", _frozen(self.native_labels))

    @property
    def window_samples(self) -> int:
        return to_samples(self.window_s)


def default_passband(sfreq: float) -> tuple[float | None, float | None]:
    """0.1-50 Hz; high-pass only when 50 Hz >= Nyquist (Sleep-EDF at 100 Hz)."""
    low, high = 0.1, 50.0
    return (low, high if high < sfreq / 2 else None)


def fold_from_table(number: int, folds: Mapping[int, Collection[int]]) -> int:
    """The fold (1..5) whose subject numbers contain `number`; 0 when no fold lists it."""
    return next((fold for fold, ids in folds.items() if fold > 0 and number in ids), 0)


def check_choice(corpus: str, name: str, value: str, choices: Collection[str]) -> None:
    if value not in choices:
        raise OptionError(f"{corpus}: option {name} must be one of {', '.join(choices)}, not {value!r}", name)


@dataclass(frozen=True)
class NoOptions:
    """A corpus without `--option` settings."""


class Corpus(ABC):
    """One corpus: its declaration (`info`, `Options`) and its reader.

    `bind(raw, options)` returns the corpus as one run sees it (options applied, subject lists read...);
    `read` then uses `self.options`. The module's `CORPUS` is bound to the default options.
    """

    info: CorpusInfo
    Options: type = NoOptions
    options: object = NoOptions()

    @abstractmethod
    def find_recordings(self, raw: Path, subjects: set[str] | None = None) -> list[RecordingRef]:
        """The recordings under `raw` (optionally only these subjects), in a stable order."""

    @abstractmethod
    def read(self, ref: RecordingRef) -> Recording:
        """Read one recording with `self.options`; raise RecordingError (one line, naming the file)."""

    @abstractmethod
    def subject_number(self, subject: str) -> int:
        """The number the fold table lists `subject` under; -1 when it is not a subject id."""

    @abstractmethod
    def subject_id(self, number: int) -> str:
        """The subject id (as `find_recordings` spells it) of a number in the fold table."""

    def fold_of(self, subject: str) -> int:
        """The paper's 5-fold table: 1..5, or 0 for a subject in no fold."""
        return fold_from_table(self.subject_number(subject), self.info.folds)

    def passband(self, sfreq: float) -> tuple[float | None, float | None]:
        """Band-pass edges for a piece at `sfreq`: 0.1-50 Hz, high-pass only when 50 Hz >= Nyquist."""
        return default_passband(sfreq)

    def bind(self, raw: Path | None, options=None) -> "Corpus":
        """A copy that reads with `options` (an `Options` instance; None: the defaults).

        Corpora whose options change discovery, channels, classes or folds (CHB-MIT's file subset, the
        custom corpus's labels, SHHS's subject list) extend this; `raw` is the raw folder of the run.
        """
        options = self.Options() if options is None else options
        if not isinstance(options, self.Options):
            raise TypeError(f"{self.info.name}: options must be {self.Options.__qualname__}, "
                            f"not {type(options).__name__}")
        bound = copy.copy(self)
        bound.options = options
        return bound


def subject_digits(text: str, pattern: str) -> int:
    """The number captured by `pattern` (matched whole, case-insensitively), or -1."""
    match = re.fullmatch(pattern, str(text).strip(), re.IGNORECASE)
    return int(match.group(1)) if match else -1
