"""`eegmamba demo`: the whole toolkit end to end on a synthetic corpus, on CPU, in a few minutes.

    1. write a small synthetic corpus in the native formats of all eight corpora   DIR/raw/<name>/
    2. preprocess it with the real readers and the shared pipeline                 DIR/cache/<name>/
    3. train one demo-sized multi-task EEGMamba on fold 1, epoch by epoch, until    DIR/run/
       the time budget is spent (each call to the trainer resumes the last one)
    4. evaluate fold 1 (test subjects never seen in training)                       DIR/run/results.*
    5. predict a synthetic Sleep-EDF night and a CHB-MIT recording                  DIR/predictions/

Nothing is downloaded. The model is deliberately small (see DEMO_MODEL) so that it trains on two CPU cores;
its numbers say that the pipeline works, not how EEGMamba performs on real EEG.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from rich.table import Table

from ..console import UserError, console
from ..data.registry import CORPUS_NAMES
from ..fileio import atomic_write_json, atomic_write_text
from ..training.events import EpochMetrics
from . import corpus as demo_corpus

MARKER = ".eegmamba-demo"  # a folder the demo made (and may clear); any other non-empty folder is refused
SUBFOLDERS = ("raw", "cache", "run", "predictions")
FOLD = 1


@dataclass(frozen=True)
class DemoModel:
    """The demo-sized model and its training (the paper: D 128, 8 BiMamba + 8 MoE blocks, batch 128,
    learning rate 2e-4, 100 epochs)."""

    d_model: int = 32
    layers: int = 2  # BiMamba blocks, each followed by a MoE block
    moe: bool = True
    balance_weight: float = 0.01  # the ST-MoE paper's weights (docs/design.md): at 1.0 the auxiliary losses
    z_weight: float = 0.001  # hold the CE at chance for several epochs (docs/commands/demo.md)
    batch_size: int = 8
    lr: float = 7e-4  # at 1e-3 and 2e-3 the activations on the 1876-token DEAP windows grew until DEAP
    grad_clip: float | None = 1.0  # fell back to chance (epoch 14-15); the clip guards against that step
    epochs: int = 16


DEMO_MODEL = DemoModel()
TINY_MODEL = DemoModel(d_model=16, layers=1, epochs=1)


@dataclass
class DemoReport:
    out: Path
    seconds: dict[str, float] = field(default_factory=dict)
    windows: dict[str, int] = field(default_factory=dict)
    epochs: int = 0
    threads: list[int] = field(default_factory=list)  # PyTorch threads of each epoch
    parameters: int = 0
    results: pd.DataFrame | None = None
    predictions: list[dict] = field(default_factory=list)


def threads_for(idle: float | None) -> int:
    """PyTorch threads for `idle` cores: at most 4, at least 1 (1 when unknown). On busy cores PyTorch's
    intra-op threads spin while they wait for each other, so a loaded machine trains faster with one
    thread (demo.md)."""
    return max(1, min(4, int(idle + 0.5))) if idle is not None else 1


def auto_threads() -> int:
    """Threads for the cores idle right now."""
    return threads_for(idle_cores(interval=0.25))


@dataclass(frozen=True)
class CpuSnapshot:
    idle_ticks: int  # whole machine, from /proc/stat: idle + iowait
    total_ticks: int
    own_cpu_s: float  # this process, all its threads
    wall_s: float


def cpu_snapshot() -> CpuSnapshot | None:
    """The machine's and this process's CPU counters now (Linux); None where /proc/stat is missing."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return CpuSnapshot(fields[3] + fields[4], sum(fields[:8]), time.process_time(), time.perf_counter())


def idle_cores_since(before: CpuSnapshot | None) -> float | None:
    """Cores that other processes left idle since `before`: all cores less their busy share, where this
    process's own CPU time is not counted as busy. Measured over a whole epoch it also sees a twin job
    that pauses when this one does (two demos started together), which a short sample between epochs
    misses."""
    after = cpu_snapshot()
    if before is None or after is None or after.total_ticks <= before.total_ticks:
        return None
    cores = os.cpu_count() or 1
    busy = cores * (1 - (after.idle_ticks - before.idle_ticks) / (after.total_ticks - before.total_ticks))
    own = (after.own_cpu_s - before.own_cpu_s) / max(after.wall_s - before.wall_s, 1e-9)
    return cores - max(busy - own, 0.0)


def idle_cores(interval: float = 0.5) -> float | None:
    """Idle cores over the next `interval` seconds; off Linux, from the 1-minute load average (which lags:
    it still counts work that has just ended); None when neither is available."""
    before = cpu_snapshot()
    if before is not None:
        time.sleep(interval)
        return idle_cores_since(before)
    try:
        return (os.cpu_count() or 1) - os.getloadavg()[0]
    except OSError:
        return None


