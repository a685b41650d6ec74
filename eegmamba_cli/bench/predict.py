"""`eegmamba predict` end to end: wall time and peak memory on an 8-hour night and a 1-hour montage.

Recordings are synthetic EDFs (timing does not depend on the signal): one 8-hour single-channel night at
100 Hz (Fpz-Cz, as Sleep-EDF) and one 1-hour 23-channel CHB-MIT-montage recording at 256 Hz. Models are
initialised, untrained checkpoints of the single-task and multitask presets at paper size (timing does not
depend on the weights either; `--quick` shrinks them to width 32 and shortens the recordings, a smoke test
whose numbers mean nothing). Each run is a fresh `python -m eegmamba_cli predict` process, so the times include
start-up, reading, preprocessing and writing the CSV, as a user sees them; peak memory is the process's
maximum resident set (wait4's ru_maxrss). YASA's sleep staging on the same night runs beside it when
yasa is installed (optional extra `[peers]`).

bf16 runs every case on a CPU with native bf16 units (eegmamba_cli.precision); elsewhere it is emulated and
slower, so one case (single-task on the night) shows its cost.

    python -m eegmamba_cli.bench.predict [--quick] [--threads N]
"""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..child_env import python_child_env

NIGHT = dict(name="night-8h-1ch", corpus="sleepedf", hours=8.0, sfreq=100.0)
MONTAGE = dict(name="hour-1h-23ch", corpus="chbmit", hours=1.0, sfreq=256.0)
QUICK_HOURS = {"sleepedf": 0.25, "chbmit": 0.05}
QUICK_WIDTH = 32  # d_model of the --quick models
PRESETS = ("single-task", "multitask")
START = dt.datetime(2020, 5, 1, 22, 0, 0)


def write_recording(directory: Path, corpus: str, hours: float, sfreq: float) -> Path:
    """A synthetic EDF with the corpus's channel names: 10 Hz rhythm plus noise, +-100 uV range."""
    from ..data.edf import write_edf
    from ..data.registry import get_corpus

    channels = list(dict.fromkeys(get_corpus(corpus).info.channels))  # CHB-MIT lists T8-P8 twice
    n = int(round(hours * 3600 * sfreq))
    rng = np.random.default_rng(0)
    t = np.arange(n) / sfreq
    data = [30 * np.sin(2 * np.pi * 10 * t + i) + rng.normal(0, 10, n) for i in range(len(channels))]
    path = directory / f"{corpus}-{hours:g}h.edf"
    write_edf(path, channels, [sfreq] * len(channels), data, start=START,
              physical=[(-200.0, 200.0)] * len(channels))
    return path


def save_model(directory: Path, preset_name: str, corpus: str, d_model: int | None = None) -> Path:
    """An untrained checkpoint of `preset_name` (width `d_model` if given) with the head `train` would
    give `corpus`."""
    from dataclasses import replace

    import torch

    from models import DatasetSpec, EEGMamba, preset

    from ..data.registry import get_corpus
    from ..training.checkpoint import write_checkpoint

    info = get_corpus(corpus).info
    record = dict(name=corpus, n_channels=len(info.channels), n_classes=len(info.class_names), task=info.task,
                  class_names=list(info.class_names), channels=list(info.channels),
                  window_samples=info.window_samples, sfreq=200.0, fingerprint="benchmark",
                  params={"normalize": "zscore", "eps": 1e-6, "bad_channels": "skip", "options": {}})
    config = preset(preset_name)
    if d_model is not None:
        config = replace(config, d_model=d_model)
    torch.manual_seed(0)
    model = EEGMamba(config, [DatasetSpec(corpus, record["n_channels"], record["n_classes"], info.task)])
    meta = dict(kind="eegmamba-checkpoint", model_config=config.to_dict(), datasets=[record], epoch=0,
                fold=1, best_val_loss=None)
    write_checkpoint(directory, model, meta)
    return directory


