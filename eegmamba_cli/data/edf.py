"""Shared EDF/EDF+ reading: header (incl. the start time), signals by channel name, annotations.

Small API, meant for every EDF-based corpus (Siena, CHB-MIT, Sleep-EDF, SHHS):

    header = read_header(path)                          # EdfHeader: labels, rates, duration, start time
    idx = match_channels(header.labels, wanted, ...)    # by name (eegmamba_cli/channels.py)
    sig = EdfSignals(header, idx)                       # lazy (C, T) µV at the native rate, one rate
    ann = read_annotations(path)                        # [(onset_s, duration_s, text)] of an EDF+ file

Library choices, and why:

* The header is parsed here (a fixed ASCII layout) so that every problem becomes one line naming the
  file: a truncated file, a corrupt field, an EDF+D file.
* Signals of 16-bit EDF are read through a numpy memmap, one channel at a time: no whole-file copy
  (Siena files reach 2 GB), every channel at its native rate (MNE upsamples unless told otherwise), and
  duplicate labels stay distinct (CHB-MIT's two `T8-P8`). It measured about 3x faster than pyedflib's
  readSignal on a CHB-MIT-sized file. BDF (24-bit) is handed to pyedflib.
* Annotations (EDF+ TALs) are read with pyedflib's `readAnnotations`; a hypnogram is never opened as
  a signal file.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .base import RecordingError

# Physical dimensions -> factor to µV. Anything else (empty, "DegC", ...) is taken as already µV-like:
# such channels are never EEG in the corpora read here.
_UNIT_TO_UV = {"uv": 1.0, "µv": 1.0, "μv": 1.0, "microv": 1.0, "mv": 1e3, "v": 1e6, "nv": 1e-3}


@dataclass(frozen=True)
class EdfHeader:
    path: Path
    version: str  # "0" for EDF, "\xffBIOSEMI" for BDF
    patient: str
    recording: str
    start: dt.datetime | None  # from bytes 168-183 (dd.mm.yy hh.mm.ss); None if unparsable
    header_bytes: int
    reserved: str  # "EDF+C" / "EDF+D" for EDF+, blank for plain EDF
    n_records: int
    record_s: float
    labels: tuple[str, ...]
    units: tuple[str, ...]
    physical_min: tuple[float, ...]
    physical_max: tuple[float, ...]
    digital_min: tuple[int, ...]
    digital_max: tuple[int, ...]
    samples_per_record: tuple[int, ...]

    @property
    def n_signals(self) -> int:
        return len(self.labels)

    @property
    def is_bdf(self) -> bool:
        return not self.version.startswith("0")

    @property
    def bytes_per_sample(self) -> int:
        return 3 if self.is_bdf else 2

    @property
    def is_edfplus(self) -> bool:
        return self.reserved.startswith("EDF+")

    @property
    def duration_s(self) -> float:
        return self.n_records * self.record_s

    def sfreq(self, index: int) -> float:
        return self.samples_per_record[index] / self.record_s

    @property
    def start_seconds_of_day(self) -> int | None:
        if self.start is None:
            return None
        return self.start.hour * 3600 + self.start.minute * 60 + self.start.second


def _ascii(raw: bytes) -> str:
    return raw.decode("latin-1").strip()


def _number(path: Path, field: str, raw: bytes, kind=float):
    text = _ascii(raw)
    try:
        return kind(float(text)) if kind is int else kind(text)
    except (ValueError, OverflowError):
        raise RecordingError(f"{path.name}: corrupt EDF header ({field} is {text!r})") from None


def _parse_start(date: str, time: str) -> dt.datetime | None:
    # EDF: dd.mm.yy and hh.mm.ss; years 85-99 are 19xx, 00-84 are 20xx (EDF spec "clipping date").
    m_d = re.fullmatch(r"(\d\d)\.(\d\d)\.(\d\d)", date)
    m_t = re.fullmatch(r"(\d\d)[.:](\d\d)[.:](\d\d)", time)
    if not (m_d and m_t):
        return None
    day, month, yy = (int(g) for g in m_d.groups())
    year = 1900 + yy if yy >= 85 else 2000 + yy
    try:
        return dt.datetime(year, month, day, *(int(g) for g in m_t.groups()))
    except ValueError:
        return None


def read_header(path: str | Path) -> EdfHeader:
    """Parse the fixed and per-signal header; refuse a file that is not EDF/BDF or is truncated."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            fixed = fh.read(256)
            if len(fixed) < 256:
                raise RecordingError(f"{path.name}: not an EDF file (only {len(fixed)} bytes)")
            if not (fixed[:8] == b"0       " or fixed[:8] == b"\xffBIOSEMI"):
                raise RecordingError(f"{path.name}: not an EDF/BDF file (version field {fixed[:8]!r})")
            ns = _number(path, "number of signals", fixed[252:256], int)
            if not 0 <= ns <= 4096:
                raise RecordingError(f"{path.name}: corrupt EDF header ({ns} signals)")
            var = fh.read(256 * ns)
            size = path.stat().st_size
    except OSError as err:
        raise RecordingError(f"{path.name}: cannot read ({err.strerror or err})") from None
    if len(var) < 256 * ns:
        raise RecordingError(f"{path.name}: truncated EDF header")

    def field(offset: int, width: int) -> list[bytes]:
        base = offset * ns
        return [var[base + i * width: base + (i + 1) * width] for i in range(ns)]

    header_bytes = _number(path, "header size", fixed[184:192], int)
    if header_bytes != 256 * (ns + 1):
        raise RecordingError(f"{path.name}: corrupt EDF header (header size {header_bytes}, "
                             f"expected {256 * (ns + 1)} for {ns} signals)")
    spr = tuple(_number(path, "samples per record", b, int) for b in field(216, 8))
    if any(s < 0 for s in spr):
        raise RecordingError(f"{path.name}: corrupt EDF header (negative samples per record)")
    header = EdfHeader(
        path=path, version=fixed[:8].decode("latin-1"), patient=_ascii(fixed[8:88]),
        recording=_ascii(fixed[88:168]),
        start=_parse_start(_ascii(fixed[168:176]), _ascii(fixed[176:184])),
        header_bytes=header_bytes, reserved=_ascii(fixed[192:236]),
        n_records=_number(path, "number of data records", fixed[236:244], int),
        record_s=_number(path, "record duration", fixed[244:252]),
        labels=tuple(_ascii(b) for b in field(0, 16)),
        units=tuple(_ascii(b) for b in field(96, 8)),
        physical_min=tuple(_number(path, "physical minimum", b) for b in field(104, 8)),
        physical_max=tuple(_number(path, "physical maximum", b) for b in field(112, 8)),
        digital_min=tuple(_number(path, "digital minimum", b, int) for b in field(120, 8)),
        digital_max=tuple(_number(path, "digital maximum", b, int) for b in field(128, 8)),
        samples_per_record=spr,
    )
    record_bytes = sum(spr) * header.bytes_per_sample
    annotation_only = all(label == "EDF Annotations" for label in header.labels)
    if record_bytes == 0 and not annotation_only:
        raise RecordingError(f"{path.name}: corrupt EDF header (data records of 0 samples)")
    available = max(0, size - header_bytes) // record_bytes if record_bytes else 0
    if header.n_records == -1:  # "unknown" (a recording still being written): count what is there
        header = _replace(header, n_records=available)
    elif header.n_records < 0:
        raise RecordingError(f"{path.name}: corrupt EDF header ({header.n_records} data records)")
    elif available < header.n_records:
        raise RecordingError(
            f"{path.name}: truncated (header declares {header.n_records} data records, the file holds "
            f"{available}; {size} of {header_bytes + header.n_records * record_bytes} bytes)")
    # EDF+ lets annotation-only files (Sleep-EDF hypnograms) declare records of duration 0.
    if not math.isfinite(header.record_s) or header.record_s < 0 or (header.record_s == 0 and not annotation_only):
        raise RecordingError(f"{path.name}: corrupt EDF header (record duration {header.record_s:g} s)")
    return header


