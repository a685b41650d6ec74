"""Preprocessing throughput: seconds of signal per wall second, on one core and on all cores.

The workload is one synthetic CHB-MIT hour (23 bipolar channels incl. both T8-P8, 256 Hz, 3600 s,
16-bit EDF, a summary with one seizure), run through the real reader and `process_recording`: EDF read,
band-pass at 256 Hz, resampling to 200 Hz, 900 windows of 4 s, z-score. Writing the cache is left out
(it measures the disk, not the pipeline). `quick` uses 5 minutes of signal instead of an hour.

With N workers, N x `repeats` copies of the job run in a spawn process pool that was warmed up first
(imports done), so the rows compare compute, not process start-up.
"""
from __future__ import annotations

import datetime as dt
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

CHANNELS_N = 23
SFREQ = 256
HOUR_S = 3600
QUICK_S = 300


def write_workload(folder: Path, seconds: int) -> Path:
    """A CHB-MIT-shaped recording `chb01/chb01_01.edf` plus its summary; returns the EDF path."""
    from ..data.corpora.chbmit import CHANNELS
    from ..data.edf import write_edf
    from ..fileio import atomic_write_text

    case = folder / "chb01"
    case.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    n = seconds * SFREQ
    t = np.arange(n) / SFREQ
    data = [rng.standard_normal(n) * 20 + 40 * np.sin(2 * np.pi * (3 + k) * t) for k in range(len(CHANNELS))]
    path = write_edf(case / "chb01_01.edf", CHANNELS, [SFREQ] * len(CHANNELS), data,
                     start=dt.datetime(2010, 1, 1, 12), physical=[(-3276.8, 3276.8)] * len(CHANNELS),
                     digital=(-32767, 32767))
    atomic_write_text(case / "chb01-summary.txt", "File Name: chb01_01.edf\nNumber of Seizures in File: 1\n"
                      "Seizure Start Time: 100 seconds\nSeizure End Time: 140 seconds\n")
    return path


def _job(edf: str) -> int:
    """One recording through the real reader and pipeline (module-level: picklable for spawn)."""
    from ..data.base import RecordingRef
    from ..data.corpora.chbmit import CORPUS
    from ..data.options import options_record
    from ..data.pipeline import PreprocessParams, process_recording

    path = Path(edf)
    ref = RecordingRef(id=path.stem, subject="chb01", session="01",
                       paths=[path, path.with_name("chb01-summary.txt")])
    result = process_recording(CORPUS, ref, PreprocessParams(options=options_record(CORPUS.options)))
    return int(result.windows.shape[0])


def _warm(_: int) -> int:
    from ..data import pipeline  # noqa: F401  (imports numpy, scipy, pandas in the worker)
    from ..data.corpora import chbmit  # noqa: F401
    return os.getpid()


def _time(edf: Path, workers: int, jobs: int) -> float:
    if workers == 1:
        _job(str(edf))  # warm caches (filter design, page cache)
        start = time.perf_counter()
        for _ in range(jobs):
            _job(str(edf))
        return time.perf_counter() - start
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        list(pool.map(_warm, range(workers * 2)))
        start = time.perf_counter()
        list(pool.map(_job, [str(edf)] * jobs))
        return time.perf_counter() - start


def benchmark_preprocess(quick: bool = False, workers: list[int] | None = None, repeats: int | None = None) -> list[dict]:
    """Rows: workers, recordings, signal_s, wall_s, realtime_factor, realtime_per_core, scaling_efficiency."""
    cores = os.cpu_count() or 1
    counts = sorted(set(workers or [1, cores]))
    seconds = QUICK_S if quick else HOUR_S
    repeats = repeats or (2 if quick else 1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="eegmamba-bench-") as tmp:
        edf = write_workload(Path(tmp), seconds)
        for n in counts:
            jobs = n * repeats
            wall = _time(edf, n, jobs)
            signal_s = float(jobs * seconds)
            rows.append({"benchmark": "preprocess", "workload": f"CHB-MIT-like {seconds} s x {CHANNELS_N} ch @ {SFREQ} Hz",
                         "workers": n, "cores": cores, "recordings": jobs, "signal_s": signal_s,
                         "wall_s": round(wall, 4), "realtime_factor": round(signal_s / wall, 1),
                         "realtime_per_core": round(signal_s / wall / n, 1)})
    base = next((r["realtime_per_core"] for r in rows if r["workers"] == 1), None)
    for r in rows:
        r["scaling_efficiency"] = round(r["realtime_per_core"] / base, 3) if base else None
    return rows
