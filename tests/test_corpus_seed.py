"""SEED reader on MAT v5 fixtures (tests/fixtures/seed.py)."""
import numpy as np
import pytest
import scipy.io

from eegmamba_cli.console import UserError
from eegmamba_cli.data.base import RecordingError
from eegmamba_cli.data.corpora.seed import CORPUS, FILE_CHANNELS, window_starts, Seed
from eegmamba_cli.data.options import parse_options
from eegmamba_cli.data.pipeline import preprocess_corpus
from tests.fixtures.seed import LONG_TRIALS, N_CHANNELS, trial_array, trial_value, write_seed_tree, write_session


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("seed")
    write_seed_tree(root)
    return root


def _ref(raw, recording):
    return next(r for r in CORPUS.find_recordings(raw) if r.id == recording)


def test_info():
    # the numbers every corpus declares are checked in test_corpus_contract.py; these are SEED's own
    info = CORPUS.info
    assert info.channels[:3] == ("FP1", "FPZ", "FP2") and info.channels[-1] == "CB2"
    assert info.class_names == ("negative", "neutral", "positive")


def test_find_orders_subjects_numerically_and_sessions_by_date(raw):
    refs = CORPUS.find_recordings(raw)
    # "10_…" sorts before "1_…" as text; the reader orders subjects by number
    assert [(r.id, r.subject, r.session) for r in refs] == [
        ("1_20131027", "1", "1"), ("1_20131030", "1", "2"), ("1_20131107", "1", "3"),
        ("10_20131130", "10", "1")]
    assert [p.name for p in refs[0].paths] == ["1_20131027.mat", "label.mat"]  # readme/label are not recordings
    assert [r.id for r in CORPUS.find_recordings(raw, {"10"})] == ["10_20131130"]
    assert [r.id for r in CORPUS.find_recordings(raw, {"01"})] == ["1_20131027", "1_20131030", "1_20131107"]
    # the raw folder, SEED/ or Preprocessed_EEG/ itself
    assert len(CORPUS.find_recordings(raw / "SEED")) == len(CORPUS.find_recordings(raw / "SEED/Preprocessed_EEG")) == 4


