"""Crash safety under real SIGKILLs: `eegmamba preprocess` and `eegmamba train` killed at random moments.

Each scenario runs the real command (`python -m eegmamba_cli ...`) and kills it with SIGKILL after a
delay drawn from a seeded RNG over the command's observed duration: half of the draws over the whole
run (start-up included), half over its work phase (preprocess: from the moment it holds the cache
folder's lock; train: from the start of training proper) to its end. The kills come in pairs: the
first starts from an empty folder (so its work-phase kill meets a full run's worth of writes), the
second resumes from what the first left, as a user who hits the crash twice would. After every kill:

* nothing is corrupt: every file visible under its final name is byte-identical to the same file of an
  uninterrupted run (temporaries such as `.x.tmp` may remain until the next run);
* nothing is lost: every file that existed before the run still exists with the same bytes
  (preprocess), or the last good checkpoint still loads and is no older than before (train).

A run that finishes before its kill, and a final run after the last kill, must produce output
byte-identical to the uninterrupted run, with no temporaries left. The counts go to the crash-safety
table (see helpers_reliability).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from eegmamba_cli.data.cache import WindowCache
from eegmamba_cli.training.checkpoint import load_checkpoint, load_optimizer_state, read_meta
from eegmamba_cli.training.trainer import TrainConfig, train
from helpers_cache import make_cache
from helpers_reliability import (ENV, REPO, cli, group_members, holder_pid, kill_after, print_table,
                                 record_scenario, run, sha256, temporaries, timed_phases, tree_hashes,
                                 write_chb_corpus)

ATTEMPTS = 10
pytestmark = pytest.mark.slow


def draw_delays(seed: int, total: float, work: float, n: int = ATTEMPTS) -> list[tuple[bool, float]]:
    """(from the work phase?, delay): even attempts from the moment the killed run itself enters its work
    phase, over the observed work phase; odd ones from the start, over the whole observed run."""
    rng = np.random.default_rng(seed)
    return [(True, float(rng.uniform(0.0, max(work, 0.05)))) if i % 2 == 0 else
            (False, float(rng.uniform(0.05, total))) for i in range(n)]


# --- preprocess ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A 10-recording CHB-MIT corpus (plus one truncated file) and its uninterrupted cache."""
    base = tmp_path_factory.mktemp("kill-preprocess")
    raw = write_chb_corpus(base / "raw", n_files=10, seconds=16)
    ref_out = base / "reference"
    outcome, work_start, work_end = timed_phases(preprocess_args(raw, ref_out, workers=1),
                                                 ref_out / "chbmit" / ".lock")
    assert outcome.returncode == 0, outcome.output
    reference = tree_hashes(ref_out / "chbmit")
    assert {"info.json", "manifest.parquet", "skipped.json", ".lock"} <= set(reference)
    assert sum(k.startswith("arrays/") for k in reference) == 10
    cache = WindowCache(ref_out / "chbmit")
    assert len(cache) == 40 and cache.windows(range(40)).shape == (40, 23, 800)
    return raw, reference, outcome.elapsed, work_end - work_start


def preprocess_args(raw: Path, out: Path, workers: int) -> list[str]:
    return cli("preprocess", "chbmit", "--raw", raw, "--out", out, "--workers", workers, "--no-progress",
               "-o", "files=all")


def check_cache_after_kill(cache_dir: Path, before: dict, reference: dict) -> list[str]:
    """Problems (empty when fine): corrupt or unexpected files, files lost since `before`."""
    if not cache_dir.exists():
        return [] if not before else ["cache folder vanished"]
    now = tree_hashes(cache_dir, skip=(".lock",))
    problems = [f"corrupt {rel}" for rel, digest in now.items() if reference.get(rel) != digest]
    problems += [f"lost {rel}" for rel, digest in before.items() if now.get(rel) != digest]
    if "info.json" in now:  # "finished" must mean readable end to end
        cache = WindowCache(cache_dir)
        assert cache.windows(range(len(cache))).shape[0] == len(cache)
    return problems


