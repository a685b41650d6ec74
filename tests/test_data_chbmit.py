"""CHB-MIT: summary parser, WFDB seizure files, discovery, the 23 channels, folds, fixture corpus."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eegmamba_cli.console import UserError
from eegmamba_cli.data.base import RecordingError
from eegmamba_cli.data.corpora.chbmit import (CORPUS, ChbMit, decode_wfdb_annotations, parse_subject_info,
                                              parse_summary, wfdb_seizures)
from eegmamba_cli.data.pipeline import preprocess_corpus
from tests.fixtures.chbmit import EXPECTED, channel_freq, summary_chb01, wfdb_seizures_bytes, write_chbmit
from tests.fixtures.edf import peak_frequency

REAL_CHB01 = {"chb01_03.edf": [(2996, 3036)], "chb01_04.edf": [(1467, 1494)], "chb01_15.edf": [(1732, 1772)],
              "chb01_16.edf": [(1015, 1066)], "chb01_18.edf": [(1720, 1810)], "chb01_21.edf": [(327, 420)],
              "chb01_26.edf": [(1862, 1963)]}


def test_real_summary(realdata):
    s = parse_summary((realdata / "chb-mit/chb01/chb01-summary.txt").read_text(), "chb01-summary.txt")
    assert s.sfreq == 256 and len(s.files) == 42
    assert {e.name: e.seizures for e in s.files.values() if e.seizures} == REAL_CHB01
    first = s.files["chb01_01.edf"]
    assert (first.start_clock, first.end_clock, first.n_seizures) == (11 * 3600 + 42 * 60 + 54, 12 * 3600 + 42 * 60 + 54, 0)
    assert len(first.channels) == 23 and first.channels[14] == first.channels[22] == "T8-P8"


@pytest.mark.parametrize("name,expected", [
    ("chb01/chb01_03.edf.seizures", [(2996, 3036)]), ("chb01/chb01_04.edf.seizures", [(1467, 1494)]),
    ("chb01/chb01_15.edf.seizures", [(1732, 1772)]), ("chb01/chb01_16.edf.seizures", [(1015, 1066)]),
    ("chb01/chb01_18.edf.seizures", [(1720, 1810)]), ("chb01/chb01_21.edf.seizures", [(327, 420)]),
    ("chb01/chb01_26.edf.seizures", [(1862, 1963)]), ("chb02/chb02_16+.edf.seizures", [(2972, 3053)]),
    ("chb02/chb02_19.edf.seizures", [(3369, 3378)]),
])
def test_real_wfdb_seizure_files(realdata, name, expected):
    data = (realdata / "chb-mit" / name).read_bytes()
    assert len(data) == 54
    assert wfdb_seizures(data, name) == expected
    anns = decode_wfdb_annotations(data)
    assert anns[0].aux == "## time resolution: 256"
    assert [a.sample for a in anns if a.code in (32, 33)] == [expected[0][0] * 256, expected[0][1] * 256]


def test_wfdb_writer_roundtrip_and_truncation():
    data = wfdb_seizures_bytes([(21, 30), (100, 140)])
    assert wfdb_seizures(data) == [(21, 30), (100, 140)]
    with pytest.raises(RecordingError, match="truncated WFDB"):
        decode_wfdb_annotations(data[:-5], "x.seizures")


def test_real_records_and_subject_info(realdata):
    records = (realdata / "chb-mit/RECORDS").read_text().split()
    assert len(records) == 686 and "chb02/chb02_16+.edf" in records and "chb17/chb17a_03.edf" in records
    with_seizures = (realdata / "chb-mit/RECORDS-WITH-SEIZURES").read_text().split()
    assert len(with_seizures) == 141 and set(with_seizures) <= set(records)
    info = parse_subject_info((realdata / "chb-mit/SUBJECT-INFO").read_text())
    assert len(info) == 23 and "chb24" not in info
    assert info["chb01"] == ("F", 11.0) and info["chb05"] == ("F", 7.0) and info["chb06"] == ("F", 1.5)


def test_summary_spellings_channel_changes_clock_past_midnight():
    s = parse_summary(summary_chb01(), "chb01-summary.txt")
    assert s.files["chb01_03.edf"].seizures == [(21, 30)]
    assert s.files["chb01_04.edf"].seizures == [(8, 12), (41, 43)]
    assert s.files["chb01_05.edf"].start_clock == 24 * 3600 + 10 * 60  # 24:10:00 kept as "the next day"
    assert len(s.files["chb01_04.edf"].channels) == 23 and len(s.files["chb01_05.edf"].channels) == 18
    no_clock = parse_summary("File Name: chb02_16+.edf\nNumber of Seizures in File: 0\n")
    assert no_clock.files["chb02_16+.edf"].start_clock is None


@pytest.mark.parametrize("text,message", [
    ("File Name: a.edf\nNumber of Seizures in File: 2\nSeizure Start Time: 1 seconds\nSeizure End Time: 2 seconds\n",
     r"^s: a\.edf: says 2 seizure\(s\) but gives times for 1$"),
    ("File Name: a.edf\nSeizure 1 Start Time: 5 seconds\n", r"1 seizure start\(s\) but 0 end\(s\)"),
    ("File Name: a.edf\nSeizure Start Time: 9 seconds\nSeizure End Time: 3 seconds\n", "ends .3 s. before it starts"),
    ("Seizure Start Time: 9 seconds\n", "before any 'File Name:' line"),
    ("File Name: a.edf\nFile Start Time: noon\n", "unreadable clock time 'noon'"),
])
def test_bad_summaries_give_one_clean_line(text, message):
    with pytest.raises(RecordingError, match=message):
        parse_summary(text, "s")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["File Name: chb01_0", "1", "3", ".edf", "\n", "Seizure ", "Start Time: ",
                                 "End Time: ", " seconds", "Number of Seizures in File: ", "Channels changed:",
                                 "Channel 1: FP1-F7", "File Start Time: ", "24:10:00", "x", ":", " "]),
                max_size=60).map("".join))
def test_summary_parser_never_crashes_uncleanly(text):
    try:
        parse_summary(text, "fuzz")
    except RecordingError as err:
        assert str(err).startswith("fuzz:") and "\n" not in str(err)


def test_discovery_odd_names_subset_and_options(tmp_path):
    raw = write_chbmit(tmp_path / "raw")
    ids = [r.id for r in CORPUS.find_recordings(raw)]
    assert ids == ["chb01_03", "chb01_04", "chb01_05", "chb02_16+", "chb17a_03"]  # RECORDS-WITH-SEIZURES
    everything = CORPUS.bind(raw, ChbMit.Options(files="all")).find_recordings(raw)
    assert [r.id for r in everything][:2] == ["chb01_01", "chb01_03"] and len(everything) == 6
    assert [r.session for r in everything][-2:] == ["16+", "a_03"]
    (raw / "RECORDS-WITH-SEIZURES").unlink()  # fallback: files whose summary lists a seizure
    assert [r.id for r in CORPUS.find_recordings(raw)] == ids
    assert [r.id for r in CORPUS.find_recordings(raw, {"17"})] == ["chb17a_03"]
    with pytest.raises(UserError, match="chb24 is not used"):
        CORPUS.find_recordings(raw, {"chb24"})


def test_folds_and_chb21_merge(tmp_path):
    assert [CORPUS.fold_of(f"chb{n:02d}") for n in (1, 5, 6, 10, 11, 15, 16, 19, 20, 23, 24)] == \
        [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 0]
    raw = tmp_path / "raw"
    (raw / "chb21").mkdir(parents=True)
    (raw / "chb21" / "chb21_01.edf").write_bytes(b"")
    merged = CORPUS.bind(raw, ChbMit.Options(files="all", merge_chb21_into_chb01=True))
    assert [(r.id, r.subject) for r in merged.find_recordings(raw)] == [("chb21_01", "chb01")]
    assert merged.fold_of("chb01") == 1
    assert [r.subject for r in CORPUS.bind(raw, ChbMit.Options(files="all")).find_recordings(raw)] == ["chb21"]


def test_fixture_corpus_exact(tmp_path):
    raw = write_chbmit(tmp_path / "raw")
    report = preprocess_corpus("chbmit", raw, tmp_path / "cache", progress=False)
    cache = report.cache
    m = cache.manifest
    assert {r: g["label"].tolist() for r, g in m.groupby("recording")} == EXPECTED
    assert len(cache) == 44 and cache.info["windows_per_label"] == {"0": 37, "1": 7}
    assert set(zip(m["subject"], m["fold"])) == {("chb01", 1), ("chb02", 1), ("chb17", 4)}
    assert [s["recording"] for s in report.skipped] == ["chb01_05"]
    assert report.skipped[0]["reason"].startswith("chb01_05.edf: missing 5 of 23 channels (P7-T7, T7-FT9")
    assert report.notes == ["chb01_04: chb01_04.edf.seizures gives seizures at 8-12 s, the summary "
                            "8-12, 41-43 s; using the summary"]
    # 23 channels in the paper's order; the two T8-P8 come from the two EDF channels; '-' never read
    window = cache.windows([0])[0]
    assert window.shape == (23, 800)
    assert [peak_frequency(window[k]) for k in range(23)] == [channel_freq(k) for k in range(23)]


def test_all_files_option(tmp_path):
    raw = write_chbmit(tmp_path / "raw")
    report = preprocess_corpus("chbmit", raw, tmp_path / "cache", options={"files": "all"}, progress=False)
    assert len(report.cache) == 54 and "chb01_01" in set(report.cache.manifest["recording"])
    with pytest.raises(UserError, match=r"^chbmit: option files must be one of seizures, all, not 'some'$"):
        preprocess_corpus("chbmit", raw, tmp_path / "c2", options={"files": "some"}, progress=False)


def test_listed_but_missing_file_is_reported(tmp_path):
    raw = write_chbmit(tmp_path / "raw")
    (raw / "chb02" / "chb02_16+.edf").unlink()
    ref = [r for r in CORPUS.find_recordings(raw) if r.id == "chb02_16+"][0]
    with pytest.raises(RecordingError, match=r"^chb02_16\+\.edf: listed in RECORDS-WITH-SEIZURES but not found"):
        CORPUS.read(ref)
