"""The GDF header facts MNE does not check or expose publicly: completeness and each channel's calibration.

MNE reads GDF data and events (`mne.io.read_raw_gdf`), but on a truncated file it fails with an
unrelated IndexError, and the digital minimum that marks the gaps between BCI IV 2a runs is only in its
private `_raw_extras`. This module reads the fixed and variable headers of GDF 1.x and 2.x
(see docs/datasets.md, BCI IV 2a) and checks that the file holds every data record and the whole event table.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# GDF data type code -> bytes per sample
TYPE_BYTES = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 8, 8: 8, 16: 4, 17: 8}


class GdfError(ValueError):
    """The file is not a complete GDF file; the message says what is wrong."""


@dataclass(frozen=True)
class GdfHeader:
    version: float
    header_bytes: int
    n_records: int
    labels: tuple[str, ...]
    physical_min: np.ndarray
    physical_max: np.ndarray
    digital_min: np.ndarray
    digital_max: np.ndarray
    samples_per_record: np.ndarray
    type_codes: np.ndarray

    @property
    def record_bytes(self) -> int:
        return int(sum(TYPE_BYTES[int(t)] * int(n) for t, n in zip(self.type_codes, self.samples_per_record)))

    @property
    def events_offset(self) -> int:
        return self.header_bytes + self.n_records * self.record_bytes


def _field(block: bytes, ns: int, start: int, width: int, fmt: str | None = None):
    """One field of the field-major variable header: `ns` values of `width` bytes each."""
    chunk = block[start:start + ns * width]
    if fmt is None:
        return [chunk[i * width:(i + 1) * width].decode("latin-1").strip() for i in range(ns)]
    return np.array(struct.unpack(f"<{ns}{fmt}", chunk))


def read_header(path: str | Path) -> GdfHeader:
    with open(path, "rb") as fh:
        fixed = fh.read(256)
        if len(fixed) < 256 or not fixed.startswith(b"GDF "):
            raise GdfError("not a GDF file (no 'GDF x.yz' version at the start)")
        try:
            version = float(fixed[4:8].decode("ascii"))
        except ValueError:
            raise GdfError(f"unreadable GDF version {fixed[:8]!r}") from None
        n_records = struct.unpack_from("<q", fixed, 236)[0]
        if version < 1.9:
            header_bytes = struct.unpack_from("<q", fixed, 184)[0]
            ns = struct.unpack_from("<I", fixed, 252)[0]
        else:
            header_bytes = 256 * struct.unpack_from("<H", fixed, 184)[0]
            ns = struct.unpack_from("<H", fixed, 252)[0]
        if ns < 1 or header_bytes < 256 * (ns + 1) or n_records < 0:
            raise GdfError(f"inconsistent GDF header ({ns} signals, header of {header_bytes} bytes)")
        size = os.fstat(fh.fileno()).st_size
        if header_bytes > size:  # checked before reading: a corrupt count must not size a huge read
            raise GdfError(f"truncated: the header declares {header_bytes} bytes, the file has {size}")
        block = fh.read(256 * ns)
    if len(block) < 256 * ns:
        raise GdfError("truncated in the signal header")
    # Field-major variable header. Both versions put the fields used here at the same offsets:
    # 1.x: label 16, transducer 80, unit 8, pmin 8, pmax 8, dmin 8 (int64), dmax 8, prefilter 80, spr 4, type 4
    # 2.x: label 16, transducer 80, unit 6 + code 2, pmin, pmax, dmin, dmax (float64), reserved 68,
    #      low-pass, high-pass, notch 4 each, spr 4, type 4
    offsets = dict(pmin=104, pmax=112, dmin=120, dmax=128, spr=216, typ=220)
    digital_fmt = "q" if version < 1.9 else "d"
    return GdfHeader(
        version=version,
        header_bytes=int(header_bytes),
        n_records=int(n_records),
        labels=tuple(_field(block, ns, 0, 16)),
        physical_min=_field(block, ns, offsets["pmin"] * ns, 8, "d"),
        physical_max=_field(block, ns, offsets["pmax"] * ns, 8, "d"),
        digital_min=_field(block, ns, offsets["dmin"] * ns, 8, digital_fmt).astype(float),
        digital_max=_field(block, ns, offsets["dmax"] * ns, 8, digital_fmt).astype(float),
        samples_per_record=_field(block, ns, offsets["spr"] * ns, 4, "i"),
        type_codes=_field(block, ns, offsets["typ"] * ns, 4, "i"),
    )


def check_complete(path: str | Path, header: GdfHeader) -> None:
    """Raise GdfError unless the file holds all data records and its whole event table."""
    unknown = sorted({int(t) for t in header.type_codes} - set(TYPE_BYTES))
    if unknown:
        raise GdfError(f"unsupported GDF data type codes {unknown}")
    size = Path(path).stat().st_size
    if size < header.events_offset:
        raise GdfError(f"truncated: {header.n_records} data records need {header.events_offset} bytes, "
                       f"the file has {size}")
    with open(path, "rb") as fh:
        fh.seek(header.events_offset)
        table = fh.read(8)
    if len(table) == 0:
        return  # no event table at all
    if len(table) < 8:
        raise GdfError("truncated in the event table header")
    mode = table[0]
    if header.version < 1.94:
        n_events = struct.unpack_from("<I", table, 4)[0]
    else:
        n_events = int.from_bytes(table[1:4], "little")
    per_event = {1: 6, 3: 12}.get(mode)
    if per_event is None:
        raise GdfError(f"unsupported event table mode {mode}")
    if size < header.events_offset + 8 + per_event * n_events:
        raise GdfError(f"truncated: the event table lists {n_events} events but the file ends early")
