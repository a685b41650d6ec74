"""Broken and hostile EDF, BDF and GDF files: one clear line (or a skipped-file report), never a traceback.

Named cases go through the real command (`eegmamba preprocess ... --strict`, in-process): exit code 1 and
exactly one `error:` line naming the file and the problem. A non-strict run reports every bad file as
skipped and keeps the good one. Property tests then mutate header fields and data bytes of valid files
at random (hypothesis) and require that every reader either reads the file or raises its one-line
RecordingError: no other exception type, however corrupt the file.
"""
from __future__ import annotations

import datetime as dt
import struct
import warnings
from pathlib import Path

import numpy as np
import pyedflib
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from eegmamba_cli.app import app
from eegmamba_cli.console import UserError
from eegmamba_cli.data.corpora.chbmit import CHANNELS
from eegmamba_cli.data.options import options_record, parse_options
from eegmamba_cli.data.pipeline import PreprocessParams, process_recording
from eegmamba_cli.data.registry import get_corpus
from tests.fixtures.bciiv2a import T_CUES, write_bci_file
from tests.fixtures.chbmit import summary_simple, write_edf_file
from tests.fixtures.edf import tone
from tests.fixtures.shhs import write_shhs_tree
from tests.fixtures.sleepedf import write_sleepedf

runner = CliRunner()
NS = 25  # the CHB-MIT fixture EDF: 23 channels + two '-' dummies


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def edf_field(name: str, signal: int = 0, ns: int = NS) -> tuple[int, int]:
    """(offset, width) of a header field; per-signal fields are stored field by field."""
    fixed = {"version": (0, 8), "date": (168, 8), "time": (176, 8), "header_bytes": (184, 8),
             "reserved": (192, 44), "n_records": (236, 8), "record_s": (244, 8), "ns": (252, 4)}
    if name in fixed:
        return fixed[name]
    start, width = {"label": (0, 16), "unit": (96, 8), "pmin": (104, 8), "pmax": (112, 8), "dmin": (120, 8),
                    "dmax": (128, 8), "spr": (216, 8)}[name]
    return 256 + ns * start + signal * width, width


def set_field(data: bytearray, name: str, value: bytes, signal: int = 0, ns: int = NS) -> bytearray:
    offset, width = edf_field(name, signal, ns)
    data[offset:offset + width] = value[:width].ljust(width, b" ")
    return data


