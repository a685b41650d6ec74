"""Shu et al. 2022 motor imagery (Ma et al. 2022, MOABB `Ma2022`): left vs right hand.

Layout: `mat/sub-001_ses-01_task_motorimagery_eeg.mat … sub-025_ses-05_…` (the figshare v1 `mat.zip`),
under the raw folder or the raw folder itself. Each MAT v5 file holds `data` (n_trials, 32, 1000) in µV at
250 Hz (only the 4-s imagery phase) and `labels` (1, n_trials): 1 = left hand, 2 = right hand.

Trials are already epochs: each is one piece with one 4-s window at 0 s, never windowed across trials.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import scipy.io

from ..base import Corpus, CorpusInfo, Piece, Recording, RecordingError, RecordingRef, subject_digits

SFREQ = 250.0
WINDOW_S = 4.0
FILE_NAME = re.compile(r"^sub-(\d{3})_ses-(\d{2})_task_motorimagery_eeg\.mat$")
LABEL_CLASSES = {1: 0, 2: 1}  # left hand, right hand (the file's labels are 1-based)

# The 32 rows of `data`, in file order (the EDF sidecar lists them in upper case).
FILE_CHANNELS = (
    "Fp1", "Fp2", "Fz", "F3", "F4", "F7", "F8", "FC1", "FC2", "FC5", "FC6", "Cz", "C3", "C4", "T3", "T4",
    "A1", "A2", "CP1", "CP2", "CP5", "CP6", "Pz", "P3", "P4", "T5", "T6", "PO3", "PO4", "Oz", "O1", "O2",
)

# Paper Table 7: fold -> subjects sub-001..sub-025.
FOLDS = {1: range(1, 6), 2: range(6, 11), 3: range(11, 16), 4: range(16, 21), 5: range(21, 26)}


def canonical_subject(text: str) -> str:
    """'1', '001', 'sub-1', 'sub-001' -> 'sub-001'."""
    match = re.fullmatch(r"(?:sub-?)?0*(\d{1,3})", str(text).strip().lower())
    return f"sub-{int(match.group(1)):03d}" if match else str(text)


def _folder(raw: Path) -> Path:
    inner = raw / "mat"
    return inner if inner.is_dir() else raw


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        contents = scipy.io.loadmat(str(path))
    except Exception as err:  # scipy raises many types (MatReadError, ValueError, NotImplementedError for v7.3)
        raise RecordingError(f"{path.name}: cannot read the MAT file ({type(err).__name__}: {err})") from None
    missing = [key for key in ("data", "labels") if key not in contents]
    if missing:
        raise RecordingError(f"{path.name}: missing {', '.join(missing)} in the MAT file")
    data, labels = np.asarray(contents["data"]), np.asarray(contents["labels"]).ravel()
    if data.ndim != 3 or data.shape[0] != labels.size:
        raise RecordingError(f"{path.name}: expected data (trials, channels, samples) with one label per "
                             f"trial, found {data.shape} and {labels.size} labels")
    if not set(labels.tolist()) <= set(LABEL_CLASSES):
        raise RecordingError(f"{path.name}: labels must be 1 (left) or 2 (right), found "
                             f"{sorted(set(labels.tolist()))}")
    return data, labels


class Shu(Corpus):
    info = CorpusInfo(
        name="shu",
        title="Shu (Ma et al. 2022) two-class motor imagery",
        task="mi",
        channels=FILE_CHANNELS,
        native_sfreq=SFREQ,
        window_s=WINDOW_S,
        class_names=("left hand", "right hand"),
        access="open",
        url="https://doi.org/10.6084/m9.figshare.19228725",
        licence="CC BY 4.0",
        citation="Ma et al. 2022, Scientific Data 9:531, doi:10.1038/s41597-022-01647-1",
        raw_hint="mat/sub-XXX_ses-YY_task_motorimagery_eeg.mat, from mat.zip of figshare version 1",
        index=6, display_name="Shu", folds=FOLDS,
    )

    def find_recordings(self, raw: Path, subjects: set[str] | None = None) -> list[RecordingRef]:
        folder = _folder(Path(raw))
        wanted = {canonical_subject(s) for s in subjects} if subjects else None
        refs = []
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            match = FILE_NAME.match(path.name)
            if not match:
                continue
            subject, session = f"sub-{match.group(1)}", f"ses-{match.group(2)}"
            if wanted is None or subject in wanted:
                refs.append(RecordingRef(id=f"{subject}_{session}", subject=subject, session=session,
                                         paths=[path]))
        return refs

    def read(self, ref: RecordingRef) -> Recording:
        path = ref.paths[0]
        data, labels = _load(path)
        if data.shape[1] != len(FILE_CHANNELS):
            raise RecordingError(f"{path.name}: {data.shape[1]} channels, expected the {len(FILE_CHANNELS)} "
                                 "of the Shu montage")
        need = round(WINDOW_S * SFREQ)
        if data.shape[2] < need:
            raise RecordingError(f"{path.name}: trials hold {data.shape[2]} samples, fewer than the {need} "
                                 "of the 4-s imagery phase")
        rows = [FILE_CHANNELS.index(name) for name in self.info.channels]  # by name, in model order
        trial_s = data.shape[2] / SFREQ
        pieces = [Piece(np.asarray(data[i, rows], dtype=np.float64), SFREQ, [(0.0, LABEL_CLASSES[int(label)])],
                        offset_s=i * trial_s)
                  for i, label in enumerate(labels)]
        return Recording(ref, pieces)

    def subject_number(self, subject: str) -> int:
        return subject_digits(subject, r"sub-(\d{3})")

    def subject_id(self, number: int) -> str:
        return f"sub-{number:03d}"


CORPUS = Shu()
