"""BCI IV 2a reader on hand-written GDF 1.25 and 2.20 files (tests/fixtures/bciiv2a.py, gdf_writer.py)."""
import mne
import numpy as np
import pytest
import scipy.io

from eegmamba_cli.data.base import RecordingError
from eegmamba_cli.data.corpora.bciiv2a import CORPUS, GDF_LABELS, BciIV2a
from eegmamba_cli.data.options import parse_options
from eegmamba_cli.data.gdf import read_header
from eegmamba_cli.data.pipeline import preprocess_corpus
from tests.fixtures.bciiv2a import (E_CLASSLABEL, LABELS, N_SAMPLES, T_CUES, digital_samples, events,
                                    physical, signals, write_bci_file, write_bci_tree)

VERSIONS = ["1.25", "2.20"]


@pytest.fixture(scope="module", params=VERSIONS)
def raw(request, tmp_path_factory):
    return write_bci_tree(tmp_path_factory.mktemp(f"bci{request.param}"), request.param)


def _read(raw, recording, options=None):
    ref = next(r for r in CORPUS.find_recordings(raw) if r.id == recording)
    return CORPUS.bind(raw, parse_options(CORPUS, options)).read(ref)


def _summary(rec):
    return [(p.data.shape, p.offset_s, p.windows) for p in rec.pieces]


# -- the fixture writer, checked against MNE ------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_mne_reads_the_hand_written_gdf(tmp_path, version):
    path = write_bci_file(tmp_path / "A01T.gdf", T_CUES, version=version)
    assert path.read_bytes()[:8] == f"GDF {version}".encode()
    raw = mne.io.read_raw_gdf(path, preload=True, verbose="error")
    assert raw.ch_names == LABELS and raw.info["sfreq"] == 250.0 and raw.n_times == N_SAMPLES
    gains = np.array([s.gain for s in signals()])
    expected = np.array([s.to_physical(row) for s, row in zip(signals(), digital_samples())])
    np.testing.assert_allclose(raw.get_data(units="uV"), expected, atol=1e-9)
    assert np.all(gains < 0.0031)  # ±100 µV over int16: one step is about 0.003 µV
    want = sorted((e.position, e.code, max(e.duration, 1)) for e in events(T_CUES))
    got = sorted(zip(np.round(raw.annotations.onset * 250).astype(int),
                     [int(d) for d in raw.annotations.description],
                     np.round(raw.annotations.duration * 250).astype(int)))
    assert got == want
    assert {d for d in raw.annotations.description} >= {"32766", "276", "768", "769", "1023"}


@pytest.mark.parametrize("version", VERSIONS)
def test_header_reader_matches_the_writer(tmp_path, version):
    header = read_header(write_bci_file(tmp_path / "x.gdf", T_CUES, version=version))
    assert header.labels == tuple(LABELS) and header.n_records == 34 and header.header_bytes == 256 * 26
    assert set(header.physical_min) == {-100.0} and set(header.digital_min) == {-32768.0}
    assert set(header.samples_per_record) == {250} and set(header.type_codes) == {3}


# -- discovery ---------------------------------------------------------------------------------------------

def test_info():
    # the numbers every corpus declares are checked in test_corpus_contract.py; these are BCI IV 2a's own
    info = CORPUS.info
    assert dict(info.native_labels)["EEG-0"] == "FC3" and len(info.native_labels) == 22
    assert info.channels == ("Fz", "FC3", "FC1", "FCz", "FC2", "FC4", "C5", "C3", "C1", "Cz", "C2", "C4",
                             "C6", "CP3", "CP1", "CPz", "CP2", "CP4", "P1", "Pz", "P2", "POz")
    assert info.class_names == ("left hand", "right hand", "feet", "tongue")


def test_find_recordings(raw):
    refs = CORPUS.find_recordings(raw)
    assert [(r.id, r.subject, r.session, [p.name for p in r.paths]) for r in refs] == [
        ("A01T", "A01", "T", ["A01T.gdf"]), ("A01E", "A01", "E", ["A01E.gdf", "A01E.mat"]),
        ("A02T", "A02", "T", ["A02T.gdf"])]
    assert [r.id for r in CORPUS.find_recordings(raw, {"2"})] == ["A02T"]
    assert [r.id for r in CORPUS.find_recordings(raw, {"A01"})] == ["A01T", "A01E"]


# -- reading -----------------------------------------------------------------------------------------------

def test_training_session_pieces_per_run(raw):
    rec = _read(raw, "A01T")
    assert rec.notes == []
    # run 1 ends where the gap starts (sample 4500); run 2 starts after it (4600 = 18.4 s); the EOG
    # stretch at the start belongs to run 1. Windows: cue + 1 s, relative to the piece.
    assert _summary(rec) == [
        ((22, 4500), 0.0, [(6.0, 0), (13.0, 1)]),  # 769 left, 770 right (trial 2 rejected, kept)
        ((22, 3900), 18.4, [(3.6, 2), (10.6, 3)]),  # 771 feet, 772 tongue
    ]
    assert all(p.sfreq == 250.0 and p.data.dtype == np.float64 for p in rec.pieces)