@pytest.fixture(scope="module")
def good_edf(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("edf") / "x.edf"
    write_edf_file(path, "full", 8)
    return path.read_bytes()


def chb_raw(root: Path, files: dict[str, bytes]) -> Path:
    folder = root / "chb01"
    folder.mkdir(parents=True)
    summary = ""
    for name, data in files.items():
        (folder / name).write_bytes(data)
        summary += summary_simple(name, [(2, 4)]).split("\n\n", 1)[1] + "\n"
    (folder / "chb01-summary.txt").write_text("Data Sampling Rate: 256 Hz\n\n" + summary)
    return root


def preprocess(raw: Path, out: Path, *extra: str):
    result = runner.invoke(app, ["preprocess", "chbmit", "--raw", str(raw), "--out", str(out), "--workers", "1",
                                 "--no-progress", "-o", "files=all", *extra])
    assert "Traceback" not in result.output, result.output
    return result


def mutate(good: bytes, *changes, cut: int | None = None, ns: int = NS) -> bytes:
    data = bytearray(good)
    for name, value, *signal in changes:
        set_field(data, name, value, (signal or [0])[0], ns)
    return bytes(data if cut is None else data[:cut])


EDF_CASES = {  # name: (mutation of the good file, expected text in the one error line)
    "empty file": (lambda g: b"", "not an EDF file (only 0 bytes)"),
    "not an EDF file": (lambda g: b"PK\x03\x04" + bytes(600), "not an EDF/BDF file"),
    "truncated in the header": (lambda g: g[:1000], "truncated EDF header"),
    "truncated in the data": (lambda g: g[:-3000], "truncated (header declares 8 data records, the file holds 7"),
    "wrong header byte count": (lambda g: mutate(g, ("header_bytes", b"1234")), "header size 1234, expected 6656"),
    "negative samples per record": (lambda g: mutate(g, ("spr", b"-256", 3)), "negative samples per record"),
    "absurd samples per record": (lambda g: mutate(g, ("spr", b"99999999", 3)), "truncated (header declares 8"),
    "absurd record count": (lambda g: mutate(g, ("n_records", b"99999999")), "declares 99999999 data records"),
    "negative record count": (lambda g: mutate(g, ("n_records", b"-5")), "(-5 data records)"),
    "absurd signal count": (lambda g: mutate(g, ("ns", b"9999")), "(9999 signals)"),
    "non-numeric record count": (lambda g: mutate(g, ("n_records", b"abc")), "number of data records is 'abc'"),
    "non-ASCII label": (lambda g: mutate(g, ("label", "FP1-F7é€".encode("utf-8"))),
                        "missing 1 of 23 channels (FP1-F7)"),
    "non-ASCII number": (lambda g: mutate(g, ("pmin", "−3276".encode("utf-8"))), "physical minimum is"),
    "zero-length records (duration 0)": (lambda g: mutate(g, ("record_s", b"0")), "record duration 0 s"),
    "zero samples per record": (lambda g: mutate(g, *[("spr", b"0", i) for i in range(NS)]),
                                "data records of 0 samples"),
    "record duration 1e308 s": (lambda g: mutate(g, ("record_s", b"1e308")), "corrupt EDF header"),
    "record duration nan": (lambda g: mutate(g, ("record_s", b"nan")), "record duration nan s"),
    "equal digital min and max": (lambda g: mutate(g, ("dmax", b"-32767", 0)),
                                  "equal digital minimum and maximum"),
    "discontinuous EDF+D": (lambda g: mutate(g, ("reserved", b"EDF+D")), "discontinuous EDF+D"),
}


@pytest.mark.parametrize("case", sorted(EDF_CASES))
def test_broken_edf_is_one_line_under_strict(good_edf, tmp_path, case):
    damage, expected = EDF_CASES[case]
    raw = chb_raw(tmp_path / "raw", {"chb01_01.edf": damage(good_edf)})
    result = preprocess(raw, tmp_path / "out", "--strict")
    assert result.exit_code == 1, result.output
    lines = error_lines(result.output)
    assert len(lines) == 1 and lines[0].startswith("error: chb01_01.edf: "), result.output
    assert expected in lines[0] and "(stopped: --strict)" in lines[0], lines[0]
    assert not (tmp_path / "out" / "chbmit" / "info.json").exists()


def test_broken_edfs_are_skipped_and_reported_without_strict(good_edf, tmp_path):
    cases = sorted(EDF_CASES)
    files = {"chb01_01.edf": good_edf}
    files.update({f"chb01_{i:02d}.edf": EDF_CASES[c][0](good_edf) for i, c in enumerate(cases, 2)})
    result = preprocess(chb_raw(tmp_path / "raw", files), tmp_path / "out")
    assert result.exit_code == 0, result.output
    skipped = [line for line in result.output.splitlines() if line.startswith("skipped: ")]
    assert len(skipped) == len(cases)
    for i, case in enumerate(cases, 2):
        line = next(s for s in skipped if s.startswith(f"skipped: chb01_{i:02d}.edf: "))
        assert EDF_CASES[case][1] in line, (case, line)
    assert f"skipped {len(cases)})" in result.output and "1 recordings" in result.output


# --- BDF (24-bit) -------------------------------------------------------------------------------
def write_bdf(path: Path, labels, sfreq: int, seconds: int, annotations=()) -> Path:
    kind = pyedflib.FILETYPE_BDFPLUS if annotations else pyedflib.FILETYPE_BDF
    writer = pyedflib.EdfWriter(str(path), len(labels), file_type=kind)
    try:
        writer.setSignalHeaders([dict(label=lab, dimension="uV", sample_frequency=sfreq, physical_min=-3000.0,
                                      physical_max=3000.0, digital_min=-8388608, digital_max=8388607)
                                 for lab in labels])
        writer.setStartdatetime(dt.datetime(2020, 1, 1, 10))
        writer.writeSamples([tone(3 + 0.5 * i, sfreq, seconds) for i in range(len(labels))])
        for onset, duration, text in annotations:
            writer.writeAnnotation(onset, duration, text)
    finally:
        writer.close()
    return path


def custom_bdf_raw(root: Path, annotations) -> Path:
    folder = root / "sub-01" / "eeg"
    folder.mkdir(parents=True)
    write_bdf(folder / "sub-01_task-x_eeg.bdf", ["C3", "Cz", "C4"], 256, 20, annotations)
    return root


def custom(raw: Path, out: Path, *extra: str):
    result = runner.invoke(app, ["preprocess", "custom", "--raw", str(raw), "--out", str(out), "--workers", "1",
                                 "--no-progress", "--channels", "C3,Cz,C4", "--labels", "left,right", *extra])
    assert "Traceback" not in result.output, result.output
    return result


def test_bdf_reads_and_its_broken_variants_are_one_line(tmp_path):
    raw = custom_bdf_raw(tmp_path / "raw", [(1, 4, "left"), (8, 4, "right")])
    ok = custom(raw, tmp_path / "out")
    assert ok.exit_code == 0 and "2 windows, 1 recordings" in ok.output, ok.output
    path = next(raw.rglob("*.bdf"))
    good = path.read_bytes()
    for damage, expected in [(good[:-5000], "truncated (header declares 20 data records, the file holds 17"),
                             (mutate(good, ("ns", b"999")), "truncated EDF header"),
                             (mutate(good, ("spr", b"abc", 1), ns=4), "samples per record is 'abc'"),
                             (b"", "not an EDF file (only 0 bytes)")]:
        path.write_bytes(damage)
        result = custom(raw, tmp_path / "o2", "--strict")
        lines = error_lines(result.output)
        assert result.exit_code == 1 and len(lines) == 1, result.output
        assert lines[0].startswith("error: sub-01_task-x_eeg.bdf: ") and expected in lines[0], lines[0]


def test_bdf_content_through_the_edf_reader(tmp_path):
    """The EDF-family readers accept BDF content (24-bit, via pyedflib); truncation is caught first."""
    folder = tmp_path / "raw" / "chb01"
    folder.mkdir(parents=True)
    write_bdf(folder / "chb01_01.edf", list(CHANNELS), 256, 8)
    (folder / "chb01-summary.txt").write_text(summary_simple("chb01_01.edf", [(2, 4)]))
    assert preprocess(tmp_path / "raw", tmp_path / "out").exit_code == 0
    path = folder / "chb01_01.edf"
    path.write_bytes(path.read_bytes()[:-100])
    result = preprocess(tmp_path / "raw", tmp_path / "out2", "--strict")
    assert result.exit_code == 1 and "chb01_01.edf: truncated (header declares 8" in error_lines(result.output)[0]


def test_edfplus_annotations_past_the_end(tmp_path):
    """Events past the end of the recording give no windows (MNE crops them to the recording), never an
    out-of-range read; when nothing is left, one line says so."""
    raw = custom_bdf_raw(tmp_path / "raw", [(19, 4, "left"), (40, 4, "right"), (1000, 4, "left")])
    result = custom(raw, tmp_path / "out", "--strict")
    lines = error_lines(result.output)
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith("error: sub-01_task-x_eeg.bdf annotations: no event long enough"), lines[0]
    short = custom_bdf_raw(tmp_path / "short", [(2, 3.5, "left"), (10, 3.5, "right")])  # trials < the 4-s window
    lines = error_lines(custom(short, tmp_path / "out-short", "--strict").output)
    assert lines == ["error: sub-01_task-x_eeg.bdf annotations: no event long enough with trial_type in left, right: "
                     "the longest lasts 3.5 s, shorter than the 4-s window (set the window option: window=3.5 or "
                     "window=event) (stopped: --strict)"], lines
    raw2 = custom_bdf_raw(tmp_path / "raw2", [(2, 4, "left"), (16, 30, "right"), (500, 4, "left")])
    result = custom(raw2, tmp_path / "out2")
    assert result.exit_code == 0 and "2 windows" in result.output, result.output  # 2-6 s and 16-20 s


# --- GDF ---------------------------------------------------------------------------------------------
GDF_CASES = {
    "signal count of 2**32-1": (lambda d: (struct.pack_into("<q", d, 184, 2 ** 62),
                                           struct.pack_into("<I", d, 252, 2 ** 32 - 1)), "truncated: the header"),
    "header shorter than its signals": (lambda d: struct.pack_into("<q", d, 184, 512), "inconsistent GDF header"),
    "negative record count": (lambda d: struct.pack_into("<q", d, 236, -3), "inconsistent GDF header"),
    "absurd record count": (lambda d: struct.pack_into("<q", d, 236, 10 ** 12), "truncated: 1000000000000 data"),
    "unknown sample type": (lambda d: struct.pack_into("<i", d, 256 + 25 * 220, 99), "unsupported GDF data type"),
    "not a GDF version": (lambda d: d.__setitem__(slice(0, 8), b"GDF x.yz"), "unreadable GDF version"),
}


@pytest.mark.parametrize("case", sorted(GDF_CASES))
def test_broken_gdf_is_one_line_under_strict(tmp_path, case):
    damage, expected = GDF_CASES[case]
    raw = tmp_path / "raw"
    raw.mkdir()
    path = write_bci_file(raw / "A01T.gdf", T_CUES)
    data = bytearray(path.read_bytes())
    damage(data)
    path.write_bytes(bytes(data))
    result = runner.invoke(app, ["preprocess", "bciiv2a", "--raw", str(raw), "--out", str(tmp_path / "out"),
                                 "--workers", "1", "--no-progress", "--strict"])
    assert "Traceback" not in result.output and result.exit_code == 1, result.output
    lines = error_lines(result.output)
    assert len(lines) == 1 and lines[0].startswith("error: A01T.gdf: ") and expected in lines[0], result.output


# --- property tests: random damage to valid files ------------------------------------------------------
NASTY = [b"", b"-1", b"0", b"-0", b"nan", b"inf", b"-inf", b"1e308", b"1e-300", b"99999999", b"-99999999",
         b"abc", b"\xff\xfe", b"0x10", b"1,5", b" 1 ", b"+1", b"1e3", b"EDF+D", b"EDF+C", b"\x00\x00", b"0.5",
         b"3", b"-32768", b"32767", "é€".encode()]
FIELDS = ["version", "date", "time", "header_bytes", "reserved", "n_records", "record_s", "ns", "label", "unit",
          "pmin", "pmax", "dmin", "dmax", "spr"]
EDF_DAMAGE = st.tuples(
    st.lists(st.tuples(st.sampled_from(FIELDS), st.integers(0, 63), st.sampled_from(NASTY)), max_size=3),
    st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=20),
    st.one_of(st.none(), st.floats(0, 1)))


