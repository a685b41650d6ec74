"""DEAP: emotion (low/high rating) from Fp1, Fp2, F3 and C4.

Layout: `data_preprocessed_python/s01.dat … s32.dat` under the raw folder (or the raw folder itself).
Each file is a Python 2 pickle of {'data': (40 trials, 40 channels, 8064 samples at 128 Hz),
'labels': (40, 4): valence, arousal, dominance, liking, 1-9}. It is read with the restricted unpickler of
`safe_pickle`, never with plain `pickle.load`.

Each trial is one piece (the whole 63-s trial, so the pipeline filters per trial) with one 60-s window
starting after the 3-s pre-trial baseline (sample 384). Label = rating > threshold (default valence > 4.5,
the paper's split; options `dimension` and `threshold`).
"""
from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..base import Corpus, CorpusInfo, Piece, Recording, RecordingError, RecordingRef, check_choice, subject_digits
from ..safe_pickle import UnsafePickleError, load_array_dict

SFREQ = 128.0
BASELINE_S = 3.0  # the first 384 samples precede the stimulus
WINDOW_S = 60.0
FILE_NAME = re.compile(r"^s(\d{2})\.dat$")

# The 40 rows of `data`, in file order (DEAP readme). Indices 0-31 are EEG.
FILE_CHANNELS = (
    "Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3", "P7", "PO3", "O1", "Oz", "Pz",
    "Fp2", "AF4", "Fz", "F4", "F8", "FC6", "FC2", "Cz", "C4", "T8", "CP6", "CP2", "P4", "P8", "PO4", "O2",
    "hEOG", "vEOG", "zEMG", "tEMG", "GSR", "Respiration", "Plethysmograph", "Temperature",
)
RATING_COLUMNS = {"valence": 0, "arousal": 1, "dominance": 2, "liking": 3}

# Paper Table 7: fold -> subjects s01..s32.
FOLDS = {1: range(1, 7), 2: range(7, 13), 3: range(13, 19), 4: range(19, 26), 5: range(26, 33)}


def canonical_subject(text: str) -> str:
    """'1', '01', 's1', 's01' -> 's01'."""
    match = re.fullmatch(r"s?0*(\d{1,2})", str(text).strip().lower())
    return f"s{int(match.group(1)):02d}" if match else str(text)


def _folder(raw: Path) -> Path:
    inner = raw / "data_preprocessed_python"
    return inner if inner.is_dir() else raw


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        arrays = load_array_dict(path)
    except UnsafePickleError as err:
        raise RecordingError(f"{path.name}: {err}") from None  # says what was refused
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            OSError) as err:
        raise RecordingError(f"{path.name}: not a readable DEAP pickle ({type(err).__name__}: {err})") from None
    missing = [key for key in ("data", "labels") if key not in arrays]
    if missing:
        raise RecordingError(f"{path.name}: missing {', '.join(missing)} in the pickle")
    data, ratings = arrays["data"], arrays["labels"]
    if data.ndim != 3 or ratings.shape != (data.shape[0], 4):
        raise RecordingError(f"{path.name}: expected data (trials, channels, samples) and labels "
                             f"(trials, 4), found {data.shape} and {ratings.shape}")
    return data, ratings


def _channel_rows(data: np.ndarray, path: Path, names: tuple[str, ...]) -> list[int]:
    """Rows of the wanted channels, looked up by name in the file's channel table."""
    rows = [FILE_CHANNELS.index(name) for name in names]
    missing = [name for name, row in zip(names, rows) if row >= data.shape[1]]
    if missing:
        raise RecordingError(f"{path.name}: missing channels {', '.join(missing)} "
                             f"(the file has {data.shape[1]} rows)")
    return rows


class Deap(Corpus):
    info = CorpusInfo(
        name="deap",
        title="DEAP: a database for emotion analysis using physiological signals (preprocessed)",
        task="emotion",
        channels=("Fp1", "Fp2", "F3", "C4"),
        native_sfreq=SFREQ,
        window_s=WINDOW_S,
        class_names=("low", "high"),
        access="agreement",
        url="https://www.eecs.qmul.ac.uk/mmv/datasets/deap/",
        licence="DEAP end-user licence agreement (academic research only, no redistribution)",
        citation="Koelstra et al. 2012, IEEE Transactions on Affective Computing 3(1):18-31",
        raw_hint="data_preprocessed_python/s01.dat ... s32.dat",
        index=4, display_name="DEAP", folds=FOLDS,
    )

    @dataclass(frozen=True)
    class Options:
        dimension: str = field(default="valence", metadata={
            "help": f"the rating that labels a trial: {', '.join(RATING_COLUMNS)}"})
        threshold: float = field(default=4.5, metadata={"help": "a rating above it is 'high'"})

        def __post_init__(self):
            object.__setattr__(self, "dimension", self.dimension.lower())
            check_choice("deap", "dimension", self.dimension, tuple(RATING_COLUMNS))

    options = Options()

    def find_recordings(self, raw: Path, subjects: set[str] | None = None) -> list[RecordingRef]:
        folder = _folder(Path(raw))
        wanted = {canonical_subject(s) for s in subjects} if subjects else None
        refs = []
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            match = FILE_NAME.match(path.name)
            if not match:
                continue
            subject = f"s{int(match.group(1)):02d}"
            if wanted is None or subject in wanted:
                refs.append(RecordingRef(id=subject, subject=subject, session="1", paths=[path]))
        return refs

    def read(self, ref: RecordingRef) -> Recording:
        column, threshold = RATING_COLUMNS[self.options.dimension], self.options.threshold
        path = ref.paths[0]
        data, ratings = _load(path)
        rows = _channel_rows(data, path, self.info.channels)
        trial_s = data.shape[2] / SFREQ
        if trial_s < BASELINE_S + WINDOW_S:
            raise RecordingError(f"{path.name}: trials last {trial_s:g} s, shorter than the 3-s baseline "
                                 "plus the 60-s window")
        if not np.all(np.isfinite(ratings[:, column])):
            raise RecordingError(f"{path.name}: missing ratings in the labels array")
        pieces = []
        for trial in range(data.shape[0]):
            label = int(ratings[trial, column] > threshold)
            pieces.append(Piece(np.asarray(data[trial, rows], dtype=np.float64), SFREQ,
                                [(BASELINE_S, label)], offset_s=trial * trial_s, events=[0]))
        return Recording(ref, pieces)

    def subject_number(self, subject: str) -> int:
        return subject_digits(subject, r"s(\d{2})")

    def subject_id(self, number: int) -> str:
        return f"s{number:02d}"


CORPUS = Deap()
