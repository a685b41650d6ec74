"""Writers of the corpora's native file formats (for `eegmamba demo` and the test fixtures).

    EDF / EDF+ annotations  eegmamba_cli.data.edf.write_edf / write_annotations_edf (pyedflib)
    GDF 1.25 / 2.20         gdf_writer.write_gdf (BCI IV 2a), re-exported here
    DEAP pickle             py2_pickle: the Python 2 protocol-2 dict of arrays the corpus ships
    NSRR XML                nsrr_xml, stage_event, other_event (SHHS)
    CHB-MIT summary         chbmit_summary
    Siena seizure list      siena_seizure_list
    MAT v5                  scipy.io.savemat, called directly (SEED, Shu, BCI IV 2a true labels)

The readers never write; these exist so that synthetic corpora and fixtures exercise the real readers.
"""
from __future__ import annotations

import datetime as dt
import struct
from dataclasses import dataclass, field

import numpy as np

from .gdf_writer import GdfEvent, GdfSignal, write_gdf  # noqa: F401  (re-exported)


# --- DEAP: a Python 2 pickle ------------------------------------------------------------------------
# The real files were written by Python 2 with protocol 2: dict keys and the arrays' raw bytes are
# Python 2 `str` (opcodes SHORT_BINSTRING/BINSTRING) and numpy lives at `numpy.core.multiarray`.
# Python 3's pickler cannot produce that, so these opcodes are written by hand.

def _py2_str(raw: bytes) -> bytes:
    if len(raw) < 256:
        return b"U" + bytes([len(raw)]) + raw  # SHORT_BINSTRING
    return b"T" + struct.pack("<i", len(raw)) + raw  # BINSTRING


def _int(value: int) -> bytes:
    return b"K" + bytes([value]) if 0 <= value < 256 else b"J" + struct.pack("<i", value)


def _tuple(items: list[bytes]) -> bytes:
    return b"(" + b"".join(items) + b"t"  # MARK ... TUPLE


def _py2_dtype(dtype: np.dtype) -> bytes:
    """`numpy.dtype('f8', 0, 1)` plus its state, as numpy 1.x under Python 2 pickled it."""
    code = dtype.str[1:].encode()  # e.g. b"f8"
    order = dtype.str[0].encode() if dtype.itemsize > 1 else b"|"
    out = b"cnumpy\ndtype\n" + _tuple([_py2_str(code), _int(0), _int(1)]) + b"R"
    state = _tuple([_int(3), _py2_str(order), b"N", b"N", b"N", _int(-1), _int(-1), _int(0)])
    return out + state + b"b"  # BUILD


def _py2_array(array: np.ndarray) -> bytes:
    array = np.ascontiguousarray(array)
    out = b"cnumpy.core.multiarray\n_reconstruct\n"
    out += _tuple([b"cnumpy\nndarray\n", _tuple([_int(0)]), _py2_str(b"b")]) + b"R"
    state = _tuple([_int(1), _tuple([_int(n) for n in array.shape]), _py2_dtype(array.dtype),
                    b"\x89", _py2_str(array.tobytes())])  # \x89 = NEWFALSE: C order
    return out + state + b"b"


def py2_pickle(arrays: dict[str, np.ndarray]) -> bytes:
    """A protocol-2 pickle of a dict of arrays, byte-compatible with what Python 2 + numpy 1.x wrote."""
    body = b"".join(_py2_str(key.encode("ascii")) + _py2_array(value) for key, value in arrays.items())
    return b"\x80\x02}(" + body + b"u."  # PROTO 2, EMPTY_DICT, MARK, ..., SETITEMS, STOP


# --- SHHS: NSRR XML ---------------------------------------------------------------------------------

def stage_event(concept: str, start: float, duration: float) -> str:
    """A sleep-stage run, e.g. stage_event("Stage 2 sleep|2", 930.0, 60.0)."""
    return (f"<ScoredEvent><EventType>Stages|Stages</EventType><EventConcept>{concept}</EventConcept>"
            f"<Start>{start}</Start><Duration>{duration}</Duration></ScoredEvent>")


def other_event(concept: str, start: float, duration: float) -> str:
    """A non-stage event (respiratory), which readers must ignore."""
    return (f"<ScoredEvent><EventType>Respiratory|Respiratory</EventType><EventConcept>{concept}"
            f"</EventConcept><Start>{start}</Start><Duration>{duration}</Duration>"
            "<SignalLocation>ABDO RES</SignalLocation></ScoredEvent>")


def nsrr_xml(events: list[str], total_s: float) -> str:
    start = ("<ScoredEvent><EventType/><EventConcept>Recording Start Time</EventConcept><Start>0</Start>"
             f"<Duration>{total_s}</Duration><ClockTime>00.00.00 21.36.00</ClockTime></ScoredEvent>")
    return ('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
            "<PSGAnnotation><SoftwareVersion>Compumedics</SoftwareVersion><EpochLength>30</EpochLength>\n"
            "<ScoredEvents>\n" + "\n".join([start, *events]) + "\n</ScoredEvents></PSGAnnotation>\n")


# --- CHB-MIT: chbNN-summary.txt ---------------------------------------------------------------------

@dataclass
class SummaryFile:
    name: str  # chb01_03.edf
    seizures: list[tuple[int, int]] = field(default_factory=list)  # seconds from file start
    start: str | None = None  # clock lines, e.g. "13:43:04"; omitted when None
    end: str | None = None


def chbmit_summary(channels, files: list[SummaryFile], sfreq: int = 256) -> str:
    """The summary text: rate, channel list, then one block per file (numbered seizures when several)."""
    lines = [f"Data Sampling Rate: {sfreq} Hz", "*" * 25, "", "Channels in EDF Files:", "*" * 22]
    lines += [f"Channel {i}: {name}" for i, name in enumerate(channels, 1)] + [""]
    for f in files:
        lines.append(f"File Name: {f.name}")
        if f.start is not None:
            lines += [f"File Start Time: {f.start}", f"File End Time: {f.end}"]
        lines.append(f"Number of Seizures in File: {len(f.seizures)}")
        for k, (a, b) in enumerate(f.seizures, 1):
            number = f" {k}" if len(f.seizures) > 1 else ""
            lines += [f"Seizure{number} Start Time: {a} seconds", f"Seizure{number} End Time: {b} seconds"]
        lines.append("")
    return "\n".join(lines)


# --- Siena: Seizures-list-PNxx.txt ------------------------------------------------------------------

def _clock(moment: dt.datetime) -> str:
    return moment.strftime("%H.%M.%S")


def siena_seizure_list(patient: str, sfreq: int,
                       seizures: list[tuple[str, dt.datetime, dt.datetime, dt.datetime, dt.datetime]]) -> str:
    """`(file name, registration start, registration end, seizure start, seizure end)` per seizure,
    as wall-clock times (the reader converts them to offsets from the EDF header start)."""
    lines = [patient, "", f"Data Sampling Rate: {sfreq} Hz", ""]
    for n, (name, reg_start, reg_end, start, end) in enumerate(seizures, 1):
        lines += [f"Seizure n {n}", f"File name: {name}", f"Registration start time: {_clock(reg_start)}",
                  f"Registration end time: {_clock(reg_end)}", f"Seizure start time: {_clock(start)}",
                  f"Seizure end time: {_clock(end)}", ""]
    return "\n".join(lines)
