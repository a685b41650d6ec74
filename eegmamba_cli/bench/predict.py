"""`eegmamba predict` end to end: wall time and peak memory on an 8-hour night and a 1-hour montage.

Recordings are synthetic EDFs (timing does not depend on the signal): one 8-hour single-channel night at
100 Hz (Fpz-Cz, as Sleep-EDF) and one 1-hour 23-channel CHB-MIT-montage recording at 256 Hz. Models are
initialised, untrained checkpoints of the single-task and multitask presets (timing does not depend on
the weights either). Each run is a fresh `python -m eegmamba_cli predict` process, so the times include
start-up, reading, preprocessing and writing the CSV, as a user sees them; peak memory is the process's
maximum resident set (wait4's ru_maxrss). YASA's sleep staging on the same night runs beside it when
yasa is installed (optional extra `[peers]`).
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

NIGHT = dict(name="night-8h-1ch", corpus="sleepedf", hours=8.0, sfreq=100.0)
MONTAGE = dict(name="hour-1h-23ch", corpus="chbmit", hours=1.0, sfreq=256.0)
QUICK_HOURS = {"sleepedf": 0.25, "chbmit": 0.05}
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


def save_model(directory: Path, preset_name: str, corpus: str) -> Path:
    """An untrained checkpoint of `preset_name` with the head `train` would give `corpus`."""
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


def predict_supports_precision() -> bool:
    out = subprocess.run([sys.executable, "-m", "eegmamba_cli", "predict", "--help"], capture_output=True,
                         text=True).stdout
    return "--precision" in out


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


def benchmark_predict(quick: bool = False, threads: int | None = None,
                      precisions=("fp32", "bf16")) -> list[dict]:
    """One row per (recording, model preset, precision), plus YASA on the night when installed."""
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    supports_precision = predict_supports_precision()
    if not supports_precision:
        precisions = ("fp32",)  # `predict --precision` not wired yet: the default path only
    rows = []
    with tempfile.TemporaryDirectory(prefix="eegmamba-bench-predict-") as tmp:
        tmp = Path(tmp)
        for rec in (NIGHT, MONTAGE):
            hours = QUICK_HOURS[rec["corpus"]] if quick else rec["hours"]
            edf = write_recording(tmp, rec["corpus"], hours, rec["sfreq"])
            for preset_name in ("single-task", "multitask"):
                model = save_model(tmp / f"{preset_name}-{rec['corpus']}", preset_name, rec["corpus"])
                for precision in precisions:
                    argv = [sys.executable, "-m", "eegmamba_cli", "predict", str(edf), "-m", str(model),
                            "--device", "cpu", "--out", str(tmp / "out.csv")]
                    if supports_precision:
                        argv += ["--precision", precision]
                    wall, mib, code, last = timed_process(argv, env)
                    rows.append(dict(bench="predict", recording=rec["name"], hours=hours, tool="eegmamba",
                                     model=preset_name, precision=precision, wall_s=round(wall, 2),
                                     peak_mem_mib=round(mib, 1), status="ok" if code == 0 else last[:120]))
            if rec is NIGHT and yasa_available():
                wall, mib, code, last = timed_process(
                    [sys.executable, "-c", YASA_SCRIPT, str(edf), "Fpz-Cz"], env)
                rows.append(dict(bench="predict", recording=rec["name"], hours=hours, tool="yasa",
                                 model="SleepStaging", precision="-", wall_s=round(wall, 2),
                                 peak_mem_mib=round(mib, 1), status="ok" if code == 0 else last[:120]))
    return rows


def main() -> None:
    import argparse

    from rich.console import Console

    from .report import plain_table

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="15-minute night, 3-minute montage")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    Console(width=250).print(plain_table("eegmamba predict vs YASA", benchmark_predict(args.quick, args.threads)))


if __name__ == "__main__":
    main()
