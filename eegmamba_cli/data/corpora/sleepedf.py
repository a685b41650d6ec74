"""Sleep-EDF Expanded 1.0.0, SleepEDF-20 subset: sleep staging, Fpz-Cz, 100 Hz, 30-s epochs.

Layout under the raw folder: `sleep-cassette/SC4ssNx0-PSG.edf` + `sleep-cassette/SC4ssNyy-Hypnogram.edf`
(or the same files directly in the raw folder). SleepEDF-20 = cassette subjects 00-19, 39 nights.

* A PSG and its hypnogram pair on their first 6 characters (`SC4ssN`), never on sorted order.
* Only `EEG Fpz-Cz` is read, at its native 100 Hz (the reader never upsamples).
* The hypnogram is read as annotations only (it has no data signal). Stage runs are expanded into 30-s
  epochs aligned to the run onsets; labels are cropped to the recording (hypnograms outlast the PSG).
* Wake trimming (option `trim_wake`): keep epochs within 30 min of the first and last sleep epoch. A night without any
  sleep epoch keeps nothing under trimming and is skipped with that reason; `trim_wake=false` keeps it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ...console import UserError
from ..base import (Corpus, CorpusError, CorpusInfo, DownloadError, PhysioNet, Piece, Recording, RecordingError,
                    RecordingRef, subject_digits)
from ..edf import EdfSignals, read_annotations, read_header
from ...channels import match_channels

CHANNEL = "EEG Fpz-Cz"
EPOCH_S = 30.0
# Hypnogram text -> class (R&K: stages 3 and 4 merge into N3). DROPPED texts are scored but unusable.
STAGES = {"Sleep stage W": 0, "Sleep stage 1": 1, "Sleep stage 2": 2, "Sleep stage 3": 3,
          "Sleep stage 4": 3, "Sleep stage R": 4}
DROPPED = {"Sleep stage ?", "Movement time"}
SUBJECTS = range(0, 20)  # SleepEDF-20
FOLDS = {fold: range(4 * fold - 4, 4 * fold) for fold in range(1, 6)}  # 0-3 -> 1, 4-7 -> 2, ... 16-19 -> 5
_PSG = re.compile(r"(SC4(\d\d)(\d))[A-Z]0-PSG\.edf", re.IGNORECASE)
_HYP = re.compile(r"(SC4\d\d\d)[A-Z][A-Z]-Hypnogram\.edf", re.IGNORECASE)


def canonical_subject(text: str) -> str:
    """'0', '00', 'SC400' -> '00' (two digits, as in SC4ssN)."""
    m = re.fullmatch(r"(?:SC4)?(\d{1,2})", text.strip(), re.IGNORECASE)
    if not m or int(m.group(1)) not in SUBJECTS:
        raise UserError(f"sleepedf: {text!r} is not a SleepEDF-20 subject (00 ... 19)")
    return f"{int(m.group(1)):02d}"


def stage_epochs(annotations, shift_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Expand stage runs into 30-s epochs: (starts in s from the PSG start, labels). `?` and movement
    epochs are dropped; any other non-stage annotation is ignored."""
    starts, labels = [], []
    for ann in annotations:
        text = ann.text.strip()
        if text in STAGES:
            n = int(np.floor(ann.duration / EPOCH_S + 1e-6))
            starts += [ann.onset + shift_s + k * EPOCH_S for k in range(n)]
            labels += [STAGES[text]] * n
        elif text not in DROPPED and text.lower().startswith("sleep stage"):
            raise RecordingError(f"unknown sleep stage {text!r}")
    return np.asarray(starts, dtype=np.float64), np.asarray(labels, dtype=np.int64)


def trim_wake(starts: np.ndarray, labels: np.ndarray, minutes: float = 30.0) -> np.ndarray:
    """Mask of the epochs within `minutes` of the first and last sleep (non-W) epoch.

    Without any sleep epoch nothing is within reach of sleep, so the mask is all False.
    """
    sleep = np.flatnonzero(labels != STAGES["Sleep stage W"])
    if len(sleep) == 0:
        return np.zeros(len(starts), dtype=bool)
    first, last = starts[sleep].min(), starts[sleep].max()
    margin = minutes * 60.0
    return (starts >= first - margin - 1e-6) & (starts <= last + margin + 1e-6)


def select_files(sums: dict[str, str], subjects: set[str] | None, read_index: Callable, options) -> list[str]:
    """The PhysioNet files to download: the SleepEDF-20 PSG + hypnogram pairs listed in RECORDS-v1."""
    wanted = {canonical_subject(s) for s in subjects} if subjects else {f"{n:02d}" for n in SUBJECTS}
    chosen = [n for n in ("RECORDS", "RECORDS-v1", "SC-subjects.xls") if n in sums]
    hypnograms: dict[str, list[str]] = {}
    for name in sums:
        m = re.fullmatch(r"sleep-cassette/(SC4\d\d\d)[A-Z][A-Z]-Hypnogram\.edf", name)
        if m:
            hypnograms.setdefault(m.group(1), []).append(name)
    # RECORDS-v1 = the original release: its 39 cassette PSGs are SleepEDF-20.
    for line in read_index("RECORDS-v1").split():
        m = re.fullmatch(r"(SC4(\d\d)\d)[A-Z]0-PSG\.edf", Path(line).name)
        if not m or m.group(2) not in wanted:
            continue
        psg = f"sleep-cassette/{Path(line).name}"
        if psg not in sums:
            raise DownloadError(f"RECORDS-v1 lists {line}, which SHA256SUMS.txt does not")
        if m.group(1) not in hypnograms:
            raise DownloadError(f"SHA256SUMS.txt has no hypnogram for {psg}")
        chosen += [psg] + sorted(hypnograms[m.group(1)])
    return chosen


