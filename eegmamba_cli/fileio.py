"""Atomic file writes and output-directory locks: nothing half-written is ever visible under its final name."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from .console import UserError

TEMP_SUFFIX = ".tmp"  # atomic_writer's temporaries: `.<name>.<random>.tmp` beside the final file


def _file_mode() -> int:
    """The mode a plain open() would give a new file: 0o666 less the umask (mkstemp makes 0o600 files)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def write_failure(path: str | os.PathLike, err: OSError) -> UserError:
    """One line for an OSError met while writing `path` (full disk, size limit, permissions...)."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        why = "no space left on device"
    elif err.errno == errno.EFBIG:
        why = "file too large (file-size limit or file-system maximum reached)"
    else:
        why = f"cannot write ({err.strerror or err})"
    return UserError(f"{path}: {why}; the previous file is unchanged")


def fsync_directory(directory: Path) -> None:
    """Make a rename durable (it lives in the directory entry); best effort where unsupported."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Write to a temporary file beside `path`, fsync, then rename over `path` in one step.

    On any exception the temporary file is removed and `path` keeps its previous content; an OSError
    (full disk, file-size limit, read-only folder...) becomes a one-line UserError naming `path`.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        os.fchmod(fd, _file_mode())  # results are shared files, not secrets: honour the umask
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
        fsync_directory(path.parent)
    except BaseException as err:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(err, OSError):
            raise write_failure(path, err) from err
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_writer(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def remove_stale_temporaries(*directories: str | os.PathLike) -> list[Path]:
    """Delete atomic_writer temporaries (`.name.xxxx.tmp`) that a killed process left in `directories`.

    They are never valid data. Call this only while holding the directories' `directory_lock`: a
    running writer's temporary looks the same.
    """
    removed = []
    for directory in directories:
        directory = Path(directory)
        if not directory.is_dir():
            continue
        for tmp in directory.glob(f".*{TEMP_SUFFIX}"):
            if tmp.is_file() and not tmp.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                    removed.append(tmp)
    return removed


@contextlib.contextmanager
def directory_lock(directory: str | os.PathLike, what: str = "eegmamba") -> Iterator[None]:
    """Hold an exclusive lock on `directory` (a `.lock` file inside it) or refuse with a clear message.

    The kernel releases the lock when the process dies, so a crash never leaves a stale lock behind.
    The file names the holder while the lock is held and is emptied on release (never deleted: a
    deleted lock file would let two processes lock two different files).
    """
    import fcntl

    directory = Path(directory)
    lock_path = directory / ".lock"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fh = open(lock_path, "a+")
    except OSError as err:
        raise UserError(f"{directory}: cannot create the lock file ({err.strerror or err})") from None
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise UserError(f"{directory}: already in use by {holder}; wait for it to finish") from None
        with contextlib.suppress(OSError):  # naming the holder is a courtesy (and may meet a full disk)
            fh.seek(0)
            fh.truncate()
            fh.write(f"{what} (pid {os.getpid()})")
            fh.flush()
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                fh.seek(0)
                fh.truncate()
    finally:
        fh.close()