def damage_edf(good: bytes, damage) -> bytes:
    fields, byte_flips, cut = damage
    ns = int(good[252:256])
    data = bytearray(good)
    for name, signal, value in fields:
        set_field(data, name, value, signal % ns, ns)
    header = 256 * (ns + 1)
    for where, value in byte_flips:  # the data records (an annotation file's TALs)
        if len(data) > header:
            data[header + int(where * (len(data) - header))] = value
    return bytes(data if cut is None else data[:int(cut * len(data))])


class Reader:
    """One corpus and one of its files under a scratch raw folder; `check(bytes)` reads it via the
    pipeline's process_recording and fails on anything but a RecordingError/UserError."""

    def __init__(self, name: str, raw: Path, target: Path, options: dict | None = None):
        self.name, self.raw, self.target = name, raw, target
        self.good = target.read_bytes()
        self.options = parse_options(get_corpus(name), dict(options or {}))

    def check(self, data: bytes) -> None:
        self.target.write_bytes(data)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                corpus = get_corpus(self.name).bind(self.raw, self.options)
                for ref in corpus.find_recordings(self.raw):
                    if self.target in ref.paths:
                        process_recording(corpus, ref, PreprocessParams(options=options_record(self.options)))
        except UserError as err:  # RecordingError included
            assert "\n" not in str(err)
        finally:
            self.target.write_bytes(self.good)


