"""CHB-MIT Scalp EEG Database 1.0.0: seizure detection, 23 bipolar channels, 256 Hz.

Layout under the raw folder: `chbNN/chbNN*.edf` (chb17a_03, chb02_16+ ...), `chbNN/chbNN-summary.txt`,
optional `chbNN/<file>.edf.seizures` (binary WFDB, used only to cross-check the summary), and
`RECORDS-WITH-SEIZURES`, which picks the default file subset (option `files`). Seizure times are the summary's
seconds from file start; its clock lines are never used for labels.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from ...console import UserError
from ..base import (Corpus, CorpusInfo, DownloadError, PhysioNet, Piece, Recording, RecordingError, RecordingRef,
                    check_choice, subject_digits)
from ..edf import EdfSignals, read_header
from ...channels import match_channels
from ..signal import check_fraction, fixed_windows, overlap_labels

# The 23 channels of the paper, in order; T8-P8 appears twice (EDF channels 15 and 23 hold the same
# derivation) and each copy is read from its own EDF channel.
CHANNELS = ("FP1-F7", "F7-T7", "T7-P7", "P7-O1", "FP1-F3", "F3-C3", "C3-P3", "P3-O1", "FP2-F4", "F4-C4",
            "C4-P4", "P4-O2", "FP2-F8", "F8-T8", "T8-P8", "P8-O2", "FZ-CZ", "CZ-PZ", "P7-T7", "T7-FT9",
            "FT9-FT10", "FT10-T8", "T8-P8")
DUMMY = "-"  # placeholder channels in several patients; never selected
SUBJECTS = range(1, 24)  # chb01-chb23; chb24 has no fold and is not used
FOLDS = {1: range(1, 6), 2: range(6, 11), 3: range(11, 16), 4: range(16, 20), 5: range(20, 24)}
FILE_CHOICES = ("seizures", "all")
_FILE = re.compile(r"(chb\d\d)([a-z]?)_(\d+\+?)\.edf", re.IGNORECASE)


# --- the summary file --------------------------------------------------------------------------

@dataclass
class SummaryEntry:
    name: str  # e.g. chb01_03.edf
    start_clock: int | None = None  # seconds; may exceed 24 h ("24:10:00"); None when absent
    end_clock: int | None = None
    n_seizures: int | None = None
    seizures: list[tuple[int, int]] = field(default_factory=list)  # seconds from file start
    channels: tuple[str, ...] = ()  # the channel list in force for this file


@dataclass
class Summary:
    sfreq: float | None
    files: dict[str, SummaryEntry]  # by lower-cased file name


_SEIZURE = re.compile(r"seizure(?:\s+(\d+))?\s+(start|end)\s+time\s*:\s*(\d+)\s*(?:seconds?|secs?|s)?",
                      re.IGNORECASE)
_KEYVAL = re.compile(r"([^:]+?)\s*:\s*(.*)")


def _clock_seconds(text: str, where: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    m = re.fullmatch(r"(\d{1,3}):(\d{1,2}):(\d{1,2})", text)
    if not m:
        raise RecordingError(f"{where}: unreadable clock time {text!r}")
    h, mi, s = (int(g) for g in m.groups())
    return h * 3600 + mi * 60 + s  # hours past 24 are kept: they say "the next day"


def parse_summary(text: str, source: str = "summary") -> Summary:
    """Parse `chbNN-summary.txt`: sampling rate, channel lists (incl. `Channels changed:`), file blocks."""
    sfreq = None
    channels: dict[int, str] = {}
    changed = False
    files: dict[str, SummaryEntry] = {}
    entry: SummaryEntry | None = None
    pending: dict[str, dict[int, int]] = {"start": {}, "end": {}}
    order = {"start": 0, "end": 0}

    def close(lineno: int) -> None:
        if entry is None:
            return
        starts, ends = pending["start"], pending["end"]
        where = f"{source}: {entry.name}"
        if len(starts) != len(ends) or set(starts) != set(ends):
            raise RecordingError(f"{where}: {len(starts)} seizure start(s) but {len(ends)} end(s)")
        entry.seizures = [(starts[k], ends[k]) for k in sorted(starts)]
        for a, b in entry.seizures:
            if b <= a:
                raise RecordingError(f"{where}: seizure ends ({b} s) before it starts ({a} s)")
        if entry.n_seizures is not None and entry.n_seizures != len(entry.seizures):
            raise RecordingError(f"{where}: says {entry.n_seizures} seizure(s) but gives times for "
                                 f"{len(entry.seizures)}")

    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or set(line) == {"*"}:
            continue
        where = f"{source}: line {lineno}"
        if line.lower().rstrip(":").strip() == "channels changed":
            changed = True
            continue
        m = _SEIZURE.fullmatch(line)
        if m:
            if entry is None:
                raise RecordingError(f"{where}: seizure time before any 'File Name:' line")
            kind = m.group(2).lower()
            number = int(m.group(1)) if m.group(1) else None
            if number is None:
                order[kind] += 1
                number = order[kind]
            if number in pending[kind]:
                raise RecordingError(f"{where}: seizure {number} {kind} time given twice")
            pending[kind][number] = int(m.group(3))
            continue
        kv = _KEYVAL.fullmatch(line)
        if not kv:
            continue
        key, value = " ".join(kv.group(1).lower().split()), kv.group(2).strip()
        ch = re.fullmatch(r"channel (\d+)", key)
        if ch:
            if changed:  # a new list replaces the old one for the files that follow
                channels, changed = {}, False
            channels[int(ch.group(1))] = value
        elif key == "data sampling rate":
            num = re.match(r"([0-9]+(?:\.[0-9]*)?)", value)
            sfreq = float(num.group(1)) if num else None
        elif key == "file name":
            close(lineno)
            name = Path(value.replace("\\", "/")).name
            entry = SummaryEntry(name=name, channels=tuple(channels[k] for k in sorted(channels)))
            if name.lower() in files:
                raise RecordingError(f"{where}: {name} listed twice")
            files[name.lower()] = entry
            pending, order = {"start": {}, "end": {}}, {"start": 0, "end": 0}
        elif entry is not None and key == "file start time":
            entry.start_clock = _clock_seconds(value, where)
        elif entry is not None and key == "file end time":
            entry.end_clock = _clock_seconds(value, where)
        elif entry is not None and key == "number of seizures in file":
            if not (value.isascii() and value.isdigit()):  # str.isdigit() also accepts '²'
                raise RecordingError(f"{where}: unreadable seizure count {value!r}")
            entry.n_seizures = int(value)
    close(-1)
    return Summary(sfreq, files)


# --- the .edf.seizures WFDB annotation files ----------------------------------------------------

WFDB_CODES = {"[": 32, "]": 33, "NOTE": 22}
_SKIP, _NUM, _SUB, _CHN, _AUX = 59, 60, 61, 62, 63


@dataclass(frozen=True)
class WfdbAnnotation:
    sample: int
    code: int
    aux: str = ""


def decode_wfdb_annotations(data: bytes, source: str = "annotations") -> list[WfdbAnnotation]:
    """Decode a WFDB (MIT-format) annotation file.

    Each 16-bit little-endian word holds a 6-bit code A and a 10-bit time step I. A = 59 (SKIP) is
    followed by a 32-bit step (high word first); 60-62 set num/sub/chan; 63 (AUX) is followed by I bytes
    of text (padded to even); A = 0 with I = 0 ends the file.
    """
    out: list[WfdbAnnotation] = []
    time, pos, n = 0, 0, len(data)
    while pos + 2 <= n:
        word = data[pos] | data[pos + 1] << 8
        pos += 2
        code, step = word >> 10, word & 0x3FF
        if code == 0 and step == 0:
            return out
        if code == _SKIP:
            if pos + 4 > n:
                break
            hi = data[pos] | data[pos + 1] << 8
            lo = data[pos + 2] | data[pos + 3] << 8
            skip = hi << 16 | lo
            time += skip - (1 << 32) if skip >= 1 << 31 else skip
            pos += 4
        elif code == _AUX:
            if pos + step > n or not out:
                break
            text = data[pos:pos + step].split(b"\0", 1)[0].decode("latin-1")
            out[-1] = replace(out[-1], aux=text)
            pos += step + (step & 1)
        elif code in (_NUM, _SUB, _CHN):
            continue
        else:
            time += step
            out.append(WfdbAnnotation(time, code))
    raise RecordingError(f"{source}: truncated WFDB annotation file")


def wfdb_seizures(data: bytes, source: str = "annotations", sfreq: float | None = None) -> list[tuple[float, float]]:
    """Seizure intervals in seconds from the `[` ... `]` pairs; the rate comes from the
    `## time resolution: N` note when present."""
    anns = decode_wfdb_annotations(data, source)
    for a in anns:
        m = re.search(r"time resolution:\s*([\d.]+)", a.aux)
        if m:
            sfreq = float(m.group(1))
    if not sfreq:
        raise RecordingError(f"{source}: no time resolution note and no sampling rate given")
    onsets = [a.sample for a in anns if a.code == WFDB_CODES["["]]
    ends = [a.sample for a in anns if a.code == WFDB_CODES["]"]]
    if len(onsets) != len(ends):
        raise RecordingError(f"{source}: {len(onsets)} seizure onset(s) but {len(ends)} end(s)")
    return [(a / sfreq, b / sfreq) for a, b in zip(onsets, ends)]


def parse_subject_info(text: str, source: str = "SUBJECT-INFO") -> dict[str, tuple[str, float]]:
    """SUBJECT-INFO: tab-separated `Case, Gender, Age (years)`, a blank line, space-padded ages.
    chb24 has no row (and chb21 is chb01's patient)."""
    out = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        cells = [c.strip() for c in line.split("\t")]
        if not cells[0] or cells[0].lower() == "case":
            continue
        if len(cells) < 3 or not re.fullmatch(r"chb\d\d", cells[0], re.IGNORECASE):
            raise RecordingError(f"{source}: line {lineno}: expected 'chbNN<TAB>gender<TAB>age'")
        try:
            out[cells[0].lower()] = (cells[1], float(cells[2]))
        except ValueError:
            raise RecordingError(f"{source}: line {lineno}: unreadable age {cells[2]!r}") from None
    return out


# --- the corpus ---------------------------------------------------------------------------------

def canonical_subject(text: str) -> str:
    """'chb01', 'CHB1', '1', '01' -> 'chb01'."""
    m = re.fullmatch(r"(?:chb)?(\d{1,2})", text.strip(), re.IGNORECASE)
    if not m:
        raise UserError(f"chbmit: {text!r} is not a case id (chb01 ... chb23)")
    number = int(m.group(1))
    if number not in SUBJECTS:
        raise UserError(f"chbmit: chb{number:02d} is not used (cases chb01 ... chb23; chb24 has no fold)")
    return f"chb{number:02d}"


def select_files(sums: dict[str, str], subjects: set[str] | None, read_index: Callable, options) -> list[str]:
    """The PhysioNet files to download: the summaries and the files of `options.files`."""
    cases = {canonical_subject(s) for s in subjects} if subjects else {f"chb{n:02d}" for n in SUBJECTS}
    chosen = [n for n in ("RECORDS", "RECORDS-WITH-SEIZURES", "SUBJECT-INFO", "ANNOTATORS") if n in sums]
    if options.files == "all":
        return chosen + [n for n in sorted(sums) if n.split("/")[0] in cases and "/" in n]
    listed = [line.strip() for line in read_index("RECORDS-WITH-SEIZURES").splitlines() if line.strip()]
    for case in sorted(cases):
        summary = f"{case}/{case}-summary.txt"
        chosen += [summary] if summary in sums else []
    for edf in listed:
        if edf.split("/")[0] in cases:
            if edf not in sums:
                raise DownloadError(f"RECORDS-WITH-SEIZURES lists {edf}, which SHA256SUMS.txt does not")
            chosen += [edf] + ([edf + ".seizures"] if edf + ".seizures" in sums else [])
    return chosen


class ChbMit(Corpus):
    info = CorpusInfo(
        name="chbmit", title="CHB-MIT Scalp EEG Database 1.0.0", task="seizure", channels=CHANNELS,
        native_sfreq=256.0, window_s=4.0, class_names=("non-seizure", "seizure"), access="open",
        url="https://physionet.org/content/chbmit/1.0.0/", licence="ODC-By 1.0",
        citation="Shoeb 2009 (MIT PhD thesis); Goldberger et al. 2000 (PhysioNet)",
        raw_hint="chbNN/chbNN_MM.edf, chbNN/chbNN-summary.txt, RECORDS-WITH-SEIZURES",
        index=1, display_name="CHB-MIT", aliases=("chb",), folds=FOLDS,
        download=PhysioNet("chbmit", select_files))

    @dataclass(frozen=True)
    class Options:
        files: str = field(default="seizures", metadata={
            "help": "which EDF files: 'seizures' (RECORDS-WITH-SEIZURES) or 'all'; for download and preprocess"})
        merge_chb21_into_chb01: bool = field(default=False, metadata={
            "help": "count chb21 (chb01's patient 1.5 years later) as subject chb01"})
        min_ictal_fraction: float = field(default=0.5, metadata={
            "help": "share of a window inside a seizure for the window to count as seizure, in (0, 1]"})
        crosscheck: bool = field(default=True, metadata={
            "help": "compare the summary with <file>.edf.seizures when present (a note on disagreement)"})

        def __post_init__(self):
            check_fraction("min_ictal_fraction", self.min_ictal_fraction)
            check_choice("chbmit", "files", self.files, FILE_CHOICES)

    options = Options()

    def find_recordings(self, raw: Path, subjects: set[str] | None = None) -> list[RecordingRef]:
        raw = Path(raw)
        wanted = {canonical_subject(s) for s in subjects} if subjects else None
        if wanted and self.options.merge_chb21_into_chb01 and "chb01" in wanted:
            wanted.add("chb21")
        listed = self._listed(raw)
        refs = []
        for folder in sorted(p for p in raw.iterdir() if p.is_dir() and re.fullmatch(r"chb\d\d", p.name, re.I)):
            case = folder.name.lower()
            if int(case[3:]) not in SUBJECTS or (wanted and case not in wanted):
                continue
            summary = [p for p in folder.iterdir() if p.name.lower() == f"{case}-summary.txt"]
            edfs = {p.name.lower(): p for p in folder.glob("*") if _FILE.fullmatch(p.name)
                    and p.name.lower().startswith(case)}  # chbNN*.edf: chb17a_03, chb02_16+
            names = sorted(edfs) if listed is None or self.options.files == "all" else \
                sorted(n for n in listed.get(case, ()))
            for name in names:
                path = edfs.get(name, folder / name)  # listed but absent: reported when read
                m = _FILE.fullmatch(path.name)
                subject = "chb01" if self.options.merge_chb21_into_chb01 and case == "chb21" else case
                refs.append(RecordingRef(id=path.stem, subject=subject,
                                         session=f"{m.group(2)}{'_' if m.group(2) else ''}{m.group(3)}",
                                         paths=[path] + summary[:1]))
        return sorted(refs, key=lambda r: (r.paths[0].parent.name, _natural(r.id)))

    def _listed(self, raw: Path) -> dict[str, set[str]] | None:
        """RECORDS-WITH-SEIZURES as {case: {file names}}; None when the file is absent (then every
        file whose summary lists a seizure is used instead, decided per file)."""
        if self.options.files == "all":
            return None
        path = raw / "RECORDS-WITH-SEIZURES"
        if path.is_file():
            lines = path.read_text(encoding="latin-1").split()
        else:
            lines = []
            for summary in sorted(raw.glob("chb[0-9][0-9]/chb[0-9][0-9]-summary.txt")):
                try:
                    parsed = parse_summary(summary.read_text(encoding="latin-1"), summary.name)
                except RecordingError:
                    continue  # reported per file when read
                lines += [f"{summary.parent.name}/{e.name}" for e in parsed.files.values() if e.seizures]
        listed: dict[str, set[str]] = {}
        for line in lines:
            parts = line.strip().replace("\\", "/").split("/")
            if len(parts) == 2 and _FILE.fullmatch(parts[1]) and re.fullmatch(r"chb\d\d", parts[0], re.I):
                listed.setdefault(parts[0].lower(), set()).add(parts[1].lower())
        return listed

    def read(self, ref: RecordingRef) -> Recording:
        edf = ref.paths[0]
        if not edf.exists():
            raise RecordingError(f"{edf.name}: listed in RECORDS-WITH-SEIZURES but not found in "
                                 f"{edf.parent.name}/ (incomplete download?)")
        if len(ref.paths) < 2:
            raise RecordingError(f"{edf.name}: no {edf.parent.name}-summary.txt beside it")
        header = read_header(edf)
        usable = [lab for lab in header.labels if lab.strip() != DUMMY]
        try:
            idx = match_channels(header.labels, CHANNELS, source=edf.name)
        except RecordingError as err:
            raise RecordingError(f"{err}; the file has {len(usable)} channels, the paper needs 23") from None
        signals = EdfSignals(header, idx)
        duration = signals.shape[1] / signals.sfreq
        summary_path = ref.paths[1]
        try:
            text = summary_path.read_text(encoding="latin-1")
        except OSError as err:
            raise RecordingError(f"{summary_path.name}: cannot read ({err.strerror or err})") from None
        entry = parse_summary(text, summary_path.name).files.get(edf.name.lower())
        if entry is None:
            raise RecordingError(f"{edf.name}: not described in {summary_path.name}")
        for a, b in entry.seizures:
            if a >= duration:
                raise RecordingError(f"{edf.name}: seizure at {a}-{b} s starts after the recording "
                                     f"ends ({duration:g} s)")
        notes = self._crosscheck(edf, entry) if self.options.crosscheck else []
        starts = fixed_windows(duration, self.info.window_s)
        labels = overlap_labels(starts, self.info.window_s, entry.seizures,
                                self.options.min_ictal_fraction)
        return Recording(ref, [Piece(signals, signals.sfreq, list(zip(starts.tolist(), labels.tolist())))],
                         notes)

    @staticmethod
    def _crosscheck(edf: Path, entry: SummaryEntry) -> list[str]:
        """Compare the summary with `<file>.edf.seizures` when present; disagreement is a note."""
        ann = edf.with_name(edf.name + ".seizures")
        if not ann.is_file():
            return []
        try:
            found = wfdb_seizures(ann.read_bytes(), ann.name)
        except (RecordingError, OSError) as err:
            return [f"cannot cross-check with {ann.name} ({err})"]
        if len(found) != len(entry.seizures) or any(
                abs(a - c) > 1 or abs(b - d) > 1 for (a, b), (c, d) in zip(found, entry.seizures)):
            shown = ", ".join(f"{a:g}-{b:g}" for a, b in found)
            return [f"{ann.name} gives seizures at {shown or 'none'} s, the summary "
                    f"{', '.join(f'{a}-{b}' for a, b in entry.seizures) or 'none'} s; using the summary"]
        return []

    def subject_number(self, subject: str) -> int:
        return subject_digits(subject, r"(?:chb)?(\d{1,2})")

    def subject_id(self, number: int) -> str:
        return f"chb{number:02d}"


def _natural(text: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


CORPUS = ChbMit()
