"""A full disk in the middle of `preprocess` and `train`: one clear line, a non-zero exit, and the previous
cache or checkpoint intact and loadable.

Three ways to run out of room, each against a folder that already holds a finished cache or checkpoint:

* rlimit: a real subprocess under `ulimit -f` (RLIMIT_FSIZE): Python ignores SIGXFSZ, so the write that
  crosses the limit fails with EFBIG;
* tmpfs: a real subprocess on a small tmpfs mounted in a private user+mount namespace (`unshare -rm`),
  a genuine ENOSPC; skipped where unprivileged namespaces are not allowed;
* enospc: in-process, the file object behind `atomic_writer` raises ENOSPC half-way through one file.
"""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eegmamba_cli.app import app
from eegmamba_cli.data.cache import WindowCache
from eegmamba_cli.data.pipeline import preprocess_corpus
from eegmamba_cli.training.checkpoint import load_checkpoint, load_optimizer_state
from eegmamba_cli.training.trainer import TrainConfig, train
from helpers_cache import make_cache
from helpers_reliability import (ENV, REPO, cli, print_table, record_scenario, sha256, temporaries, tree_hashes,
                                 write_chb_corpus)

pytestmark = pytest.mark.slow
runner = CliRunner()
LIMIT_KIB = 64  # below one window array (~294 kB) and one model.safetensors (~157 kB); above the small files
RESULTS: dict[str, dict[str, bool]] = {"preprocess": {}, "train": {}}


def _tmpfs_works() -> bool:
    probe = Path(os.environ.get("TMPDIR", "/tmp")) / f"eegmamba-tmpfs-probe-{os.getpid()}"
    probe.mkdir(exist_ok=True)
    try:
        return subprocess.run(["unshare", "-rm", "sh", "-c", 'mount -t tmpfs -o size=64k tmpfs "$1"', "sh",
                               str(probe)], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        shutil.rmtree(probe, ignore_errors=True)


TMPFS = _tmpfs_works()


def run_limited(mechanism: str, args: list[str], folder: Path, scratch: Path, monkeypatch,
                enospc_file: str) -> tuple[int, str, Path]:
    """Run the CLI `args` (which write into `folder`) out of room; returns (exit code, output, the folder
    as the command left it). `enospc` runs in this process, with writes to `.{enospc_file}...` failing."""
    if mechanism == "enospc":
        failing_fdopen(monkeypatch, enospc_file)
        result = runner.invoke(app, args)
        return result.exit_code, result.output, folder
    if mechanism == "rlimit":
        proc = subprocess.run(["sh", "-c", f'ulimit -f {LIMIT_KIB} && exec "$@"', "sh", *cli(*args)],
                              capture_output=True, text=True, env=ENV, cwd=REPO, timeout=300)
        return proc.returncode, proc.stdout + proc.stderr, folder
    if mechanism == "tmpfs":
        if not TMPFS:
            pytest.skip("unprivileged user+mount namespaces are not available here (unshare -rm)")
        used = sum(p.stat().st_size + 4096 for p in folder.rglob("*"))
        mount, copy = scratch / "mnt", scratch / "after"
        mount.mkdir(parents=True)
        copy.mkdir()
        inner = [a.replace(str(folder), str(mount)) if isinstance(a, str) else a for a in map(str, args)]
        script = ('mount -t tmpfs -o size="$1" tmpfs "$2" && cp -a "$3"/. "$2"/ && shift 4 && '
                  '"$@"; rc=$?; cp -a "$MNT"/. "$COPY"/; exit $rc')
        env = dict(ENV, MNT=str(mount), COPY=str(copy))
        proc = subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", f"{used // 1024 + LIMIT_KIB}k", str(mount),
                               str(folder), "-", *cli(*inner)], capture_output=True, text=True, env=env,
                              cwd=REPO, timeout=300)
        output = (proc.stdout + proc.stderr).replace(str(mount), str(folder))
        return proc.returncode, output, copy
    raise AssertionError(mechanism)


def failing_fdopen(monkeypatch, name_prefix: str):
    """os.fdopen whose file objects raise ENOSPC once 4 kB of a file named `.{name_prefix}...` are written."""
    real = os.fdopen

    class Full:
        def __init__(self, fh):
            self.fh, self.written = fh, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 4096:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.fh.write(data)

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.fh.__exit__(*exc)

    def fdopen(fd, *args, **kwargs):
        fh = real(fd, *args, **kwargs)
        path = os.readlink(f"/proc/self/fd/{fd}") if os.path.exists(f"/proc/self/fd/{fd}") else ""
        return Full(fh) if Path(path).name.startswith(f".{name_prefix}") else fh

    monkeypatch.setattr(os, "fdopen", fdopen)


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


EXPECTED = {"rlimit": "file too large", "tmpfs": "no space left on device", "enospc": "no space left on device"}


# --- preprocess --------------------------------------------------------------------------------------
@pytest.fixture
def grown_corpus(tmp_path):
    """A finished 3-recording cache, then 2 more recordings added to the raw folder."""
    raw = write_chb_corpus(tmp_path / "raw", n_files=5, seconds=16, broken=False)
    held = tmp_path / "held"
    held.mkdir()
    for name in ("chb01_04.edf", "chb01_05.edf"):
        (raw / "chb01" / name).rename(held / name)
    preprocess_corpus("chbmit", raw, tmp_path / "out", options={"files": "all"}, progress=False)
    for name in ("chb01_04.edf", "chb01_05.edf"):
        (held / name).rename(raw / "chb01" / name)
    return raw, tmp_path / "out"


