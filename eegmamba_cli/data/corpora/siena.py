"""Siena Scalp EEG Database 1.0.0: seizure detection, 29 channels, 512 Hz, 4-s windows.

Layout under the raw folder: `PNxx/PNxx-k.edf` and `PNxx/Seizures-list-PNxx.txt`. Seizure times in the
lists are wall-clock; they become offsets from the EDF *header* start time, modulo 24 h (recordings
cross midnight). Every quirk of the lists is fixed by one table, `CORRECTIONS`, never ad hoc.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ...console import UserError
from ..base import Corpus, CorpusInfo, PhysioNet, Piece, Recording, RecordingError, RecordingRef
from ..edf import EdfSignals, read_header
from ...channels import match_channels
from ..signal import check_fraction, fixed_windows, overlap_labels

# In the order the model sees them (old 10-20 names, as in the Siena files).
CHANNELS = ("Fp1", "F3", "C3", "P3", "O1", "F7", "T3", "T5", "Fc1", "Fc5", "Cp1", "Cp5", "F9", "Fz", "Cz",
            "Pz", "Fp2", "F4", "C4", "P4", "O2", "F8", "T4", "T6", "Fc2", "Fc6", "Cp2", "Cp6", "F10")
# Patients left out of every run, with the reason (the paper drops PN10).
EXCLUDED = {"PN10": "has only 20 EEG electrodes (excluded by the paper)"}
# The paper's fold table (patient numbers), with its printed "15" dropped: no PN15 exists. PN10 is in none.
FOLDS = {1: (0, 1, 3), 2: (5, 6, 7), 3: (9, 11, 12), 4: (13, 14), 5: (16, 17)}
DAY = 86400


@dataclass(frozen=True)
class Correction:
    field: str  # "file", "time" (every time field) or "end"
    pattern: str  # matched against the whole (stripped) value, case-insensitively
    replacement: str
    why: str
    file: str | None = None  # only inside blocks about this (corrected) file


# Every known defect of the seizure lists, applied in order.
CORRECTIONS: tuple[Correction, ...] = (
    Correction("file", r"PN01\.edf", "PN01-1.edf", "PN01's only file is PN01-1.edf"),
    Correction("file", r"PNO(\d.*)", r"PN0\1", "letter O typed for a zero (PNO6-...)"),
    Correction("file", r"PN11-\.edf", "PN11-1.edf", "file number missing"),
    Correction("time", r"1 6\.49\.25", "16.49.25", "stray space (PN10)"),
    Correction("time", r"(\S+)\s+opure\s+\S+", r"\1", "'opure' (oppure, 'or'): the first time (our choice)"),
    Correction("time", r".*?(\d{1,2}[.:]\d{1,2}[.:]\d{1,2})\s*\(ELECTRIC ONSET\).*", r"\1",
               "clinical and electric onsets listed: the electric onset (our choice)"),
    Correction("end", r"19\.29\.29", "18.29.29", "listed end falls after the recording; meant 18.29.29",
               file="PN00-3.edf"),
)

# Field labels, lower-cased with single spaces -> the key used here. Both start/end spellings occur.
FIELDS = {"file name": "file", "registration start time": "reg_start", "registration end time": "reg_end",
          "seizure start time": "start", "start time": "start", "seizure end time": "end",
          "end time": "end"}
_HEADER = re.compile(r"seizure\s+n\.?\s*(\d+)\b.*", re.IGNORECASE)  # "Seizure n 1 (in sleep):"
_FIELD = re.compile(r"([A-Za-z][A-Za-z ]*?)\s*:\s*(.*)")
_CLOCK = re.compile(r"(\d{1,2})\s*[.:]\s*(\d{1,2})\s*[.:]\s*(\d{1,2})")


@dataclass(frozen=True)
class ListedSeizure:
    number: int
    file: str  # corrected file name, e.g. PN01-1.edf
    start: int  # wall-clock seconds of the day
    end: int
    reg_start: int | None  # registration times (inherited from the previous block when missing)
    reg_end: int | None
    corrections: tuple[str, ...] = ()


def correct(field: str, value: str, file: str | None = None) -> tuple[str, list[str]]:
    """Apply the corrections table to one value; returns the value and the reasons applied."""
    applied = []
    fields = {"file": ("file",), "reg_start": ("time",), "reg_end": ("time",), "start": ("time",),
              "end": ("time", "end")}[field]
    for c in CORRECTIONS:
        if c.field not in fields or (c.file and (file or "").lower() != c.file.lower()):
            continue
        m = re.fullmatch(c.pattern, value, re.IGNORECASE)
        if m:
            value = m.expand(c.replacement)
            applied.append(c.why)
    return value, applied


def parse_clock(value: str, source: str) -> int:
    """`hh.mm.ss`, `hh:mm:ss` or a mixture -> seconds of the day."""
    m = _CLOCK.fullmatch(value.strip())
    if not m:
        raise RecordingError(f"{source}: unreadable time {value!r}")
    h, mi, s = (int(g) for g in m.groups())
    if h > 23 or mi > 59 or s > 59:
        raise RecordingError(f"{source}: impossible time {value!r}")
    return h * 3600 + mi * 60 + s


def parse_seizure_list(text: str, source: str = "Seizures-list") -> list[ListedSeizure]:
    """All seizures of one `Seizures-list-PNxx.txt`, with corrected file names and times."""
    blocks: list[dict] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        header = _HEADER.fullmatch(line)
        if header:
            blocks.append({"number": int(header.group(1)), "line": lineno})
            continue
        m = _FIELD.fullmatch(line)
        if not m or not blocks:
            continue  # patient id, sampling rate, channel list: not needed here
        key = FIELDS.get(" ".join(m.group(1).lower().split()))
        if key is None:
            continue
        block = blocks[-1]
        if key in block:
            raise RecordingError(f"{source}: line {lineno}: second {m.group(1).strip()!r} in seizure "
                                 f"n {block['number']}")
        block[key] = m.group(2).strip()

    seizures, previous = [], {}
    for block in blocks:
        where = f"{source}: seizure n {block['number']} (line {block['line']})"
        fixes: list[str] = []
        if "file" in block:
            name, applied = correct("file", block["file"])
            fixes += applied
        elif "file" in previous:
            name = previous["file"]
        else:
            raise RecordingError(f"{where}: no file name")
        if not re.fullmatch(r"PN\d\d-[0-9.]+\.edf", name, re.IGNORECASE):
            raise RecordingError(f"{where}: unexpected file name {name!r}")
        times = {}
        for key in ("reg_start", "reg_end", "start", "end"):
            if key in block:
                value, applied = correct(key, block[key], name)
                fixes += applied
                times[key] = parse_clock(value, where)
            elif key.startswith("reg"):
                times[key] = previous.get(key)  # PN12 seizure 2 gives no registration times
            else:
                raise RecordingError(f"{where}: no {'start' if key == 'start' else 'end'} time")
        seizures.append(ListedSeizure(block["number"], name, times["start"], times["end"],
                                      times["reg_start"], times["reg_end"], tuple(fixes)))
        previous = {"file": name, "reg_start": times["reg_start"], "reg_end": times["reg_end"]}
    return seizures


def _clock(seconds: int) -> str:
    seconds %= DAY
    return f"{seconds // 3600:02d}.{seconds // 60 % 60:02d}.{seconds % 60:02d}"


def canonical_subject(text: str) -> str:
    """'PN00', 'pn0', '0', '00' -> 'PN00'. The paper's '15' is a typo and refused."""
    m = re.fullmatch(r"(?:PN)?(\d{1,2})", text.strip(), re.IGNORECASE)
    if not m:
        raise UserError(f"siena: {text!r} is not a patient id (PN00 ... PN17)")
    number = int(m.group(1))
    if number == 15:
        raise UserError("siena: there is no patient PN15 (the paper's fold table misprints it; "
                        "fold 4 is PN13 and PN14)")
    return f"PN{number:02d}"


