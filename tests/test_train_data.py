"""Dataset resolution and subject-grouped folds: no test subject ever trains or validates."""
import numpy as np
import pytest

from eegmamba_cli.console import UserError
from eegmamba_cli.training.data import resolve_datasets, split_fold
from helpers_cache import make_cache


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    # 12 subjects: folds 1..5 round robin, the last two in no fold (0)
    a = make_cache(root, "toya", n_subjects=12, windows_per_subject=3,
                   folds=[1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 0, 0])
    b = make_cache(root, "siena", n_subjects=5, windows_per_subject=2, n_folds=5, task="seizure")
    return root, a, b


def test_folds_never_leak_subjects(caches):
    _, a, b = caches
    for cache in (a, b):
        for fold in range(1, 6):
            for seed in range(4):
                s = split_fold(cache, fold, val_fraction=0.1, seed=seed)
                subj = cache.subjects
                train, val, test = (set(subj[getattr(s, k)]) for k in ("train", "val", "test"))
                assert test == set(subj[cache.folds == fold])
                assert not test & train and not test & val and not val & train
                assert train | val | test == set(subj)  # nothing dropped
                assert len(val) == max(1, round(0.1 * (len(train) + len(val))))
                assert sorted(np.concatenate([s.train, s.val, s.test]).tolist()) == list(range(len(cache)))


def test_fold_zero_subjects_train_but_never_test(caches):
    _, a, _ = caches
    zero = set(a.subjects[a.folds == 0])
    for fold in range(1, 6):
        s = split_fold(a, fold, val_fraction=0.1, seed=0)
        assert zero <= set(s.subjects["train"]) | set(s.subjects["val"])
        assert not zero & set(s.subjects["test"])


def test_validation_subjects_reproducible_from_seed(caches):
    _, a, _ = caches
    picks = {seed: split_fold(a, 1, val_fraction=0.2, seed=seed).subjects["val"] for seed in range(8)}
    assert picks[3] == split_fold(a, 1, val_fraction=0.2, seed=3).subjects["val"]
    assert len({tuple(v) for v in picks.values()}) > 1  # the seed matters
    assert len(picks[0]) == 2  # 20 % of 10 training subjects


def test_max_windows_caps_each_split(caches):
    _, a, _ = caches
    s = split_fold(a, 1, val_fraction=0.1, seed=0, max_windows=4)
    assert len(s.train) == 4 and len(s.val) <= 4 and len(s.test) == 4
    full = split_fold(a, 1, val_fraction=0.1, seed=0)
    assert set(s.train) <= set(full.train) and set(s.test) <= set(full.test)


def test_too_few_subjects_for_validation(tmp_path):
    c = make_cache(tmp_path, "two", n_subjects=2, windows_per_subject=2, folds=[1, 2])
    with pytest.raises(UserError, match="too few"):
        split_fold(c, 1, val_fraction=0.1, seed=0)
    s = split_fold(c, 1, val_fraction=0.0, seed=0)
    assert len(s.val) == 0 and s.subjects["train"] == ["s01"]


def test_resolve_tasks_names_and_all(caches):
    root, _, _ = caches
    assert list(resolve_datasets("all", root)) == ["siena", "toya"]  # paper order first, then others
    assert list(resolve_datasets("toya,siena", root)) == ["siena", "toya"]
    with pytest.raises(UserError, match="no cache for chbmit"):
        resolve_datasets("seizure", root)
    with pytest.raises(UserError, match="no cache for chbmit"):
        resolve_datasets("CHB", root)  # the registry's aliases are understood
    with pytest.raises(UserError, match="unknown dataset 'nosuch'"):
        resolve_datasets("nosuch", root)
    with pytest.raises(UserError, match="no finished caches"):
        resolve_datasets("all", root / "nowhere")
