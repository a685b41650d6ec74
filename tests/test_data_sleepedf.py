"""Sleep-EDF (SleepEDF-20): pairing, native 100 Hz, stage runs, label cropping, wake trimming, real excerpt."""
import numpy as np
import pytest

from eegmamba_cli.console import UserError
from eegmamba_cli.data.base import RecordingError
from eegmamba_cli.data.corpora.sleepedf import CORPUS, stage_epochs, trim_wake
from eegmamba_cli.data.edf import Annotation
from eegmamba_cli.data.pipeline import preprocess_corpus
from eegmamba_cli.data.signal import design_sos
from tests.fixtures.edf import peak_frequency
from tests.fixtures.sleepedf import (EXPECTED_LABELS, EXPECTED_STARTS, copy_real_excerpt, write_hypnogram,
                                     write_psg, write_sleepedf)


def test_real_excerpt_end_to_end_without_trimming(realdata, tmp_path):
    raw = copy_real_excerpt(realdata, tmp_path / "raw")
    report = preprocess_corpus("sleepedf", raw, tmp_path / "cache", options={"trim_wake": False}, progress=False)
    cache = report.cache
    # 300 s of signal, a 86,400-s hypnogram: labels cropped to exactly 10 epochs, all W
    assert len(cache) == 10 and cache.labels.tolist() == [0] * 10
    windows = cache.windows(range(10))
    assert windows.shape == (10, 1, 6000) and windows.dtype == np.float32
    np.testing.assert_allclose(windows.mean(axis=2), 0, atol=1e-5)
    m = cache.manifest
    assert m["start_s"].tolist() == [30.0 * k for k in range(10)]
    assert set(zip(m["recording"], m["subject"], m["session"], m["fold"])) == {("SC4001E0", "00", "1", 1)}


def test_real_excerpt_with_trimming_has_no_sleep_so_keeps_nothing(realdata, tmp_path):
    """Choice: trimming keeps epochs within 30 min of sleep; with no sleep epoch that is none, so the
    night is skipped with that reason (and here, being the only night, the run ends with an error)."""
    raw = copy_real_excerpt(realdata, tmp_path / "raw")
    ref = CORPUS.find_recordings(raw)[0]
    with pytest.raises(RecordingError, match=r"^SC4001E0-PSG\.edf: no sleep epoch, so wake trimming keeps "
                                             r"nothing \(option trim_wake=false keeps the wake epochs\)$"):
        CORPUS.read(ref)
    with pytest.raises(UserError, match="all 1 sleepedf recording"):
        preprocess_corpus("sleepedf", raw, tmp_path / "cache", progress=False)


def test_real_records_v1_is_sleepedf20(realdata):
    names = (realdata / "sleep-edf/RECORDS-v1").read_text().split()
    cassette = [n for n in names if n.startswith("SC4")]
    assert len(cassette) == 39 and len(names) - len(cassette) == 22
    subjects = {n[3:5] for n in cassette}
    assert subjects == {f"{i:02d}" for i in range(20)} and "SC4132E0-PSG.edf" not in cassette


def test_real_records_and_checksums_agree(realdata, tmp_path):
    from eegmamba_cli.data.download import parse_checksums
    records = (realdata / "sleep-edf/RECORDS").read_text().split()
    assert len(records) == 197
    assert sum(r.startswith("sleep-cassette/SC4") for r in records) == 153
    assert sum(r.startswith("sleep-telemetry/ST7") for r in records) == 44
    sums = parse_checksums((realdata / "sleep-edf/SHA256SUMS.txt").read_text(), tmp_path)
    assert set(records) <= set(sums)
    assert sums["sleep-cassette/SC4001E0-PSG.edf"] == \
        "2b40a18adf76af69a42d6db1f30f31d26b369f6d27ca0050ef30147ef892b131"
    # the hypnogram in the excerpt is byte-identical to the official file
    import hashlib
    data = (realdata / "sleep-edf/excerpt/SC4001EC-Hypnogram.edf").read_bytes()
    assert hashlib.sha256(data).hexdigest() == sums["sleep-cassette/SC4001EC-Hypnogram.edf"]


def test_synthetic_pair_exact(tmp_path):
    raw = write_sleepedf(tmp_path / "raw")
    report = preprocess_corpus("sleepedf", raw, tmp_path / "cache", progress=False)
    m = report.cache.manifest
    assert m["start_s"].tolist() == EXPECTED_STARTS and m["label"].tolist() == EXPECTED_LABELS
    assert set(zip(m["subject"], m["session"], m["fold"])) == {("05", "1", 2)}
    assert report.cache.info["windows_per_label"] == {"0": 4, "1": 1, "2": 2, "3": 2, "4": 1}
    assert peak_frequency(report.cache.windows([0])[0, 0]) == 3.0  # Fpz-Cz, not Pz-Oz (4 Hz)


