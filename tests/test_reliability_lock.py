"""Two runs on one output folder: the second refuses with one clear line and never interleaves writes.

Deterministic overlap: the first run (a real `python -m eegmamba_cli` process) is frozen with SIGSTOP
while it holds its folder's lock, the second runs to its refusal, then the first is resumed with
SIGCONT and must produce exactly what an undisturbed run produces. A racing variant starts both at
once, with no control over who wins: exactly one may write, or they run one after the other.
"""
from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from eegmamba_cli.data.pipeline import preprocess_corpus
from eegmamba_cli.training.trainer import TrainConfig, train
from helpers_cache import make_cache
from helpers_reliability import (ENV, REPO, cli, print_table, record_scenario, run, sha256, temporaries,
                                 tree_hashes, wait_for_holder, write_chb_corpus)

pytestmark = pytest.mark.slow


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def frozen_first_run(args: list[str], lock_file: Path):
    """Start `args`, wait until it holds `lock_file`, freeze it. Returns the Popen (caller resumes it)."""
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV, cwd=REPO)
    if not wait_for_holder(lock_file, first.pid, first):
        out = first.communicate()[0]
        pytest.fail(f"the first run never took the lock: {out}")
    first.send_signal(signal.SIGSTOP)
    return first


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("lock-preprocess")
    raw = write_chb_corpus(base / "raw", n_files=6, seconds=16, broken=False)
    preprocess_corpus("chbmit", raw, base / "reference", options={"files": "all"}, progress=False)
    return raw, tree_hashes(base / "reference" / "chbmit")


def preprocess_args(raw, out, workers=1):
    return cli("preprocess", "chbmit", "--raw", raw, "--out", out, "--workers", workers, "--no-progress",
               "-o", "files=all")


def test_second_preprocess_refuses_while_the_first_holds_the_folder(corpus, tmp_path, capsys):
    raw, reference = corpus
    out = tmp_path / "out"
    lock = out / "chbmit" / ".lock"
    first = frozen_first_run(preprocess_args(raw, out), lock)
    try:
        during = tree_hashes(out / "chbmit", skip_temporaries=False)
        second = run(preprocess_args(raw, out, workers=2))
        after = tree_hashes(out / "chbmit", skip_temporaries=False)
    finally:
        first.send_signal(signal.SIGCONT)
    first_out = first.communicate(timeout=300)[0]
    assert second.returncode == 1 and "Traceback" not in second.output, second.output
    assert error_lines(second.output) == [
        f"error: {out / 'chbmit'}: already in use by eegmamba preprocess chbmit (pid {first.pid}); wait for it "
        "to finish"], second.output
    assert after == during  # the refused run wrote nothing, not even a temporary
    assert first.returncode == 0, first_out
    assert tree_hashes(out / "chbmit") == reference and not temporaries(out)
    row = record_scenario("two preprocess runs, one folder (first frozen)", 1, 1, 0,
                          second_refused=True, first_identical=True)
    print_table(capsys, [row])


def test_racing_preprocess_runs_never_interleave(corpus, tmp_path, capsys):
    raw, reference = corpus
    attempts, survived, lost, refusals = 2, 0, 0, 0
    for attempt in range(attempts):
        out = tmp_path / f"race-{attempt}"
        procs = [subprocess.Popen(preprocess_args(raw, out, workers=w), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, env=ENV, cwd=REPO) for w in (1, 1)]
        outputs = [p.communicate(timeout=300)[0] for p in procs]
        codes = [p.returncode for p in procs]
        assert all("Traceback" not in o for o in outputs), outputs
        refused = [o for o, c in zip(outputs, codes) if c != 0]
        ok = 0 in codes and all(len(error_lines(o)) == 1 and "already in use by eegmamba preprocess chbmit"
                                in o for o in refused)
        refusals += len(refused)
        if ok and tree_hashes(out / "chbmit") == reference and not temporaries(out):
            survived += 1
        else:
            lost += 1
    row = record_scenario("two preprocess runs, one folder (racing)", attempts, survived, lost,
                          second_refused=refusals, ran_one_after_the_other=attempts - refusals)
    print_table(capsys, [row])
    assert survived == attempts


def test_second_train_refuses_while_the_first_holds_the_run_folder(tmp_path, capsys):
    data = tmp_path / "cache"
    make_cache(data, "toya", n_subjects=6, windows_per_subject=24)
    args = ["--data", data, "--tasks", "toya", "--fold", "1", "--epochs", "2", "--d-model", "16", "--layers", "1",
            "--device", "cpu", "--batch-size", "8", "--seed", "5", "--recipe", "paper"]
    reference = tmp_path / "reference"
    train(TrainConfig(out=reference, data=data, tasks="toya", fold="1", epochs=2, d_model=16, layers=1,
                      device="cpu", batch_size=8, seed=5))
    out = tmp_path / "run"
    first = frozen_first_run(cli("train", "--out", out, *args), out / ".lock")
    try:
        before = tree_hashes(out, skip_temporaries=False)
        second = run(cli("train", "--out", out, *args, "--no-resume"))  # would even delete checkpoints
        after = tree_hashes(out, skip_temporaries=False)
    finally:
        first.send_signal(signal.SIGCONT)
    first_out = first.communicate(timeout=300)[0]
    assert second.returncode == 1 and "Traceback" not in second.output, second.output
    assert error_lines(second.output) == [
        f"error: {out}: already in use by eegmamba train (pid {first.pid}); wait for it to finish"]
    assert after == before
    assert first.returncode == 0, first_out
    for name in ("last/model.safetensors", "last/optimizer.safetensors", "best/model.safetensors"):
        assert sha256(out / "fold-1" / name) == sha256(reference / "fold-1" / name), name
    assert not temporaries(out) and (out / ".lock").read_text() == ""  # released, no stale holder
    row = record_scenario("two train runs, one run folder (first frozen)", 1, 1, 0, second_refused=True,
                          first_identical=True)
    print_table(capsys, [row])