def timed_process(argv: list[str], env: dict | None = None) -> tuple[float, float, int, str]:
    """(wall s, peak RSS MiB, exit code, last stderr line) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    last = err.strip().splitlines()[-1] if err.strip() else ""
    return wall, usage.ru_maxrss / 1024, proc.returncode, last


YASA_SCRIPT = """
import sys, warnings, mne, yasa
warnings.simplefilter("ignore")
raw = mne.io.read_raw_edf(sys.argv[1], preload=True, verbose=False)
yasa.SleepStaging(raw, eeg_name=sys.argv[2]).predict()
"""


def yasa_available() -> bool:
    try:
        import yasa  # noqa: F401
    except ImportError:
        return False
    return True


def cases(precisions, native_bf16: bool):
    """(recording, preset, precision) to run: every combination, except that emulated bf16 (no native
    units) runs only on the night with the single-task model."""
    for rec in (NIGHT, MONTAGE):
        for preset_name in PRESETS:
            for precision in precisions:
                if precision == "bf16" and not native_bf16 and (rec is not NIGHT or preset_name != "single-task"):
                    continue
                yield rec, preset_name, precision


def child_env(threads: int | None) -> dict:
    env = python_child_env()  # the children import this checkout of eegmamba_cli
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def benchmark_predict(quick: bool = False, threads: int | None = None, precisions=("fp32", "bf16"),
                      yasa: bool = True, on_row=None) -> list[dict]:
    """YASA on the night (when installed and `yasa`), then one row per case (see `cases`); `on_row`
    hears each row as it is measured."""
    from ..precision import cpu_has_native_bf16

    env = child_env(threads)
    plan = list(cases(precisions, cpu_has_native_bf16()))
    hours = {rec["corpus"]: QUICK_HOURS[rec["corpus"]] if quick else rec["hours"] for rec, _, _ in plan}
    rows = []

    def measured(row: dict) -> None:
        rows.append(row)
        if on_row is not None:
            on_row(row)

    with tempfile.TemporaryDirectory(prefix="eegmamba-bench-predict-") as tmp:
        tmp = Path(tmp)
        files = {rec["corpus"]: write_recording(tmp, rec["corpus"], hours[rec["corpus"]], rec["sfreq"])
                 for rec, _, _ in plan}
        if yasa and yasa_available() and "sleepedf" in files:
            result = timed_process([sys.executable, "-c", YASA_SCRIPT, str(files["sleepedf"]), "Fpz-Cz"], env)
            measured(_row(NIGHT, hours["sleepedf"], "yasa", "SleepStaging", "-", False, result, threads))
        models = {}
        for rec, preset_name, precision in plan:
            corpus = rec["corpus"]
            if (preset_name, corpus) not in models:
                models[preset_name, corpus] = save_model(tmp / f"{preset_name}-{corpus}", preset_name, corpus,
                                                         QUICK_WIDTH if quick else None)
            argv = [sys.executable, "-m", "eegmamba_cli", "predict", str(files[corpus]), "-m",
                    str(models[preset_name, corpus]), "--device", "cpu", "--precision", precision,
                    "--out", str(tmp / "out.csv")]
            result = timed_process(argv, env)
            measured(_row(rec, hours[corpus], "eegmamba", preset_name, precision, quick, result, threads))
    return rows


def _row(rec: dict, hours: float, tool: str, model: str, precision: str, quick: bool, result,
         threads: int | None) -> dict:
    wall, mib, code, last = result
    return dict(bench="predict", recording=rec["name"], hours=hours, tool=tool,
                model=f"{model} (d_model {QUICK_WIDTH})" if quick else model, precision=precision,
                wall_s=round(wall, 2), peak_mem_mib=round(mib, 1), status="ok" if code == 0 else last[:120],
                threads=threads or int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count())


def plot_predict(path: Path, rows: list[dict]) -> None:
    """Wall time bars: one group per recording, one bar per tool x model x precision, peak memory on top."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..fileio import atomic_writer

    recordings = list(dict.fromkeys(r["recording"] for r in rows))
    labels = list(dict.fromkeys(_bar_label(r) for r in rows))
    fig = Figure(figsize=(max(6.0, 1.2 * len(labels) * len(recordings)), 4.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.8 / max(len(labels), 1)
    for j, label in enumerate(labels):  # one bar series per label, so the legend names each once
        bars = [(i + (j - (len(labels) - 1) / 2) * width, r) for i, recording in enumerate(recordings)
                for r in rows if r["recording"] == recording and _bar_label(r) == label and r["status"] == "ok"]
        if not bars:
            continue
        ax.bar([x for x, _ in bars], [r["wall_s"] for _, r in bars], width, color=f"C{j}", label=label)
        for x, r in bars:
            ax.annotate(f"{r['peak_mem_mib'] / 1024:.1f} GB", (x, r["wall_s"]), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(recordings)), recordings)
    ax.set_ylabel("wall time (s), whole command")
    ax.set_title("eegmamba predict vs YASA (labels: peak memory)", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_writer(path, "wb") as fh:
        fig.savefig(fh, format="png")


def _bar_label(row: dict) -> str:
    return row["model"] if row["tool"] == "yasa" else f"{row['model']}, {row['precision']}"


def main() -> None:
    import argparse

    from rich.console import Console

    from .report import plain_table

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="15-minute night, 3-minute montage")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32,bf16")
    args = parser.parse_args()
    rows = benchmark_predict(args.quick, args.threads, tuple(args.precisions.split(",")))
    Console(width=250).print(plain_table("eegmamba predict vs YASA", rows))


if __name__ == "__main__":
    main()
