"""Property tests of every text parser: arbitrary input never raises anything but the parser's clean error
(one line), and well-formed generated input parses back to the generated values.

Parsers: Siena seizure lists, CHB-MIT summaries, NSRR XML (SHHS), BIDS events.tsv (custom corpus) and the
download checksum list. The Siena list and CHB-MIT summary already have token-based fuzz tests in
test_data_siena.py / test_data_chbmit.py; these add unrestricted Unicode (digit look-alikes such as '²',
'١', '５'), line-ending variants, and round trips for the parts those do not generate.
"""
from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from eegmamba_cli.data.base import RecordingError
from eegmamba_cli.data.corpora.chbmit import parse_summary
from eegmamba_cli.data.corpora.custom import read_events_tsv
from eegmamba_cli.data.corpora.shhs import EPOCH_S, STAGE_CLASSES, read_stages
from eegmamba_cli.data.corpora.siena import parse_seizure_list
from eegmamba_cli.data.download import DownloadError, parse_checksums
from tests.fixtures.shhs import nsrr_xml, other, stage

FUZZ = settings(max_examples=150, deadline=None)
ROUND = settings(max_examples=60, deadline=None)
SCRATCH = Path(tempfile.mkdtemp(prefix="eegmamba-properties-"))
atexit.register(shutil.rmtree, SCRATCH, True)

# Characters that look like digits or separators but are not ASCII digits: str.isdigit() accepts some.
LOOKALIKES = ["²", "³", "١", "٢", "５", "߁", "〇", "½", "\u00a0", "\u2028", "\x85", "\r", "\r\n", "\x00", "\ufeff"]


def text_with(tokens: list[str]):
    """Arbitrary Unicode, or a soup of the format's own tokens and look-alike characters."""
    return st.one_of(st.text(max_size=400),
                     st.lists(st.sampled_from(tokens + LOOKALIKES), max_size=80).map("".join))


def one_line(err: Exception, prefix: str) -> None:
    text = str(err)
    assert text.startswith(prefix) and "\n" not in text and "\r" not in text.replace("'\\r'", ""), text


def newline(text: str, style: str) -> str:
    return text.replace("\n", style)


# --- Siena seizure lists ---------------------------------------------------------------------------
SIENA_TOKENS = ["Seizure n ", "1", "12", " (in sleep):  ", "File name: ", "PN01-1.edf", "PN01.edf", "PNO6-1.edf",
                "Registration start time:", "Registration end time: ", "Start time: ", "Seizure start time: ",
                "End time:", "Seizure end time:", "19.39.33", "21:51:02", "16:13.23", "1 6.49.25", " opure ",
                "(ELECTRIC ONSET)", "99.99.99", "\n", " ", ":", "."]


@FUZZ
@given(text_with(SIENA_TOKENS))
def test_siena_list_any_text(text):
    try:
        parse_seizure_list(text, "fuzz")
    except RecordingError as err:
        one_line(err, "fuzz:")


def clock(seconds: int, seps: tuple[str, str]) -> str:
    return f"{seconds // 3600:02d}{seps[0]}{seconds // 60 % 60:02d}{seps[1]}{seconds % 60:02d}"


SEPS = st.tuples(st.sampled_from(".:"), st.sampled_from(".:"))


@ROUND
@given(st.lists(st.tuples(st.integers(1, 9), st.integers(0, 86399), st.integers(0, 86399), st.integers(0, 86399),
                          st.integers(1, 900), st.booleans(), SEPS), min_size=1, max_size=5),
       st.sampled_from(["\n", "\r\n"]), st.sampled_from(["", " ", "   "]))
def test_siena_list_round_trip_with_registration_times(blocks, eol, pad):
    """File, registration start/end, seizure start/end; blocks without a file name or registration times
    inherit them from the block before (PN12 style); CRLF endings and trailing spaces."""
    lines, expected, previous = ["PN03", ""], [], None
    for number, (k, reg_start, reg_end, start, length, inherit, seps) in enumerate(blocks, 1):
        lines.append(f"Seizure n {number}{' (in sleep):' if inherit else ''}{pad}")
        if inherit and previous is not None:
            name, r0, r1 = previous
        else:
            name, r0, r1 = f"PN03-{k}.edf", reg_start, reg_end
            lines += [f"File name: {name}{pad}", f"Registration start time:{clock(r0, seps)}{pad}",
                      f"Registration end time: {clock(r1, seps)}"]
        end = (start + length) % 86400
        lines += [f"Seizure start time: {clock(start, seps)}{pad}", f"Seizure end time:{clock(end, seps)}", ""]
        expected.append((number, name, start, end, r0, r1))
        previous = (name, r0, r1)
    parsed = parse_seizure_list(newline("\n".join(lines), eol), "gen")
    assert [(s.number, s.file, s.start, s.end, s.reg_start, s.reg_end) for s in parsed] == expected