class SleepEdf(Corpus):
    info = CorpusInfo(
        name="sleepedf", title="Sleep-EDF Expanded 1.0.0 (SleepEDF-20)", task="sleep", channels=("Fpz-Cz",),
        native_sfreq=100.0, window_s=EPOCH_S, class_names=("W", "N1", "N2", "N3", "REM"), access="open",
        url="https://physionet.org/content/sleep-edfx/1.0.0/", licence="ODC-By 1.0",
        citation="Kemp et al. 2000, IEEE TBME 47(9):1185-1194; Goldberger et al. 2000 (PhysioNet)",
        raw_hint="sleep-cassette/SC4ssNx0-PSG.edf + sleep-cassette/SC4ssNyy-Hypnogram.edf",
        index=2, display_name="SleepEDF-20", aliases=("sleepedf20",), folds=FOLDS,
        download=PhysioNet("sleep-edfx", select_files))

    @dataclass(frozen=True)
    class Options:
        trim_wake: bool = field(default=True, metadata={
            "help": "keep only the epochs within trim_minutes of the first and last sleep epoch"})
        trim_minutes: float = field(default=30.0, metadata={"help": "the wake margin kept by trim_wake"})

        def __post_init__(self):
            if self.trim_minutes < 0:
                raise CorpusError(f"sleepedf: option trim_minutes must be >= 0, not {self.trim_minutes:g}")

    options = Options()

    def find_recordings(self, raw: Path, subjects: set[str] | None = None) -> list[RecordingRef]:
        wanted = {canonical_subject(s) for s in subjects} if subjects else None
        refs = []
        for folder in _folders(Path(raw)):
            files = sorted(p for p in folder.iterdir() if p.is_file())
            hypnograms: dict[str, list[Path]] = {}
            for p in files:
                m = _HYP.fullmatch(p.name)
                if m:
                    hypnograms.setdefault(m.group(1).upper(), []).append(p)
            for p in files:
                m = _PSG.fullmatch(p.name)
                if not m or int(m.group(2)) not in SUBJECTS:
                    continue  # SleepEDF-78 nights beyond subject 19 are not part of SleepEDF-20
                subject = m.group(2)
                if wanted and subject not in wanted:
                    continue
                refs.append(RecordingRef(id=p.name[:8], subject=subject, session=m.group(3),
                                         paths=[p] + hypnograms.get(m.group(1).upper(), [])))
        return sorted(refs, key=lambda r: r.id)

    def read(self, ref: RecordingRef) -> Recording:
        psg = ref.paths[0]
        if len(ref.paths) == 1:
            raise RecordingError(f"{psg.name}: no hypnogram {psg.name[:6]}??-Hypnogram.edf beside it")
        if len(ref.paths) > 2:
            raise RecordingError(f"{psg.name}: several hypnograms match "
                                 f"({', '.join(p.name for p in ref.paths[1:])})")
        hyp = ref.paths[1]
        header = read_header(psg)
        signals = EdfSignals(header, match_channels(header.labels, [CHANNEL], source=psg.name))
        duration = signals.shape[1] / signals.sfreq
        hyp_header = read_header(hyp)
        shift = 0.0  # onsets count from the hypnogram's own start, which normally equals the PSG's
        if header.start and hyp_header.start:
            shift = (hyp_header.start - header.start).total_seconds()
        try:
            starts, labels = stage_epochs(read_annotations(hyp), shift)
        except RecordingError as err:
            raise RecordingError(f"{hyp.name}: {err}") from None
        if len(starts) == 0:
            raise RecordingError(f"{hyp.name}: no sleep-stage annotations (not a hypnogram?)")
        inside = (starts >= 0) & (starts + EPOCH_S <= duration + 1e-6)  # crop to the recording
        if not inside.any():
            raise RecordingError(f"{hyp.name}: no scored epoch falls inside {psg.name} "
                                 f"({duration:g} s); the hypnogram does not match the recording")
        starts, labels = starts[inside], labels[inside]
        if self.options.trim_wake:
            keep = trim_wake(starts, labels, self.options.trim_minutes)
            if not keep.any():
                raise RecordingError(f"{psg.name}: no sleep epoch, so wake trimming keeps nothing "
                                     "(option trim_wake=false keeps the wake epochs)")
            starts, labels = starts[keep], labels[keep]
        piece = Piece(signals, signals.sfreq, list(zip(starts.tolist(), labels.tolist())))
        return Recording(ref, [piece])

    def subject_number(self, subject: str) -> int:
        return subject_digits(subject, r"(?:SC4)?(\d{1,2})")

    def subject_id(self, number: int) -> str:
        return f"{number:02d}"


def _folders(raw: Path) -> list[Path]:
    """The raw folder, its sleep-cassette/ and an unpacked zip's <name>/sleep-cassette/."""
    found = [raw, raw / "sleep-cassette"]
    found += [sub / "sleep-cassette" for sub in sorted(raw.iterdir()) if sub.is_dir()]
    return [f for f in dict.fromkeys(found) if f.is_dir()]


CORPUS = SleepEdf()
