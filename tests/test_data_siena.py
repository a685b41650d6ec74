"""Siena: the seizure-list parser with its corrections table, the reader, folds, and the fixture corpus."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eegmamba_cli.console import UserError
from eegmamba_cli.data.base import RecordingError
from eegmamba_cli.data.corpora.siena import CORPUS, CORRECTIONS, correct, parse_seizure_list
from eegmamba_cli.data.pipeline import preprocess_corpus
from tests.fixtures.edf import peak_frequency
from tests.fixtures.siena import EXPECTED, channel_freq, write_siena


def hms(text):
    h, m, s = (int(x) for x in text.replace(":", ".").split("."))
    return h * 3600 + m * 60 + s


def test_real_pn01_list(realdata):
    text = (realdata / "siena" / "Seizures-list-PN01.txt").read_text(encoding="latin-1")
    seizures = parse_seizure_list(text, "Seizures-list-PN01.txt")
    assert [(s.number, s.file) for s in seizures] == [(1, "PN01-1.edf"), (2, "PN01-1.edf")]
    assert (seizures[0].start, seizures[0].end) == (hms("21.51.02"), hms("21.51.56"))
    assert (seizures[1].start, seizures[1].end) == (hms("07.53.17"), hms("07.54.31"))
    assert seizures[1].reg_start == hms("19.00.44") and seizures[1].reg_end == hms("08.29.41")
    assert "PN01's only file is PN01-1.edf" in seizures[0].corrections
    # header start = registration start: offsets 10218-10272 s and, past midnight, 46353-46427 s
    t0 = hms("19.00.44")
    assert [((s.start - t0) % 86400, (s.end - t0) % 86400) for s in seizures] == [(10218, 10272), (46353, 46427)]


@pytest.mark.parametrize("field,value,file,expected", [
    ("file", "PN01.edf", None, "PN01-1.edf"),
    ("file", "PNO6-2.edf", None, "PN06-2.edf"),
    ("file", "PN11-.edf", None, "PN11-1.edf"),
    ("file", "PN05-3.edf", None, "PN05-3.edf"),
    ("reg_start", "1 6.49.25", None, "16.49.25"),
    ("end", "11.41.04 opure 11.40.43", None, "11.41.04"),
    ("start", "15.43.53 (CLINICAL ONSET); 15.43.59 (ELECTRIC ONSET)", None, "15.43.59"),
    ("end", "19.29.29", "PN00-3.edf", "18.29.29"),
    ("end", "19.29.29", "PN00-1.edf", "19.29.29"),  # scoped to PN00-3 only
    ("start", "19.29.29", "PN00-3.edf", "19.29.29"),  # and to its end time only
])
def test_every_correction_in_the_table(field, value, file, expected):
    assert correct(field, value, file)[0] == expected
    assert len(CORRECTIONS) == 7  # one table: adding a quirk means adding a row (and a case above)


def test_list_quirks_separators_labels_inheritance():
    text = """PN12
Seizure n 1
File name: PN12-1.2.edf
Registration start time:15.51.31
Registration end time: 19.00.00
Seizure start time: 16:13.23
Seizure end time: 16.14.26

