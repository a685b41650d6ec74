"""SHHS reader on a mixed-rate EDF and NSRR XML (tests/fixtures/shhs.py)."""
import numpy as np
import pytest

from eegmamba_cli.console import UserError
from eegmamba_cli.data.base import RecordingError
from eegmamba_cli.data.corpora.shhs import CORPUS, NO_LIST_NOTE, read_subject_list, Shhs
from eegmamba_cli.data.options import parse_options
from eegmamba_cli.data.pipeline import preprocess_corpus
from tests.fixtures.shhs import (BILLION_LAUGHS, EXPECTED_A, EXPECTED_B, EXTERNAL_ENTITY, RATES, SUBJECT_A,
                                 eeg_signal, edf_path, write_shhs_edf, write_shhs_tree, xml_path)


@pytest.fixture
def raw(tmp_path):
    return write_shhs_tree(tmp_path / "shhs")


def test_info():
    # the numbers every corpus declares are checked in test_corpus_contract.py; these are SHHS's own
    info = CORPUS.info
    assert info.channels == ("C4-A1",) and dict(info.native_labels) == {"EEG": "C4-A1"}
    assert "polysomnography/edfs/shhs1/shhs1-NNNNNN.edf" in info.raw_hint


def test_find_recordings_shhs1_only(raw):
    refs = CORPUS.find_recordings(raw)
    assert [(r.id, r.subject, r.session) for r in refs] == [
        ("shhs1-200010", "200010", "shhs1"), ("shhs1-203000", "203000", "shhs1")]
    assert [p.name for p in refs[0].paths] == ["shhs1-200010.edf", "shhs1-200010-nsrr.xml"]
    assert [r.id for r in CORPUS.find_recordings(raw, {"shhs1-203000"})] == ["shhs1-203000"]
    assert [r.id for r in CORPUS.find_recordings(raw.parent, {"200010"})] == ["shhs1-200010"]  # parent of shhs/


def test_eeg_comes_back_at_its_native_125_hz(raw):
    assert RATES["ECG"] == 250  # the file's fastest channel
    rec = CORPUS.read(CORPUS.find_recordings(raw, {"200010"})[0])
    (piece,) = rec.pieces
    assert piece.sfreq == 125.0 and piece.data.shape == (1, 165 * 125) and piece.offset_s == 0.0
    # the C4-A1 ramp, not EEG(sec)'s constant; EDF calibration steps are 0.1 µV
    np.testing.assert_allclose(piece.data[0], eeg_signal(165 * 125), atol=0.05)


def test_stage_runs_expand_and_truncate_to_the_shorter_length(raw):
    a, b = (CORPUS.read(ref) for ref in CORPUS.find_recordings(raw))
    # A: W; Stage 4 run of 2 epochs -> N3 N3; Movement dropped; REM; the N2 epoch past the EDF end and
    #    the trailing Unscored run dropped; the hypopnea is no stage
    assert a.pieces[0].windows == EXPECTED_A == [(0.0, 0), (30.0, 3), (60.0, 3), (120.0, 4)]
    # B: the EDF (180 s) outlasts the scoring (120 s); Stage 3 -> N3; a 60-s N2 run gives two epochs
    assert b.pieces[0].windows == EXPECTED_B == [(0.0, 1), (30.0, 3), (60.0, 2), (90.0, 2)]


def test_without_a_subject_list_every_subject_is_used_with_a_note(raw, capsys):
    assert CORPUS.notes() == [NO_LIST_NOTE] and "329" in NO_LIST_NOTE
    assert CORPUS.options == Shhs.Options(subjects_file=None)
    configured = CORPUS.bind(raw, Shhs.Options(subjects_file=None))
    assert "note: SHHS: no subjects_file given" in " ".join(capsys.readouterr().err.split())
    assert configured.notes() == [NO_LIST_NOTE] and len(configured.find_recordings(raw)) == 2
    assert (configured.fold_of("200010"), configured.fold_of("203000")) == (1, 3)


def test_subject_list_selects_subjects_and_folds(raw, tmp_path):
    listing = tmp_path / "selected.csv"
    listing.write_text("nsrrid,ahi\n# paper selection\n200010,1.2\nshhs1-204100,0.5\n")
    corpus = CORPUS.bind(raw, Shhs.Options(subjects_file=str(listing)))
    assert corpus.notes() == [] and corpus.selected == {"200010", "204100"}
    assert [r.id for r in corpus.find_recordings(raw)] == ["shhs1-200010"]
    # only listed subjects belong to a fold
    assert (corpus.fold_of("200010"), corpus.fold_of("204100"), corpus.fold_of("203000")) == (1, 4, 0)
    assert CORPUS.selected is None  # the registry's instance is unchanged


def test_relative_subject_list_is_also_looked_up_in_the_raw_folder(raw):
    (raw / "paper-329.txt").write_text("203000\n")
    corpus = CORPUS.bind(raw, parse_options(CORPUS, {"subjects_file": "paper-329.txt"}))
    assert [r.id for r in corpus.find_recordings(raw)] == ["shhs1-203000"]