@pytest.mark.parametrize("mechanism", ["rlimit", "tmpfs", "enospc"])
def test_preprocess_on_a_full_disk(grown_corpus, tmp_path, mechanism, monkeypatch):
    raw, out = grown_corpus
    cache_dir = out / "chbmit"
    before = tree_hashes(cache_dir, skip=(".lock",))
    args = ["preprocess", "chbmit", "--raw", str(raw), "--out", str(out), "--workers", "1", "--no-progress",
            "-o", "files=all"]
    code, output, after_dir = run_limited(mechanism, args, out, tmp_path / "scratch", monkeypatch, "chb01_04.npy")
    cache_after = after_dir / "chbmit"
    ok = (code == 1 and "Traceback" not in output and len(error_lines(output)) == 1
          and "chb01_04.npy" in error_lines(output)[0] and EXPECTED[mechanism] in error_lines(output)[0]
          and tree_hashes(cache_after, skip=(".lock",)) == before and not temporaries(cache_after)
          and len(WindowCache(cache_after)) == 12)
    RESULTS["preprocess"][mechanism] = ok
    assert code == 1 and "Traceback" not in output, output
    assert len(error_lines(output)) == 1 and EXPECTED[mechanism] in error_lines(output)[0], output
    assert "chb01_04.npy" in error_lines(output)[0] and "the previous file is unchanged" in output
    assert tree_hashes(cache_after, skip=(".lock",)) == before  # the finished cache, untouched
    assert not temporaries(cache_after)
    assert len(WindowCache(cache_after)) == 12 and WindowCache(cache_after).windows(range(12)).shape[0] == 12
    if mechanism == "rlimit":  # room again: the same command completes the cache
        monkeypatch.undo()
        report = preprocess_corpus("chbmit", raw, out, options={"files": "all"}, progress=False)
        assert len(report.cache) == 20 and report.reused == 3 and len(report.processed) == 2


# --- train -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def train_data(tmp_path_factory):
    base = tmp_path_factory.mktemp("diskfull-train")
    make_cache(base / "cache", "toya", n_subjects=6, windows_per_subject=16)
    reference = base / "reference"
    train(config(base / "cache", reference, epochs=2))
    return base / "cache", reference


def config(data, out, epochs):
    return TrainConfig(out=out, data=data, tasks="toya", fold="1", epochs=epochs, d_model=16, layers=1,
                       device="cpu", batch_size=8, seed=3)


@pytest.mark.parametrize("mechanism", ["rlimit", "tmpfs", "enospc"])
def test_train_on_a_full_disk_keeps_the_last_checkpoint(train_data, tmp_path, mechanism, monkeypatch, capsys):
    data, reference = train_data
    out = tmp_path / "run"
    train(config(data, out, epochs=1))
    last = out / "fold-1" / "last"
    before = {name: sha256(last / name) for name in ("model.safetensors", "optimizer.safetensors")}
    args = ["train", "--data", str(data), "--out", str(out), "--tasks", "toya", "--fold", "1", "--epochs", "2",
            "--d-model", "16", "--layers", "1", "--device", "cpu", "--batch-size", "8", "--seed", "3", "--recipe", "paper"]
    code, output, after = run_limited(mechanism, args, out, tmp_path / "scratch", monkeypatch, "model.safetensors")
    after_last = after / "fold-1" / "last"
    model, meta = load_checkpoint(after_last)  # the last good checkpoint still loads
    load_optimizer_state(after_last)
    ok = (code == 1 and "Traceback" not in output and len(error_lines(output)) == 1
          and EXPECTED[mechanism] in error_lines(output)[0] and meta["epoch"] == 1
          and {n: sha256(after_last / n) for n in before} == before and not temporaries(after))
    RESULTS["train"][mechanism] = ok
    assert code == 1 and "Traceback" not in output, output
    assert len(error_lines(output)) == 1 and EXPECTED[mechanism] in error_lines(output)[0], output
    assert meta["epoch"] == 1 and {n: sha256(after_last / n) for n in before} == before
    assert not temporaries(after), temporaries(after)
    if mechanism == "rlimit":  # room again: --resume finishes epoch 2 exactly as an undisturbed run
        monkeypatch.undo()
        train(config(data, out, epochs=2))
        for name in ("model.safetensors", "optimizer.safetensors"):
            assert sha256(last / name) == sha256(reference / "fold-1" / "last" / name)


def test_full_disk_table(capsys):
    """Runs last in this module: the full-disk rows of the crash-safety table."""
    rows = []
    for what, results in RESULTS.items():
        if results:
            rows.append(record_scenario(f"full disk during {what}", len(results), sum(results.values()),
                                        len(results) - sum(results.values()),
                                        mechanisms="+".join(sorted(results)),
                                        tmpfs="available" if TMPFS else "not available (skipped)"))
    print_table(capsys, rows)
    assert all(all(r.values()) for r in RESULTS.values())
