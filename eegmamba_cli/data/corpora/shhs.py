"""SHHS (Sleep Heart Health Study, NSRR): sleep staging from the C4-A1 channel `EEG`.

Layout under the raw folder (the NSRR download's `shhs/` folder, or its parent):

    polysomnography/edfs/shhs1/shhs1-200001.edf
    polysomnography/annotations-events-nsrr/shhs1/shhs1-200001-nsrr.xml

One recording per night (shhs1 only). It is read as one piece: the whole `EEG` channel at its native rate
(125 Hz), with one 30-s window per scored epoch. Reading goes through pyedflib, which returns each channel
at its own rate; MNE without `include` would upsample the EEG to the 250-Hz ECG.

The paper keeps 329 subjects (AHI < 5) but does not print the list. The user supplies it as a file
(option `subjects_file`, applied by `configure`); without it every subject found is used and a note
says so. The toolkit never guesses the list.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import defusedxml
import defusedxml.ElementTree as SafeET
import numpy as np
import pyedflib

from ...console import console
from ..base import Corpus, CorpusError, CorpusInfo, Piece, Recording, RecordingError, RecordingRef, subject_digits
from ..edf import MAX_SFREQ, MIN_SFREQ

EDF_DIR = Path("polysomnography/edfs/shhs1")
XML_DIR = Path("polysomnography/annotations-events-nsrr/shhs1")
EDF_NAME = re.compile(r"^shhs1-(\d{6})\.edf$")
NSRRID_BASE = 200000
CHANNEL = "EEG"  # C4-A1; `EEG(sec)` (C3-A2) is the other EEG channel and is not used
EPOCH_S = 30.0
MAX_RUN_EPOCHS = 7 * 24 * 120  # one week of 30-s epochs: a longer stage run is a corrupt file

# NSRR stage concept code (after the '|') -> class index; None = drop the epoch.
STAGE_CLASSES = {
    "0": 0,  # Wake
    "1": 1,  # Stage 1 sleep -> N1
    "2": 2,  # Stage 2 sleep -> N2
    "3": 3,  # Stage 3 sleep -> N3
    "4": 3,  # Stage 4 sleep -> N3 (R&K stages 3 and 4 merge)
    "5": 4,  # REM sleep
    "6": None,  # Movement
    "9": None,  # Unscored
}

# EDF physical dimension -> factor to µV.
TO_MICROVOLT = {"uv": 1.0, "µv": 1.0, "mv": 1e3, "v": 1e6}

# Paper Table 7: fold -> nsrrids (only the selected subjects belong).
FOLDS = {fold: range(NSRRID_BASE + low, NSRRID_BASE + high + 1)
         for fold, (low, high) in {1: (10, 1021), 2: (1023, 2956), 3: (2983, 4047), 4: (4051, 4781),
                                   5: (4783, 5789)}.items()}

NO_LIST_NOTE = ("SHHS: no subjects_file given, so every shhs1 subject found is used; the paper's 329 "
                "subjects (AHI < 5) need that list as a file, and the toolkit does not guess it")


def read_subject_list(path: str | Path) -> frozenset[str]:
    """nsrrids from a text/CSV file: the first field of each line; `#` comments and a header line skip.

    Accepts `200001` or `shhs1-200001`.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError as err:
        raise CorpusError(f"{path}: cannot read the SHHS subject list ({err.strerror or err})") from None
    ids = set()
    for number, line in enumerate(lines, 1):
        field = re.split(r"[,;\s]+", line.strip(), maxsplit=1)[0]
        if not field or field.startswith("#"):
            continue
        match = re.fullmatch(r"(?:shhs1-)?(\d{6})", field)
        if match:
            ids.add(match.group(1))
        elif ids or number > 1:  # only the first line may be a header such as "nsrrid"
            raise CorpusError(f"{path}:{number}: {field!r} is not an nsrrid (such as 200001)")
    if not ids:
        raise CorpusError(f"{path}: the SHHS subject list holds no nsrrids")
    return frozenset(ids)


def canonical_subject(text: str) -> str:
    """'200001', 'shhs1-200001' -> '200001'; anything else is returned unchanged (and matches nothing)."""
    match = re.fullmatch(r"(?:shhs1-)?(\d{6})", str(text).strip().lower())
    return match.group(1) if match else str(text)


