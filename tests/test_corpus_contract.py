"""The corpus contract, checked for every registered corpus (a new module is covered without opting in).

Each corpus is one declaration (`info`, `Options`) plus a reader. Here, for every corpus the registry
discovers: the declaration is complete and matches the paper's numbers, the fold table and the subject ids
agree, the options parse from text and refuse unknown keys, everything derived from the registry (model
specs, paper tables, demo subjects, download table) agrees with the declarations, and the reader finds,
reads and windows the corpus's own native files (written by the demo's writers) and refuses a truncated
file with one line naming it. Corpus-specific behaviour (exact counts from known files) stays in
tests/test_corpus_<name>.py and tests/test_data_<name>.py.
"""
from __future__ import annotations

import dataclasses
import pickle
import shutil
import typing
from pathlib import Path

import numpy as np
import pytest

from eegmamba_cli.console import UserError
from eegmamba_cli.data import corpora, registry
from eegmamba_cli.data.base import TARGET_SFREQ, CorpusError, RecordingError, to_samples, to_seconds
from eegmamba_cli.data.options import option_help, options_record, parse_options
from eegmamba_cli.data.pipeline import PreprocessParams, process_recording
from eegmamba_cli.demo import corpus as demo_corpus
from eegmamba_cli.training import paper
from tests.fixtures.custom import write_custom

ALL = list(registry.registered().values())
PAPER = registry.paper_corpora()
ids = [c.info.name for c in ALL]

# What the paper fixes for each corpus: (task, channels, classes, native Hz, window s, samples at 200 Hz).
PAPER_NUMBERS = {
    "siena": ("seizure", 29, 2, 512.0, 4.0, 800),
    "chbmit": ("seizure", 23, 2, 256.0, 4.0, 800),
    "sleepedf": ("sleep", 1, 5, 100.0, 30.0, 6000),
    "shhs": ("sleep", 1, 5, 125.0, 30.0, 6000),
    "deap": ("emotion", 4, 2, 128.0, 60.0, 12000),
    "seed": ("emotion", 62, 3, 200.0, 20.0, 4000),
    "shu": ("mi", 32, 2, 250.0, 4.0, 800),
    "bciiv2a": ("mi", 22, 4, 250.0, 3.0, 600),
}


# --- the declaration ------------------------------------------------------------------------------

@pytest.mark.parametrize("corpus", ALL, ids=ids)
def test_declaration_identity(corpus):
    info = corpus.info
    module = type(corpus).__module__.rpartition(".")[2]
    assert module == info.name, "one module per corpus, named after its registry key"
    assert registry.get_corpus(info.name) is corpus
    for alias in info.aliases:
        assert registry.canonical_name(alias.upper()) == info.name
    # one naming scheme: the corpus's own name, never a "Corpus" suffix
    assert not type(corpus).__name__.endswith("Corpus")
    assert info.task in ("seizure", "sleep", "emotion", "mi", "custom")
    assert info.access in ("open", "agreement", "local") and info.raw_hint


@pytest.mark.parametrize("corpus", PAPER, ids=[c.info.name for c in PAPER])
def test_declaration_matches_the_paper(corpus):
    info = corpus.info
    assert (info.task, len(info.channels), len(info.class_names), info.native_sfreq, info.window_s,
            info.window_samples) == PAPER_NUMBERS[info.name]
    assert len(set(info.class_names)) == len(info.class_names)
    assert info.title and info.url.startswith("https://") and info.licence and info.citation
    assert info.display_name and info.index == registry.CORPUS_NAMES.index(info.name)


def test_window_unit_conversions_are_inverse():
    assert TARGET_SFREQ == 200.0
    for seconds in (3.0, 4.0, 20.0, 30.0, 60.0, 0.5):
        assert to_seconds(to_samples(seconds)) == seconds
    assert to_seconds(6000, 200.0) == 30.0 and to_seconds(600, None) == 3.0


