"""Shared pieces of the reliability tests: real `python -m eegmamba_cli` subprocesses, SIGKILL at a chosen
moment, byte-level snapshots of output folders, and the crash-safety table.

The table: each scenario records (attempts, survived, data lost, notes) with `record_scenario`; the rows
go to `crash-safety.json` in `results_dir()` (the system temp folder, or $EEGMAMBA_RELIABILITY_DIR),
and `print_table` writes them to the terminal even under pytest's output capture.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# One thread everywhere: bitwise-identical training needs a fixed reduction order, and the CI machine has
# two cores shared by everything. PYTHONPATH: the subprocess imports this checkout, not an installed copy.
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
           PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), COLUMNS="200",
           TYPER_STANDARD_TRACEBACK="1", PYTHONDONTWRITEBYTECODE="1")
ENV.pop("EEGMAMBA_BACKEND", None)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "eegmamba_cli", *map(str, args)]


@dataclass
class Outcome:
    killed: bool  # SIGKILL arrived while the command was still running
    returncode: int
    output: str
    elapsed: float
    pid: int = 0


def run(args: list[str], *, timeout: float = 300, env: dict | None = None, cwd: Path = REPO) -> Outcome:
    """Run a command to completion; stdout and stderr together."""
    t0 = time.perf_counter()
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                          env=env or ENV, cwd=cwd)
    return Outcome(False, proc.returncode, proc.stdout, time.perf_counter() - t0)


def kill_after(args: list[str], delay: float, *, armed=None, kill_group: bool = False, env: dict | None = None,
               log: Path | None = None) -> Outcome:
    """Start `args`, SIGKILL it after `delay` seconds unless it ended first.

    `armed(proc)`: count the delay from the moment it first returns true (e.g. the process holds its
    lock: its work phase began) instead of from the start. Only the main process is killed (as the OOM
    killer or `kill -9 PID` would); worker processes it started are then ended too (by process group:
    the command runs in a session of its own), so none outlives the test. `kill_group` kills the whole
    group at once instead.
    """
    log = log or Path(tempfile.mkstemp(prefix="eegmamba-kill-", suffix=".log")[1])
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env or ENV, cwd=REPO,
                                start_new_session=True)
        try:
            while armed is not None and proc.poll() is None and not armed(proc):
                time.sleep(0.005)
            proc.wait(timeout=delay)
            killed = False
        except subprocess.TimeoutExpired:
            if kill_group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed = True
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # leftover workers of this command only
    return Outcome(killed, proc.returncode, log.read_text(errors="replace"), time.perf_counter() - t0, proc.pid)


def timed_phases(args: list[str], lock_file: Path, *, env: dict | None = None,
                 work_started=None) -> tuple[Outcome, float, float]:
    """Run `args` uninterrupted; also return when its work phase began (`work_started()` first true,
    else it first held `lock_file`) and ended (it released `lock_file`), in seconds from its start."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env or ENV, cwd=REPO)
        t_start = t_end = None
        held = False
        while proc.poll() is None:
            now = time.perf_counter() - t0
            holds = holder_pid(lock_file) == proc.pid
            held = held or holds
            if t_start is None and (work_started() if work_started else holds):
                t_start = now
            if t_start is not None and t_end is None and held and not holds:
                t_end = now
            time.sleep(0.005)
        elapsed = time.perf_counter() - t0
        out.seek(0)
        text = out.read()
    t_start = t_start if t_start is not None else 0.0
    return Outcome(False, proc.returncode, text, elapsed), t_start, (t_end if t_end is not None else elapsed)


def holder_pid(lock_file: Path) -> int | None:
    try:
        text = lock_file.read_text()
    except OSError:
        return None
    if "(pid " not in text:
        return None
    try:
        return int(text.rsplit("(pid ", 1)[1].rstrip(")").strip())
    except ValueError:
        return None