@pytest.mark.parametrize("text, message", [
    ("200010\nabc\n", r"selected\.txt:2: 'abc' is not an nsrrid"),
    ("# nothing\n\n", r"selected\.txt: the SHHS subject list holds no nsrrids"),
])
def test_bad_subject_lists(tmp_path, text, message):
    path = tmp_path / "selected.txt"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        read_subject_list(path)
    with pytest.raises(UserError, match="cannot read"):
        read_subject_list(tmp_path / "missing.txt")


@pytest.mark.parametrize("hostile", [BILLION_LAUGHS, EXTERNAL_ENTITY])
def test_entity_tricks_in_the_xml_are_refused(raw, hostile):
    xml_path(raw, "200010").write_text(hostile)
    with pytest.raises(RecordingError, match=r"^shhs1-200010-nsrr\.xml: refused unsafe XML \(EntitiesForbidden") as err:
        CORPUS.read(CORPUS.find_recordings(raw, {"200010"})[0])
    assert "\n" not in str(err.value)


def test_malformed_xml_and_missing_xml(raw):
    xml_path(raw, "200010").write_text("<PSGAnnotation><ScoredEvents>")
    with pytest.raises(RecordingError, match=r"^shhs1-200010-nsrr\.xml: cannot parse the annotation XML"):
        CORPUS.read(CORPUS.find_recordings(raw, {"200010"})[0])
    xml_path(raw, "203000").unlink()
    with pytest.raises(RecordingError, match=r"^shhs1-203000\.edf: annotation file shhs1-203000-nsrr\.xml not found"):
        CORPUS.read(CORPUS.find_recordings(raw, {"203000"})[0])


def test_unknown_stage_and_misaligned_run(raw):
    path = xml_path(raw, "200010")
    original = path.read_text()
    path.write_text(original.replace("REM sleep|5", "Stage 7 sleep|7"))
    with pytest.raises(RecordingError, match=r"unknown sleep stage 'Stage 7 sleep\|7'"):
        CORPUS.read(CORPUS.find_recordings(raw, {"200010"})[0])
    path.write_text(original.replace("<Start>120.0</Start>", "<Start>125.0</Start>"))
    with pytest.raises(RecordingError, match=r"not aligned to 30-s epochs"):
        CORPUS.read(CORPUS.find_recordings(raw, {"200010"})[0])
    path.write_text(original.replace("<Start>120.0</Start>", "<Start>soon</Start>"))
    with pytest.raises(RecordingError, match=r"stage run 'REM sleep\|5' at soon s is not aligned"):
        CORPUS.read(CORPUS.find_recordings(raw, {"200010"})[0])
    path.write_text(original.replace("<EpochLength>30</EpochLength>", "<EpochLength>20</EpochLength>"))
    with pytest.raises(RecordingError, match=r"EpochLength is '20', expected 30"):
        CORPUS.read(CORPUS.find_recordings(raw, {"200010"})[0])


def test_missing_channel_lists_what_the_file_has(raw, monkeypatch):
    from tests.fixtures import shhs as fixture
    monkeypatch.setattr(fixture, "RATES", {"EEG(sec)": 125, "ECG": 250})
    write_shhs_edf(edf_path(raw, SUBJECT_A[0]), 60)
    with pytest.raises(RecordingError, match=r"^shhs1-200010\.edf: missing channel EEG \(found: EEG\(sec\), ECG\)$"):
        CORPUS.read(CORPUS.find_recordings(raw, {"200010"})[0])


def test_broken_edf(raw):
    edf_path(raw, "200010").write_bytes(b"0       garbage")
    with pytest.raises(RecordingError, match=r"^shhs1-200010\.edf: cannot read the EDF"):
        CORPUS.read(CORPUS.find_recordings(raw, {"200010"})[0])


@pytest.mark.parametrize("subject, fold", [("200010", 1), ("201021", 1), ("201022", 0), ("201023", 2),
                                           ("202956", 2), ("202957", 0), ("202983", 3), ("204047", 3),
                                           ("204051", 4), ("204781", 4), ("204783", 5), ("205789", 5),
                                           ("205790", 0), ("200009", 0), ("abc", 0)])
def test_folds_by_nsrrid_range(subject, fold):
    assert CORPUS.fold_of(subject) == fold


def test_pipeline_end_to_end(raw, tmp_path):
    cache = preprocess_corpus("shhs", raw, tmp_path / "cache", progress=False).cache
    m = cache.manifest
    assert cache.windows(range(len(cache))).shape == (8, 1, 6000)  # 30 s at 200 Hz
    assert {r: g["label"].tolist() for r, g in m.groupby("recording")} == {
        "shhs1-200010": [0, 3, 3, 4], "shhs1-203000": [1, 3, 2, 2]}
    assert {r: g["start_s"].tolist() for r, g in m.groupby("recording")} == {
        "shhs1-200010": [0.0, 30.0, 60.0, 120.0], "shhs1-203000": [0.0, 30.0, 60.0, 90.0]}
    assert set(zip(m["subject"], m["fold"])) == {("200010", 1), ("203000", 3)}
    listing = tmp_path / "selected.txt"
    listing.write_text("200010\n")
    selected = preprocess_corpus("shhs", raw, tmp_path / "selected", options={"subjects_file": str(listing)},
                                 progress=False).cache
    assert selected.manifest["recording"].unique().tolist() == ["shhs1-200010"]
