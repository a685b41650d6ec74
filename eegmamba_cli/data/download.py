"""Download the open PhysioNet corpora (Siena, CHB-MIT, Sleep-EDF) with checksum verification.

PhysioNet layout: `<base>/SHA256SUMS.txt` ("<sha256> <relative path>" per line), `<base>/RECORDS...`
and every file by its relative path. The steps:

1. Fetch SHA256SUMS.txt into memory and refuse the whole list if any name is unsafe (`..`, absolute,
   backslash, control characters, or anything resolving outside the target folder); only then save it.
2. Select the files the default preprocessing needs (a subject subset; CHB-MIT's seizure files;
   Sleep-EDF's SleepEDF-20 pairs from RECORDS-v1).
3. Skip files already present with the right sha256 (a size+mtime stamp file avoids re-hashing
   gigabytes on every run); download the rest into `<file>.part`, resuming with an HTTP Range request,
   verify the sha256, then rename. A wrong checksum or a transfer shorter than its Content-Length
   leaves nothing behind. With offline=True nothing touches the network.

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
from ..console import UserError, console
from ..fileio import atomic_write_bytes, atomic_write_json

PHYSIONET = {"siena": "siena-scalp-eeg", "chbmit": "chbmit", "sleepedf": "sleep-edfx"}
SUMS = "SHA256SUMS.txt"
STAMPS = ".eegmamba-verified.json"
CHUNK = 1 << 20
TIMEOUT_S = 60
_USER_AGENT = f"eegmamba/{__version__} (+https://physionet.org)"


class DownloadError(UserError):
    """A download could not be completed or verified; the message is one line naming the file."""


def default_base_url(name: str) -> str:
    return f"https://physionet.org/files/{PHYSIONET[name]}/1.0.0/"


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


# --- selection ----------------------------------------------------------------------------------

def _top_level(sums: dict[str, str], names: tuple[str, ...]) -> list[str]:
    return [n for n in names if n in sums]


def select_siena(sums: dict[str, str], subjects: set[str] | None, read_index: Callable) -> list[str]:
    from .corpora.siena import EXCLUDED, canonical_subject

    wanted = {canonical_subject(s) for s in subjects} if subjects else None
    chosen = _top_level(sums, ("RECORDS", "subject_info.csv", "LICENSE.txt"))
    for name in sorted(sums):
        folder = name.split("/")[0].upper()
        if "/" in name and re.fullmatch(r"PN\d\d", folder):
            if (wanted and folder in wanted) or (not wanted and folder not in EXCLUDED):
                chosen.append(name)
    return chosen


def select_chbmit(sums: dict[str, str], subjects: set[str] | None, read_index: Callable,
                  all_files: bool = False) -> list[str]:
    from .corpora.chbmit import SUBJECTS, canonical_subject

    cases = {canonical_subject(s) for s in subjects} if subjects else {f"chb{n:02d}" for n in SUBJECTS}
    chosen = _top_level(sums, ("RECORDS", "RECORDS-WITH-SEIZURES", "SUBJECT-INFO", "ANNOTATORS"))
    if all_files:
        return chosen + [n for n in sorted(sums) if n.split("/")[0] in cases and "/" in n]
    listed = [line.strip() for line in read_index("RECORDS-WITH-SEIZURES").splitlines() if line.strip()]
    for case in sorted(cases):
        summary = f"{case}/{case}-summary.txt"
        chosen += [summary] if summary in sums else []
    for edf in listed:
        if edf.split("/")[0] in cases:
            if edf not in sums:
                raise DownloadError(f"RECORDS-WITH-SEIZURES lists {edf}, which {SUMS} does not")
            chosen += [edf] + ([edf + ".seizures"] if edf + ".seizures" in sums else [])
    return chosen


def select_sleepedf(sums: dict[str, str], subjects: set[str] | None, read_index: Callable) -> list[str]:
    from .corpora.sleepedf import SUBJECTS, canonical_subject

    wanted = {canonical_subject(s) for s in subjects} if subjects else {f"{n:02d}" for n in SUBJECTS}
    chosen = _top_level(sums, ("RECORDS", "RECORDS-v1", "SC-subjects.xls"))
    hypnograms: dict[str, list[str]] = {}
    for name in sums:
        m = re.fullmatch(r"sleep-cassette/(SC4\d\d\d)[A-Z][A-Z]-Hypnogram\.edf", name)
        if m:
            hypnograms.setdefault(m.group(1), []).append(name)
    # RECORDS-v1 = the original release: its 39 cassette PSGs are SleepEDF-20 (DATASETS.md §3).
    for line in read_index("RECORDS-v1").split():
        m = re.fullmatch(r"(SC4(\d\d)\d)[A-Z]0-PSG\.edf", Path(line).name)
        if not m or m.group(2) not in wanted:
            continue
        psg = f"sleep-cassette/{Path(line).name}"
        if psg not in sums:
            raise DownloadError(f"RECORDS-v1 lists {line}, which {SUMS} does not")
        if m.group(1) not in hypnograms:
            raise DownloadError(f"{SUMS} has no hypnogram for {psg}")
        chosen += [psg] + sorted(hypnograms[m.group(1)])
    return chosen


SELECTORS = {"siena": select_siena, "chbmit": select_chbmit, "sleepedf": select_sleepedf}
INDEX_FILES = {"chbmit": "RECORDS-WITH-SEIZURES", "sleepedf": "RECORDS-v1"}


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
                    subjects: set[str] | None = None, offline: bool = False, all_files: bool = False,
                    progress: bool = True) -> DownloadReport:
    """Bring `<target>` up to date with the files corpus `name` needs; see the module docstring."""
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                               TransferSpeedColumn)

    if name not in PHYSIONET:
        raise UserError(f"{name}: no automatic download (open PhysioNet corpora: {', '.join(PHYSIONET)})")
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    base = (base_url or default_base_url(name)).rstrip("/") + "/"
    sums_path = target / SUMS
    if offline:
        if not sums_path.is_file():
            raise DownloadError(f"{sums_path}: not found, and --offline forbids fetching it")
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
            raise DownloadError(f"{rel} {state}, and --offline forbids downloading it")
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
            selector = SELECTORS[name]
            chosen = (selector(sums, subjects, read_index, all_files) if name == "chbmit"
                      else selector(sums, subjects, read_index))
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
    from .registry import get_corpus

    try:
        info = get_corpus(name).info
    except (ImportError, AttributeError):
        return [f"{name}: the reader is not installed in this version; see docs/datasets.md"]
    access = "apply for access (signed agreement)" if info.access == "agreement" else "download manually"
    return [f"{info.title}: {access} at {info.url}",
            f"licence: {info.licence}",
            f"then put the files under {Path(root) / 'raw' / info.name}/ "
            f"({info.raw_hint or 'layout in docs/datasets.md'})"]