def prepare_folder(out: Path) -> None:
    """Refuse to write into a folder the demo did not make; clear an earlier demo's outputs."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise UserError(f"{out}: exists and is not an earlier demo folder; choose another --out "
                        "(the demo clears its folder before writing)")
    for name in SUBFOLDERS:
        shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / MARKER, "written by `eegmamba demo`; its subfolders are replaced on the next run\n")


def run_demo(out: Path, minutes: float, seed: int, tiny: bool = False, epochs: int | None = None,
             threads: int | None = None) -> DemoReport:
    import torch

    out = Path(out)
    size = demo_corpus.TINY if tiny else demo_corpus.FULL
    model = TINY_MODEL if tiny else DEMO_MODEL
    if epochs is not None:
        model = replace(model, epochs=epochs)
    report = DemoReport(out)
    prepare_folder(out)
    before = torch.get_num_threads()
    try:
        with _timed(report, "generate"):
            console.print(f"[bold]1/5[/] writing a synthetic corpus in the native formats of 8 corpora "
                          f"to {out / 'raw'}", highlight=False)
            written = demo_corpus.write_all(out / "raw", size, seed)
        with _timed(report, "preprocess"):
            console.print("[bold]2/5[/] preprocessing with the real readers and the shared pipeline")
            report.windows = preprocess_all(out, written)
        with _timed(report, "train"):
            train_for(out, model, minutes * 60, seed, report, threads)
        with _timed(report, "evaluate"):
            console.print(f"[bold]4/5[/] evaluating fold {FOLD} (subjects held out from training)")
            report.results = evaluate(out)
        with _timed(report, "predict"):
            console.print("[bold]5/5[/] predicting whole recordings with `eegmamba predict`")
            report.predictions = predict_examples(out, written)
    finally:
        torch.set_num_threads(before)
    write_summary(report, model, minutes, seed, tiny)
    return report


@contextlib.contextmanager
def _timed(report: DemoReport, name: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        report.seconds[name] = time.perf_counter() - start


# --- steps ----------------------------------------------------------------------------------------

def preprocess_all(out: Path, written: dict[str, list[str]]) -> dict[str, int]:
    from ..data.pipeline import preprocess_corpus

    windows = {}
    for name in written:
        raw = out / "raw" / name
        options = {"subjects_file": str(raw / "subjects.txt")} if name == "shhs" else None
        result = preprocess_corpus(name, raw, out / "cache", workers=1, options=options, strict=True,
                                   progress=False)
        windows[name] = int(result.cache.info["n_windows"])
    console.print("  windows per dataset: " + ", ".join(f"{n} {w}" for n, w in windows.items()), highlight=False)
    return windows


def train_for(out: Path, model: DemoModel, budget_s: float, seed: int, report: DemoReport,
              threads: int | None = None) -> None:
    """Train `model.epochs` epochs of fold 1, one trainer call per epoch (each resumes the last); no
    epoch starts once `budget_s` has passed (at least one runs). `threads` None: before each epoch, as
    many PyTorch threads as other jobs left cores idle (they may have started or ended meanwhile)."""
    import torch

    from ..training.trainer import TrainConfig, train

    console.print(f"[bold]3/5[/] training a [bold]demo-sized[/] EEGMamba (d_model {model.d_model}, "
                  f"BiMamba blocks {model.layers}{', MoE on' if model.moe else ', no MoE'}; the paper's: 128, "
                  f"8 + 8 MoE) on fold {FOLD}, {model.epochs} epochs on CPU ("
                  + (f"{threads} thread(s)" if threads else "threads: the cores idle before each epoch") + ")",
                  highlight=False)
    start, snapshot = time.perf_counter(), None
    for epoch in range(1, model.epochs + 1):
        if epoch > 1 and time.perf_counter() - start > budget_s:
            console.print(f"[yellow]note:[/] stopped after {epoch - 1} of {model.epochs} epochs: the "
                          f"{budget_s / 60:g}-minute budget (--minutes) is spent", highlight=False)
            break
        n_threads = threads
        if n_threads is None:  # before the first epoch a short sample; then what others left idle in the last
            n_threads = auto_threads() if epoch == 1 else threads_for(idle_cores_since(snapshot))
            snapshot = cpu_snapshot()
        report.threads.append(n_threads)
        torch.set_num_threads(n_threads)
        cfg = TrainConfig(out=out / "run", data=out / "cache", fold=str(FOLD), d_model=model.d_model,
                          layers=model.layers, ablations=() if model.moe else ("no-moe",), epochs=epoch,
                          balance_weight=model.balance_weight, z_weight=model.z_weight,
                          grad_clip=model.grad_clip,
                          batch_size=model.batch_size, lr=model.lr, seed=seed, device="cpu", resume=True)
        # quiet: each resumed call would repeat the split sizes; the demo prints one line per epoch instead
        train(cfg, on_epoch=lambda m: _epoch_done(m, report, model.epochs, n_threads), quiet=True)
        report.epochs = epoch


def _epoch_done(m: EpochMetrics, report: DemoReport, epochs: int, threads: int) -> None:
    report.parameters = m.plan.parameters
    _print_epoch(m, epochs, threads)


def _print_epoch(m: EpochMetrics, epochs: int, threads: int) -> None:
    if m.epoch == 1:
        order = sorted(m.plan.sizes, key=lambda n: CORPUS_NAMES.index(n) if n in CORPUS_NAMES else len(CORPUS_NAMES))
        console.print(f"fold {FOLD} train/val/test windows: {m.plan.sizes_line(order)}", highlight=False)
    best = " (best)" if m.is_best else ""
    val = f"{m.val_loss:.4f}" if m.val_loss is not None else "-"
    console.print(f"fold {FOLD} epoch {m.epoch}/{epochs}: train loss {m.train_loss:.4f}, val loss {val}{best}, "
                  f"{m.windows_per_s:,.0f} windows/s, {m.time_s:.1f} s, {threads} thread(s)", highlight=False)


def evaluate(out: Path) -> pd.DataFrame:
    from ..training.evaluation import EvalConfig, evaluate_run

    return pd.DataFrame(evaluate_run(EvalConfig(run_dir=out / "run", device="cpu"))["per_fold"])


def predict_examples(out: Path, written: dict[str, list[str]]) -> list[dict]:
    """The test-fold Sleep-EDF night (hypnogram) and CHB-MIT recording (seizure timeline)."""
    from ..predict import load_head, predict_recording
    from ..predict.output import save_plot, summary_tables, write_windows

    examples = [("sleepedf", out / "raw/sleepedf/sleep-cassette" / f"SC4{written['sleepedf'][0]}1E0-PSG.edf"),
                ("chbmit", out / "raw/chbmit" / written["chbmit"][0] / f"{written['chbmit'][0]}_01.edf")]
    done = []
    for dataset, recording in examples:
        head = load_head(out / "run", dataset, "cpu")
        prediction = predict_recording(recording, head)
        stem = out / "predictions" / recording.stem
        write_windows(prediction, stem.with_suffix(".csv"))
        save_plot(prediction, stem.with_suffix(".png"))
        console.print(summary_tables(prediction)[-1])  # the mapping is trivial here: names match
        agreement = _agreement(prediction, out, dataset, recording)
        done.append(dict(dataset=dataset, recording=str(recording), csv=str(stem.with_suffix(".csv")),
                         png=str(stem.with_suffix(".png")), windows=len(prediction.windows), agreement=agreement))
    return done


def _agreement(prediction, out: Path, dataset: str, recording: Path) -> float | None:
    """Share of windows whose prediction matches the label preprocessing gave the same window."""
    from ..data.cache import WindowCache

    cache = WindowCache(out / "cache" / dataset)
    ids = {recording.stem, recording.stem[:8]}  # CHB-MIT ids are file stems, Sleep-EDF ids SC4ssNx0
    rows = cache.manifest[cache.manifest["recording"].astype(str).isin(ids)]
    if rows.empty:
        return None
    truth = dict(zip(np.round(rows["start_s"].to_numpy(), 3), rows["label"].to_numpy()))
    names = prediction.head.class_names
    pairs = [(names.index(p), truth[round(s, 3)]) for s, p in
             zip(prediction.windows["start_s"], prediction.windows["prediction"]) if round(s, 3) in truth]
    return float(np.mean([a == b for a, b in pairs])) if pairs else None


# --- the report -----------------------------------------------------------------------------------

def results_table(results: pd.DataFrame) -> Table:
    from ..training.paper import DISPLAY_NAMES

    table = Table(title=f"Demo results, fold {FOLD} test subjects (synthetic data, demo-sized model)",
                  title_justify="left")
    for column in ("dataset", "task", "test windows", "accuracy", "balanced acc.", "chance", "AUROC", "F1 (w)"):
        table.add_column(column, justify="left" if column in ("dataset", "task") else "right")
    for row in results.itertuples(index=False):
        chance = 1 / _n_classes(row.dataset)
        table.add_row(DISPLAY_NAMES.get(row.dataset, row.dataset), row.task, str(row.n_windows),
                      f"{row.accuracy:.3f}", f"{row.balanced_accuracy:.3f}", f"{chance:.3f}",
                      f"{row.auroc:.3f}", f"{row.f1_weighted:.3f}")
    return table


def _n_classes(dataset: str) -> int:
    from ..data.registry import get_corpus

    return len(get_corpus(dataset).info.class_names)


def timing_table(report: DemoReport) -> Table:
    table = Table(title="Time", title_justify="left")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    for step, seconds in report.seconds.items():
        table.add_row(step, f"{seconds:.1f}")
    table.add_row("total", f"{sum(report.seconds.values()):.1f}", style="bold")
    return table


def write_summary(report: DemoReport, model: DemoModel, minutes: float, seed: int, tiny: bool) -> None:
    atomic_write_json(report.out / "demo-summary.json", dict(
        seed=seed, tiny=tiny, minutes=minutes, threads=report.threads, model=asdict(model),
        parameters=report.parameters,
        epochs=report.epochs, fold=FOLD, windows=report.windows, seconds=report.seconds,
        total_seconds=sum(report.seconds.values()),
        results=report.results.to_dict(orient="records") if report.results is not None else [],
        predictions=report.predictions))