def test_channels_renamed_and_ordered_by_name_eog_dropped(raw):
    first, second = _read(raw, "A01T").pieces
    for row, label in enumerate(GDF_LABELS):
        channel = LABELS.index(label)
        np.testing.assert_allclose(first.data[row], physical(channel, 0, 4500), atol=1e-9)
        np.testing.assert_allclose(second.data[row], physical(channel, 4600, N_SAMPLES), atol=1e-9)
    assert not np.any(np.isclose(first.data, -100.0))  # no gap sample inside a piece


def test_evaluation_session_takes_true_labels_in_cue_order(raw):
    rec = _read(raw, "A01E")
    assert [w for p in rec.pieces for w in p.windows] == [
        (6.0, E_CLASSLABEL[0] - 1), (13.0, E_CLASSLABEL[1] - 1), (3.6, E_CLASSLABEL[2] - 1),
        (10.6, E_CLASSLABEL[3] - 1)]
    assert [w[1] for p in rec.pieces for w in p.windows] == [3, 0, 2, 1]


def test_classes_come_from_the_description_not_event_ids(raw):
    rec = _read(raw, "A02T")  # cues 769, 770, 772, 772: no 771
    assert [w[1] for p in rec.pieces for w in p.windows] == [0, 1, 3, 3]
    # what the integer ids would have said: 772 gets the id that 771 has in A01T
    ids_a01 = mne.events_from_annotations(mne.io.read_raw_gdf(raw / "A01T.gdf", verbose="error"),
                                          verbose="error")[1]
    ids_a02 = mne.events_from_annotations(mne.io.read_raw_gdf(raw / "A02T.gdf", verbose="error"),
                                          verbose="error")[1]
    assert ids_a02["772"] == ids_a01["771"]


def test_rejected_trials_dropped_on_request(raw):
    assert CORPUS.options == BciIV2a.Options(drop_rejected=False, true_labels_dir=None)
    assert _summary(_read(raw, "A01T", {"drop_rejected": "false"})) == _summary(_read(raw, "A01T"))
    rec = _read(raw, "A01T", {"drop_rejected": True})
    assert [p.windows for p in rec.pieces] == [[(6.0, 0)], [(3.6, 2), (10.6, 3)]]
    rec = _read(raw, "A01E", {"drop_rejected": True})  # the label sequence still advances past trial 2
    assert [w[1] for p in rec.pieces for w in p.windows] == [3, 2, 1]


def test_gap_alone_splits_runs(tmp_path):
    write_bci_file(tmp_path / "A03T.gdf", T_CUES, second_run_start=False)
    assert _summary(CORPUS.read(CORPUS.find_recordings(tmp_path)[0])) == [
        ((22, 4500), 0.0, [(6.0, 0), (13.0, 1)]), ((22, 3900), 18.4, [(3.6, 2), (10.6, 3)])]


def test_a_brief_clip_to_the_minimum_is_no_gap(tmp_path):
    write_bci_file(tmp_path / "A03T.gdf", T_CUES, floor_stretches=[(4500, 4600), (1700, 1709)])
    assert _summary(CORPUS.read(CORPUS.find_recordings(tmp_path)[0])) == [
        ((22, 4500), 0.0, [(6.0, 0), (13.0, 1)]), ((22, 3900), 18.4, [(3.6, 2), (10.6, 3)])]


def test_run_start_alone_splits_runs(tmp_path, monkeypatch):
    from tests.fixtures import bciiv2a as fixture
    monkeypatch.setattr(fixture, "GAP", (4500, 4500))  # no gap samples; 32766 at sample 4500
    write_bci_file(tmp_path / "A03T.gdf", T_CUES)
    assert _summary(CORPUS.read(CORPUS.find_recordings(tmp_path)[0])) == [
        ((22, 4500), 0.0, [(6.0, 0), (13.0, 1)]), ((22, 4000), 18.0, [(4.0, 2), (11.0, 3)])]


def test_a_window_crossing_a_run_boundary_is_left_out(tmp_path, monkeypatch):
    from tests.fixtures import bciiv2a as fixture
    monkeypatch.setattr(fixture, "TRIAL_STARTS", [750, 3100, 4750, 6500])  # window 16.4-19.4 s: across the gap
    write_bci_file(tmp_path / "A03T.gdf", T_CUES)
    rec = CORPUS.read(CORPUS.find_recordings(tmp_path)[0])
    assert [p.windows for p in rec.pieces] == [[(6.0, 0)], [(3.6, 2), (10.6, 3)]]
    assert rec.notes == ["1 of 4 trial windows cross a run gap or the file end and are left out"]