@pytest.mark.parametrize("corpus", PAPER, ids=[c.info.name for c in PAPER])
def test_fold_table_and_subject_ids_agree(corpus):
    folds = corpus.info.folds
    assert sorted(folds) == [1, 2, 3, 4, 5]
    seen: set[int] = set()
    for fold, numbers in folds.items():
        numbers = list(numbers)
        assert numbers and not seen & set(numbers), f"fold {fold} empty or overlapping"
        seen |= set(numbers)
        for number in numbers[:3] + numbers[-2:]:
            subject = corpus.subject_id(number)
            assert corpus.subject_number(subject) == number
            assert corpus.fold_of(subject) == fold
    try:  # not a subject id: no number, or a one-line refusal
        assert corpus.subject_number("not a subject") == -1
    except UserError as err:
        assert "\n" not in str(err) and "not a subject" in str(err)


# --- options --------------------------------------------------------------------------------------

@pytest.mark.parametrize("corpus", ALL, ids=ids)
def test_options_are_a_typed_frozen_dataclass_with_help(corpus):
    options_type = corpus.Options
    assert dataclasses.is_dataclass(options_type) and options_type.__dataclass_params__.frozen
    assert corpus.options == options_type() == parse_options(corpus, {})
    for key, default, text in option_help(options_type):
        assert text, f"option {key} has no help text"
    types = typing.get_type_hints(options_type)
    for f in dataclasses.fields(options_type):
        # every default survives being typed on the command line as text
        text = "none" if f.default is None else str(f.default).lower()
        assert getattr(parse_options(corpus, {f.name: text}), f.name) == f.default, f.name
        assert types[f.name] in (bool, int, float, str, str | None)
    assert set(options_record(corpus.options)) == {f.name for f in dataclasses.fields(options_type)}


@pytest.mark.parametrize("corpus", ALL, ids=ids)
def test_unknown_option_is_refused_with_the_known_ones(corpus):
    with pytest.raises(CorpusError) as err:
        parse_options(corpus, {"no_such_option": "1"})
    message = str(err.value)
    assert "\n" not in message and f"{corpus.info.name}: unknown option(s) no_such_option; known: " in message
    for f in dataclasses.fields(corpus.Options):
        assert f.name in message


@pytest.mark.parametrize("corpus", [c for c in ALL if any(
    typing.get_type_hints(c.Options)[f.name] in (bool, float, int) for f in dataclasses.fields(c.Options))],
    ids=lambda c: c.info.name)
def test_mistyped_option_names_the_key(corpus):
    types = typing.get_type_hints(corpus.Options)
    key = next(f.name for f in dataclasses.fields(corpus.Options) if types[f.name] in (bool, float, int))
    with pytest.raises(CorpusError, match=f"^{corpus.info.name}: option {key}=banana should be "):
        parse_options(corpus, {key: "banana"})


# --- what the registry derives ----------------------------------------------------------------------

def test_registry_names_tasks_and_model_specs():
    assert registry.CORPUS_NAMES == tuple(c.info.name for c in PAPER)
    assert [c.info.index for c in PAPER] == list(range(len(PAPER)))
    assert {n for names in registry.TASKS.values() for n in names} == set(registry.CORPUS_NAMES)
    assert "custom" in registry.registered() and "custom" not in registry.CORPUS_NAMES
    with pytest.raises(UserError, match=r"^unknown dataset 'nope'; known: siena, chbmit, .*custom$"):
        registry.canonical_name("nope")


def test_every_corpus_module_is_registered():
    import pkgutil

    modules = {m.name for m in pkgutil.iter_modules(corpora.__path__)}
    assert modules == set(registry.registered())


def test_paper_tables_come_from_the_declarations():
    tables = paper.PAPER_TABLES
    assert [names for _, names in tables.values()] == list(registry.TASKS.values())
    for corpus in PAPER:
        name = corpus.info.name
        assert paper.DISPLAY_NAMES[name] == corpus.info.display_name
        for method in paper.PAPER_RESULTS.values():
            assert set(method[name]) == {"accuracy", "auroc", "f1_weighted"}