def select_files(sums: dict[str, str], subjects: set[str] | None, read_index: Callable, options) -> list[str]:
    """The PhysioNet files to download: every patient folder (PN10 only when asked for by name)."""
    wanted = {canonical_subject(s) for s in subjects} if subjects else None
    chosen = [n for n in ("RECORDS", "subject_info.csv", "LICENSE.txt") if n in sums]
    for name in sorted(sums):
        folder = name.split("/")[0].upper()
        if "/" in name and re.fullmatch(r"PN\d\d", folder):
            if (wanted and folder in wanted) or (not wanted and folder not in EXCLUDED):
                chosen.append(name)
    return chosen


class Siena(Corpus):
    info = CorpusInfo(
        name="siena", title="Siena Scalp EEG Database 1.0.0", task="seizure", channels=CHANNELS,
        native_sfreq=512.0, window_s=4.0, class_names=("non-seizure", "seizure"), access="open",
        url="https://physionet.org/content/siena-scalp-eeg/1.0.0/", licence="CC BY 4.0",
        citation="Detti et al. 2020, Processes 8(7):846; Goldberger et al. 2000 (PhysioNet)",
        raw_hint="PNxx/PNxx-k.edf and PNxx/Seizures-list-PNxx.txt",
        index=0, display_name="Siena", folds=FOLDS, download=PhysioNet("siena-scalp-eeg", select_files))

    @dataclass(frozen=True)
    class Options:
        min_ictal_fraction: float = field(default=0.5, metadata={
            "help": "share of a window inside a seizure for the window to count as seizure, in (0, 1]"})

        def __post_init__(self):
            check_fraction("min_ictal_fraction", self.min_ictal_fraction)

    options = Options()

    def find_recordings(self, raw: Path, subjects: set[str] | None = None) -> list[RecordingRef]:
        wanted = {canonical_subject(s) for s in subjects} if subjects else None
        for pid in sorted((wanted or set()) & set(EXCLUDED)):
            raise UserError(f"siena: {pid} {EXCLUDED[pid]}")
        refs = []
        for folder in _patient_folders(Path(raw)):
            pid = folder.name.upper()
            if pid in EXCLUDED or (wanted and pid not in wanted):
                continue
            lists = [p for p in folder.iterdir() if p.name.lower() == f"seizures-list-{pid.lower()}.txt"]
            for edf in sorted(p for p in folder.iterdir()
                              if p.suffix.lower() == ".edf" and p.name.upper().startswith(pid + "-")):
                session = edf.stem[len(pid) + 1:]
                refs.append(RecordingRef(id=edf.stem, subject=pid, session=session,
                                         paths=[edf] + lists[:1]))
        return sorted(refs, key=lambda r: (r.subject, _natural(r.session)))

    def read(self, ref: RecordingRef) -> Recording:
        edf = ref.paths[0]
        if len(ref.paths) < 2:
            raise RecordingError(f"{edf.name}: no Seizures-list-{ref.subject}.txt beside it")
        header = read_header(edf)
        signals = EdfSignals(header, match_channels(header.labels, CHANNELS, source=edf.name))
        duration = signals.shape[1] / signals.sfreq
        t0 = header.start_seconds_of_day
        if t0 is None:
            raise RecordingError(f"{edf.name}: unreadable start time in the EDF header")
        listing = ref.paths[1]
        try:
            text = listing.read_text(encoding="latin-1")
        except OSError as err:
            raise RecordingError(f"{listing.name}: cannot read ({err.strerror or err})") from None
        notes, intervals = [], []
        for s in parse_seizure_list(text, listing.name):
            if s.file.lower() != edf.name.lower():
                continue
            if s.reg_start is not None and s.reg_start != t0:
                notes.append(f"{listing.name} gives registration start {_clock(s.reg_start)}, the EDF header "
                             f"{_clock(t0)}; seizure times are taken from the header")
            onset = (s.start - t0) % DAY  # recordings cross midnight
            end = onset + (s.end - s.start) % DAY
            if onset >= duration:
                raise RecordingError(
                    f"{edf.name}: seizure n {s.number} ({_clock(s.start)}-{_clock(s.end)}) lies outside the "
                    f"recording ({_clock(t0)}-{_clock(t0 + int(duration))})")
            intervals.append((onset, min(end, duration)))
        starts = fixed_windows(duration, self.info.window_s)
        labels = overlap_labels(starts, self.info.window_s, intervals, self.options.min_ictal_fraction)
        piece = Piece(signals, signals.sfreq, list(zip(starts.tolist(), labels.tolist())))
        return Recording(ref, [piece], sorted(set(notes)))

    def subject_number(self, subject: str) -> int:
        return int(canonical_subject(subject)[2:])

    def subject_id(self, number: int) -> str:
        return f"PN{number:02d}"


def _patient_folders(raw: Path) -> list[Path]:
    """`PNxx/` folders directly under raw, or one level down (the unpacked zip's own folder)."""
    def folders(base: Path) -> list[Path]:
        return sorted(p for p in base.iterdir() if p.is_dir() and re.fullmatch(r"PN\d\d", p.name, re.I))
    found = folders(raw)
    if not found:
        for sub in sorted(p for p in raw.iterdir() if p.is_dir()):
            found += folders(sub)
    return found


def _natural(text: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


CORPUS = Siena()