# -- bad input ---------------------------------------------------------------------------------------------

def test_evaluation_session_without_true_labels(tmp_path):
    write_bci_file(tmp_path / "A01E.gdf", [783] * 4)
    ref = CORPUS.find_recordings(tmp_path)[0]
    with pytest.raises(RecordingError, match=r"^A01E\.gdf: true labels A01E\.mat not found \(looked in .*\)"):
        CORPUS.read(ref)
    elsewhere = tmp_path / "labels"
    elsewhere.mkdir()
    scipy.io.savemat(elsewhere / "A01E.mat", {"classlabel": np.array([[2], [2], [1], [4]], dtype=np.uint8)})
    rec = CORPUS.bind(tmp_path, BciIV2a.Options(true_labels_dir=str(elsewhere))).read(ref)
    assert [w[1] for p in rec.pieces for w in p.windows] == [1, 1, 0, 3]
    scipy.io.savemat(elsewhere / "A01E.mat", {"classlabel": np.array([[2], [2]], dtype=np.uint8)})
    with pytest.raises(RecordingError, match=r"^A01E\.gdf: 4 '783' cues but 2 true labels$"):
        CORPUS.bind(tmp_path, BciIV2a.Options(true_labels_dir=str(elsewhere))).read(ref)


def test_true_labels_in_a_true_labels_folder_are_found(tmp_path):
    write_bci_file(tmp_path / "A01E.gdf", [783] * 4)
    (tmp_path / "true_labels").mkdir()
    scipy.io.savemat(tmp_path / "true_labels" / "A01E.mat", {"classlabel": np.array([[1], [2], [3], [4]])})
    (ref,) = CORPUS.find_recordings(tmp_path)
    assert ref.paths[1] == tmp_path / "true_labels" / "A01E.mat"
    assert [w[1] for p in CORPUS.read(ref).pieces for w in p.windows] == [0, 1, 2, 3]


@pytest.mark.parametrize("cut", [256 * 10, 256 * 26 + 5000, -20])
def test_truncated_gdf_is_one_clear_error(raw, tmp_path, cut):
    data = (raw / "A01T.gdf").read_bytes()
    (tmp_path / "A01T.gdf").write_bytes(data[:cut])
    with pytest.raises(RecordingError, match=r"^A01T\.gdf: truncated") as err:
        CORPUS.read(CORPUS.find_recordings(tmp_path)[0])
    assert "\n" not in str(err.value)


def test_not_a_gdf(tmp_path):
    (tmp_path / "A01T.gdf").write_bytes(b"<html>404</html>" * 20)
    with pytest.raises(RecordingError, match=r"^A01T\.gdf: not a GDF file"):
        CORPUS.read(CORPUS.find_recordings(tmp_path)[0])


def test_missing_channels_are_listed(tmp_path):
    labels = [label.replace("EEG-C3", "EEG-X").replace("EEG-16", "EEG-Y") for label in LABELS]
    write_bci_file(tmp_path / "A05T.gdf", T_CUES, labels=labels)
    with pytest.raises(RecordingError, match=r"^A05T\.gdf: missing channels C3 \(EEG-C3\), POz \(EEG-16\)$"):
        CORPUS.read(CORPUS.find_recordings(tmp_path)[0])


@pytest.mark.parametrize("subject, fold", [("A01", 1), ("A02", 1), ("A03", 2), ("A04", 2), ("A05", 3),
                                           ("A06", 3), ("A07", 4), ("A08", 4), ("A09", 5), ("A10", 0),
                                           ("1", 0)])
def test_folds(subject, fold):
    assert CORPUS.fold_of(subject) == fold


def test_pipeline_end_to_end(raw, tmp_path):
    cache = preprocess_corpus("bciiv2a", raw, tmp_path / "cache", progress=False).cache
    m = cache.manifest
    assert cache.windows(range(len(cache))).shape == (12, 22, 600)  # 3 s at 200 Hz
    assert {r: g["label"].tolist() for r, g in m.groupby("recording")} == {
        "A01T": [0, 1, 2, 3], "A01E": [3, 0, 2, 1], "A02T": [0, 1, 3, 3]}
    assert {r: g["start_s"].tolist() for r, g in m.groupby("recording")} == {
        r: [6.0, 13.0, 22.0, 29.0] for r in ("A01T", "A01E", "A02T")}  # cue + 1 s, in the recording
    assert set(zip(m["subject"], m["session"], m["fold"])) == {("A01", "T", 1), ("A01", "E", 1), ("A02", "T", 1)}
    dropped = preprocess_corpus("bciiv2a", raw, tmp_path / "dropped", options={"drop_rejected": "true"},
                                progress=False).cache
    assert dropped.manifest.groupby("recording")["label"].apply(list).to_dict() == {
        "A01T": [0, 2, 3], "A01E": [3, 2, 1], "A02T": [0, 3, 3]}