def wait_for_holder(lock_file: Path, pid: int, proc: subprocess.Popen, timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if holder_pid(lock_file) == pid:
            return True
        time.sleep(0.01)
    return False


# --- snapshots ---------------------------------------------------------------------------------------
TEMPORARY_PATTERNS = (".*.tmp", "*.part", ".tmp-*", ".*.old")


def temporaries(root: Path) -> list[str]:
    """Leftovers of interrupted writes anywhere under root: atomic-writer temporaries, download .part
    files, checkpoint .tmp-* folders and .NAME.old folders of a half-done publish."""
    found = set()
    for pattern in TEMPORARY_PATTERNS:
        found.update(p.relative_to(root).as_posix() for p in root.rglob(pattern))
    return sorted(found)


def tree_hashes(root: Path, *, skip_temporaries: bool = True, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """{relative path: sha256} of every file under root (hidden ones included)."""
    temps = set(temporaries(root)) if skip_temporaries else set()
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_dir() or rel in skip or any(rel == t or rel.startswith(t + "/") for t in temps):
            continue
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --- the crash-safety table ----------------------------------------------------------------------------
def results_dir() -> Path:
    root = Path(os.environ.get("EEGMAMBA_RELIABILITY_DIR") or Path(tempfile.gettempdir()) / "eegmamba-reliability")
    root.mkdir(parents=True, exist_ok=True)
    return root


def record_scenario(name: str, attempts: int, survived: int, lost: int, **details) -> dict:
    path = results_dir() / "crash-safety.json"
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError):
        rows = {}
    row = dict(scenario=name, attempts=attempts, survived=survived, data_lost=lost, **details)
    rows[name] = row
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(rows, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return row


def format_table(rows: list[dict]) -> str:
    head = f"{'scenario':<48} {'attempts':>8} {'survived':>8} {'data lost':>9}  notes"
    lines = [head, "-" * len(head)]
    for r in rows:
        notes = ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("scenario", "attempts", "survived",
                                                                       "data_lost"))
        lines.append(f"{r['scenario']:<48} {r['attempts']:>8} {r['survived']:>8} {r['data_lost']:>9}  {notes}")
    return "\n".join(lines)


def print_table(capsys, rows: list[dict]) -> None:
    """Print to the real terminal (not pytest's capture), so the numbers show without -s."""
    text = "\n" + format_table(rows) + f"\n(all rows: {results_dir() / 'crash-safety.json'})\n"
    if capsys is None:
        print(text)
        return
    with capsys.disabled():
        print(text)


# --- a small corpus that preprocesses in about a second ---------------------------------------------------
def write_chb_corpus(raw: Path, n_files: int = 10, seconds: int = 16, broken: bool = True) -> Path:
    """`n_files` CHB-MIT recordings of one case (the real fixture writer), each with one seizure, plus
    (when `broken`) a truncated one that preprocessing skips; use `-o files=all`."""
    from tests.fixtures.chbmit import _channel_block, write_edf_file

    from eegmamba_cli.data.corpora.chbmit import CHANNELS

    folder = Path(raw) / "chb01"
    folder.mkdir(parents=True, exist_ok=True)
    blocks = []
    for i in range(1, n_files + 1 + int(broken)):
        name = f"chb01_{i:02d}.edf"
        write_edf_file(folder / name, "full", seconds)
        blocks.append(f"File Name: {name}\nNumber of Seizures in File: 1\n"
                      f"Seizure Start Time: {4 + i % 8} seconds\nSeizure End Time: {8 + i % 8} seconds\n")
    if broken:
        last = folder / f"chb01_{n_files + 1:02d}.edf"
        last.write_bytes(last.read_bytes()[:-1000])
    (folder / "chb01-summary.txt").write_text("Data Sampling Rate: 256 Hz\n\n" + _channel_block(CHANNELS)
                                              + "\n" + "\n".join(blocks))
    return Path(raw)


def group_members(pgid: int) -> list[int]:
    """Live processes of process group `pgid` (Linux /proc), zombies excluded."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members
