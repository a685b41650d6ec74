"""Dataset resolution and each dataset's folds under a protocol: no test subject ever trains or validates."""
import numpy as np
import pandas as pd
import pytest

from eegmamba_cli.console import UserError
from eegmamba_cli.training.data import resolve_datasets
from eegmamba_cli.training.protocols import Protocol
from eegmamba_cli.training.splits import dataset_folds, fold_numbers, protocol_table, split_for
from helpers_cache import make_cache


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    # a paper corpus (its folds are the manifest's): 12 subjects, folds 1..5 round robin, the last two in none
    a = make_cache(root, "deap", n_subjects=12, windows_per_subject=3, task="emotion",
                   folds=[1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 0, 0])
    b = make_cache(root, "siena", n_subjects=5, windows_per_subject=2, n_folds=5, task="seizure")
    c = make_cache(root, "toya", n_subjects=12, windows_per_subject=4)  # not a paper corpus: grouped k-fold
    return root, a, b, c


def _subjects(cache, rows):
    return set(cache.subjects[rows])


def test_paper_corpora_keep_their_fixed_folds(caches):
    _, a, b, _ = caches
    for cache in (a, b):
        for seed in range(3):
            folds = dataset_folds(cache, Protocol(seed=seed, val_fraction=0.1))
            assert sorted(folds.splits) == [1, 2, 3, 4, 5]
            for number, s in folds.splits.items():
                assert s.test.tolist() == np.flatnonzero(cache.folds == number).tolist()  # the fold column's rows
                train, val, test = (_subjects(cache, getattr(s, k)) for k in ("train", "val", "test"))
                assert not test & train and not test & val and not val & train
                assert val and train | val | test == set(cache.subjects)  # nothing dropped
                assert sorted(np.concatenate([s.train, s.val, s.test]).tolist()) == list(range(len(cache)))
                assert s.holds_out == {"subjects": sorted(test)}


def test_fold_zero_subjects_train_but_never_test(caches):
    _, a, _, _ = caches
    zero = set(a.subjects[a.folds == 0])
    for s in dataset_folds(a, Protocol()).splits.values():
        assert zero <= set(s.subjects["train"]) | set(s.subjects["val"])
        assert not zero & set(s.subjects["test"])


def test_other_caches_get_subject_grouped_kfold(caches):
    _, _, _, c = caches
    folds = dataset_folds(c, Protocol(n_folds=4, seed=3))
    assert sorted(folds.splits) == [1, 2, 3, 4]
    tested = [_subjects(c, s.test) for s in folds.splits.values()]
    assert sorted(x for t in tested for x in t) == sorted(set(c.subjects))  # every subject tested exactly once
    for s in folds.splits.values():
        assert not _subjects(c, s.test) & (_subjects(c, s.train) | _subjects(c, s.val))
    assert "fold" not in protocol_table(c).columns and "fold" in protocol_table(c, fixed_folds=True).columns


def test_splits_are_a_pure_function_of_the_seed(caches):
    _, a, _, c = caches
    for cache in (a, c):
        picks = {seed: dataset_folds(cache, Protocol(seed=seed, val_fraction=0.2)).splits[1] for seed in range(6)}
        again = dataset_folds(cache, Protocol(seed=3, val_fraction=0.2)).splits[1]
        assert all(np.array_equal(getattr(picks[3], k), getattr(again, k)) for k in ("train", "val", "test"))
        assert len({tuple(p.val.tolist()) for p in picks.values()}) > 1  # the seed matters


def test_max_windows_caps_each_split(caches):
    _, a, _, _ = caches
    s = dataset_folds(a, Protocol(), max_windows=4).splits[1]
    assert len(s.train) == 4 and len(s.val) <= 4 and len(s.test) == 4
    full = dataset_folds(a, Protocol()).splits[1]
    assert set(s.train) <= set(full.train) and set(s.test) <= set(full.test)


def test_one_subject_falls_back_to_events_for_validation(tmp_path):
    c = make_cache(tmp_path, "two", n_subjects=2, windows_per_subject=6)
    s = dataset_folds(c, Protocol("held-out", test_subjects=("s00",), val_fraction=0.25)).splits[1]
    assert _subjects(c, s.test) == {"s00"} and _subjects(c, s.train) == _subjects(c, s.val) == {"s01"}
    assert len(s.val) and not set(s.val) & set(s.train)


def test_protocol_table_derives_run_and_event_and_uses_them_when_present(caches):
    _, _, _, c = caches
    table = protocol_table(c)
    # a cache written without run/event columns reads as one run per recording file and one event per window
    assert (table["run"] == c.manifest["run"]).all() and table["run"].nunique() == 1
    assert table["event"].nunique() == len(c)
    manifest = c.manifest.copy()
    c.manifest = manifest.assign(run="r1", event=manifest["window"] // 2)  # two windows per event
    try:
        table = protocol_table(c)
        assert (table["run"] == "r1").all() and table["event"].nunique() == 2
        folds = dataset_folds(c, Protocol("within-subject", n_folds=2, val_fraction=0))
        for s in folds.splits.values():  # an event's windows stay on one side
            key = lambda rows: set(zip(c.subjects[rows], manifest["window"].to_numpy()[rows] // 2))  # noqa: E731
            assert not key(s.test) & key(s.train)
    finally:
        c.manifest = manifest


def test_bad_protocol_on_a_cache_is_one_line_naming_it(caches):
    _, _, _, c = caches
    with pytest.raises(UserError, match=r"toya: loso needs|toya: held-out: test subjects nobody") as err:
        dataset_folds(c, Protocol("held-out", test_subjects=("nobody",)))
    assert "\n" not in str(err.value) and str(c.directory) in str(err.value)


def test_a_dataset_without_the_fold_trains_on_everything(caches):
    _, _, b, c = caches
    per = {"siena": dataset_folds(b, Protocol()), "toya": dataset_folds(c, Protocol("loso"))}
    assert fold_numbers(per) == list(range(1, 13))
    s = split_for(per["siena"], 9, len(b))
    assert s.train.tolist() == list(range(len(b))) and len(s.val) == len(s.test) == 0


def test_resolve_tasks_names_and_all(caches):
    root, _, _, _ = caches
    assert list(resolve_datasets("all", root)) == ["siena", "deap", "toya"]  # paper order first, then others
    assert list(resolve_datasets("toya,siena", root)) == ["siena", "toya"]
    with pytest.raises(UserError, match="no cache for chbmit"):
        resolve_datasets("seizure", root)
    with pytest.raises(UserError, match="no cache for chbmit"):
        resolve_datasets("CHB", root)  # the registry's aliases are understood
    with pytest.raises(UserError, match="unknown dataset 'nosuch'"):
        resolve_datasets("nosuch", root)
    with pytest.raises(UserError, match="no finished caches"):
        resolve_datasets("all", root / "nowhere")