def test_reads_fpz_cz_at_100_hz_and_high_pass_only(tmp_path):
    raw = write_sleepedf(tmp_path / "raw")
    recording = CORPUS.bind(raw, CORPUS.Options(trim_wake=False)).read(CORPUS.find_recordings(raw)[0])
    piece = recording.pieces[0]
    assert piece.sfreq == 100 and piece.data.shape == (1, 36000)  # never upsampled
    assert CORPUS.passband(100) == (0.1, None)
    assert design_sos(100.0, 0.1, None).shape == (2, 6)  # order-4 high-pass: two sections


def test_pairing_on_first_six_characters(tmp_path):
    folder = tmp_path / "raw" / "sleep-cassette"
    folder.mkdir(parents=True)
    for name in ("SC4051E0-PSG.edf", "SC4052E0-PSG.edf", "SC4201E0-PSG.edf"):
        (folder / name).write_bytes(b"")
    for name in ("SC4051EH-Hypnogram.edf", "SC4052EC-Hypnogram.edf", "SC4052EJ-Hypnogram.edf"):
        (folder / name).write_bytes(b"")
    refs = {r.id: [p.name for p in r.paths] for r in CORPUS.find_recordings(tmp_path / "raw")}
    assert refs == {"SC4051E0": ["SC4051E0-PSG.edf", "SC4051EH-Hypnogram.edf"],
                    "SC4052E0": ["SC4052E0-PSG.edf", "SC4052EC-Hypnogram.edf", "SC4052EJ-Hypnogram.edf"]}
    ref = [r for r in CORPUS.find_recordings(tmp_path / "raw") if r.id == "SC4052E0"][0]
    with pytest.raises(RecordingError, match=r"^SC4052E0-PSG\.edf: several hypnograms match"):
        CORPUS.read(ref)
    assert [r.id for r in CORPUS.find_recordings(tmp_path / "raw", {"5"})] == ["SC4051E0", "SC4052E0"]
    with pytest.raises(UserError, match="not a SleepEDF-20 subject"):
        CORPUS.find_recordings(tmp_path / "raw", {"20"})


def test_stage_runs_and_unknown_stage():
    anns = [Annotation(0, 90, "Sleep stage W"), Annotation(90, 30, "Sleep stage 4"),
            Annotation(100, 0, "Lights off"), Annotation(120, 60, "Sleep stage ?"), Annotation(180, 30, "Sleep stage R")]
    starts, labels = stage_epochs(anns)
    assert starts.tolist() == [0, 30, 60, 90, 180] and labels.tolist() == [0, 0, 0, 3, 4]
    with pytest.raises(RecordingError, match="unknown sleep stage 'Sleep stage 5'"):
        stage_epochs([Annotation(0, 30, "Sleep stage 5")])


def test_trim_wake_keeps_thirty_minutes_around_sleep():
    starts = np.arange(200) * 30.0
    labels = np.zeros(200, dtype=int)
    labels[100:110] = 2  # sleep from 3000 s to 3270 s
    keep = trim_wake(starts, labels)
    assert np.flatnonzero(keep).tolist() == list(range(40, 170))  # 60 epochs either side
    assert not trim_wake(starts, np.zeros(200, dtype=int)).any()  # no sleep: nothing is near sleep


def test_hypnogram_that_does_not_match(tmp_path):
    folder = tmp_path / "raw" / "sleep-cassette"
    folder.mkdir(parents=True)
    write_psg(folder / "SC4061E0-PSG.edf", seconds=90)
    write_hypnogram(folder / "SC4061EC-Hypnogram.edf", runs=[(5000, 300, "Sleep stage 2")])
    ref = CORPUS.find_recordings(tmp_path / "raw")[0]
    with pytest.raises(RecordingError, match=r"^SC4061EC-Hypnogram\.edf: no scored epoch falls inside "
                                             r"SC4061E0-PSG\.edf \(90 s\); the hypnogram does not match"):
        CORPUS.read(ref)
    write_hypnogram(folder / "SC4061EC-Hypnogram.edf", runs=[(0, 30, "Lights off")])
    with pytest.raises(RecordingError, match="no sleep-stage annotations"):
        CORPUS.read(ref)
    (folder / "SC4061EC-Hypnogram.edf").unlink()
    ref = CORPUS.find_recordings(tmp_path / "raw")[0]
    with pytest.raises(RecordingError, match=r"^SC4061E0-PSG\.edf: no hypnogram SC4061\?\?-Hypnogram\.edf"):
        CORPUS.read(ref)
