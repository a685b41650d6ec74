"""`preprocess --overwrite` killed part-way through deleting the old cache, at every possible step.

The kill is simulated in-process: the k-th file-system deletion inside the cache clearing raises, as a
SIGKILL there would stop it, for every k. After each one:

* a cache that info.json calls finished is readable end to end (never "finished" with arrays gone);
* a rerun with the new parameters either refuses until --overwrite is given again, or produces exactly
  what a run from scratch produces (never adopts arrays made with the old parameters);
* `--overwrite` run again completes to that same result.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import eegmamba_cli.data.pipeline as pipeline
from eegmamba_cli.console import UserError
from eegmamba_cli.data.cache import WindowCache
from eegmamba_cli.data.pipeline import preprocess_corpus
from helpers_reliability import print_table, record_scenario, tree_hashes, write_chb_corpus


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing in the code under test catches it."""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("overwrite")
    raw = write_chb_corpus(base / "raw", n_files=4, seconds=16)
    old = base / "old"
    preprocess_corpus("chbmit", raw, old, options={"files": "all"}, progress=False)  # z-scored
    fresh = base / "fresh"
    preprocess_corpus("chbmit", raw, fresh, options={"files": "all"}, normalize="none", progress=False)
    return raw, old / "chbmit", tree_hashes(fresh / "chbmit", skip=(".lock",))


def count_deletions(monkeypatch, kill_at: int | None) -> list[str]:
    """Patch deletions inside pipeline._clear_cache: record them, and raise Killed at the kill_at-th."""
    done: list[str] = []
    real_unlink, real_rmtree, real_clear = Path.unlink, shutil.rmtree, pipeline._clear_cache
    active = [False]

    def step(what: str) -> None:
        if active[0]:
            if kill_at is not None and len(done) == kill_at:
                raise Killed(what)
            done.append(what)

    def unlink(self, missing_ok=False):
        step(f"unlink {self.name}")
        return real_unlink(self, missing_ok=missing_ok)

    def rmtree(path, *args, **kwargs):
        step(f"rmtree {Path(path).name}")
        return real_rmtree(path, *args, **kwargs)

    def clear(directory):
        active[0] = True
        try:
            real_clear(directory)
        finally:
            active[0] = False

    monkeypatch.setattr(Path, "unlink", unlink)
    monkeypatch.setattr(shutil, "rmtree", rmtree)
    monkeypatch.setattr(pipeline, "_clear_cache", clear)
    return done


def test_overwrite_killed_at_every_step_of_the_clearing(setup, tmp_path, monkeypatch, capsys):
    raw, old, fresh = setup
    with monkeypatch.context() as m:  # how many deletions a whole clearing makes
        steps = count_deletions(m, None)
        shutil.copytree(old, tmp_path / "probe" / "chbmit")
        preprocess_corpus("chbmit", raw, tmp_path / "probe", options={"files": "all"}, normalize="none",
                          overwrite=True, progress=False)
        steps = list(steps)
    assert len(steps) >= 5, steps
    survived = lost = refused = 0
    for k in range(len(steps)):
        out = tmp_path / f"k{k}"
        shutil.copytree(old, out / "chbmit")
        with monkeypatch.context() as m:
            count_deletions(m, k)
            with pytest.raises(Killed):
                preprocess_corpus("chbmit", raw, out, options={"files": "all"}, normalize="none", overwrite=True,
                                  progress=False)
        ok = True
        if (out / "chbmit" / "info.json").exists():  # "finished" must still be true
            try:
                cache = WindowCache(out / "chbmit")
                cache.windows(range(len(cache)))
            except UserError:
                ok = False
        try:  # the new parameters without --overwrite: refuse, or build exactly the fresh cache
            preprocess_corpus("chbmit", raw, out, options={"files": "all"}, normalize="none", progress=False)
            ok = ok and tree_hashes(out / "chbmit", skip=(".lock",)) == fresh
        except UserError as err:
            assert "overwrite it" in str(err)
            refused += 1
        preprocess_corpus("chbmit", raw, out, options={"files": "all"}, normalize="none", overwrite=True,
                          progress=False)
        ok = ok and tree_hashes(out / "chbmit", skip=(".lock",)) == fresh
        survived += ok
        lost += not ok
    row = record_scenario("preprocess --overwrite killed while clearing", len(steps), survived, lost,
                          kill_points=" > ".join(steps), rerun_refused_until_overwrite=refused)
    print_table(capsys, [row])
    assert lost == 0
