"""custom: BIDS-style events.tsv or EDF+ annotations, windows inside events, channels by name, folds."""
import pytest

from eegmamba_cli.console import UserError
from eegmamba_cli.data.base import RecordingError
from eegmamba_cli.data.corpora.custom import CORPUS, read_events_tsv
from eegmamba_cli.data.pipeline import preprocess_corpus
from tests.fixtures.custom import EXPECTED, FREQS, write_custom
from tests.fixtures.edf import peak_frequency


def test_fixture_exact_windows_labels_subjects_folds(tmp_path):
    raw = write_custom(tmp_path / "raw")
    report = preprocess_corpus("custom", raw, tmp_path / "cache", options={"labels": "left,right"},
                               progress=False)
    cache = report.cache
    m = cache.manifest
    got = {r: list(zip(g["start_s"], g["label"])) for r, g in m.groupby("recording")}
    assert got == EXPECTED
    assert cache.class_names == ["left", "right"] and cache.channels == ["EEG C3", "EEG Cz", "EEG C4"]
    assert set(zip(m["subject"], m["fold"])) == {("01", 1), ("02", 2)}
    # sub-02 stores Cz, c4, C3 at 200 Hz: matched by name, so the order is the first file's
    for row in (0, 4):
        assert [peak_frequency(cache.windows([row])[0, c]) for c in range(3)] == \
            [FREQS["C3"], FREQS["Cz"], FREQS["C4"]]


def test_channels_window_and_stride_options(tmp_path):
    raw = write_custom(tmp_path / "raw")
    report = preprocess_corpus("custom", raw, tmp_path / "cache",
                               options={"labels": "left,right", "channels": "c4,C3", "window": 2.0, "stride": 1.0},
                               progress=False)
    cache = report.cache
    assert cache.channels == ["c4", "C3"] and cache.window_samples == 400
    sub1 = cache.manifest[cache.manifest["subject"] == "01"]
    # events 2+4 left, 8+4 right, 14+8 left with 2-s windows every 1 s: 3 + 3 + 7
    assert len(sub1) == 13 and sub1["start_s"].tolist()[:3] == [2.0, 3.0, 4.0]


def test_labels_required_and_missing_channels(tmp_path):
    raw = write_custom(tmp_path / "raw")
    with pytest.raises(UserError, match=r"^custom: option labels names the classes, name1,name2,... or name=CODE,... \(trial_type "
                                        r"values found: left, rest, right\)$"):
        preprocess_corpus("custom", raw, tmp_path / "cache", progress=False)
    configured = CORPUS.bind(raw, CORPUS.Options(labels="left,right", channels="C3,Pz", window=4.0))
    ref = configured.find_recordings(raw)[0]
    with pytest.raises(RecordingError, match=r"^sub-01_task-mi_eeg\.edf: missing 1 of 2 channels \(Pz\)$"):
        configured.read(ref)


def test_events_tsv_problems(tmp_path):
    bad = tmp_path / "x_events.tsv"
    bad.write_text("onset\tduration\tvalue\n1\t2\tleft\n")
    with pytest.raises(RecordingError, match=r"^x_events\.tsv: needs the columns onset and trial_type"):
        read_events_tsv(bad)
    bad.write_text("onset\tduration\ttrial_type\nsoon\t2\tleft\n")
    with pytest.raises(RecordingError, match=r"^x_events\.tsv: line 2: unreadable onset or duration$"):
        read_events_tsv(bad)
    bad.write_text("onset\tduration\ttrial_type\n1.5\tn/a\tleft\n")
    assert read_events_tsv(bad) == [(1.5, 0.0, "left")]
