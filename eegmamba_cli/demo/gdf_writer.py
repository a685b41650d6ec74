"""A small GDF writer (test fixtures and `eegmamba demo`): GDF 1.25 and 2.20, int16 samples, event mode 3.

Byte layouts follow GDF 1.25 and the GDF 2.x specification as MNE reads it
(`mne/io/edf/edf.py:_read_gdf_header`). Everything is little-endian. Only what the BCI IV 2a files use
is written: one data type for all channels, equal samples per record, a fixed header of 256 bytes plus
256 bytes per signal, and the event table right after the last record.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from ..fileio import atomic_write_bytes

INT16 = 3  # GDF data type code for int16
UV_CODE = 4275  # GDF 2.x physical-dimension code for microvolts (biosig units table)


@dataclass
class GdfSignal:
    label: str
    physical_min: float = -100.0
    physical_max: float = 100.0
    digital_min: int = -32768
    digital_max: int = 32767
    unit: str = "uV"
    prefilter: str = "HP:0.5Hz LP:100Hz"

    @property
    def gain(self) -> float:
        """Physical units per digital step (the calibration readers apply)."""
        return (self.physical_max - self.physical_min) / (self.digital_max - self.digital_min)

    def to_digital(self, physical: np.ndarray) -> np.ndarray:
        digital = np.round((np.asarray(physical) - self.physical_min) / self.gain + self.digital_min)
        return np.clip(digital, self.digital_min, self.digital_max).astype("<i2")

    def to_physical(self, digital: np.ndarray) -> np.ndarray:
        return self.physical_min + (np.asarray(digital, float) - self.digital_min) * self.gain


@dataclass
class GdfEvent:
    position: int  # 0-based sample index (written 1-based)
    code: int  # e.g. 768
    duration: int = 0  # samples
    channel: int = 0  # 0 = all channels


def _ascii(text: str, size: int) -> bytes:
    raw = text.encode("ascii")
    if len(raw) > size:
        raise ValueError(f"{text!r} does not fit in {size} bytes")
    return raw.ljust(size, b" ")


def _fixed_header_v1(n_signals: int, n_records: int, record_s: int, start: datetime) -> bytes:
    head = b"GDF 1.25"
    head += _ascii("X X", 80)  # patient id: "id name", anonymous
    head += _ascii("fixture recording", 80)
    head += _ascii(start.strftime("%Y%m%d%H%M%S") + "00", 16)  # YYYYMMDDhhmmsscc
    head += struct.pack("<q", 256 * (n_signals + 1))  # header length in bytes
    head += b"\0" * 24  # equipment, laboratory, technician ids
    head += b"\0" * 20  # reserved
    head += struct.pack("<q", n_records)
    head += struct.pack("<II", record_s, 1)  # record duration as numerator, denominator
    head += struct.pack("<I", n_signals)
    assert len(head) == 256
    return head


def _gdf2_time(moment: datetime) -> int:
    """GDF 2.x time stamp: days since 0000-01-01 as 32.32 fixed point (MNE subtracts 367 days)."""
    days = (moment - datetime(1, 1, 1)).total_seconds() / 86400 + 367
    return int(round(days * 2**32))


def _fixed_header_v2(n_signals: int, n_records: int, record_s: int, start: datetime) -> bytes:
    head = b"GDF 2.20"
    head += _ascii("X X", 66)  # patient id
    head += b"\0" * 10  # reserved
    head += bytes([0, 0, 0, 0])  # smoking/alcohol/drugs/medication, weight, height, gender/handedness
    head += _ascii("fixture recording", 64)
    head += bytes([0, 0, 0, 0]) + struct.pack("<IIi", 0, 0, 0)  # recording location (16 bytes)
    head += struct.pack("<Q", _gdf2_time(start))  # start of recording
    head += struct.pack("<Q", 0)  # birthday unknown
    head += struct.pack("<H", n_signals + 1)  # header length in 256-byte blocks
    head += b"\0" * 6  # patient classification
    head += b"\0" * 8  # equipment provider id
    head += b"\0" * 6  # IP address
    head += struct.pack("<3H", 0, 0, 0)  # head size
    head += struct.pack("<3f", 0, 0, 0) * 2  # reference and ground electrode positions
    head += struct.pack("<q", n_records)
    head += struct.pack("<II", record_s, 1)
    head += struct.pack("<H", n_signals) + b"\0\0"  # NS as uint16, then 2 reserved bytes
    assert len(head) == 256
    return head


def _variable_header_v1(signals: list[GdfSignal], samples_per_record: int) -> bytes:
    out = b"".join(_ascii(s.label, 16) for s in signals)
    out += b"".join(_ascii("AgAgCl electrode", 80) for _ in signals)
    out += b"".join(_ascii(s.unit, 8) for s in signals)
    out += b"".join(struct.pack("<d", s.physical_min) for s in signals)
    out += b"".join(struct.pack("<d", s.physical_max) for s in signals)
    out += b"".join(struct.pack("<q", s.digital_min) for s in signals)
    out += b"".join(struct.pack("<q", s.digital_max) for s in signals)
    out += b"".join(_ascii(s.prefilter, 80) for s in signals)
    out += b"".join(struct.pack("<i", samples_per_record) for _ in signals)
    out += b"".join(struct.pack("<i", INT16) for _ in signals)
    out += b"\0" * (32 * len(signals))
    assert len(out) == 256 * len(signals)
    return out


def _variable_header_v2(signals: list[GdfSignal], samples_per_record: int) -> bytes:
    out = b"".join(_ascii(s.label, 16) for s in signals)
    out += b"".join(_ascii("AgAgCl electrode", 80) for _ in signals)
    out += b"".join(_ascii(s.unit, 6) for s in signals)  # obsolete text dimension
    out += b"".join(struct.pack("<H", UV_CODE if s.unit == "uV" else 512) for s in signals)
    out += b"".join(struct.pack("<d", s.physical_min) for s in signals)
    out += b"".join(struct.pack("<d", s.physical_max) for s in signals)
    out += b"".join(struct.pack("<d", float(s.digital_min)) for s in signals)  # float64 in 2.x
    out += b"".join(struct.pack("<d", float(s.digital_max)) for s in signals)
    out += b"\0" * (68 * len(signals))  # reserved (the 1.x prefilter text)
    out += b"".join(struct.pack("<f", 100.0) for _ in signals)  # low-pass
    out += b"".join(struct.pack("<f", 0.5) for _ in signals)  # high-pass
    out += b"".join(struct.pack("<f", 50.0) for _ in signals)  # notch
    out += b"".join(struct.pack("<i", samples_per_record) for _ in signals)
    out += b"".join(struct.pack("<i", INT16) for _ in signals)
    out += b"".join(struct.pack("<3f", 0, 0, 0) for _ in signals)  # sensor position
    out += b"\0" * (20 * len(signals))  # sensor info (impedance) for version >= 2.19
    assert len(out) == 256 * len(signals)
    return out


def _event_table(events: list[GdfEvent], sfreq: int, version: int) -> bytes:
    events = sorted(events, key=lambda e: (e.position, e.code))
    n = len(events)
    out = bytes([3])  # mode 3: position, type, channel and duration
    if version == 1:
        out += sfreq.to_bytes(3, "little") + struct.pack("<I", n)
    else:  # GDF >= 1.94: 24-bit count, then the event rate as float32
        out += n.to_bytes(3, "little") + struct.pack("<f", float(sfreq))
    out += b"".join(struct.pack("<I", e.position + 1) for e in events)  # 1-based positions
    out += b"".join(struct.pack("<H", e.code) for e in events)
    out += b"".join(struct.pack("<H", e.channel) for e in events)
    out += b"".join(struct.pack("<I", e.duration) for e in events)
    return out


def write_gdf(path: str | Path, signals: list[GdfSignal], digital: np.ndarray, sfreq: int,
              events: list[GdfEvent], *, version: str = "1.25", record_s: int = 1,
              start: datetime = datetime(2005, 6, 1, 10, 30, 0)) -> Path:
    """Write `digital` (n_signals, n_samples) int16 values as a GDF file with 1-s (default) records.

    The sample count must fill whole records, as in real recordings.
    """
    digital = np.asarray(digital)
    if digital.shape[0] != len(signals):
        raise ValueError("one row of samples per signal")
    per_record = sfreq * record_s
    n_records, rest = divmod(digital.shape[1], per_record)
    if rest:
        raise ValueError(f"{digital.shape[1]} samples do not fill whole {record_s}-s records")
    if version == "1.25":
        header = _fixed_header_v1(len(signals), n_records, record_s, start)
        header += _variable_header_v1(signals, per_record)
        major = 1
    elif version == "2.20":
        header = _fixed_header_v2(len(signals), n_records, record_s, start)
        header += _variable_header_v2(signals, per_record)
        major = 2
    else:
        raise ValueError(f"unsupported GDF version {version}")
    # records one after another; inside a record each signal's block follows in signal order
    records = digital.astype("<i2").reshape(len(signals), n_records, per_record).transpose(1, 0, 2)
    path = Path(path)
    atomic_write_bytes(path, header + records.tobytes() + _event_table(events, sfreq, major))
    return path
