"""DEAP reader on hand-written Python 2 pickles (tests/fixtures/deap.py)."""
import os
import pickle

import numpy as np
import pytest

from eegmamba_cli.console import UserError
from eegmamba_cli.data.base import RecordingError
from eegmamba_cli.data.corpora.deap import CORPUS, Deap
from eegmamba_cli.data.options import parse_options
from eegmamba_cli.data.pipeline import preprocess_corpus
from tests.fixtures.deap import N_SAMPLES, channel_constant, make_data, write_deap

# valence, arousal, dominance, liking; trial 0 sits exactly on the 4.5 threshold (not above it)
S01_RATINGS = [[4.5, 7.0, 3.0, 5.0], [6.2, 2.0, 8.0, 4.0]]
S07_RATINGS = [[1.0, 9.0, 4.6, 4.4]]
MODEL_ROWS = [0, 16, 2, 24]  # Fp1, Fp2, F3, C4 in the file's channel order


@pytest.fixture
def raw(tmp_path):
    write_deap(tmp_path, 1, S01_RATINGS)
    write_deap(tmp_path, 7, S07_RATINGS, python3=True)  # re-saved by Python 3 (protocol 2)
    folder = tmp_path / "data_preprocessed_python"
    (folder / "s1.dat").write_bytes(b"")  # not the corpus's name pattern
    (folder / "s01.dat.bak").write_bytes(b"")
    (folder / "notes.txt").write_text("x")
    return tmp_path


def test_info():
    # the numbers every corpus declares are checked in test_corpus_contract.py; these are DEAP's own
    info = CORPUS.info
    assert info.channels == ("Fp1", "Fp2", "F3", "C4") and info.class_names == ("low", "high")
    assert "data_preprocessed_python/s01.dat" in info.raw_hint


def test_find_recordings(raw):
    refs = CORPUS.find_recordings(raw)
    assert [(r.id, r.subject, r.session, [p.name for p in r.paths]) for r in refs] == [
        ("s01", "s01", "1", ["s01.dat"]), ("s07", "s07", "1", ["s07.dat"])]
    assert [r.id for r in CORPUS.find_recordings(raw, {"7"})] == ["s07"]
    assert [r.id for r in CORPUS.find_recordings(raw, {"s01", "s32"})] == ["s01"]
    # pointing at the data folder itself works too
    assert [r.id for r in CORPUS.find_recordings(raw / "data_preprocessed_python")] == ["s01", "s07"]
    assert CORPUS.find_recordings(raw / "missing") == []


def test_read_exact_pieces(raw):
    rec = CORPUS.read(CORPUS.find_recordings(raw, {"s01"})[0])
    assert len(rec.pieces) == 2
    for trial, piece in enumerate(rec.pieces):
        assert piece.sfreq == 128.0 and piece.data.dtype == np.float64
        assert piece.data.shape == (4, N_SAMPLES)  # the whole 63-s trial: filtered per trial
        expected = np.array([channel_constant(trial, row) for row in MODEL_ROWS])
        np.testing.assert_array_equal(piece.data[:, 0], expected)
        np.testing.assert_array_equal(piece.data, make_data(2)[trial, MODEL_ROWS])
        assert piece.offset_s == trial * 63.0
    # valence 4.5 is not above 4.5 -> low; 6.2 -> high; the window starts after the 3-s baseline
    assert [p.windows for p in rec.pieces] == [[(3.0, 0)], [(3.0, 1)]]


def test_python3_pickle_reads_the_same_way(raw):
    rec = CORPUS.read(CORPUS.find_recordings(raw, {"7"})[0])
    assert [p.windows for p in rec.pieces] == [[(3.0, 0)]]
    np.testing.assert_array_equal(rec.pieces[0].data[:, 0], [channel_constant(0, r) for r in MODEL_ROWS])


@pytest.mark.parametrize("options, s01, s07", [
    ({"dimension": "arousal"}, [1, 0], [1]),
    ({"dimension": "dominance"}, [0, 1], [1]),
    ({"dimension": "liking", "threshold": 4.0}, [1, 0], [1]),
    ({"threshold": 6.5}, [0, 0], [0]),
])
def test_label_options(raw, options, s01, s07):
    assert CORPUS.options == Deap.Options(dimension="valence", threshold=4.5)
    bound = CORPUS.bind(raw, parse_options(CORPUS, options))
    refs = CORPUS.find_recordings(raw)
    got = [[w[0][1] for w in (p.windows for p in bound.read(ref).pieces)] for ref in refs]
    assert got == [s01, s07]