@pytest.fixture(scope="module")
def readers(tmp_path_factory):
    base = tmp_path_factory.mktemp("readers")
    chb = chb_raw(base / "chb", {})
    write_edf_file(chb / "chb01" / "chb01_01.edf", "full", 8)
    (chb / "chb01" / "chb01-summary.txt").write_text(summary_simple("chb01_01.edf", [(2, 4)]))
    sleep = write_sleepedf(base / "sleepedf")
    shhs = write_shhs_tree(base / "shhs")
    bdf = custom_bdf_raw(base / "custom", [(1, 4, "left"), (8, 4, "right"), (30, 4, "left")])
    gdf = base / "gdf"
    gdf.mkdir()
    write_bci_file(gdf / "A01T.gdf", T_CUES)
    return {
        "chbmit edf": Reader("chbmit", chb, chb / "chb01" / "chb01_01.edf", {"files": "all"}),
        "sleepedf psg": Reader("sleepedf", sleep, next(sleep.rglob("*PSG.edf"))),
        "sleepedf hypnogram": Reader("sleepedf", sleep, next(sleep.rglob("*Hypnogram.edf"))),
        "shhs edf (pyedflib)": Reader("shhs", shhs, sorted(shhs.rglob("*.edf"))[0]),
        "custom bdf (mne)": Reader("custom", bdf, next(bdf.rglob("*.bdf")),
                                   {"channels": "C3,Cz,C4", "labels": "left,right"}),
        "bciiv2a gdf": Reader("bciiv2a", gdf, gdf / "A01T.gdf"),
    }


SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("which", ["chbmit edf", "sleepedf psg", "sleepedf hypnogram", "shhs edf (pyedflib)",
                                   "custom bdf (mne)"])
@SETTINGS
@given(damage=EDF_DAMAGE)
def test_damaged_edf_family_headers_never_crash_a_reader(readers, which, damage):
    reader = readers[which]
    reader.check(damage_edf(reader.good, damage))


GDF_FIELDS = {"header_bytes": (184, "<q"), "n_records": (236, "<q"), "duration_num": (244, "<I"),
              "duration_den": (248, "<I"), "ns": (252, "<I"), "pmin": (256 + 25 * 104, "<d"),
              "pmax": (256 + 25 * 112, "<d"), "dmin": (256 + 25 * 120, "<q"), "dmax": (256 + 25 * 128, "<q"),
              "spr": (256 + 25 * 216, "<i"), "type": (256 + 25 * 220, "<i")}
SPECIAL = [0, 1, -1, 3, 7, 250, 256, 1000, 2 ** 31 - 1, -2 ** 31, 2 ** 32 - 1, 2 ** 62, -2 ** 63, 2 ** 63 - 1]
FLOATS = [0.0, -0.0, float("nan"), float("inf"), -float("inf"), 1e308, -1e308, 1e-300, 100.0, -100.0]


def pack(fmt: str, value) -> bytes:
    """`value` in the field's binary type: floats as they come, integers clamped to the type's range."""
    if fmt == "<d":
        return struct.pack(fmt, float(value))
    size = struct.calcsize(fmt)
    lo, hi = (-(2 ** (8 * size - 1)), 2 ** (8 * size - 1) - 1) if fmt[-1].islower() else (0, 2 ** (8 * size) - 1)
    number = int(value) if not isinstance(value, float) or np.isfinite(value) else 0
    return struct.pack(fmt, min(max(number, lo), hi))


@SETTINGS
@given(changes=st.lists(st.tuples(st.sampled_from(sorted(GDF_FIELDS)), st.integers(0, 24),
                                  st.one_of(st.sampled_from(SPECIAL), st.sampled_from(FLOATS),
                                            st.integers(-2 ** 63, 2 ** 63 - 1))), min_size=1, max_size=3),
       cut=st.one_of(st.none(), st.floats(0, 1)))
def test_damaged_gdf_headers_never_crash_the_reader(readers, changes, cut):
    reader = readers["bciiv2a gdf"]
    data = bytearray(reader.good)
    for name, signal, value in changes:
        offset, fmt = GDF_FIELDS[name]
        if offset >= 256:
            offset += signal * struct.calcsize(fmt)
        data[offset:offset + struct.calcsize(fmt)] = pack(fmt, value)
    reader.check(bytes(data if cut is None else data[:int(cut * len(data))]))


def test_readers_fixture_files_are_valid(readers):
    """The property tests start from files every reader accepts (so damage is what they test)."""
    for name, reader in readers.items():
        corpus = get_corpus(reader.name).bind(reader.raw, reader.options)
        refs = [r for r in corpus.find_recordings(reader.raw) if reader.target in r.paths]
        assert refs, name
        result = process_recording(corpus, refs[0], PreprocessParams(options=options_record(reader.options)))
        assert len(result.windows) > 0, name
