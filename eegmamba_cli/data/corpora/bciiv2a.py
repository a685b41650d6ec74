"""BCI Competition IV dataset 2a (Graz A): four-class motor imagery from 22 EEG channels.

Layout: `A01T.gdf … A09E.gdf` (BCICIV_2a_gdf.zip) under the raw folder or its `BCICIV_2a_gdf/` folder, and
for the evaluation sessions the true labels `A01E.mat … A09E.mat` (true_labels.zip) beside the GDFs, in the
raw folder or in `true_labels/` (option `true_labels_dir` points elsewhere).

* Channels are picked by their GDF labels (`EEG-Fz`, `EEG-0`, …) and renamed to 10-20 names; the 3 EOG
  channels are dropped.
* Classes come from the annotation DESCRIPTION ('769'…'772'), never from the integer ids of
  `mne.events_from_annotations`, which renumber whenever a code is absent from a file.
* E sessions: the '783' (unknown) cues, in time order, take `classlabel` from `A0sE.mat` in sequence.
* A rejected trial has a '1023' at the onset of its '768'; such trials are kept unless `drop_rejected`.
* Window: cue + 1 s to cue + 4 s (3 s).
* Runs are separated by stretches recorded as the digital minimum (100 samples in the corpus). The signal
  is cut into one piece per run, at the '32766' run starts and around those stretches, so filtering never
  runs across a gap; a window that would cross one is left out.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import mne
import numpy as np
import scipy.io

from ..base import Corpus, CorpusInfo, Piece, Recording, RecordingError, RecordingRef, subject_digits
from ..gdf import GdfError, check_complete, read_header

SFREQ = 250.0
WINDOW_S = 3.0
CUE_TO_WINDOW_S = 1.0  # the window starts 1 s after the cue
FILE_NAME = re.compile(r"^A0([1-9])([TE])\.gdf$")

# GDF label -> standard 10-20 name, in the model's channel order.
GDF_LABELS = {
    "EEG-Fz": "Fz", "EEG-0": "FC3", "EEG-1": "FC1", "EEG-2": "FCz", "EEG-3": "FC2", "EEG-4": "FC4",
    "EEG-5": "C5", "EEG-C3": "C3", "EEG-6": "C1", "EEG-Cz": "Cz", "EEG-7": "C2", "EEG-C4": "C4",
    "EEG-8": "C6", "EEG-9": "CP3", "EEG-10": "CP1", "EEG-11": "CPz", "EEG-12": "CP2", "EEG-13": "CP4",
    "EEG-14": "P1", "EEG-Pz": "Pz", "EEG-15": "P2", "EEG-16": "POz",
}
EOG_LABELS = ("EOG-left", "EOG-central", "EOG-right")

# Event codes (annotation descriptions): cue -> class index.
CUE_CLASSES = {"769": 0, "770": 1, "771": 2, "772": 3}  # left hand, right hand, feet, tongue
UNKNOWN_CUE = "783"  # E sessions: the class is in A0sE.mat
TRIAL_START = "768"
REJECTED = "1023"
RUN_START = "32766"
GAP_MIN_SAMPLES = 10  # a run gap: every EEG channel at its digital minimum for at least this long

# Paper Table 7: fold -> subjects A01..A09 (T and E sessions of a subject share the fold).
FOLDS = {1: (1, 2), 2: (3, 4), 3: (5, 6), 4: (7, 8), 5: (9,)}


def canonical_subject(text: str) -> str:
    """'1', '01', 'A1', 'A01', 'a01' -> 'A01'."""
    match = re.fullmatch(r"a?0*([1-9])", str(text).strip().lower())
    return f"A0{match.group(1)}" if match else str(text)


def _folder(raw: Path) -> Path:
    inner = raw / "BCICIV_2a_gdf"
    return inner if inner.is_dir() else raw


def _label_dirs(raw: Path, gdf_dir: Path) -> list[Path]:
    return list(dict.fromkeys([gdf_dir, raw, raw / "true_labels", gdf_dir / "true_labels"]))


def read_true_labels(path: Path) -> list[int]:
    """`classlabel` (288x1, values 1-4) -> class indices 0-3."""
    try:
        values = np.asarray(scipy.io.loadmat(str(path)).get("classlabel", np.empty(0))).ravel()
    except Exception as err:  # scipy raises many types for a broken MAT file
        raise RecordingError(f"{path.name}: cannot read the MAT file ({type(err).__name__}: {err})") from None
    if values.size == 0 or not set(values.tolist()) <= {1, 2, 3, 4}:
        raise RecordingError(f"{path.name}: expected 'classlabel' with values 1-4")
    return [int(v) - 1 for v in values]


def _read_gdf(path: Path) -> tuple[np.ndarray, mne.Annotations, float, np.ndarray]:
    """The 22 EEG channels in µV (model order), the annotations, the rate and each channel's minimum."""
    try:
        header = read_header(path)
        check_complete(path, header)
    except (GdfError, OSError) as err:
        raise RecordingError(f"{path.name}: {err}") from None
    missing = [f"{name} ({label})" for label, name in GDF_LABELS.items() if label not in header.labels]
    if missing:
        raise RecordingError(f"{path.name}: missing channels {', '.join(missing)}")
    labels = list(GDF_LABELS)
    try:
        raw = mne.io.read_raw_gdf(str(path), include=labels, preload=True, verbose="error")
        data = raw.get_data(picks=labels, units="uV")
    except Exception as err:  # MNE's GDF reader raises assorted types on malformed files
        raise RecordingError(f"{path.name}: MNE cannot read it ({type(err).__name__}: {err})") from None
    floor = np.array([header.physical_min[header.labels.index(label)] for label in labels])
    return data, raw.annotations, float(raw.info["sfreq"]), floor