@pytest.mark.parametrize("options, message", [
    ({"dimension": "happiness"}, r"^deap: option dimension must be one of valence, arousal, dominance, liking, "
                                 r"not 'happiness'$"),
    ({"threshold": "high"}, r"^deap: option threshold=high should be a number$")])
def test_bad_options_are_user_errors(options, message):
    with pytest.raises(UserError, match=message):
        parse_options(CORPUS, options)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_hostile_pickle_is_refused_and_never_runs(raw, tmp_path):
    marker = tmp_path / "pwned"
    path = raw / "data_preprocessed_python" / "s02.dat"
    path.write_bytes(pickle.dumps({"data": _Payload(marker), "labels": np.zeros((1, 4))}, protocol=2))
    ref = CORPUS.find_recordings(raw, {"2"})[0]
    with pytest.raises(RecordingError) as err:
        CORPUS.read(ref)
    message = str(err.value)
    assert message.startswith("s02.dat: refused") and "system" in message and "\n" not in message
    assert not marker.exists()


def test_truncated_pickle_is_one_clear_error(raw):
    path = raw / "data_preprocessed_python" / "s01.dat"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(RecordingError, match=r"^s01\.dat: not a readable DEAP pickle") as err:
        CORPUS.read(CORPUS.find_recordings(raw, {"1"})[0])
    assert "\n" not in str(err.value)


def test_missing_channels_are_listed(tmp_path):
    write_deap(tmp_path, 3, [[5, 5, 5, 5]], data=make_data(1)[:, :16, :])  # only rows 0-15
    with pytest.raises(RecordingError, match=r"^s03\.dat: missing channels Fp2, C4 \(the file has 16 rows\)$"):
        CORPUS.read(CORPUS.find_recordings(tmp_path)[0])


def test_short_trials_and_wrong_shapes(tmp_path):
    write_deap(tmp_path, 4, [[5, 5, 5, 5]], data=make_data(1)[:, :, :8000])
    with pytest.raises(RecordingError, match=r"^s04\.dat: trials last 62\.5 s"):
        CORPUS.read(CORPUS.find_recordings(tmp_path)[0])
    write_deap(tmp_path, 4, [[5, 5, 5, 5], [1, 1, 1, 1]], data=make_data(1))
    with pytest.raises(RecordingError, match=r"^s04\.dat: expected data"):
        CORPUS.read(CORPUS.find_recordings(tmp_path)[0])


@pytest.mark.parametrize("subject, fold", [("s01", 1), ("s06", 1), ("s07", 2), ("s12", 2), ("s13", 3),
                                           ("s18", 3), ("s19", 4), ("s25", 4), ("s26", 5), ("s32", 5),
                                           ("s33", 0), ("s00", 0), ("1", 0), ("x", 0)])
def test_folds(subject, fold):
    assert CORPUS.fold_of(subject) == fold


def test_pipeline_end_to_end(raw, tmp_path):
    cache = preprocess_corpus("deap", raw, tmp_path / "cache", progress=False).cache
    m = cache.manifest
    assert cache.windows(range(len(cache))).shape == (3, 4, 12000)  # 60 s at 200 Hz
    assert cache.channels == ["Fp1", "Fp2", "F3", "C4"]
    assert {r: g["label"].tolist() for r, g in m.groupby("recording")} == {"s01": [0, 1], "s07": [0]}
    assert {r: g["start_s"].tolist() for r, g in m.groupby("recording")} == {"s01": [3.0, 66.0], "s07": [3.0]}
    assert set(zip(m["subject"], m["fold"])) == {("s01", 1), ("s07", 2)}
    arousal = preprocess_corpus("deap", raw, tmp_path / "arousal", options={"dimension": "arousal"},
                                progress=False).cache
    assert arousal.manifest.groupby("recording")["label"].apply(list).to_dict() == {"s01": [1, 0], "s07": [1]}
