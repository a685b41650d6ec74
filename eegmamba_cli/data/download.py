"""Download the open PhysioNet corpora (those whose declaration has a `download` source) with checksums.

PhysioNet layout: `<base>/SHA256SUMS.txt` ("<sha256> <relative path>" per line), `<base>/RECORDS...`
and every file by its relative path. The steps:

1. Fetch SHA256SUMS.txt into memory and refuse the whole list if any name is unsafe (`..`, absolute,
   backslash, control characters, or anything resolving outside the target folder); only then save it.
2. Select the files the default preprocessing needs with the corpus's own selector (a subject subset;
   CHB-MIT's seizure files, or all of them with its option files=all; Sleep-EDF's SleepEDF-20 pairs).
3. Skip files already present with the right sha256 (a size+mtime stamp file avoids re-hashing
   gigabytes on every run); download the rest into `<file>.part`, resuming with an HTTP Range request,
   verify the sha256, then rename. A wrong checksum or a transfer shorter than its Content-Length
   leaves nothing behind. With offline=True nothing touches the network (OfflineError instead).

stdlib `urllib.request` only: no new dependency for a few GET requests.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import __version__
from ..console import console
from ..fileio import atomic_write_bytes, atomic_write_json
from .base import CorpusError, DownloadError
from .options import parse_options
from .registry import downloadable, get_corpus

SUMS = "SHA256SUMS.txt"
STAMPS = ".eegmamba-verified.json"
CHUNK = 1 << 20
TIMEOUT_S = 60
_USER_AGENT = f"eegmamba/{__version__} (+https://physionet.org)"


class OfflineError(DownloadError):
    """Offline mode needed the network; `what` says which file and why ("x is missing")."""

    def __init__(self, what: str, verb: str = "downloading"):
        super().__init__(f"{what}, and offline mode forbids {verb} it")
        self.what, self.verb = what, verb


def default_base_url(name: str) -> str:
    return get_corpus(name).info.download.url


# --- the checksum list --------------------------------------------------------------------------

def safe_relpath(name: str, target: Path) -> str:
    """Return `name` if it is a plain relative path that stays inside `target`; else raise."""
    bad = (not name or "\\" in name or name.startswith("/") or re.match(r"[A-Za-z]:", name)
           or any(ord(c) < 32 or ord(c) == 127 for c in name))
    parts = name.split("/")  # not PurePosixPath: it silently drops "." and "//"
    if bad or any(p in ("..", ".", "") for p in parts):
        raise DownloadError(f"{SUMS}: unsafe file name {name!r}; refusing the whole list")
    base = target.resolve()
    resolved = (base / name).resolve()
    if resolved != base and base not in resolved.parents:
        raise DownloadError(f"{SUMS}: {name!r} resolves outside {target}; refusing the whole list")
    return name


def parse_checksums(text: str, target: Path) -> dict[str, str]:
    """{relative path: sha256} from SHA256SUMS.txt; any malformed or unsafe line refuses the list."""
    sums: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.fullmatch(r"\s*([0-9a-fA-F]{64}) [ *]?(.*?)\s*", line)
        if not m:
            raise DownloadError(f"{SUMS}: line {lineno} is not '<sha256> <path>'; refusing the whole list")
        name = safe_relpath(m.group(2), target)
        digest = m.group(1).lower()
        if sums.get(name, digest) != digest:
            raise DownloadError(f"{SUMS}: {name} listed twice with different checksums")
        sums[name] = digest
    if not sums:
        raise DownloadError(f"{SUMS}: empty checksum list")
    return sums


# --- verification and transfer -------------------------------------------------------------------

def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return h.hexdigest()


class _Stamps:
    """size + mtime of files already verified, so that a rerun need not re-hash gigabytes."""

    def __init__(self, target: Path):
        self.path = target / STAMPS
        try:
            self.data = json.loads(self.path.read_text())
            if not isinstance(self.data, dict):
                self.data = {}
        except (OSError, ValueError):
            self.data = {}

    def verified(self, name: str, path: Path, digest: str) -> bool:
        try:
            st = path.stat()
        except OSError:
            return False
        if self.data.get(name) == [digest, st.st_size, st.st_mtime_ns]:
            return True
        if sha256_file(path) == digest:
            self.remember(name, path, digest)
            return True
        return False

    def remember(self, name: str, path: Path, digest: str) -> None:
        st = path.stat()
        self.data[name] = [digest, st.st_size, st.st_mtime_ns]

    def save(self) -> None:
        atomic_write_json(self.path, self.data)


def _open(url: str, offset: int = 0):
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)


def fetch_bytes(url: str, what: str) -> bytes:
    try:
        with _open(url) as resp:
            data = resp.read()
            length = resp.headers.get("Content-Length")
    except urllib.error.HTTPError as err:
        raise DownloadError(f"{what}: HTTP {err.code} {err.reason} from {url}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as err:  # ValueError: bad URL
        raise DownloadError(f"{what}: cannot fetch {url} ({getattr(err, 'reason', err)!s:.200})") from None
    if length is not None and length.isdigit() and len(data) != int(length):
        raise DownloadError(f"{what}: truncated transfer ({len(data)} of {length} bytes)")
    return data


def fetch_file(url: str, dest: Path, digest: str, name: str, on_bytes: Callable[[int], None]) -> None:
    """Download `url` to `dest` via `dest.part` (resumed with Range), verify sha256, rename."""
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if part.is_symlink() or (part.exists() and not part.is_file()):  # never write through a planted link
        raise DownloadError(f"{name}: {part} is a symlink or not a regular file; refusing to write through "
                            "it (remove it and run again)")
    offset = part.stat().st_size if part.is_file() else 0
    try:
        resp = _open(url, offset)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # nothing left to send: the .part may be complete already
            resp = None
        else:
            raise DownloadError(f"{name}: HTTP {err.code} {err.reason} from {url}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as err:  # ValueError: bad URL
        raise DownloadError(f"{name}: cannot reach {url} ({getattr(err, 'reason', err)})") from None
    if resp is not None:
        with resp:
            resumed = offset and resp.status == 206 and _range_start(resp) == offset
            if not resumed:
                offset = 0  # the server ignored the Range request: start again
            length = resp.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            received = 0
            try:
                with _open_part(part, append=bool(resumed)) as fh:
                    on_bytes(offset)
                    while chunk := resp.read(CHUNK):
                        fh.write(chunk)
                        received += len(chunk)
                        on_bytes(len(chunk))
            except (OSError, http.client.HTTPException) as err:  # connection dropped: keep .part to resume
                raise DownloadError(f"{name}: transfer interrupted ({err}); run again to resume") from None
        if expected is not None and received != expected:
            part.unlink(missing_ok=True)
            raise DownloadError(f"{name}: truncated transfer ({received} of {expected} bytes); "
                                "nothing kept")
    got = sha256_file(part)
    if got != digest:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{name}: checksum mismatch (expected {digest[:12]}…, got {got[:12]}…); "
                            "nothing kept")
    os.replace(part, dest)


def _open_part(part: Path, append: bool):
    """The .part file for appending or from scratch; O_NOFOLLOW: a symlink swapped in is refused."""
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | (os.O_APPEND if append else os.O_TRUNC)
    return os.fdopen(os.open(part, flags, 0o644), "ab" if append else "wb")


def _range_start(resp) -> int | None:
    m = re.match(r"bytes\s+(\d+)-", resp.headers.get("Content-Range", ""))
    return int(m.group(1)) if m else None


# --- the whole corpus -----------------------------------------------------------------------------

@dataclass
class DownloadReport:
    target: Path
    selected: int = 0
    present: int = 0
    downloaded: list[str] = field(default_factory=list)
    bytes: int = 0


def download_corpus(name: str, target: str | Path, *, base_url: str | None = None,
                    subjects: set[str] | None = None, offline: bool = False, options=None,
                    progress: bool = True) -> DownloadReport:
    """Bring `<target>` up to date with the files corpus `name` needs; see the module docstring.

    `options` are the corpus's options (an `Options` instance or a {key: value} mapping): the selector
    reads the ones that decide which files are needed (CHB-MIT's `files`).
    """
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                               TransferSpeedColumn)

    corpus = get_corpus(name)
    source = corpus.info.download
    if source is None:
        raise CorpusError(f"{name}: no automatic download (open PhysioNet corpora: {', '.join(downloadable())})")
    options = options if isinstance(options, corpus.Options) else parse_options(corpus, options)
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    base = (base_url or source.url).rstrip("/") + "/"
    sums_path = target / SUMS
    if offline:
        if not sums_path.is_file():
            raise OfflineError(f"{sums_path}: not found", "fetching")
        sums = parse_checksums(sums_path.read_text(encoding="utf-8", errors="replace"), target)
    else:
        data = fetch_bytes(base + SUMS, SUMS)
        sums = parse_checksums(data.decode("utf-8", errors="replace"), target)
        if not sums_path.is_file() or sums_path.read_bytes() != data:
            atomic_write_bytes(sums_path, data)

    stamps = _Stamps(target)
    report = DownloadReport(target)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   TimeRemainingColumn(), console=console, transient=True, disable=not progress)

    def ensure(rel: str) -> bool:
        """Make `rel` present and verified; True if it was downloaded now."""
        dest = target / rel
        if dest.is_file() and stamps.verified(rel, dest, sums[rel]):
            return False
        if offline:
            state = "fails its checksum" if dest.exists() else "is missing"
            raise OfflineError(f"{rel} {state}")
        task = bar.add_task(rel, total=None)
        fetch_file(base + rel, dest, sums[rel], rel, lambda n: bar.advance(task, n))
        bar.remove_task(task)
        stamps.remember(rel, dest, sums[rel])
        report.bytes += dest.stat().st_size
        return True

    def read_index(index: str) -> str:
        if index not in sums:
            raise DownloadError(f"{SUMS} does not list {index}")
        if ensure(index):
            report.downloaded.append(index)
        return (target / index).read_text(encoding="utf-8", errors="replace")

    try:
        with bar:
            chosen = source.select(sums, subjects, read_index, options)
            chosen = list(dict.fromkeys(chosen))
            report.selected = len(chosen)
            for rel in chosen:
                if ensure(rel):
                    report.downloaded.append(rel)
                elif rel not in report.downloaded:  # index files were fetched while selecting
                    report.present += 1
    finally:
        stamps.save()
    report.downloaded = list(dict.fromkeys(report.downloaded))
    return report


def manual_instructions(name: str, root: Path) -> list[str]:
    """Where to apply and where to put the files, for corpora without an automatic download."""
    try:
        info = get_corpus(name).info
    except CorpusError:
        return [f"{name}: the reader is not installed in this version; see docs/datasets.md"]
    access = "apply for access (signed agreement)" if info.access == "agreement" else "download manually"
    return [f"{info.title}: {access} at {info.url}",
            f"licence: {info.licence}",
            f"then put the files under {Path(root) / 'raw' / info.name}/ "
            f"({info.raw_hint or 'layout in docs/datasets.md'})"]