def _root(raw: Path) -> Path:
    """Accept the NSRR `shhs/` folder itself or the folder holding it."""
    if not (raw / "polysomnography").is_dir() and (raw / "shhs" / "polysomnography").is_dir():
        return raw / "shhs"
    return raw


def _select_channel(edf: pyedflib.EdfReader, path: Path, name: str) -> int:
    labels = [label.strip() for label in edf.getSignalLabels()]
    matches = [i for i, label in enumerate(labels) if label.lower() == name.lower()]
    if not matches:
        raise RecordingError(f"{path.name}: missing channel {name} (found: {', '.join(labels)})")
    return matches[0]


def read_eeg(path: Path, name: str = CHANNEL) -> tuple[np.ndarray, float]:
    """One channel in µV at its native rate, and that rate."""
    try:
        edf = pyedflib.EdfReader(str(path))
    except OSError as err:
        raise RecordingError(f"{path.name}: cannot read the EDF ({err})") from None
    try:
        index = _select_channel(edf, path, name)
        sfreq = float(edf.getSampleFrequency(index))
        if not MIN_SFREQ <= sfreq <= MAX_SFREQ:
            raise RecordingError(f"{path.name}: corrupt EDF header (channel {name} at {sfreq:g} Hz)")
        unit = edf.getPhysicalDimension(index).strip().lower()
        if unit not in TO_MICROVOLT:
            raise RecordingError(f"{path.name}: channel {name} has unit {unit!r}, expected uV/mV/V")
        data = edf.readSignal(index) * TO_MICROVOLT[unit]
    except RecordingError:
        raise
    except Exception as err:  # pyedflib computes from header fields it accepted (a zero duration...)
        raise RecordingError(f"{path.name}: cannot read the EDF ({type(err).__name__}: {err})") from None
    finally:
        edf.close()
    return data[np.newaxis, :].astype(np.float64), sfreq


def _text(event, tag: str) -> str:
    node = event.find(tag)
    return (node.text or "").strip() if node is not None else ""


def read_stages(path: Path) -> dict[int, int]:
    """NSRR XML -> {epoch index: class}. Stage events are runs; other events are ignored."""
    try:
        tree = SafeET.parse(str(path))
    except defusedxml.DefusedXmlException as err:
        # entity declarations (billion laughs) and external entities are refused, never expanded
        raise RecordingError(f"{path.name}: refused unsafe XML ({type(err).__name__}: {err})") from None
    except (SafeET.ParseError, OSError) as err:
        raise RecordingError(f"{path.name}: cannot parse the annotation XML ({err})") from None
    root = tree.getroot()
    epoch_text = _text(root, "EpochLength") or str(EPOCH_S)
    if _number(epoch_text) != EPOCH_S:
        raise RecordingError(f"{path.name}: EpochLength is {epoch_text!r}, expected 30")
    stages: dict[int, int] = {}
    for event in root.iter("ScoredEvent"):
        if not _text(event, "EventType").startswith("Stages"):
            continue  # arousals, respiratory and SpO2 events are never stages
        concept = _text(event, "EventConcept")
        code = concept.rpartition("|")[2]
        if code not in STAGE_CLASSES:
            raise RecordingError(f"{path.name}: unknown sleep stage {concept!r}")
        first = _number(_text(event, "Start")) / EPOCH_S
        count = _number(_text(event, "Duration")) / EPOCH_S
        if not (_whole(first) and _whole(count)):
            raise RecordingError(f"{path.name}: stage run {concept!r} at {_text(event, 'Start')} s is not "
                                 "aligned to 30-s epochs")
        if count > MAX_RUN_EPOCHS:  # expanded one epoch at a time below: bound it
            raise RecordingError(f"{path.name}: stage run {concept!r} at {_text(event, 'Start')} s lasts "
                                 f"{_text(event, 'Duration')} s, longer than any recording")
        label = STAGE_CLASSES[code]
        for index in range(round(first), round(first) + round(count)):
            if label is not None:
                stages[index] = label
            else:
                stages.pop(index, None)
    return stages