def test_download_table_comes_from_the_declarations():
    assert sorted(registry.downloadable()) == ["chbmit", "siena", "sleepedf"]
    for corpus in registry.downloadable().values():
        assert corpus.info.access == "open" and callable(corpus.info.download.select)
        assert corpus.info.download.url.startswith("https://physionet.org/files/")


@pytest.mark.parametrize("corpus", PAPER, ids=[c.info.name for c in PAPER])
def test_demo_subjects_come_from_the_fold_table(corpus):
    subjects = demo_corpus.subjects(corpus.info.name, demo_corpus.FULL)
    assert [corpus.fold_of(s) for s in subjects] == [1, 2, 3, 4, 5]


# --- reading native files ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def native(tmp_path_factory):
    """corpus -> a folder of its native files (written once per module), copied for each test."""
    written: dict[str, Path] = {}

    def write(corpus, tmp_path: Path):
        name = corpus.info.name
        if name not in written:
            folder = tmp_path_factory.mktemp(name) / "raw"
            if name == "custom":
                write_custom(folder)
            else:
                assert name in demo_corpus.WRITERS, \
                    f"{name}: add a writer of its native files to eegmamba_cli/demo/corpus.py"
                folder.mkdir()
                demo_corpus.WRITERS[name](folder, demo_corpus.TINY, np.random.default_rng(0))
            written[name] = folder
        raw = Path(shutil.copytree(written[name], tmp_path / "raw"))
        options = {"labels": "left,right", "channels": "C3,Cz,C4"} if name == "custom" else {}
        return raw, corpus.bind(raw, parse_options(corpus, options))
    return write


@pytest.mark.parametrize("corpus", ALL, ids=ids)
def test_find_read_and_window_native_files(corpus, tmp_path, native):
    raw, bound = native(corpus, tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert bound.find_recordings(empty) == []
    refs = bound.find_recordings(raw)
    assert refs and len({r.id for r in refs}) == len(refs)
    if corpus.info.folds:
        assert {bound.fold_of(r.subject) for r in refs} == {1, 2, 3, 4, 5}
    ref = refs[0]
    assert bound.find_recordings(raw, {ref.subject}) and \
        {r.subject for r in bound.find_recordings(raw, {ref.subject})} == {ref.subject}
    # preprocess workers receive the bound corpus by pickle: it must survive the round trip unchanged
    again = pickle.loads(pickle.dumps(bound))
    assert again.info == bound.info and dict(again.info.folds) == dict(bound.info.folds)
    assert again.options == bound.options
    recording = bound.read(ref)
    info = bound.info
    for piece in recording.pieces:
        duration = piece.data.shape[1] / piece.sfreq
        assert piece.data.shape[0] == len(info.channels)
        for start, label in piece.windows:
            assert 0 <= start and start + info.window_s <= duration + 1e-6
            assert 0 <= label < len(info.class_names)
        assert piece.events is None or len(piece.events) == len(piece.windows)
        assert piece.lengths_s is None  # the paper corpora cut windows of the declared length
    result = process_recording(bound, ref, PreprocessParams(options=options_record(bound.options)))
    n = len(result.rows)
    assert n > 0 and result.windows.shape == (n, len(info.channels), info.window_samples)
    assert (result.rows["length"] == info.window_samples).all() and result.rows["event"].str.startswith(ref.id).all()
    assert np.isfinite(result.windows).all()


@pytest.mark.parametrize("corpus", ALL, ids=ids)
def test_truncated_signal_file_is_one_line_naming_it(corpus, tmp_path, native):
    raw, bound = native(corpus, tmp_path)
    ref = bound.find_recordings(raw)[0]
    signal = ref.paths[0]
    signal.write_bytes(signal.read_bytes()[: max(1, signal.stat().st_size // 3)])
    with pytest.raises(RecordingError) as err:
        bound.read(ref)
    message = str(err.value)
    assert "\n" not in message and message.startswith(signal.name), message
