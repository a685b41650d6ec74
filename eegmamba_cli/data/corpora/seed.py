"""SEED: emotion (negative, neutral, positive) from 62 channels at 200 Hz.

Layout: `Preprocessed_EEG/<subject>_<YYYYMMDD>.mat` (45 files: 15 subjects x 3 sessions) beside
`label.mat` and `readme.txt`, under the raw folder, its `SEED/` folder, or the raw folder itself.

Each .mat (MAT v5) holds 15 trials under keys `<prefix>_eeg1 … <prefix>_eeg15`, each (62, T); the prefix
differs by subject, so keys are matched on the trailing `_eeg<number>` and sorted by that number (string
order would put eeg10 before eeg2). A subject's sessions are ordered by the date in the file name;
subjects are grouped by the leading number, never by date (subjects share dates). `label.mat` gives one
label per trial number (-1/0/1 -> negative/neutral/positive).

Each trial is one piece with 20-s windows every 2 s (option `stride_s`); no window crosses trials.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.io

from ..base import Corpus, CorpusError, CorpusInfo, Piece, Recording, RecordingError, RecordingRef, subject_digits

SFREQ = 200.0
WINDOW_S = 20.0
STRIDE_S = 2.0
FILE_NAME = re.compile(r"^(\d{1,2})_(\d{8})\.mat$")
TRIAL_KEY = re.compile(r"_eeg(\d+)$")
LABEL_FILE = "label.mat"
LABEL_CLASSES = {-1: 0, 0: 1, 1: 2}  # negative, neutral, positive

# The 62 rows of every trial array, in file order.
FILE_CHANNELS = (
    "FP1", "FPZ", "FP2", "AF3", "AF4", "F7", "F5", "F3", "F1", "FZ", "F2", "F4", "F6", "F8", "FT7", "FC5",
    "FC3", "FC1", "FCZ", "FC2", "FC4", "FC6", "FT8", "T7", "C5", "C3", "C1", "CZ", "C2", "C4", "C6", "T8",
    "TP7", "CP5", "CP3", "CP1", "CPZ", "CP2", "CP4", "CP6", "TP8", "P7", "P5", "P3", "P1", "PZ", "P2", "P4",
    "P6", "P8", "PO7", "PO5", "PO3", "POZ", "PO4", "PO6", "PO8", "CB1", "O1", "OZ", "O2", "CB2",
)

# Paper Table 7: fold -> subject numbers.
FOLDS = {1: range(1, 4), 2: range(4, 7), 3: range(7, 10), 4: range(10, 13), 5: range(13, 16)}


def canonical_subject(text: str) -> str:
    """'01', '1' -> '1'."""
    text = str(text).strip()
    return str(int(text)) if text.isdigit() else text


def _folder(raw: Path) -> Path:
    for candidate in (raw / "SEED" / "Preprocessed_EEG", raw / "Preprocessed_EEG"):
        if candidate.is_dir():
            return candidate
    return raw


def _loadmat(path: Path) -> dict:
    try:
        return scipy.io.loadmat(str(path))
    except Exception as err:  # scipy raises many types (MatReadError, ValueError, NotImplementedError for v7.3)
        raise RecordingError(f"{path.name}: cannot read the MAT file ({type(err).__name__}: {err})") from None


def read_labels(path: Path) -> np.ndarray:
    """label.mat -> class index per trial (trial k uses entry k-1)."""
    if not path.is_file():
        raise RecordingError(f"{path.name}: not found in {path.parent} (SEED's trial labels)")
    values = np.asarray(_loadmat(path).get("label", np.empty(0))).ravel()
    if values.size == 0 or not set(values.tolist()) <= set(LABEL_CLASSES):
        raise RecordingError(f"{path.name}: expected 'label' with values -1, 0, 1")
    return np.array([LABEL_CLASSES[int(v)] for v in values])


def trial_arrays(contents: dict, path: Path) -> list[tuple[int, np.ndarray]]:
    """(trial number, array) for every `*_eeg<n>` key, in numeric order."""
    trials: dict[int, np.ndarray] = {}
    for key, value in contents.items():
        match = TRIAL_KEY.search(key)
        if not match or key.startswith("__"):
            continue
        number = int(match.group(1))
        if number in trials:
            raise RecordingError(f"{path.name}: two arrays for trial {number}")
        trials[number] = value
    if not trials:
        raise RecordingError(f"{path.name}: no '<prefix>_eeg<number>' arrays found")
    return sorted(trials.items())


def window_starts(n_samples: int, stride_s: float) -> list[float]:
    """Start times of the 20-s windows that fit wholly inside a trial."""
    size, step = round(WINDOW_S * SFREQ), round(stride_s * SFREQ)
    if n_samples < size:
        return []
    return [k * step / SFREQ for k in range((n_samples - size) // step + 1)]


class Seed(Corpus):
    info = CorpusInfo(
        name="seed",
        title="SEED: SJTU Emotion EEG Dataset (preprocessed)",
        task="emotion",
        channels=FILE_CHANNELS,
        native_sfreq=SFREQ,
        window_s=WINDOW_S,
        class_names=("negative", "neutral", "positive"),
        access="agreement",
        url="https://bcmi.sjtu.edu.cn/home/seed/",
        licence="SEED licence agreement (academic non-commercial use, no redistribution)",
        citation=("Zheng & Lu 2015, IEEE Trans. Autonomous Mental Development 7(3):162-175; "
                  "Duan, Zhu & Lu 2013, IEEE EMBS NER"),
        raw_hint="Preprocessed_EEG/<subject>_<YYYYMMDD>.mat and Preprocessed_EEG/label.mat",
        index=5, display_name="SEED", folds=FOLDS,
    )

    @dataclass(frozen=True)
    class Options:
        stride_s: float = field(default=STRIDE_S, metadata={"help": "seconds between window starts in a trial"})

        def __post_init__(self):
            if not (math.isfinite(self.stride_s) and self.stride_s > 0 and round(self.stride_s * SFREQ) >= 1):
                raise CorpusError(f"seed: option stride_s must be a positive number of seconds, "
                                  f"not {self.stride_s!r}")

    options = Options()

    def find_recordings(self, raw: Path, subjects: set[str] | None = None) -> list[RecordingRef]:
        folder = _folder(Path(raw))
        wanted = {canonical_subject(s) for s in subjects} if subjects else None
        by_subject: dict[int, list[tuple[str, Path]]] = {}
        for path in folder.iterdir() if folder.is_dir() else []:
            match = FILE_NAME.match(path.name)  # label.mat and readme.txt do not match
            if match:
                by_subject.setdefault(int(match.group(1)), []).append((match.group(2), path))
        refs = []
        for number in sorted(by_subject):
            if wanted is not None and str(number) not in wanted:
                continue
            for session, (date, path) in enumerate(sorted(by_subject[number]), 1):
                refs.append(RecordingRef(id=f"{number}_{date}", subject=str(number), session=str(session),
                                         paths=[path, folder / LABEL_FILE], extra={"date": date}))
        return refs

    def read(self, ref: RecordingRef) -> Recording:
        stride_s = self.options.stride_s
        path, label_path = ref.paths
        labels = read_labels(label_path)
        rows = [FILE_CHANNELS.index(name) for name in self.info.channels]  # by name, in model order
        identity = rows == list(range(len(FILE_CHANNELS)))  # then skip the copy: a real file is ~350 MB
        pieces, offset = [], 0.0
        for number, array in trial_arrays(_loadmat(path), path):
            array = np.asarray(array)
            if array.ndim != 2 or array.shape[0] != len(FILE_CHANNELS):
                raise RecordingError(f"{path.name}: trial {number} has shape {array.shape}, expected "
                                     f"({len(FILE_CHANNELS)}, samples): the 62 SEED channels")
            if not 1 <= number <= len(labels):
                raise RecordingError(f"{path.name}: trial {number} has no entry in {label_path.name}")
            windows = [(start, int(labels[number - 1])) for start in window_starts(array.shape[1], stride_s)]
            if windows:
                data = array if identity else array[rows]
                pieces.append(Piece(np.asarray(data, dtype=np.float64), SFREQ, windows, offset_s=offset,
                                    events=[0] * len(windows)))  # one trial: its windows share an event
            offset += array.shape[1] / SFREQ
        return Recording(ref, pieces)

    def subject_number(self, subject: str) -> int:
        return subject_digits(subject, r"(\d{1,2})")

    def subject_id(self, number: int) -> str:
        return str(number)


CORPUS = Seed()