@pytest.mark.parametrize("workers", [1, 2])
def test_preprocess_killed_at_random_points_resumes_byte_identical(corpus, tmp_path, workers, capsys):
    raw, reference, total, work = corpus
    if workers == 2:  # two spawned workers import the pipeline first: the run lasts longer
        total, work = total * 2.0, work * 2.0
    out = tmp_path / "out"
    cache_dir = out / "chbmit"
    args = preprocess_args(raw, out, workers)
    survived = lost = in_work = completed = mid_write = 0
    failures = []
    holds_lock = lambda proc: holder_pid(cache_dir / ".lock") == proc.pid  # noqa: E731
    for attempt, (in_phase, delay) in enumerate(draw_delays(1000 + workers, total, work)):
        if attempt % 2 == 0:
            shutil.rmtree(out, ignore_errors=True)
        before = tree_hashes(cache_dir, skip=(".lock",)) if cache_dir.exists() else {}
        temps_before = set(temporaries(cache_dir)) if cache_dir.exists() else set()
        outcome = kill_after(args, delay, armed=holds_lock if in_phase else None,
                             log=tmp_path / f"attempt-{attempt}.log")
        assert "Traceback" not in outcome.output, outcome.output
        in_work += int(outcome.killed and holder_pid(cache_dir / ".lock") == outcome.pid)
        mid_write += int(outcome.killed and cache_dir.exists() and bool(set(temporaries(cache_dir)) - temps_before))
        problems = check_cache_after_kill(cache_dir, before, reference)
        if not outcome.killed:  # finished before the kill: must equal the uninterrupted run exactly
            assert outcome.returncode == 0, outcome.output
            completed += 1
            if tree_hashes(cache_dir) != reference or temporaries(cache_dir):
                problems.append("completed run differs from the uninterrupted one")
            shutil.rmtree(out)  # the next attempt starts from scratch
        if problems:
            lost += 1
            failures.append((attempt, round(delay, 2), problems))
        else:
            survived += 1
    final = run(args)  # and one more run after the last kill
    assert final.returncode == 0, final.output
    final_ok = tree_hashes(cache_dir) == reference and not temporaries(cache_dir)
    row = record_scenario(f"preprocess --workers {workers}: SIGKILL + rerun", ATTEMPTS, survived, lost,
                          kills_landed=ATTEMPTS - completed, kills_while_holding_the_lock=in_work,
                          kills_mid_write=mid_write, finished_before_kill=completed,
                          final_rerun_identical=final_ok)
    print_table(capsys, [row])
    assert not failures, failures
    assert final_ok, (sorted(set(tree_hashes(cache_dir).items()) ^ set(reference.items())), temporaries(cache_dir))


# --- train --------------------------------------------------------------------------------------------
TRAIN_EPOCHS = 4


def train_args(data: Path, out: Path) -> list[str]:
    return cli("train", "--data", data, "--out", out, "--tasks", "toya", "--fold", "1", "--epochs", TRAIN_EPOCHS,
               "--d-model", "16", "--layers", "1", "--device", "cpu", "--batch-size", "8", "--lr", "3e-3",
               "--seed", "11", "--recipe", "paper")


@pytest.fixture(scope="module")
def train_reference(tmp_path_factory):
    """Tiny caches; the uninterrupted CLI run (timed: its duration sets the kill delays) and the weights
    after each epoch. Those come from in-process runs resumed epoch by epoch (same code, one thread):
    the test checks that their last epoch is bitwise the CLI run's."""
    base = tmp_path_factory.mktemp("kill-train")
    data = base / "cache"
    make_cache(data, "toya", n_subjects=6, windows_per_subject=60)
    straight = base / "straight"
    # the work phase: training proper, which begins once fold-1/run.json is written
    outcome, work_start, work_end = timed_phases(train_args(data, straight), straight / ".lock",
                                                 work_started=lambda: (straight / "fold-1" / "run.json").exists())
    assert outcome.returncode == 0, outcome.output
    per_epoch = {}
    for epoch in range(1, TRAIN_EPOCHS + 1):
        train(TrainConfig(out=base / "by-epoch", data=data, tasks="toya", fold="1", epochs=epoch, d_model=16,
                          layers=1, device="cpu", batch_size=8, lr=3e-3, seed=11))
        per_epoch[epoch] = sha256(base / "by-epoch" / "fold-1" / "last" / "model.safetensors")
    final = straight / "fold-1"
    assert sha256(final / "last" / "model.safetensors") == per_epoch[TRAIN_EPOCHS]
    return data, final, per_epoch, outcome.elapsed, work_end - work_start


def metric_rows(fold_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (fold_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("time_s", "windows_per_s")} for r in rows]


def good_checkpoint(fold_dir: Path) -> Path | None:
    """What a resumed run would continue from: last/, or .last.old when killed inside publish()."""
    for name in ("last", ".last.old"):
        if (fold_dir / name / "checkpoint.json").exists():
            return fold_dir / name
    return None