def test_read_trials_in_numeric_key_order_with_their_labels(raw):
    rec = CORPUS.read(_ref(raw, "1_20131027"))
    # only trials 2, 10 and 12 are long enough for a 20-s window; eeg10 comes after eeg2
    trials = [int(p.data[0, 0] // 1000) for p in rec.pieces]
    assert trials == [2, 10, 12]
    for piece, trial in zip(rec.pieces, trials):
        assert piece.sfreq == 200.0 and piece.data.dtype == np.float64
        assert piece.data.shape == (62, LONG_TRIALS[trial])
        np.testing.assert_array_equal(piece.data[:, 0], [trial_value(trial, c) for c in range(N_CHANNELS)])
        np.testing.assert_array_equal(piece.data, trial_array(trial, LONG_TRIALS[trial]))
    # label.mat: trial 2 -> 0 (neutral, class 1), trial 10 -> 1 (positive, 2), trial 12 -> -1 (negative, 0)
    assert [p.windows for p in rec.pieces] == [
        [(0.0, 1)],
        [(0.0, 2), (2.0, 2), (4.0, 2)],  # 24 s: windows at 0, 2, 4 s
        [(0.0, 0), (2.0, 0)],  # 4799 samples: the third window would need one more sample
    ]
    # offsets count every earlier trial in numeric order (1-s trials except trial 2 at 20 s and 10 at 24 s)
    assert [p.offset_s for p in rec.pieces] == [1.0, 28.0, 53.0]


def test_other_sessions_and_subject_prefix(raw):
    rec = CORPUS.read(_ref(raw, "10_20131130"))  # keys are ww_eeg1…ww_eeg15
    assert [(p.windows, p.offset_s, p.data[5, 0]) for p in rec.pieces] == [([(0.0, 2)], 0.0, 1005.0)]
    rec = CORPUS.read(_ref(raw, "1_20131030"))
    assert [(p.windows, p.offset_s) for p in rec.pieces] == [([(0.0, 0)], 14.0)]  # trial 15: label -1


def test_stride_option(raw):
    assert CORPUS.options.stride_s == 2.0
    rec = CORPUS.bind(raw, Seed.Options(stride_s=4.0)).read(_ref(raw, "1_20131027"))
    assert [p.windows for p in rec.pieces] == [[(0.0, 1)], [(0.0, 2), (4.0, 2)], [(0.0, 0)]]
    with pytest.raises(UserError, match=r"^seed: option stride_s must be a positive number of seconds, not 0\.0$"):
        parse_options(CORPUS, {"stride_s": "0"})


def test_window_starts():
    assert window_starts(3999, 2.0) == []
    assert window_starts(4000, 2.0) == [0.0]
    assert window_starts(4400, 2.0) == [0.0, 2.0]
    assert window_starts(4399, 2.0) == [0.0]


def test_unreadable_mat_names_the_file(tmp_path):
    folder = tmp_path / "Preprocessed_EEG"
    folder.mkdir()
    (folder / "3_20131101.mat").write_bytes(b"MATLAB 5.0 MAT-file, but then garbage" + bytes(100))
    scipy.io.savemat(folder / "label.mat", {"label": np.zeros((1, 15))})
    with pytest.raises(RecordingError, match=r"^3_20131101\.mat: cannot read the MAT file") as err:
        CORPUS.read(CORPUS.find_recordings(tmp_path)[0])
    assert "\n" not in str(err.value)


def test_missing_label_file(tmp_path):
    folder = tmp_path / "Preprocessed_EEG"
    folder.mkdir()
    write_session(folder, "2_20131027.mat", "jl", {})
    with pytest.raises(RecordingError, match=r"^label\.mat: not found in .*Preprocessed_EEG"):
        CORPUS.read(CORPUS.find_recordings(tmp_path)[0])


def test_wrong_channel_count(tmp_path):
    folder = tmp_path / "Preprocessed_EEG"
    folder.mkdir()
    scipy.io.savemat(folder / "label.mat", {"label": np.zeros((1, 15))})
    scipy.io.savemat(folder / "4_20131027.mat", {"lqj_eeg1": trial_array(1, 4000)[:60]})
    with pytest.raises(RecordingError, match=r"^4_20131027\.mat: trial 1 has shape \(60, 4000\), expected \(62"):
        CORPUS.read(CORPUS.find_recordings(tmp_path)[0])


def test_channel_table_is_the_spec_order():
    assert " ".join(FILE_CHANNELS) == (
        "FP1 FPZ FP2 AF3 AF4 F7 F5 F3 F1 FZ F2 F4 F6 F8 FT7 FC5 FC3 FC1 FCZ FC2 FC4 FC6 FT8 T7 C5 C3 C1 CZ C2 "
        "C4 C6 T8 TP7 CP5 CP3 CP1 CPZ CP2 CP4 CP6 TP8 P7 P5 P3 P1 PZ P2 P4 P6 P8 PO7 PO5 PO3 POZ PO4 PO6 PO8 "
        "CB1 O1 OZ O2 CB2")


@pytest.mark.parametrize("subject, fold", [("1", 1), ("3", 1), ("4", 2), ("6", 2), ("7", 3), ("9", 3),
                                           ("10", 4), ("12", 4), ("13", 5), ("15", 5), ("16", 0), ("0", 0),
                                           ("x", 0)])
def test_folds(subject, fold):
    assert CORPUS.fold_of(subject) == fold


def test_pipeline_end_to_end(raw, tmp_path):
    cache = preprocess_corpus("seed", raw, tmp_path / "cache", progress=False).cache
    m = cache.manifest
    assert cache.windows(range(len(cache))).shape == (9, 62, 4000)  # 20 s at 200 Hz
    assert {r: g["label"].tolist() for r, g in m.groupby("recording")} == {
        "1_20131027": [1, 2, 2, 2, 0, 0], "1_20131030": [0], "1_20131107": [2], "10_20131130": [2]}
    assert m.loc[m["recording"] == "1_20131027", "start_s"].tolist() == [1.0, 28.0, 30.0, 32.0, 53.0, 55.0]
    # windows of one trial share its event: three trials, the last two cut into overlapping windows
    assert m.loc[m["recording"] == "1_20131027", "event"].tolist() == [
        "1_20131027/e0", "1_20131027/e1", "1_20131027/e1", "1_20131027/e1", "1_20131027/e2", "1_20131027/e2"]
    assert m["event"].nunique() == 6 and (m["length"] == 4000).all() and set(m["run"]) == {"1"}
    assert set(zip(m["subject"], m["session"], m["fold"])) == {("1", "1", 1), ("1", "2", 1), ("1", "3", 1),
                                                                ("10", "1", 4)}