# --- CHB-MIT summaries -------------------------------------------------------------------------------
CHB_TOKENS = ["File Name: chb01_0", "1", "3", ".edf", "\n", "Seizure ", "Start Time: ", "End Time: ", " seconds",
              "Number of Seizures in File: ", "Channels changed:", "Channel 1: FP1-F7", "File Start Time: ",
              "24:10:00", "Data Sampling Rate: ", "256", "1.2.3", " Hz", "x", ":", " ", "99999999999999999999"]


@FUZZ
@given(text_with(CHB_TOKENS))
def test_chbmit_summary_any_text(text):
    try:
        parse_summary(text, "fuzz")
    except RecordingError as err:
        one_line(err, "fuzz:")


def test_chbmit_summary_lookalike_digits_are_clean_errors():
    for text, message in [("File Name: a.edf\nNumber of Seizures in File: ²\n", "unreadable seizure count '²'"),
                          ("Data Sampling Rate: 1.2.3 Hz\nFile Name: a.edf\n", None)]:
        try:
            summary = parse_summary(text, "s")
        except RecordingError as err:
            assert message and message in str(err)
        else:
            assert message is None and summary.sfreq == 1.2


@ROUND
@given(st.sampled_from([256, 512, 128]),
       st.lists(st.tuples(st.integers(1, 99), st.one_of(st.none(), st.integers(0, 30 * 3600)),
                          st.lists(st.tuples(st.integers(0, 3500), st.integers(1, 300)), max_size=4),
                          st.booleans(), st.booleans()),
                min_size=1, max_size=6, unique_by=lambda b: b[0]),
       st.sampled_from(["\n", "\r\n"]))
def test_chbmit_summary_round_trip(sfreq, files, eol):
    """Rate, per file: clock start (past 24 h too, or absent), the count line, seizures numbered or not."""
    lines = [f"Data Sampling Rate: {sfreq} Hz", "*" * 25, "", "Channels in EDF Files:", "Channel 1: FP1-F7", ""]
    expected = {}
    for number, start_clock, seizures, numbered, with_count in files:
        name = f"chb01_{number:02d}.edf"
        lines.append(f"File Name: {name}")
        if start_clock is not None:
            h, m, s = start_clock // 3600, start_clock // 60 % 60, start_clock % 60
            lines.append(f"File Start Time: {h:02d}:{m:02d}:{s:02d}")
        if with_count:
            lines.append(f"Number of Seizures in File: {len(seizures)}")
        for k, (start, length) in enumerate(seizures, 1):
            tag = f"Seizure {k} " if numbered else "Seizure "
            lines += [f"{tag}Start Time: {start} seconds", f"{tag}End Time: {start + length} seconds"]
        lines.append("")
        expected[name] = (start_clock, [(a, a + n) for a, n in seizures])
    summary = parse_summary(newline("\n".join(lines), eol), "gen")
    assert summary.sfreq == sfreq
    assert {e.name: (e.start_clock, e.seizures) for e in summary.files.values()} == expected
    assert all(e.channels == ("FP1-F7",) for e in summary.files.values())


# --- NSRR XML (SHHS) ---------------------------------------------------------------------------------
XML_TOKENS = ["<PSGAnnotation>", "</PSGAnnotation>", "<ScoredEvents>", "</ScoredEvents>", "<ScoredEvent>",
              "</ScoredEvent>", "<EventType>Stages|Stages</EventType>", "<EventConcept>Wake|0</EventConcept>",
              "<EventConcept>x|9</EventConcept>", "<Start>", "</Start>", "<Duration>", "</Duration>", "0", "30",
              "1e12", "-30", "nan", "<EpochLength>30</EpochLength>", "&amp;", "&lol;", "<!-- c -->",
              "<!DOCTYPE a [<!ENTITY lol 'lol'>]>", "<?xml version='1.0'?>", "<"]


def write_scratch(name: str, data) -> Path:
    path = SCRATCH / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
    return path


@FUZZ
@given(st.one_of(text_with(XML_TOKENS), st.binary(max_size=400)))
def test_nsrr_xml_any_input(data):
    try:
        read_stages(write_scratch("fuzz-nsrr.xml", data))
    except RecordingError as err:
        one_line(err, "fuzz-nsrr.xml:")


CONCEPTS = {"0": "Wake|0", "1": "Stage 1 sleep|1", "2": "Stage 2 sleep|2", "3": "Stage 3 sleep|3",
            "4": "Stage 4 sleep|4", "5": "REM sleep|5", "6": "Movement|6", "9": "Unscored|9"}