def _replace(header: EdfHeader, **changes) -> EdfHeader:
    from dataclasses import replace
    return replace(header, **changes)


# A selected channel sampled outside this range (Hz) means a corrupt header (e.g. a record duration of
# 1e308 s), not EEG; refusing it here keeps absurd window counts out of the readers.
MIN_SFREQ, MAX_SFREQ = 1.0, 1e6


class EdfSignals:
    """Selected channels of one EDF as a lazy (C, T) array in µV at their common native rate.

    `signals[i]` reads channel i (float32) straight from a memmap; `np.asarray(signals)` reads all.
    The pipeline reads one channel at a time, so a long recording never sits in memory at 32 bits
    per sample for all channels at once.
    """

    def __init__(self, header: EdfHeader, indices: Sequence[int]):
        self.header = header
        self.indices = list(indices)
        rates = {header.sfreq(i) for i in self.indices}
        if len(rates) > 1:
            raise RecordingError(f"{header.path.name}: selected channels have different rates "
                                 f"({', '.join(f'{r:g}' for r in sorted(rates))} Hz)")
        if header.reserved.startswith("EDF+D"):
            raise RecordingError(f"{header.path.name}: discontinuous EDF+D recordings are not supported")
        self.sfreq = rates.pop() if rates else 0.0
        if self.indices and not MIN_SFREQ <= self.sfreq <= MAX_SFREQ:
            raise RecordingError(f"{header.path.name}: corrupt EDF header (channel "
                                 f"{header.labels[self.indices[0]]!r}: {self.sfreq:g} Hz from "
                                 f"{header.samples_per_record[self.indices[0]]} samples per {header.record_s:g}-s record)")
        spr = header.samples_per_record
        self._offsets = np.concatenate([[0], np.cumsum(spr)]).astype(int)
        self._n = header.n_records * (spr[self.indices[0]] if self.indices else 0)
        self.dtype = np.dtype(np.float32)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.indices), self._n)

    @property
    def ndim(self) -> int:
        return 2

    def __len__(self) -> int:
        return len(self.indices)

    def _scale(self, index: int) -> tuple[float, float]:
        h = self.header
        dspan = h.digital_max[index] - h.digital_min[index]
        if dspan == 0:
            raise RecordingError(f"{h.path.name}: corrupt EDF header (channel {h.labels[index]!r} "
                                 "has equal digital minimum and maximum)")
        gain = (h.physical_max[index] - h.physical_min[index]) / dspan
        offset = h.physical_min[index] - h.digital_min[index] * gain
        unit = _UNIT_TO_UV.get(h.units[index].strip().lower(), 1.0)
        return gain * unit, offset * unit

    def __getitem__(self, i: int) -> np.ndarray:
        if not isinstance(i, (int, np.integer)):
            return np.asarray(self)[i]
        index = self.indices[i]
        h = self.header
        gain, offset = self._scale(index)
        if h.is_bdf:
            return self._read_bdf(index) * np.float32(gain) + np.float32(offset)
        total = int(self._offsets[-1])
        try:
            mm = np.memmap(h.path, dtype="<i2", mode="r", offset=h.header_bytes,
                           shape=(h.n_records, total))
        except (OSError, ValueError) as err:
            raise RecordingError(f"{h.path.name}: cannot read signals ({err})") from None
        start, stop = int(self._offsets[index]), int(self._offsets[index + 1])
        out = np.empty((h.n_records, stop - start), dtype=np.float32)
        np.multiply(mm[:, start:stop], np.float32(gain), out=out)
        out += np.float32(offset)
        del mm
        return out.reshape(-1)

    def _read_bdf(self, index: int) -> np.ndarray:
        import pyedflib

        try:
            with pyedflib.EdfReader(str(self.header.path)) as reader:
                return reader.readSignal(index, digital=True).astype(np.float32)
        except OSError as err:
            raise RecordingError(f"{self.header.path.name}: cannot read ({err})") from None

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.empty(self.shape, dtype=np.float32)
        for i in range(len(self.indices)):
            out[i] = self[i]
        return out if dtype is None else out.astype(dtype)