def _number(text: str) -> float:
    """A float, or NaN for anything unreadable (which then fails the alignment checks)."""
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _whole(value: float) -> bool:
    return math.isfinite(value) and abs(value - round(value)) < 1e-6


class Shhs(Corpus):
    info = CorpusInfo(
        name="shhs",
        title="Sleep Heart Health Study (SHHS), visit 1",
        task="sleep",
        channels=("C4-A1",),
        native_sfreq=125.0,
        window_s=EPOCH_S,
        class_names=("W", "N1", "N2", "N3", "REM"),
        access="agreement",
        url="https://sleepdata.org/datasets/shhs",
        licence="NSRR data use agreement (no redistribution)",
        citation="Quan et al. 1997, Sleep 20(12); Zhang et al. 2018, JAMIA 25(10) (NSRR)",
        raw_hint=("polysomnography/edfs/shhs1/shhs1-NNNNNN.edf and "
                  "polysomnography/annotations-events-nsrr/shhs1/shhs1-NNNNNN-nsrr.xml, "
                  "as in the NSRR download's shhs/ folder"),
        index=3, display_name="SHHS", folds=FOLDS, native_labels={CHANNEL: "C4-A1"},
    )

    @dataclass(frozen=True)
    class Options:
        subjects_file: str | None = field(default=None, metadata={
            "help": "file of nsrrids to use (the paper's 329 subjects); relative: to the working or raw folder"})

    options = Options()

    def __init__(self, selected: frozenset[str] | None = None):
        self.selected = selected

    def bind(self, raw: Path | None, options=None) -> "Shhs":
        """A copy bound to the user's subject list (option `subjects_file`), or to none (with a note).

        A relative path is looked up in the working directory, then in the raw folder.
        """
        bound = super().bind(raw, options)
        value = bound.options.subjects_file
        if not value:
            console.print(f"[yellow]note:[/] {NO_LIST_NOTE}", highlight=False, soft_wrap=True)
            bound.selected = None
            return bound
        path = Path(value)
        if raw is not None and not path.is_absolute() and not path.exists() and (Path(raw) / path).exists():
            path = Path(raw) / path
        bound.selected = read_subject_list(path)
        return bound

    def notes(self) -> list[str]:
        return [] if self.selected is not None else [NO_LIST_NOTE]

    def find_recordings(self, raw: Path, subjects: set[str] | None = None) -> list[RecordingRef]:
        root = _root(Path(raw))
        wanted = {canonical_subject(s) for s in subjects} if subjects else None
        refs = []
        edf_dir = root / EDF_DIR
        names = sorted(p.name for p in edf_dir.iterdir()) if edf_dir.is_dir() else []
        for name in names:
            match = EDF_NAME.match(name)
            if not match:
                continue
            nsrrid = match.group(1)
            if (self.selected is not None and nsrrid not in self.selected) or (wanted and nsrrid not in wanted):
                continue
            xml = root / XML_DIR / f"shhs1-{nsrrid}-nsrr.xml"
            refs.append(RecordingRef(id=f"shhs1-{nsrrid}", subject=nsrrid, session="shhs1",
                                     paths=[edf_dir / name, xml]))
        return refs

    def read(self, ref: RecordingRef) -> Recording:
        edf_path, xml_path = ref.paths
        if not xml_path.is_file():
            raise RecordingError(f"{edf_path.name}: annotation file {xml_path.name} not found in "
                                 f"{xml_path.parent}")
        stages = read_stages(xml_path)
        data, sfreq = read_eeg(edf_path, CHANNEL)
        # keep epochs that are scored and lie wholly inside the EDF (the two lengths can differ)
        n_epochs = int(data.shape[1] // round(EPOCH_S * sfreq))
        windows = [(index * EPOCH_S, label) for index, label in sorted(stages.items())
                   if 0 <= index < n_epochs]
        return Recording(ref, [Piece(data, sfreq, windows, 0.0)])

    def fold_of(self, subject: str) -> int:
        if self.selected is not None and subject not in self.selected:
            return 0
        return super().fold_of(subject)

    def subject_number(self, subject: str) -> int:
        return subject_digits(subject, r"(?:shhs1-)?(\d{6})")

    def subject_id(self, number: int) -> str:
        return str(number)


CORPUS = Shhs()