def _gap_mask(data: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """True where every EEG channel sits at its digital minimum (MNE maps it to the physical minimum)."""
    tolerance = 1e-6 * np.maximum(1.0, np.abs(floor))[:, None]  # far below one int16 step
    return np.all(np.abs(data - floor[:, None]) <= tolerance, axis=0)


def _stretches(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of every run of True values."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _segments(data: np.ndarray, floor: np.ndarray, run_starts: list[int]) -> list[tuple[int, int]]:
    """[start, stop) sample ranges of continuous signal: split at run starts, gap stretches removed."""
    gap = _gap_mask(data, floor)
    cuts = sorted({0, data.shape[1], *[s for s in run_starts if 0 < s < data.shape[1]]})
    segments = []
    for start, stop in zip(cuts[:-1], cuts[1:]):
        gaps = [(start + a, start + b) for a, b in _stretches(gap[start:stop]) if b - a >= GAP_MIN_SAMPLES]
        edges = [start, *[edge for g in gaps for edge in g], stop]  # signal lies between consecutive gaps
        segments += [(a, b) for a, b in zip(edges[::2], edges[1::2]) if b > a]
    return segments


def _cue_labels(annotations: mne.Annotations, true_labels: list[int] | None, path: Path,
                drop_rejected: bool) -> list[tuple[float, int]]:
    """(cue onset in s, class) per trial, in time order."""
    onsets = np.asarray(annotations.onset, dtype=float)
    descriptions = [str(d) for d in annotations.description]
    starts = sorted(o for o, d in zip(onsets, descriptions) if d == TRIAL_START)
    rejected = [o for o, d in zip(onsets, descriptions) if d == REJECTED]
    cues = sorted((o, d) for o, d in zip(onsets, descriptions) if d in CUE_CLASSES or d == UNKNOWN_CUE)
    unknown = [o for o, d in cues if d == UNKNOWN_CUE]
    if unknown and true_labels is None:
        raise RecordingError(f"{path.name}: has '783' cues but no true-label file was found")
    if unknown and len(unknown) != len(true_labels):
        raise RecordingError(f"{path.name}: {len(unknown)} '783' cues but {len(true_labels)} true labels")
    sequence = iter(true_labels or [])
    trials = []
    for onset, description in cues:
        label = next(sequence) if description == UNKNOWN_CUE else CUE_CLASSES[description]
        trial_start = max((s for s in starts if s <= onset + 1e-9), default=None)
        is_rejected = trial_start is not None and any(abs(r - trial_start) < 1e-6 for r in rejected)
        if not (drop_rejected and is_rejected):
            trials.append((float(onset), label))
    return trials


class BciIV2a(Corpus):
    info = CorpusInfo(
        name="bciiv2a",
        title="BCI Competition IV dataset 2a (Graz A), four-class motor imagery",
        task="mi",
        channels=tuple(GDF_LABELS.values()),
        native_sfreq=SFREQ,
        window_s=WINDOW_S,
        class_names=("left hand", "right hand", "feet", "tongue"),
        access="open",
        url="https://www.bbci.de/competition/iv/",
        licence="free for research use with citation (BNCI Horizon re-release: CC BY-ND 4.0)",
        citation=("Brunner et al. 2008, BCI Competition 2008 - Graz data set A; "
                  "Tangermann et al. 2012, Front. Neurosci. 6:55"),
        raw_hint=("A01T.gdf ... A09E.gdf from BCICIV_2a_gdf.zip, and A01E.mat ... A09E.mat from "
                  "true_labels.zip on the results page"),
        index=7, display_name="BCI-IV-2a", aliases=("bci2a", "bciiv"), folds=FOLDS, native_labels=GDF_LABELS,
    )

    @dataclass(frozen=True)
    class Options:
        drop_rejected: bool = field(default=False, metadata={
            "help": "leave out the trials the experts marked as rejected (event 1023)"})
        true_labels_dir: str | None = field(default=None, metadata={
            "help": "folder of A0sE.mat (default: beside the GDF files or in true_labels/)"})

    options = Options()

    def find_recordings(self, raw: Path, subjects: set[str] | None = None) -> list[RecordingRef]:
        raw = Path(raw)
        folder = _folder(raw)
        wanted = {canonical_subject(s) for s in subjects} if subjects else None
        found = []
        for path in folder.iterdir() if folder.is_dir() else []:
            match = FILE_NAME.match(path.name)
            if match:  # sorted below by subject, then the training session (T) before the evaluation (E)
                found.append((f"A0{match.group(1)}", match.group(2) != "T", match.group(2), path))
        return [self._ref(raw, path, subject, session) for subject, _, session, path in sorted(found)
                if wanted is None or subject in wanted]

    @staticmethod
    def _ref(raw: Path, path: Path, subject: str, session: str) -> RecordingRef:
        """T sessions carry their labels as events; E sessions also need A0sE.mat, found here if present."""
        recording = f"{subject}{session}"
        if session == "T":
            return RecordingRef(id=recording, subject=subject, session=session, paths=[path])
        dirs = _label_dirs(raw, path.parent)
        found = [d / f"{recording}.mat" for d in dirs if (d / f"{recording}.mat").is_file()]
        return RecordingRef(id=recording, subject=subject, session=session, paths=[path, *found[:1]],
                            extra={"label_dirs": [str(d) for d in dirs]})

    def _true_labels(self, ref: RecordingRef) -> list[int] | None:
        name = f"{ref.id}.mat"
        if self.options.true_labels_dir:
            path = Path(self.options.true_labels_dir) / name
            return read_true_labels(path) if path.is_file() else None
        return read_true_labels(ref.paths[1]) if len(ref.paths) > 1 else None

    def read(self, ref: RecordingRef) -> Recording:
        path = ref.paths[0]
        data, annotations, sfreq, floor = _read_gdf(path)
        true_labels = self._true_labels(ref) if ref.session == "E" else None
        if ref.session == "E" and true_labels is None:
            looked = self.options.true_labels_dir or ", ".join(ref.extra.get("label_dirs", []))
            raise RecordingError(f"{path.name}: true labels {ref.id}.mat not found (looked in {looked}); "
                                 "get true_labels.zip from the BCI Competition IV results page")
        trials = _cue_labels(annotations, true_labels, path, self.options.drop_rejected)
        run_starts = [round(o * sfreq) for o, d in zip(annotations.onset, annotations.description)
                      if str(d) == RUN_START]
        size = round(WINDOW_S * sfreq)
        pieces, placed = [], 0
        for start, stop in _segments(data, floor, run_starts):
            windows = []
            for cue, label in trials:
                first = round((cue + CUE_TO_WINDOW_S) * sfreq)
                if start <= first and first + size <= stop:
                    windows.append(((first - start) / sfreq, label))
            if windows:  # runs without trials (the EOG calibration) are not needed
                pieces.append(Piece(data[:, start:stop], sfreq, windows, offset_s=start / sfreq))
            placed += len(windows)
        notes = []
        if placed < len(trials):
            notes.append(f"{len(trials) - placed} of {len(trials)} trial windows cross a run gap or the file "
                         "end and are left out")
        return Recording(ref, pieces, notes)

    def subject_number(self, subject: str) -> int:
        return subject_digits(subject, r"A0([1-9])")

    def subject_id(self, number: int) -> str:
        return f"A0{number}"


CORPUS = BciIV2a()
