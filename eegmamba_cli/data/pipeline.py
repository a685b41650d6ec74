"""The shared preprocessing pipeline: raw recordings -> 200 Hz windows in the on-disk cache.

One code path for every corpus (and, later, for `predict`):

    preprocess_pieces(pieces, info, params) pure: band-pass at the native rate, resample to 200 Hz,
                                            normalise, cut the windows -> (windows, starts_s, lengths)
                                            per piece; preprocess_piece does one piece (predict)
    process_recording(corpus, ref, params)  read one recording, run its pieces, build manifest rows
    preprocess_corpus(name, raw, out, ...)  lock the cache folder, skip finished recordings, run the rest
                                            in worker processes (the parent alone writes the cache),
                                            finalize, return a report for the summary table

A recording that cannot be used (truncated file, missing channel, NaN or flat channel, labels that do
not match) raises RecordingError; it is skipped with a one-line reason, or stops the run under strict.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..console import UserError, console
from ..fileio import atomic_write_json, directory_lock, remove_stale_temporaries
from .base import TARGET_SFREQ, Corpus, CorpusError, CorpusInfo, Piece, RecordingError, RecordingRef, default_passband
from .cache import PART_COLUMNS, CacheWriter, WindowCache
from .options import options_record, parse_options
from .registry import get_corpus
from .signal import (design_sos, filter_resample_channel, resample_factor, resampled_length, sample_starts,
                     zscore_rows)

# Bump when the numbers written for the same raw files and parameters change: it enters the
# fingerprint, so existing caches are then refused instead of silently mixed.
PIPELINE_VERSION = "1"
NORMALIZATIONS = ("window", "recording", "none")
OLD_NORMALIZATIONS = {"zscore": "window"}  # the name caches and checkpoints recorded before `recording`
BANDS = ("default", "none")  # besides a (low, high) pair in Hz
BAD_CHANNEL_POLICIES = ("skip", "keep")
SKIPPED_FILE = "skipped.json"
IQR_TO_SD = 1.3489795  # the interquartile range of a normal distribution, in standard deviations


@dataclass(frozen=True)
class PreprocessParams:
    """Everything besides the raw files that decides the cache contents (it is fingerprinted).

    normalize  "window": z-score each window and channel (the paper's setting); "recording": per channel,
               subtract the median and divide by the IQR-based scale of the whole recording (all its
               pieces, after filtering and resampling), which keeps slow shifts and relative amplitudes
               across windows; "none": filtered µV.
    band       "default": the corpus's passband (0.1-50 Hz); "none": no filter; or (low, high) in Hz,
               where low 0 means low-pass only.
    """

    normalize: str = "window"
    band: tuple[float, float] | str = "default"
    eps: float = 1e-6
    bad_channels: str = "skip"  # NaN/inf or flat channel: "skip" the recording, or "keep" (NaN -> 0)
    options: dict = field(default_factory=dict)  # the corpus's Options as a dict (defaults filled in)

    def __post_init__(self):
        object.__setattr__(self, "normalize", check_normalize(self.normalize))
        object.__setattr__(self, "band", check_band(self.band))
        if self.bad_channels not in BAD_CHANNEL_POLICIES:
            raise CorpusError(f"bad-channel policy must be one of {', '.join(BAD_CHANNEL_POLICIES)}, "
                            f"not {self.bad_channels!r}")

    def passband(self, default: tuple[float | None, float | None]) -> tuple[float | None, float | None]:
        """The band to filter with, given the corpus's own (`default`) for this piece's rate."""
        if self.band == "default":
            return default
        if self.band == "none":
            return (None, None)
        low, high = self.band
        return (low or None, high)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict | None) -> "PreprocessParams":
        """Params as info.json or a checkpoint recorded them (older ones lack `band`, say `zscore`)."""
        record = dict(record or {})
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in record.items() if k in known})


def check_normalize(value: str) -> str:
    """A normalisation name (the old `zscore` reads as `window`); CorpusError otherwise."""
    name = OLD_NORMALIZATIONS.get(str(value).strip().lower(), str(value).strip().lower())
    if name not in NORMALIZATIONS:
        raise CorpusError(f"normalize {value}: expected {', '.join(NORMALIZATIONS[:-1])} or {NORMALIZATIONS[-1]}")
    return name


def parse_band(text: str) -> tuple[float, float] | str:
    """`LOW,HIGH` (Hz), `none` or `default` -> what PreprocessParams.band holds; CorpusError otherwise."""
    value = str(text).strip().lower()
    if value in BANDS:
        return value
    parts = [p.strip() for p in value.split(",")]
    try:
        if len(parts) != 2:
            raise ValueError
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise CorpusError(f"band {text!r}: expected LOW,HIGH in Hz (e.g. 8,30), or none") from None
    return check_band((low, high))


def check_band(band) -> tuple[float, float] | str:
    if isinstance(band, str):
        if band not in BANDS:
            return parse_band(band)
        return band
    try:
        low, high = (float(v) for v in band)
    except (TypeError, ValueError):
        raise CorpusError(f"band {band!r}: expected LOW,HIGH in Hz, or none") from None
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high <= low:
        raise CorpusError(f"band {low:g},{high:g}: needs 0 <= LOW < HIGH (Hz)")
    return (low, high)


# --- one piece --------------------------------------------------------------------------------

@dataclass
class PieceWindows:
    """The windows of one piece that fit inside it once resampled to 200 Hz."""

    kept: np.ndarray  # indices into piece.windows
    starts: np.ndarray  # start samples at 200 Hz
    lengths: np.ndarray  # samples of each window (<= the dataset's window; the rest is zero padding)


def fitting_windows(piece: Piece, info: CorpusInfo) -> PieceWindows:
    """Which of piece.windows fit inside the resampled piece, where they start and how long they are."""
    full = info.window_samples
    if not piece.windows:
        empty = np.zeros(0, np.int64)
        return PieceWindows(empty, empty, empty)
    n200 = resampled_length(int(piece.data.shape[1]), piece.sfreq)
    starts = sample_starts([s for s, _ in piece.windows])
    if piece.lengths_s is None:
        lengths = np.full(len(starts), full, np.int64)
    else:
        lengths = np.minimum(sample_starts(piece.lengths_s), full)
    ok = (starts >= 0) & (lengths >= 1) & (starts + lengths <= n200)
    kept = np.flatnonzero(ok)
    return PieceWindows(kept, starts[kept], lengths[kept])


def preprocess_piece(piece: Piece, info: CorpusInfo, params: PreprocessParams, *,
                     passband: tuple[float | None, float | None] | None = None,
                     source: str = "signal") -> tuple[np.ndarray, np.ndarray]:
    """Filter, resample, window and normalise one piece (the piece is the whole recording).

    Returns windows, float32 (n, C, L) with L = info.window_samples, and their start times in seconds
    from the recording start (piece.offset_s + the window's start). Windows that do not fit inside the
    resampled piece are dropped (`fitting_windows` says which). Pure apart from reading lazy data.
    """
    band = passband if passband is not None else params.passband(default_passband(piece.sfreq))
    windows, starts_s, _ = preprocess_pieces([piece], info, params, [band], source)[0]
    return windows, starts_s


def preprocess_pieces(pieces: list[Piece], info: CorpusInfo, params: PreprocessParams,
                      passbands: list[tuple[float | None, float | None]], source: str = "signal",
                      ) -> list[tuple[np.ndarray, np.ndarray, PieceWindows]]:
    """The pieces of one recording -> per piece (windows (n, C, L) float32, starts_s, which windows).

    Channel by channel (float64 temporaries stay one channel long): every piece is filtered with its
    passband at its native rate and resampled to 200 Hz; under `recording` normalisation the channel's
    median and scale come from all its pieces together; then the windows are cut (and z-scored under
    `window`, over their own length). Samples past a window's length stay zero.
    """
    plans = [fitting_windows(piece, info) for piece in pieces]
    length = info.window_samples
    n_ch = int(pieces[0].data.shape[0]) if pieces else 0
    outs = [np.zeros((len(plan.kept), n_ch, length), dtype=np.float32) for plan in plans]
    starts_s = [piece.offset_s + np.asarray([piece.windows[k][0] for k in plan.kept], dtype=np.float64)
                for piece, plan in zip(pieces, plans)]
    results = list(zip(outs, starts_s, plans))
    if not any(len(plan.kept) for plan in plans):
        return results
    whole = params.normalize == "recording"  # every piece counts for the statistics, windows or not
    used = [i for i, plan in enumerate(plans) if whole or len(plan.kept)]
    for i in used:
        try:  # a rate no filter or resampler can use (a corrupt header) is one line naming the source
            design_sos(float(pieces[i].sfreq), *passbands[i])
            resample_factor(pieces[i].sfreq)
        except RecordingError as err:
            raise RecordingError(f"{source}: {err}") from None
    names = info.channels if len(info.channels) == n_ch else [f"#{c + 1}" for c in range(n_ch)]
    for c in range(n_ch):
        signals = []
        for i in used:
            row = _check_channel(np.asarray(pieces[i].data[c], dtype=np.float64), names[c], source,
                                 params.bad_channels)
            signals.append(filter_resample_channel(row, pieces[i].sfreq, passbands[i]))
        if whole:
            centre, scale = robust_centre_scale(np.concatenate(signals))
            signals = [(y - centre) / (scale + params.eps) for y in signals]
        for i, y in zip(used, signals):
            _cut(y, plans[i], outs[i][:, c, :], zscore=params.normalize == "window", eps=params.eps)
    return results


def robust_centre_scale(y: np.ndarray) -> tuple[float, float]:
    """Median and IQR / 1.349 (the standard deviation, for normal data; blinks and jumps barely move it)."""
    q25, median, q75 = np.percentile(y, [25, 50, 75])
    return float(median), float(q75 - q25) / IQR_TO_SD


def _cut(y: np.ndarray, plan: PieceWindows, out: np.ndarray, *, zscore: bool, eps: float) -> None:
    """Copy the planned windows of one resampled channel `y` into `out` (n, L), z-scoring if asked."""
    if not len(plan.kept):
        return
    full = out.shape[1]
    if (plan.lengths == full).all():
        block = np.lib.stride_tricks.sliding_window_view(y, full)[plan.starts]  # gathers a copy
        if zscore:
            zscore_rows(block, eps)
        out[:] = block
        return
    for i, (start, n) in enumerate(zip(plan.starts, plan.lengths)):
        block = y[start:start + n][None, :].copy()
        if zscore:
            zscore_rows(block, eps)
        out[i, :n] = block[0]


def _check_channel(row: np.ndarray, name: str, source: str, policy: str) -> np.ndarray:
    if not np.isfinite(row).all():
        if policy == "skip":
            bad = int((~np.isfinite(row)).sum())
            raise RecordingError(f"{source}: channel {name} has {bad} NaN or infinite samples")
        row = np.nan_to_num(row, nan=0.0, posinf=0.0, neginf=0.0)
    if row.size and row.max() == row.min() and policy == "skip":
        raise RecordingError(f"{source}: channel {name} is flat (constant {row[0]:g} µV)")
    return row


# --- one recording ----------------------------------------------------------------------------

@dataclass
class RecordingResult:
    id: str
    windows: np.ndarray  # (n, C, L) float32
    rows: pd.DataFrame  # PART_COLUMNS, one row per window
    notes: list[str] = field(default_factory=list)


def process_recording(corpus: Corpus, ref: RecordingRef, params: PreprocessParams) -> RecordingResult:
    """Read one recording with the (bound) corpus and turn every piece into windows plus manifest rows."""
    info = corpus.info
    source = ref.paths[0].name if ref.paths else ref.id
    recording = corpus.read(ref)
    pieces = recording.pieces
    passbands = [params.passband(corpus.passband(piece.sfreq)) for piece in pieces]
    done = preprocess_pieces(pieces, info, params, passbands, source)
    labels, events = [], []
    for number, (piece, (_, _, plan)) in enumerate(zip(pieces, done)):
        labels.extend(int(piece.windows[k][1]) for k in plan.kept)
        events.extend((number, int(piece.events[k]) if piece.events is not None else -1 - int(k))
                      for k in plan.kept)
    if not labels:
        raise RecordingError(f"{source}: no windows to cut (shorter than one {info.window_s:g}-s "
                             "window, or nothing labelled)")
    bad = sorted({lab for lab in labels if not 0 <= lab < len(info.class_names)})
    if bad:
        raise RecordingError(f"{source}: labels {bad} outside 0..{len(info.class_names) - 1}")
    windows = np.concatenate([w for w, _, _ in done])
    subject = recording.ref.subject
    n = len(labels)
    rows = pd.DataFrame({"subject": [subject] * n, "session": [recording.ref.session] * n,
                         "run": [recording.ref.run] * n, "event": event_ids(ref.id, events),
                         "start_s": np.concatenate([s for _, s, _ in done]), "label": labels,
                         "length": np.concatenate([plan.lengths for _, _, plan in done]),
                         "fold": [corpus.fold_of(subject)] * n})[PART_COLUMNS]
    return RecordingResult(ref.id, windows, rows, list(recording.notes))


def event_ids(recording: str, keys: list[tuple[int, int]]) -> list[str]:
    """`<recording>/e<k>`, k counting the recording's distinct (piece, event) keys in order of appearance:
    unique within the dataset (recording ids are), stable, and shared by windows of one event."""
    numbers: dict[tuple[int, int], int] = {}
    return [f"{recording}/e{numbers.setdefault(key, len(numbers))}" for key in keys]


def _work(corpus: Corpus, ref: RecordingRef, params: PreprocessParams):
    """Worker entry point: compute only; every failure comes back as a one-line reason."""
    try:
        return "ok", process_recording(corpus, ref, params)
    except UserError as err:
        return "skip", _one_line(str(err))
    except MemoryError:
        return "skip", f"{_name(ref)}: out of memory (try fewer worker processes)"
    except Exception as err:  # a corrupt file can break a library in many ways: report, don't crash
        return "skip", _one_line(f"{_name(ref)}: unreadable ({type(err).__name__}: {err})")


def _exit_with_parent(parent: int, interval_s: float = 0.5) -> None:
    """Worker initializer: end this worker soon after the parent dies (SIGKILL, OOM killer).

    The pool's workers hold both ends of their task queue, so they never see it close: without this,
    a killed run left its idle workers (and the recordings in their memory) behind for good. Exiting
    at once is safe: workers only read, the parent alone writes the cache.
    """
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _name(ref: RecordingRef) -> str:
    return ref.paths[0].name if ref.paths else ref.id


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- a whole corpus ---------------------------------------------------------------------------

class RawFolderMissing(CorpusError):
    """The raw folder of a corpus does not exist; the CLI says how to download or point at it."""

    def __init__(self, raw: Path, info: CorpusInfo):
        super().__init__(f"{raw}: raw folder not found (expected layout: "
                         f"{info.raw_hint or 'see docs/datasets.md'})")
        self.raw, self.info = raw, info


class StoppedStrict(CorpusError):
    """Strict mode stopped the run at the first unusable recording; the message is its reason."""


@dataclass
class PreprocessReport:
    cache_dir: Path
    cache: WindowCache | None
    found: int
    processed: list[str]
    reused: int
    skipped: list[dict]  # {"recording", "file", "reason"}
    notes: list[str]


def resolve_options(corpus: Corpus, options=None):
    """The corpus's `Options`: an instance as given, or parsed from a {key: value} mapping."""
    return options if isinstance(options, corpus.Options) else parse_options(corpus, options)


def fingerprint(info: CorpusInfo, params: PreprocessParams) -> str:
    payload = {"corpus": info.name, "pipeline": PIPELINE_VERSION, "params": params.to_dict(),
               "channels": list(info.channels), "window_samples": info.window_samples,
               "class_names": list(info.class_names), "sfreq": TARGET_SFREQ}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _stamp(ref: RecordingRef) -> list:
    """What identifies the input files of a recording: name, size, mtime (to re-use a skip reason)."""
    stamp = []
    for path in ref.paths:
        try:
            st = os.stat(path)
            stamp.append([path.name, st.st_size, st.st_mtime_ns])  # name: --raw may be spelled differently
        except OSError:
            stamp.append([path.name, None, None])
    return stamp


def _clear_cache(directory: Path) -> None:
    # Markers before the data they vouch for, so that a run killed part-way leaves no lie behind:
    # info.json ("finished") first, then parts/ ("this recording is done") before arrays/, and the
    # fingerprint last (without it a rerun would adopt leftovers made with other parameters).
    (directory / "info.json").unlink(missing_ok=True)
    for sub in ("parts", "arrays"):
        shutil.rmtree(directory / sub, ignore_errors=True)
    for name in ("manifest.parquet", SKIPPED_FILE, "fingerprint.txt"):
        (directory / name).unlink(missing_ok=True)


def preprocess_corpus(name: str, raw: str | Path, out: str | Path, *, workers: int = 1,
                      subjects: set[str] | None = None, strict: bool = False, overwrite: bool = False,
                      options=None, normalize: str | None = None, band="default",
                      bad_channels: str = "skip", progress: bool = True) -> PreprocessReport:
    """Preprocess every recording of corpus `name` under `raw` into the cache `<out>/<name>/`.

    `normalize` None is the corpus's default (the paper's per-window z-score for its corpora, per-recording
    for custom); `band` "default" is the corpus's passband (see PreprocessParams).

    Idempotent: finished recordings are skipped, and recordings skipped before with unchanged files
    keep their reason, so a second run with the same parameters does no work and leaves the cache
    byte-identical. An interrupted run resumes where it stopped.
    """
    corpus = get_corpus(name)
    raw = Path(raw)
    if not raw.is_dir():
        raise RawFolderMissing(raw, corpus.info)
    if workers < 1:
        raise CorpusError(f"workers must be at least 1, not {workers}")
    resolved = resolve_options(corpus, options)
    corpus = corpus.bind(raw, resolved)
    info = corpus.info
    params = PreprocessParams(normalize=normalize or info.normalize, band=band, bad_channels=bad_channels,
                              options=options_record(resolved))
    fp = fingerprint(info, params)
    refs = corpus.find_recordings(raw, subjects)
    if not refs:
        what = f" for subjects {', '.join(sorted(subjects))}" if subjects else ""
        raise UserError(f"{raw}: no {info.name} recordings found{what} "
                        f"(expected layout: {info.raw_hint or 'see docs/datasets.md'})")
    ids = [r.id for r in refs]
    if len(set(ids)) != len(ids):
        raise UserError(f"{raw}: two recordings share an id ({_first_duplicate(ids)})")

    cache_dir = Path(out) / info.name
    with directory_lock(cache_dir, f"eegmamba preprocess {info.name}"):
        if overwrite:
            _clear_cache(cache_dir)
        # a killed run can leave atomic-writer temporaries; they are never valid data
        remove_stale_temporaries(cache_dir, cache_dir / "arrays", cache_dir / "parts")
        writer = CacheWriter(cache_dir, dataset=info.name, task=info.task, channels=list(info.channels),
                             sfreq=TARGET_SFREQ, window_samples=info.window_samples,
                             class_names=list(info.class_names), params=params.to_dict(),
                             fingerprint=fp, version=__version__, overwrite=False)
        state = _load_skipped(cache_dir, fp)
        before = json.dumps(state, sort_keys=True)
        todo, reused = [], 0
        for ref in refs:
            if writer.is_done(ref.id):
                reused += 1
                state.pop(ref.id, None)
            elif ref.id in state and state[ref.id]["stamp"] == _stamp(ref):
                if strict:
                    raise StoppedStrict(state[ref.id]['reason'])
            else:
                todo.append(ref)
        report = PreprocessReport(cache_dir, None, len(refs), [], reused, [], [])
        try:
            _run(corpus, todo, params, workers, strict, writer, state, report, progress)
        finally:
            if json.dumps(state, sort_keys=True) != before:
                atomic_write_json(cache_dir / SKIPPED_FILE, {"fingerprint": fp, "recordings": state})
        report.skipped = [{"recording": rid, "file": s["file"], "reason": s["reason"]}
                          for rid, s in sorted(state.items())]
        if not any(writer.parts.glob("*.parquet")):
            raise UserError(f"no windows written: all {len(refs)} {info.name} recording(s) were skipped")
        changed = bool(report.processed) or json.dumps(state, sort_keys=True) != before
        if changed or not (cache_dir / "info.json").exists():
            report.cache = writer.finalize(skipped=report.skipped)
        else:
            report.cache = WindowCache(cache_dir)  # nothing new: leave the finished cache untouched
    return report


def _first_duplicate(ids: list[str]) -> str:
    seen = set()
    for i in ids:
        if i in seen:
            return i
        seen.add(i)
    return ""


def _load_skipped(directory: Path, fp: str) -> dict:
    path = directory / SKIPPED_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("fingerprint") != fp:
        return {}
    recs = data.get("recordings")
    return recs if isinstance(recs, dict) else {}


def _run(corpus, todo, params, workers, strict, writer, state, report, progress) -> None:
    """Compute recordings (in worker processes when workers > 1); the parent writes each result."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if not todo:
        return
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=console, transient=True, disable=not progress)
    by_id = {ref.id: ref for ref in todo}

    def handle(rid: str, status: str, payload) -> None:
        ref = by_id[rid]
        if status == "ok":
            writer.write_recording(rid, payload.windows, payload.rows)
            state.pop(rid, None)
            report.processed.append(rid)
            for note in payload.notes:
                report.notes.append(f"{rid}: {note}")
                console.print(f"[yellow]note:[/] {rid}: {note}", highlight=False, soft_wrap=True)
        else:
            state[rid] = {"file": _name(ref), "reason": payload, "stamp": _stamp(ref)}
            if strict:
                raise StoppedStrict(payload)
            console.print(f"[yellow]skipped:[/] {payload}", highlight=False, soft_wrap=True)
        bar.advance(task)

    with bar:
        task = bar.add_task(f"preprocess {corpus.info.name}", total=len(todo))
        if workers == 1 or len(todo) == 1:
            # In-process: no start-up cost, and a debugger sees the reader.
            for ref in todo:
                status, payload = _work(corpus, ref, params)
                handle(ref.id, status, payload)
            return
        # spawn, not fork: the parent runs a progress thread, and forking a threaded process can hang.
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_exit_with_parent, initargs=(os.getpid(),))
        pending: dict[Future, str] = {}
        queue = list(todo)
        try:
            while queue or pending:
                while queue and len(pending) < 2 * workers:  # bounded: results hold whole recordings
                    ref = queue.pop(0)
                    pending[pool.submit(_work, corpus, ref, params)] = ref.id
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                lost: list[str] = []
                for fut in sorted(done, key=lambda f: pending[f]):
                    rid = pending.pop(fut)
                    try:
                        status, payload = fut.result()
                    except BrokenProcessPool:  # killed (out of memory?) or crashed: not the file's fault
                        lost.append(rid)
                        continue
                    except Exception as err:  # e.g. a result that could not be sent back
                        status, payload = "skip", _one_line(
                            f"{_name(by_id[rid])}: worker failed ({type(err).__name__}: {err})")
                    handle(rid, status, payload)
                if lost:
                    # A dead worker breaks the whole pool, and the pool cannot say which recording
                    # killed it: keep what finished, and name every recording that was in flight.
                    wait(pending)
                    for fut in sorted(pending, key=lambda f: pending[f]):
                        rid = pending[fut]
                        if fut.cancelled() or fut.exception() is not None:
                            lost.append(rid)
                        else:
                            handle(rid, *fut.result())
                    names = ", ".join(_name(by_id[r]) for r in sorted(set(lost)))
                    raise UserError(
                        f"a worker process died while reading {names} (out of memory, or a crash in a "
                        "reader); finished recordings are kept: run again to resume, perhaps with fewer "
                        "worker processes")
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
