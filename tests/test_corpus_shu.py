"""Shu 2022 reader on savemat fixtures (tests/fixtures/shu.py)."""
import numpy as np
import pytest

from eegmamba_cli.data.base import RecordingError
from eegmamba_cli.data.corpora.shu import CORPUS, FILE_CHANNELS
from eegmamba_cli.data.pipeline import preprocess_corpus
from tests.fixtures.shu import N_SAMPLES, SUB1_LABELS, make_data, trial_value, write_shu, write_shu_tree


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return write_shu_tree(tmp_path_factory.mktemp("shu"))


def test_info():
    # the numbers every corpus declares are checked in test_corpus_contract.py; these are Shu's own
    info = CORPUS.info
    assert info.licence == "CC BY 4.0" and info.class_names == ("left hand", "right hand")
    assert " ".join(FILE_CHANNELS) == ("Fp1 Fp2 Fz F3 F4 F7 F8 FC1 FC2 FC5 FC6 Cz C3 C4 T3 T4 A1 A2 CP1 CP2 "
                                       "CP5 CP6 Pz P3 P4 T5 T6 PO3 PO4 Oz O1 O2")


def test_find_recordings(raw):
    refs = CORPUS.find_recordings(raw)
    assert [(r.id, r.subject, r.session) for r in refs] == [
        ("sub-001_ses-01", "sub-001", "ses-01"), ("sub-001_ses-02", "sub-001", "ses-02"),
        ("sub-006_ses-01", "sub-006", "ses-01")]  # the .edf twin is not read
    assert [r.id for r in CORPUS.find_recordings(raw, {"6"})] == ["sub-006_ses-01"]
    assert [r.id for r in CORPUS.find_recordings(raw, {"sub-001"})] == ["sub-001_ses-01", "sub-001_ses-02"]
    assert len(CORPUS.find_recordings(raw / "mat")) == 3


def test_read_one_piece_and_window_per_trial(raw):
    rec = CORPUS.read(CORPUS.find_recordings(raw)[0])
    assert len(rec.pieces) == 6
    for trial, piece in enumerate(rec.pieces):
        assert piece.sfreq == 250.0 and piece.data.shape == (32, N_SAMPLES) and piece.data.dtype == np.float64
        np.testing.assert_array_equal(piece.data[:, 0], [trial_value(trial, c) for c in range(32)])
        np.testing.assert_array_equal(piece.data, make_data(6)[trial])
        assert piece.offset_s == trial * 4.0
    # labels [[1,2,1,2,2,1]] (uint8, 1-based) -> 0/1
    assert [p.windows for p in rec.pieces] == [[(0.0, label - 1)] for label in SUB1_LABELS]
    assert [p.windows[0][1] for p in rec.pieces] == [0, 1, 0, 1, 1, 0]


def test_unreadable_mat_names_the_file(tmp_path):
    (tmp_path / "sub-002_ses-01_task_motorimagery_eeg.mat").write_bytes(b"\0" * 200)
    with pytest.raises(RecordingError, match=r"^sub-002_ses-01_task_motorimagery_eeg\.mat: cannot read") as err:
        CORPUS.read(CORPUS.find_recordings(tmp_path)[0])
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("data, labels, message", [
    (make_data(2, 30), [1, 2], r"30 channels, expected the 32"),
    (make_data(2)[:, :, :900], [1, 2], r"trials hold 900 samples, fewer than the 1000"),
    (make_data(2), [1, 2, 1], r"expected data \(trials, channels, samples\) with one label per trial"),
    (make_data(2), [1, 3], r"labels must be 1 \(left\) or 2 \(right\), found \[1, 3\]"),
])
def test_bad_contents(tmp_path, data, labels, message):
    write_shu(tmp_path, 3, 1, labels, data=data)
    with pytest.raises(RecordingError, match=r"^sub-003_ses-01_task_motorimagery_eeg\.mat: " + message):
        CORPUS.read(CORPUS.find_recordings(tmp_path)[0])


@pytest.mark.parametrize("subject, fold", [("sub-001", 1), ("sub-005", 1), ("sub-006", 2), ("sub-010", 2),
                                           ("sub-011", 3), ("sub-016", 4), ("sub-020", 4), ("sub-021", 5),
                                           ("sub-025", 5), ("sub-026", 0), ("1", 0)])
def test_folds(subject, fold):
    assert CORPUS.fold_of(subject) == fold


def test_pipeline_end_to_end(raw, tmp_path):
    cache = preprocess_corpus("shu", raw, tmp_path / "cache", progress=False).cache
    m = cache.manifest
    assert cache.windows(range(len(cache))).shape == (10, 32, 800)  # 4 s at 200 Hz
    assert {r: g["label"].tolist() for r, g in m.groupby("recording")} == {
        "sub-001_ses-01": [0, 1, 0, 1, 1, 0], "sub-001_ses-02": [1, 1], "sub-006_ses-01": [1, 0]}
    assert m.loc[m["recording"] == "sub-001_ses-01", "start_s"].tolist() == [0.0, 4.0, 8.0, 12.0, 16.0, 20.0]
    assert set(zip(m["subject"], m["session"], m["fold"])) == {
        ("sub-001", "ses-01", 1), ("sub-001", "ses-02", 1), ("sub-006", "ses-01", 2)}
