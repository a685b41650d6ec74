"""`custom`: the user's own labelled recordings, BIDS-style or plain files.

    <raw>/sub-01/ses-1/eeg/sub-01_ses-1_task-x_run-2_eeg.edf    EDF, BDF, GDF, FIF, BrainVision .vhdr or
    <raw>/sub-01/ses-1/eeg/sub-01_ses-1_task-x_run-2_events.tsv EEGLAB .set, read with MNE; the events
                                                                sidecar holds onset, duration, trial_type

Without an events sidecar the file's own annotations (EDF+/BDF+/GDF events, BrainVision markers, EEGLAB
events, FIF annotations) are used, description as trial_type.

Classes: `labels` is `name=CODE[+CODE...],...` (class i = the i-th name; an event whose trial_type is one
of its codes belongs to it) or a plain `name,name,...` (each name its own code). `include` / `exclude` are
comma-separated glob patterns on file paths relative to the raw folder, so that a study whose event codes
mean different things in different runs (EEGMMIDB: T1 is the left fist only in runs 4, 8, 12) is usable
without renaming anything.

Windows: `window` seconds cut inside each labelled event every `stride` seconds (default: no overlap; an
event with no duration gives one window at its onset), or `window=event`: one window per event, of the
event's own length, stored zero-padded to the longest labelled event of the selected files (the manifest's
`length` says how much is signal). Windows cut from one event share its manifest `event`.

Channels: `channels`, matched like every corpus (eegmamba_cli/channels.py: case, an `EEG` prefix, BCI2000's
trailing dots), or else the EEG channels of the first file, named without BCI2000's dots (`Fc5.` -> `Fc5`).

Entities: subject, session and run from BIDS `sub-`, `ses-`, `run-` in the path. Otherwise (plain files)
the subject is the first folder under the raw folder, or else the file stem without a run suffix; the run
is the number of a trailing `R04` / `run4` / `run-04` in the stem, as written (`S001R04` -> `04`), else 1;
the session is 1. Folds: the sorted subjects of the selected files are split into 5 contiguous,
near-equal groups (fold 1 = the first group), like the paper's ID ranges.
"""
from __future__ import annotations

import csv
import fnmatch
import hashlib
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ...channels import match_channels
from ..base import TARGET_SFREQ, Corpus, CorpusInfo, OptionError, Piece, Recording, RecordingError, RecordingRef

SUFFIXES = (".edf", ".bdf", ".gdf", ".fif", ".vhdr", ".set")
_SAFE = re.compile(r"[^A-Za-z0-9._+-]")
_RUN_SUFFIX = re.compile(r"^(.*?)[-_]?(?:run|R)[-_]?(\d+)$", re.IGNORECASE)
EVENT = "event"  # window=event: one window per event, of its own length

DEFAULT_INFO = CorpusInfo(
    name="custom", title="Your own recordings (BIDS-style)", task="custom", channels=(), native_sfreq=None,
    window_s=4.0, class_names=(), access="local", url="", licence="yours", citation="", normalize="recording",
    raw_hint="sub-XX/eeg/sub-XX_..._eeg.edf with sub-XX_..._events.tsv (onset, duration, trial_type), "
             "or files with their own annotations")


def _split(value) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value or "").split(",") if v.strip()]


def parse_labels(text: str) -> dict[str, tuple[str, ...]]:
    """`left=T1,right=T2+T3` -> {left: (T1,), right: (T2, T3)}; `left,right` -> {left: (left,), ...}.

    Class order is the order given. OptionError (key `labels`) for an empty code list, a class named
    twice, or a code claimed by two classes.
    """
    classes: dict[str, tuple[str, ...]] = {}
    owner: dict[str, str] = {}
    for item in _split(text):
        name, sep, codes_text = (part.strip() for part in item.partition("="))
        codes = tuple(c.strip() for c in codes_text.split("+") if c.strip()) if sep else (name,)
        if not name or not codes:
            raise OptionError(f"custom: option labels: {item!r} names no class or no event code "
                              "(expected NAME=CODE[+CODE...])", "labels")
        if name in classes:
            raise OptionError(f"custom: option labels: class {name!r} is named twice", "labels")
        for code in codes:
            if code in owner:
                raise OptionError(f"custom: option labels: event code {code!r} belongs to both "
                                  f"{owner[code]} and {name}", "labels")
            owner[code] = name
        classes[name] = codes
    return classes