# --- annotations ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Annotation:
    onset: float  # seconds from the file's header start
    duration: float
    text: str


def read_annotations(path: str | Path) -> list[Annotation]:
    """The annotations of an EDF+ file (e.g. a Sleep-EDF hypnogram), in file order."""
    import pyedflib

    path = Path(path)
    read_header(path)  # same clear messages for a truncated or foreign file
    try:
        with pyedflib.EdfReader(str(path)) as reader:
            onsets, durations, texts = reader.readAnnotations()
    except OSError as err:
        raise RecordingError(f"{path.name}: cannot read annotations ({err})") from None
    return [Annotation(float(o), float(d) if d is not None and d >= 0 else 0.0, str(t))
            for o, d, t in zip(onsets, durations, texts)]


# --- writing (fixtures and the benchmark) ----------------------------------------------------

def write_edf(path: str | Path, labels: Iterable[str], sfreqs: Sequence[float], data: Sequence[np.ndarray],
              *, start: dt.datetime, physical: Sequence[tuple[float, float]] | None = None,
              digital: tuple[int, int] = (-32768, 32767), units: str = "uV",
              record_s: float | None = None) -> Path:
    """Write a plain EDF with pyedflib (tests and benchmarks; the readers never write)."""
    import warnings

    import pyedflib

    labels = list(labels)
    path = Path(path)
    writer = pyedflib.EdfWriter(str(path), len(labels), file_type=pyedflib.FILETYPE_EDF)
    try:
        headers = []
        for i, label in enumerate(labels):
            lo, hi = physical[i] if physical else (-3276.8, 3276.7)
            headers.append(dict(label=label, dimension=units, sample_frequency=sfreqs[i],
                                physical_min=lo, physical_max=hi,
                                digital_min=digital[0], digital_max=digital[1]))
        writer.setSignalHeaders(headers)
        writer.setStartdatetime(start)
        if record_s is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                writer.setDatarecordDuration(record_s)
        writer.writeSamples([np.asarray(d, dtype=np.float64) for d in data])
    finally:
        writer.close()
    return path


def write_annotations_edf(path: str | Path, annotations: Iterable[tuple[float, float, str]], *,
                          start: dt.datetime) -> Path:
    """Write an annotation-only EDF+ file (a hypnogram) with pyedflib."""
    import pyedflib

    path = Path(path)
    writer = pyedflib.EdfWriter(str(path), 0, file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        writer.setStartdatetime(start)
        for onset, duration, text in annotations:
            writer.writeAnnotation(onset, duration, text)
    finally:
        writer.close()
    return path