def test_train_killed_mid_epoch_resumes_bit_identical(train_reference, tmp_path, capsys):
    data, final_ref, per_epoch, total, work = train_reference
    out = tmp_path / "run"
    fold_dir = out / "fold-1"
    args = train_args(data, out)
    survived = lost = completed = in_work = mid_training = 0
    failures = []
    previous_epoch = 0
    for attempt, (in_phase, delay) in enumerate(draw_delays(2000, total, work)):
        if attempt % 2 == 0:
            shutil.rmtree(out, ignore_errors=True)
            previous_epoch = 0
        start_ns = time.time_ns()

        def training(proc, start_ns=start_ns) -> bool:  # this run wrote fold-1/run.json: training begins
            try:
                return (fold_dir / "run.json").stat().st_mtime_ns >= start_ns
            except OSError:
                return False

        outcome = kill_after(args, delay, armed=training if in_phase else None,
                             log=tmp_path / f"attempt-{attempt}.log")
        assert "Traceback" not in outcome.output, outcome.output
        problems = []
        good = good_checkpoint(fold_dir)
        epoch = 0
        if good is not None:
            try:  # the last good checkpoint loads, weights and optimizer, and is the reference's epoch
                model, meta = load_checkpoint(good)
                load_optimizer_state(good)
                epoch = int(meta["epoch"])
                if sha256(good / "model.safetensors") != per_epoch[epoch]:
                    problems.append(f"epoch {epoch} weights differ from the uninterrupted run")
            except Exception as err:  # noqa: BLE001 - any failure to load is the finding
                problems.append(f"{good.name} does not load: {err}")
        if (fold_dir / "best" / "checkpoint.json").exists():
            best_epoch = read_meta(fold_dir / "best")[1]["epoch"]
            if sha256(fold_dir / "best" / "model.safetensors") != per_epoch[best_epoch]:
                problems.append("best/ differs from the uninterrupted run")
        if epoch < previous_epoch:
            problems.append(f"checkpoint went back from epoch {previous_epoch} to {epoch}")
        previous_epoch = epoch
        if outcome.killed:
            in_work += int(holder_pid(out / ".lock") == outcome.pid)
            mid_training += int("train/val/test windows" in outcome.output)
        else:
            assert outcome.returncode == 0, outcome.output
            completed += 1
            problems += compare_run(fold_dir, final_ref)
            shutil.rmtree(out)
            previous_epoch = 0
        if problems:
            lost += 1
            failures.append((attempt, round(delay, 2), problems))
        else:
            survived += 1
    final = run(args)  # --resume is the default
    assert final.returncode == 0, final.output
    final_problems = compare_run(fold_dir, final_ref)
    row = record_scenario("train: SIGKILL mid-run + --resume", ATTEMPTS, survived, lost,
                          kills_landed=ATTEMPTS - completed, kills_while_holding_the_lock=in_work,
                          kills_after_training_began=mid_training,
                          finished_before_kill=completed, final_resume_identical=not final_problems)
    print_table(capsys, [row])
    assert not failures, failures
    assert not final_problems, final_problems


def compare_run(fold_dir: Path, reference: Path) -> list[str]:
    problems = [f"{name} differs" for name in ("last/model.safetensors", "last/optimizer.safetensors",
                                               "best/model.safetensors")
                if sha256(fold_dir / name) != sha256(reference / name)]
    if metric_rows(fold_dir) != metric_rows(reference):
        problems.append("metrics.jsonl differs")
    leftovers = temporaries(fold_dir.parent)
    if leftovers:
        problems.append(f"temporaries left: {leftovers}")
    return problems


def test_workers_of_a_killed_preprocess_exit_too(corpus, tmp_path):
    """SIGKILL of the main process only: its worker processes must not linger (they would hold a
    recording in memory each, forever: they never see their task queue close)."""
    raw = corpus[0]
    proc = subprocess.Popen(preprocess_args(raw, tmp_path / "out", workers=2), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=ENV, cwd=REPO, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(group_members(proc.pid)) < 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)  # the main process, the resource tracker and two workers
        assert len(group_members(proc.pid)) >= 4, "the workers never started"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # A spawned worker starts its parent watch only after its imports (torch, MNE): seconds on a busy
        # machine. Without the watch the workers would stay forever, so a minute still tells the two apart.
        deadline = time.monotonic() + 60
        while group_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert group_members(proc.pid) == [], "worker processes outlived their killed parent"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