Seizure n 2 (in sleep):   
File name: PN12-1.2.edf
Start time:18.31.01   
End time: 18:32:09
"""
    a, b = parse_seizure_list(text, "list")
    assert (a.start, a.end, a.reg_start) == (hms("16.13.23"), hms("16.14.26"), hms("15.51.31"))
    assert (b.number, b.start, b.end) == (2, hms("18.31.01"), hms("18.32.09"))
    assert (b.reg_start, b.reg_end) == (hms("15.51.31"), hms("19.00.00"))  # inherited


@pytest.mark.parametrize("text,message", [
    ("Seizure n 1\nFile name: PN00-1.edf\nSeizure start time: 10.00.00\n", r"^l: seizure n 1 \(line 1\): no end time$"),
    ("Seizure n 1\nSeizure start time: 10.00.00\nSeizure end time: 10.00.09\n", "no file name"),
    ("Seizure n 1\nFile name: PN00-1.edf\nStart time: 25.00.00\nEnd time: 10.00.00\n", "impossible time '25.00.00'"),
    ("Seizure n 1\nFile name: PN00-1.edf\nStart time: soon\nEnd time: 10.00.00\n", "unreadable time 'soon'"),
    ("Seizure n 1\nFile name: ../../etc/passwd\nStart time: 1.2.3\nEnd time: 1.2.4\n", "unexpected file name"),
    ("Seizure n 1\nFile name: PN00-1.edf\nStart time: 1.2.3\nStart time: 1.2.3\n", "second 'Start time'"),
])
def test_bad_lists_give_one_clean_line(text, message):
    with pytest.raises(RecordingError, match=message):
        parse_seizure_list(text, "l")


TOKENS = ["Seizure n ", "1", "2", " (in sleep):  ", "File name: ", "PN01.edf", "PNO6-1.edf", "PN11-.edf",
          "Registration start time:", "Start time: ", "Seizure start time: ", "End time:", "Seizure end time:",
          "19.39.33", "21:51:02", "16:13.23", "1 6.49.25", " opure ", "(CLINICAL ONSET); ", "(ELECTRIC ONSET)",
          "99.99.99", "\n", "\n\n", " ", ":", ".", "\t"]


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.lists(st.sampled_from(TOKENS), max_size=60).map("".join), st.text(max_size=200)))
def test_parser_never_crashes_uncleanly(text):
    try:
        parse_seizure_list(text, "fuzz")
    except RecordingError as err:
        assert "\n" not in str(err) and str(err).startswith("fuzz:")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 86399), st.integers(1, 600), st.sampled_from([".", ":"]),
                          st.booleans()), min_size=1, max_size=5))
def test_parser_roundtrips_generated_blocks(blocks):
    def clock(t, sep):
        t %= 86400
        return f"{t // 3600:02d}{sep}{t // 60 % 60:02d}.{t % 60:02d}"
    text = "PN03\n\n"
    for i, (start, length, sep, short) in enumerate(blocks, 1):
        label = "Start time" if short else "Seizure start time"
        text += (f"Seizure n {i}{' (in sleep):  ' if short else ''}\nFile name: PN03-1.edf\n"
                 f"{label}: {clock(start, sep)}  \n{label.replace('start', 'end').replace('Start', 'End')}:"
                 f"{clock(start + length, sep)}\n\n")
    parsed = parse_seizure_list(text, "gen")
    assert [(s.start, (s.end - s.start) % 86400) for s in parsed] == [(b[0], b[1]) for b in blocks]


def test_folds_and_the_misprinted_15():
    assert [CORPUS.fold_of(p) for p in ("PN00", "PN01", "PN03", "PN05", "PN09", "PN13", "PN14", "PN17")] == \
        [1, 1, 1, 2, 3, 4, 4, 5]
    assert CORPUS.fold_of("PN10") == 0 and CORPUS.fold_of("6") == 2
    for bad in ("15", "PN15"):
        with pytest.raises(UserError, match="no patient PN15"):
            CORPUS.fold_of(bad)


def test_discovery_excludes_pn10_and_filters_subjects(tmp_path):
    raw = write_siena(tmp_path / "raw")
    assert [r.id for r in CORPUS.find_recordings(raw)] == ["PN00-1", "PN00-2", "PN01-1"]
    assert [r.id for r in CORPUS.find_recordings(raw, {"1"})] == ["PN01-1"]
    with pytest.raises(UserError, match="PN10 has only 20 EEG electrodes"):
        CORPUS.find_recordings(raw, {"PN10"})
    with pytest.raises(UserError, match="no patient PN15"):
        CORPUS.find_recordings(raw, {"15"})


def test_fixture_corpus_exact_windows_labels_channels(tmp_path):
    raw = write_siena(tmp_path / "raw")
    report = preprocess_corpus("siena", raw, tmp_path / "cache", progress=False)
    cache = report.cache
    m = cache.manifest
    assert len(cache) == 15 and cache.windows(range(15)).shape == (15, 29, 800)
    assert {r: g["label"].tolist() for r, g in m.groupby("recording")} == EXPECTED
    assert m["start_s"].tolist() == [0, 4, 8, 12, 16] * 3
    assert set(zip(m["subject"], m["fold"])) == {("PN00", 1), ("PN01", 1)}
    assert set(m["session"]) == {"1", "2"}
    # PN00-2: the list's registration start is 5 s off; offsets come from the header
    assert any("registration start 23.59.45, the EDF header 23.59.50" in n for n in report.notes)
    # channel order follows the declaration whatever the file's order and case (PN01 is reversed, mixed case)
    for row in (0, 10):
        window = cache.windows([row])[0]
        assert [peak_frequency(window[k]) for k in range(29)] == [channel_freq(k) for k in range(29)]
    assert cache.info["windows_per_label"] == {"0": 10, "1": 5}


def test_missing_channel_and_seizure_outside_recording(tmp_path):
    raw = write_siena(tmp_path / "raw")
    listing = raw / "PN01" / "Seizures-list-PN01.txt"
    listing.write_text(listing.read_text().replace("Start time: 21:51:02", "Start time: 21:40:00"))
    ref = [r for r in CORPUS.find_recordings(raw) if r.id == "PN01-1"][0]
    with pytest.raises(RecordingError, match=r"^PN01-1\.edf: seizure n 1 \(21\.40\.00-21\.51\.06\) lies "
                                             r"outside the recording \(21\.50\.50-21\.51\.10\)$"):
        CORPUS.read(ref)
    from tests.fixtures.edf import START, tone, write_edf
    write_edf(raw / "PN00" / "PN00-1.edf", ["EEG Fp1", "EEG F3"], [512, 512], [tone(3, 512, 8)] * 2, start=START)
    ref = CORPUS.find_recordings(raw)[0]
    with pytest.raises(RecordingError, match=r"^PN00-1\.edf: missing 27 of 29 channels \(C3, P3, "):
        CORPUS.read(ref)