def window_seconds(text: str) -> float | None:
    """The `window` option as seconds, or None for `event`; OptionError otherwise."""
    value = str(text).strip().lower()
    if value == EVENT:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not (math.isfinite(seconds) and seconds * TARGET_SFREQ >= 1):
        raise OptionError(f"custom: option window must be a number of seconds (at least one sample at "
                          f"{TARGET_SFREQ:g} Hz) or event, not {text!r}", "window")
    return seconds


def signal_files(raw: Path, include: list[str] | None = None, exclude: list[str] | None = None) -> list[Path]:
    """Signal files under raw, sorted by relative path; hidden folders skipped; `include` / `exclude`
    are glob patterns on the path relative to raw (`*` crosses folders: `*R04.edf` finds S001/S001R04.edf)."""
    found = sorted((p for p in raw.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                    and not any(part.startswith(".") for part in p.relative_to(raw).parts)),
                   key=lambda p: p.relative_to(raw).as_posix())
    def matches(path: Path, patterns: list[str]) -> bool:
        rel = path.relative_to(raw).as_posix()
        return any(fnmatch.fnmatchcase(rel, pattern) for pattern in patterns)
    if include:
        found = [p for p in found if matches(p, include)]
    if exclude:
        found = [p for p in found if not matches(p, exclude)]
    return found


def unmatched_patterns(raw: Path, patterns: list[str]) -> list[str]:
    """The patterns that match no signal file under raw (almost always a typo)."""
    every = [p.relative_to(raw).as_posix() for p in signal_files(raw)]
    return [pattern for pattern in patterns if not any(fnmatch.fnmatchcase(rel, pattern) for rel in every)]


def events_sidecar(path: Path) -> Path | None:
    stem = path.name[: -len(path.suffix)]
    bases = [stem[:-4]] if stem.endswith("_eeg") else []
    for base in bases + [stem]:
        candidate = path.with_name(f"{base}_events.tsv")
        if candidate.is_file():
            return candidate
    return None


def entities(path: Path, raw: Path) -> tuple[str, str, str]:
    """(subject, session, run) of a signal file (see the module docstring for the rules)."""
    rel = path.relative_to(raw).as_posix()
    stem = path.name[: -len(path.suffix)]
    sub, ses, run = (re.search(rf"{key}-([A-Za-z0-9]+)", rel) for key in ("sub", "ses", "run"))
    plain = _RUN_SUFFIX.fullmatch(stem)
    if sub:
        subject = sub.group(1)
    elif len(path.relative_to(raw).parts) > 1:
        subject = path.relative_to(raw).parts[0]
    else:
        subject = plain.group(1) if plain and plain.group(1) else stem
    if run:
        run_id = run.group(1)
    else:
        run_id = plain.group(2) if plain and not sub else "1"
    return _SAFE.sub("_", subject), ses.group(1) if ses else "1", run_id


def subject_of(path: Path, raw: Path) -> str:
    return entities(path, raw)[0]