@ROUND
@given(st.lists(st.tuples(st.sampled_from(sorted(CONCEPTS)), st.integers(0, 1200), st.integers(0, 40),
                          st.booleans()), min_size=1, max_size=12),
       st.sampled_from(["30", "30.0"]), st.booleans())
def test_nsrr_xml_round_trip(runs, start_format, with_other_events):
    """Stage runs (any order, overlapping: later runs win; Movement/Unscored drop epochs) interleaved with
    non-stage events expand to exactly the epochs the runs describe."""
    events, expected = [], {}
    for code, first, count, as_float in runs:
        start, duration = first * EPOCH_S, count * EPOCH_S
        events.append(stage(CONCEPTS[code], start if as_float else int(start), duration))
        if with_other_events:
            events.append(other("Hypopnea|Hypopnea", start + 12.5, 17.0))
        for epoch in range(first, first + count):
            if STAGE_CLASSES[code] is None:
                expected.pop(epoch, None)
            else:
                expected[epoch] = STAGE_CLASSES[code]
    text = nsrr_xml(events, 36000).replace("<EpochLength>30</EpochLength>", f"<EpochLength>{start_format}</EpochLength>")
    assert read_stages(write_scratch("gen-nsrr.xml", text)) == expected


# --- BIDS events.tsv (custom corpus) ----------------------------------------------------------------
TSV_TOKENS = ["onset", "duration", "trial_type", "sample", "\t", "\n", "\r\n", "1", "2.5", "n/a", "N/A", "-1",
              "nan", "inf", "1e400", "left", "right", "\x00", '"', "'", "\ufeff"]


@FUZZ
@given(st.one_of(text_with(TSV_TOKENS), st.binary(max_size=400)))
def test_events_tsv_any_input(data):
    try:
        read_events_tsv(write_scratch("fuzz_events.tsv", data))
    except RecordingError as err:
        one_line(err, "fuzz_events.tsv:")


TRIAL_TYPE = st.text(alphabet=st.characters(codec="utf-8", exclude_characters='\t\n\r"\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029',
                                            exclude_categories=["Cs", "Cc", "Zl", "Zp"]),
                     max_size=12).map(str.strip)


@ROUND
@given(st.lists(st.tuples(st.floats(-1e6, 1e6, allow_nan=False), st.one_of(st.none(), st.floats(0, 1e5)),
                          TRIAL_TYPE), max_size=15),
       st.permutations(["onset", "duration", "trial_type", "sample"]), st.booleans(), st.sampled_from(["\n", "\r\n"]))
def test_events_tsv_round_trip(rows, columns, bom, eol):
    """Any column order, an extra column, `n/a` durations, a UTF-8 BOM, CRLF: values come back exactly."""
    cells = {"onset": lambda r: repr(r[0]), "duration": lambda r: "n/a" if r[1] is None else repr(r[1]),
             "trial_type": lambda r: r[2], "sample": lambda r: "n/a"}
    lines = ["\t".join(columns)] + ["\t".join(cells[c](r) for c in columns) for r in rows]
    text = ("\ufeff" if bom else "") + eol.join(lines) + eol
    parsed = read_events_tsv(write_scratch("gen_events.tsv", text))
    assert parsed == [(r[0], 0.0 if r[1] is None else r[1], r[2]) for r in rows]


# --- the download checksum list ------------------------------------------------------------------------
SUM_TOKENS = ["0" * 64, "a" * 64, " ", "  ", " *", "\n", "\r\n", "chb01/chb01_03.edf", "../", "/", "\\", "..",
              ".", "#", "x", "\x00", "chb01", "/etc/passwd"]


@FUZZ
@given(text_with(SUM_TOKENS))
def test_checksum_list_any_text(text):
    try:
        sums = parse_checksums(text, SCRATCH)
    except DownloadError as err:
        one_line(err, "SHA256SUMS.txt")
    else:  # whatever it accepted is a plain relative path inside the target
        for name in sums:
            assert not name.startswith("/") and ".." not in name.split("/") and "\\" not in name
            assert (SCRATCH / name).resolve().is_relative_to(SCRATCH.resolve())


NAME = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_+-]{0,8}(\.[a-z]{1,4})?", fullmatch=True)


@ROUND
@given(st.dictionaries(st.lists(NAME, min_size=1, max_size=3).map("/".join), st.binary(max_size=16), min_size=1,
                       max_size=8), st.sampled_from([" ", "  ", " *"]), st.sampled_from(["\n", "\r\n"]))
def test_checksum_list_round_trip(files, sep, eol):
    text = eol.join(f"{hashlib.sha256(b).hexdigest()}{sep}{name}" for name, b in files.items()) + eol
    assert parse_checksums(text, SCRATCH) == {n: hashlib.sha256(b).hexdigest() for n, b in files.items()}

