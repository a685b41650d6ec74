"""`custom`: the user's own labelled recordings, BIDS-style.

    <raw>/sub-01/eeg/sub-01_task-x_eeg.edf      (EDF, BDF, GDF or FIF; read with MNE)
    <raw>/sub-01/eeg/sub-01_task-x_events.tsv   onset, duration, trial_type (seconds, tab-separated)

Without an events sidecar the file's own annotations (EDF+/BDF+/GDF events, FIF annotations) are used,
description as trial_type. Windows of `window` seconds are cut inside each event whose trial_type is
one of `labels` (class i = the i-th label), every `stride` seconds (default: no overlap); an event with
no duration gives one window starting at its onset. Channels: `channels`, matched case-insensitively,
or else the EEG channels of the first file; every file must have them. Subject: `sub-XX` in the path,
else the file stem. Folds: the sorted subjects of the whole raw folder are split into 5 contiguous,
near-equal groups (fold 1 = the first group), like the paper's ID ranges.
"""
from __future__ import annotations

import csv
import hashlib
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..base import TARGET_SFREQ, Corpus, CorpusInfo, OptionError, Piece, Recording, RecordingError, RecordingRef
from ...channels import normalise_label

SUFFIXES = (".edf", ".bdf", ".gdf", ".fif")
_SAFE = re.compile(r"[^A-Za-z0-9._+-]")

DEFAULT_INFO = CorpusInfo(
    name="custom", title="Your own recordings (BIDS-style)", task="custom", channels=(), native_sfreq=None,
    window_s=4.0, class_names=(), access="local", url="", licence="yours", citation="",
    raw_hint="sub-XX/eeg/sub-XX_..._eeg.edf with sub-XX_..._events.tsv (onset, duration, trial_type)")


def _split(value) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value or "").split(",") if v.strip()]


def signal_files(raw: Path) -> list[Path]:
    """Signal files under raw, sorted by relative path; hidden folders skipped."""
    return sorted((p for p in raw.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(raw).parts)),
                  key=lambda p: p.relative_to(raw).as_posix())


def events_sidecar(path: Path) -> Path | None:
    stem = path.name[: -len(path.suffix)]
    bases = [stem[:-4]] if stem.endswith("_eeg") else []
    for base in bases + [stem]:
        candidate = path.with_name(f"{base}_events.tsv")
        if candidate.is_file():
            return candidate
    return None


def subject_of(path: Path, raw: Path) -> str:
    m = re.search(r"sub-([A-Za-z0-9]+)", path.relative_to(raw).as_posix())
    return m.group(1) if m else _SAFE.sub("_", path.name[: -len(path.suffix)])


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


def _open_raw(path: Path, include: list[str] | None = None):
    """MNE reader by suffix; `include` keeps EDF-family readers from upsampling other channels."""
    import mne

    kwargs = dict(preload=False, verbose="error")
    suffix = path.suffix.lower()
    _check_complete(path, suffix)
    try:
        if suffix == ".fif":
            return mne.io.read_raw_fif(path, **kwargs)
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


def _match(names: list[str], wanted: list[str], source: str) -> list[str]:
    by_norm: dict[str, str] = {}
    for name in names:
        by_norm.setdefault(normalise_label(name), name)
    missing = [w for w in wanted if normalise_label(w) not in by_norm]
    if missing:
        raise RecordingError(f"{source}: missing {len(missing)} of {len(wanted)} channels ({', '.join(missing)})")
    return [by_norm[normalise_label(w)] for w in wanted]