def read_events_tsv(path: Path) -> list[tuple[float, float, str]]:
    """(onset, duration, trial_type) rows of a BIDS events file; `n/a` durations become 0."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise RecordingError(f"{path.name}: cannot read ({err})") from None
    if rows and not {"onset", "trial_type"} <= set(rows[0]):
        found = " ".join(", ".join(k for k in rows[0] if k).split())  # a header cell may hold a line break
        raise RecordingError(f"{path.name}: needs the columns onset and trial_type (has {found})")
    out = []
    for i, row in enumerate(rows, 2):
        try:
            onset = float(row["onset"])
            dur_text = (row.get("duration") or "n/a").strip()
            duration = 0.0 if dur_text.lower() == "n/a" else float(dur_text)
        except (TypeError, ValueError):
            raise RecordingError(f"{path.name}: line {i}: unreadable onset or duration") from None
        if not (np.isfinite(onset) and np.isfinite(duration)) or duration < 0:
            raise RecordingError(f"{path.name}: line {i}: bad onset or duration")
        out.append((onset, duration, (row.get("trial_type") or "").strip()))
    return out


def open_raw(path: Path, include: list[str] | None = None):
    """MNE reader by suffix; `include` keeps EDF-family readers from upsampling other channels."""
    import mne

    kwargs = dict(preload=False, verbose="error")
    suffix = path.suffix.lower()
    _check_complete(path, suffix)
    try:
        if suffix == ".fif":
            return mne.io.read_raw_fif(path, **kwargs)
        if suffix == ".vhdr":
            return mne.io.read_raw_brainvision(path, **kwargs)
        if suffix == ".set":
            return mne.io.read_raw_eeglab(path, **kwargs)
        reader = {".edf": mne.io.read_raw_edf, ".bdf": mne.io.read_raw_bdf, ".gdf": mne.io.read_raw_gdf}[suffix]
        return reader(path, include=include, **kwargs) if include else reader(path, **kwargs)
    except Exception as err:  # MNE raises many types for a corrupt file
        raise RecordingError(f"{path.name}: cannot read ({type(err).__name__}: "
                             f"{' '.join(str(err).split())})") from None


def _check_complete(path: Path, suffix: str) -> None:
    """Refuse a truncated or corrupt EDF/BDF/GDF header here: MNE only warns (silenced above) and reads
    whatever records a cut-short file holds, so a partial copy would pass as a shorter recording."""
    if suffix in (".edf", ".bdf"):
        from ..edf import read_header as read_edf_header

        read_edf_header(path)  # RecordingError naming the file
    elif suffix == ".gdf":
        from ..gdf import GdfError, check_complete, read_header as read_gdf_header

        try:
            check_complete(path, read_gdf_header(path))
        except (GdfError, OSError) as err:
            raise RecordingError(f"{path.name}: {err}") from None


def channel_name(label: str) -> str:
    """A file's channel label as the cache names it: BCI2000's padding dots dropped (`Cz..` -> `Cz`)."""
    return label.strip().rstrip(".") or label.strip()


class Custom(Corpus):
    info = DEFAULT_INFO

    @dataclass(frozen=True)
    class Options:
        window: str = field(default="4", metadata={
            "help": "window length in seconds, or event (one window per event, of its own length)"})
        stride: float = field(default=0.0, metadata={"help": "seconds between window starts (0: the window)"})
        channels: str = field(default="", metadata={
            "help": "channels a,b,c, matched case-insensitively (default: the EEG channels of the first file)"})
        labels: str = field(default="", metadata={
            "help": "classes, class 0 first: left,right (trial_type names) or left=T1,right=T2+T3 (codes)"})
        include: str = field(default="", metadata={
            "help": "only files matching these glob patterns (paths relative to the raw folder): *R04.edf,*R08.edf"})
        exclude: str = field(default="", metadata={"help": "skip files matching these glob patterns"})

        def __post_init__(self):
            window_seconds(self.window)
            stride = self.stride
            if not math.isfinite(stride) or stride < 0 or 0 < stride * TARGET_SFREQ < 1:
                raise OptionError(f"custom: option stride must be 0 (= the window) or at least one sample at "
                                  f"{TARGET_SFREQ:g} Hz (got {stride:g})", "stride")
            parse_labels(self.labels)

    options = Options()

    def __init__(self, info: CorpusInfo = DEFAULT_INFO, stride_s: float = 0.0, fold_map: dict | None = None):
        self.info, self.stride_s, self.fold_map = info, stride_s, dict(fold_map or {})
        self.codes: dict[str, int] = {}  # event code -> class index

    def bind(self, raw: Path | None, options=None) -> "Custom":
        """The corpus as the files under `raw` and the options make it: channels, classes, window, folds."""
        bound = super().bind(raw, options)
        options = bound.options
        raw = Path(raw) if raw is not None else None
        for key in ("include", "exclude"):
            unmatched = unmatched_patterns(raw, _split(getattr(options, key))) if raw and raw.is_dir() else []
            if unmatched:
                raise OptionError(f"custom: option {key} pattern {unmatched[0]!r} matches no recording "
                                  f"under {raw}", key)
        files = bound.files(raw) if raw is not None else []
        classes = parse_labels(options.labels)
        if not classes:
            found = sorted({t for f in files for t in _trial_types(f)})
            raise OptionError("custom: option labels names the classes, name1,name2,... or name=CODE,... "
                              f"(trial_type values found: {', '.join(found) or 'none'})", "labels")
        if len(classes) < 2:
            raise OptionError("custom: option labels needs at least two distinct classes", "labels")
        bound.codes = {code: i for i, codes in enumerate(classes.values()) for code in codes}
        channels = _split(options.channels)
        if not channels and files:
            raw0 = open_raw(files[0])
            eeg = [channel_name(raw0.ch_names[i]) for i in _eeg_picks(raw0)]
            if not eeg:
                raise OptionError(f"custom: {files[0].name} has no EEG channels; name them with option channels",
                                  "channels")
            channels = eeg
        window = window_seconds(options.window)
        if window is None:
            window = bound.longest_event(files) if files else DEFAULT_INFO.window_s
        subjects = sorted({subject_of(f, raw) for f in files})
        bound.fold_map = {s: i + 1 for i, group in enumerate(np.array_split(np.array(subjects, dtype=object), 5))
                          for s in group}
        bound.info = replace(DEFAULT_INFO, channels=tuple(channels), window_s=window,
                             class_names=tuple(classes))
        bound.stride_s = options.stride or window
        return bound

    @property
    def per_event(self) -> bool:
        return window_seconds(self.options.window) is None

    def files(self, raw: Path) -> list[Path]:
        """The signal files this run reads: those under raw that `include` and `exclude` select."""
        return signal_files(Path(raw), _split(self.options.include), _split(self.options.exclude))

    def longest_event(self, files: list[Path]) -> float:
        """The longest labelled event of the files (seconds): the stored window under window=event."""
        longest = 0.0
        for path in files:
            try:
                events = _events(path, None)
            except RecordingError:
                continue  # the recording is skipped with its reason when it is read
            longest = max([longest] + [d for _, d, t in events if t in self.codes])
        if longest * TARGET_SFREQ < 1:
            raise OptionError("custom: option window=event needs events with a duration; the labelled "
                              "events of the selected files have none", "window")
        return longest

    def find_recordings(self, raw: Path, subjects: set[str] | None = None) -> list[RecordingRef]:
        raw = Path(raw)
        refs, seen = [], set()
        for path in self.files(raw):
            subject, session, run = entities(path, raw)
            if subjects and subject not in subjects and f"sub-{subject}" not in subjects:
                continue
            rel = path.relative_to(raw).as_posix()
            rid = _SAFE.sub("_", path.name[: -len(path.suffix)]).lstrip("._+-") or "recording"
            if rid in seen:  # same stem in two folders: make the id unique, stably
                rid = f"{rid}-{hashlib.sha256(rel.encode()).hexdigest()[:8]}"
            seen.add(rid)
            sidecar = events_sidecar(path)
            refs.append(RecordingRef(id=rid, subject=subject, session=session, run=run,
                                     paths=[path] + ([sidecar] if sidecar else [])))
        return refs

    def read(self, ref: RecordingRef) -> Recording:
        path = ref.paths[0]
        if not self.info.channels or not self.info.class_names:
            raise RecordingError(f"{path.name}: custom corpus not configured (channels and labels)")
        header = open_raw(path)
        names = [header.ch_names[i] for i in match_channels(header.ch_names, self.info.channels,
                                                              source=path.name)]
        include = path.suffix.lower() in (".edf", ".bdf", ".gdf")
        raw = open_raw(path, include=names) if include else header
        try:
            data = raw.get_data(picks=names, units="uV").astype(np.float32)
        except Exception as err:
            raise RecordingError(f"{path.name}: cannot read signals ({type(err).__name__}: {err})") from None
        sfreq = float(raw.info["sfreq"])
        events = _events(path, ref.paths[1] if len(ref.paths) > 1 else None, raw)
        piece = self._windows(events, Piece(data, sfreq, [], events=[]))
        if not piece.windows:
            source = ref.paths[1].name if len(ref.paths) > 1 else f"{path.name} annotations"
            raise RecordingError(f"{source}: {self._no_windows(events)}")
        return Recording(ref, [piece])

    def _no_windows(self, events: list[tuple[float, float, str]]) -> str:
        """Why the labelled events gave no window, and what would, in the options' words."""
        codes = ', '.join(sorted(self.codes))
        if self.per_event:
            return f"no event with a duration with trial_type in {codes}"
        durations = [d for _, d, t in events if t in self.codes and d > 0]
        if not durations:
            return f"no event long enough with trial_type in {codes}"
        longest = max(durations)
        return (f"no event long enough with trial_type in {codes}: the longest lasts {longest:g} s, shorter than "
                f"the {self.info.window_s:g}-s window (set the window option: window={longest:g} or window=event)")

    def _windows(self, events: list[tuple[float, float, str]], piece: Piece) -> Piece:
        """Fill `piece` with the windows of the labelled events, their event numbers and (per event) lengths."""
        window, stride = self.info.window_s, self.stride_s or self.info.window_s
        rows: list[tuple[float, int, int, float]] = []  # start, label, event, length
        for number, (onset, duration, trial_type) in enumerate(events):
            label = self.codes.get(trial_type)
            if label is None:
                continue
            if self.per_event:
                if duration * TARGET_SFREQ >= 1:
                    rows.append((onset, label, number, duration))
                continue
            n = 1 if duration <= 0 else int(np.floor((duration - window) / stride + 1e-9)) + 1
            rows += [(onset + k * stride, label, number, window) for k in range(max(n, 0))]
        rows.sort()
        piece.windows = [(start, label) for start, label, _, _ in rows]
        piece.events = [event for _, _, event, _ in rows]
        piece.lengths_s = [length for _, _, _, length in rows] if self.per_event else None
        return piece

    def fold_of(self, subject: str) -> int:
        """Folds come from the subjects found under the raw folder (see the module docstring)."""
        return int(self.fold_map.get(subject, 0))

    def subject_number(self, subject: str) -> int:
        return -1  # no fold table: folds are made from the subjects found

    def subject_id(self, number: int) -> str:
        return str(number)


def _eeg_picks(raw) -> list[int]:
    import mne

    return list(mne.pick_types(raw.info, eeg=True, exclude=[]))


def _events(path: Path, sidecar: Path | None, raw=None) -> list[tuple[float, float, str]]:
    """(onset, duration, trial_type) of a recording: its events.tsv, else the file's own annotations."""
    if sidecar is None:
        sidecar = events_sidecar(path)
    if sidecar is not None:
        return read_events_tsv(sidecar)
    return _annotations(raw if raw is not None else open_raw(path))


def _annotations(raw) -> list[tuple[float, float, str]]:
    ann = raw.annotations
    shift = raw.first_time if ann.orig_time is not None else 0.0
    return [(float(o) - shift, float(d), str(t).strip()) for o, d, t in zip(ann.onset, ann.duration,
                                                                          ann.description)]


def _trial_types(path: Path) -> set[str]:
    try:
        return {t for _, _, t in _events(path, None) if t}
    except RecordingError:
        return set()


CORPUS = Custom()