class Custom(Corpus):
    info = DEFAULT_INFO

    @dataclass(frozen=True)
    class Options:
        window: float = field(default=4.0, metadata={"help": "window length in seconds"})
        stride: float = field(default=0.0, metadata={"help": "seconds between window starts (0: the window)"})
        channels: str = field(default="", metadata={
            "help": "channels a,b,c, matched case-insensitively (default: the EEG channels of the first file)"})
        labels: str = field(default="", metadata={"help": "trial_type names, class 0 first: left,right"})

        def __post_init__(self):
            window, stride = self.window, self.stride
            if not (math.isfinite(window) and window * TARGET_SFREQ >= 1):
                raise OptionError(f"custom: option window must be finite and at least one sample at "
                                  f"{TARGET_SFREQ:g} Hz (got {window:g})", "window")
            if not math.isfinite(stride) or stride < 0 or 0 < stride * TARGET_SFREQ < 1:
                raise OptionError(f"custom: option stride must be 0 (= the window) or at least one sample at "
                                  f"{TARGET_SFREQ:g} Hz (got {stride:g})", "stride")

    options = Options()

    def __init__(self, info: CorpusInfo = DEFAULT_INFO, stride_s: float = 0.0, fold_map: dict | None = None):
        self.info, self.stride_s, self.fold_map = info, stride_s, dict(fold_map or {})

    def bind(self, raw: Path | None, options=None) -> "Custom":
        """The corpus as the files under `raw` and the options make it: channels, classes, window, folds."""
        bound = super().bind(raw, options)
        options = bound.options
        files = signal_files(Path(raw)) if raw is not None else []
        labels = _split(options.labels)
        if not labels:
            found = sorted({t for f in files for t in _trial_types(f)})
            raise OptionError("custom: option labels names the classes, name1,name2,... (trial_type values "
                              f"found: {', '.join(found) or 'none'})", "labels")
        if len(set(labels)) != len(labels) or len(labels) < 2:
            raise OptionError("custom: option labels needs at least two distinct names", "labels")
        channels = _split(options.channels)
        if not channels and files:
            raw0 = _open_raw(files[0])
            eeg = [raw0.ch_names[i] for i in _eeg_picks(raw0)]
            if not eeg:
                raise OptionError(f"custom: {files[0].name} has no EEG channels; name them with option channels",
                                  "channels")
            channels = eeg
        subjects = sorted({subject_of(f, Path(raw)) for f in files})
        bound.fold_map = {s: i + 1 for i, group in enumerate(np.array_split(np.array(subjects, dtype=object), 5))
                          for s in group}
        bound.info = replace(DEFAULT_INFO, channels=tuple(channels), window_s=options.window,
                             class_names=tuple(labels))
        bound.stride_s = options.stride or options.window
        return bound

    def find_recordings(self, raw: Path, subjects: set[str] | None = None) -> list[RecordingRef]:
        raw = Path(raw)
        refs, seen = [], set()
        for path in signal_files(raw):
            subject = subject_of(path, raw)
            if subjects and subject not in subjects and f"sub-{subject}" not in subjects:
                continue
            rel = path.relative_to(raw).as_posix()
            rid = _SAFE.sub("_", path.name[: -len(path.suffix)]).lstrip("._+-") or "recording"
            if rid in seen:  # same stem in two folders: make the id unique, stably
                rid = f"{rid}-{hashlib.sha256(rel.encode()).hexdigest()[:8]}"
            seen.add(rid)
            ses = re.search(r"ses-([A-Za-z0-9]+)", rel)
            sidecar = events_sidecar(path)
            refs.append(RecordingRef(id=rid, subject=subject, session=ses.group(1) if ses else "1",
                                     paths=[path] + ([sidecar] if sidecar else [])))
        return refs

    def read(self, ref: RecordingRef) -> Recording:
        path = ref.paths[0]
        if not self.info.channels or not self.info.class_names:
            raise RecordingError(f"{path.name}: custom corpus not configured (channels and labels)")
        header = _open_raw(path)
        names = _match(header.ch_names, list(self.info.channels), path.name)
        raw = _open_raw(path, include=names) if path.suffix.lower() != ".fif" else header
        try:
            data = raw.get_data(picks=names, units="uV").astype(np.float32)
        except Exception as err:
            raise RecordingError(f"{path.name}: cannot read signals ({type(err).__name__}: {err})") from None
        sfreq = float(raw.info["sfreq"])
        events = read_events_tsv(ref.paths[1]) if len(ref.paths) > 1 else _annotations(raw)
        classes = {name: i for i, name in enumerate(self.info.class_names)}
        window, stride = self.info.window_s, self.stride_s or self.info.window_s
        windows: list[tuple[float, int]] = []
        for onset, duration, trial_type in events:
            if trial_type not in classes:
                continue
            n = 1 if duration <= 0 else int(np.floor((duration - window) / stride + 1e-9)) + 1
            windows += [(onset + k * stride, classes[trial_type]) for k in range(max(n, 0))]
        if not windows:
            source = ref.paths[1].name if len(ref.paths) > 1 else f"{path.name} annotations"
            raise RecordingError(f"{source}: no event long enough with trial_type in "
                                 f"{', '.join(self.info.class_names)}")
        return Recording(ref, [Piece(data, sfreq, sorted(windows))])

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


def _annotations(raw) -> list[tuple[float, float, str]]:
    ann = raw.annotations
    shift = raw.first_time if ann.orig_time is not None else 0.0
    return [(float(o) - shift, float(d), str(t).strip()) for o, d, t in zip(ann.onset, ann.duration,
                                                                          ann.description)]


def _trial_types(path: Path) -> set[str]:
    try:
        sidecar = events_sidecar(path)
        if sidecar:
            return {t for _, _, t in read_events_tsv(sidecar) if t}
        return {t for _, _, t in _annotations(_open_raw(path)) if t}
    except RecordingError:
        return set()


CORPUS = Custom()
