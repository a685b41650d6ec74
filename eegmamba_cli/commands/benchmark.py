"""`eegmamba benchmark`: model speed/memory (the paper's Tables 9-10), the SSM scan, preprocessing and training
throughput, model speed per front end and precision, and `eegmamba predict` end to end beside YASA; rich
tables, CSV and PNG."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..console import UserError, console, handle_errors
from .options import Device, settings_as_flags

CPU_BATCH = 8  # a CPU default that keeps the full grid in minutes; the paper's batch (128) is for a GPU
CUDA_BATCH = 128  # our choice for the CUDA rows (docs/benchmarks.md)
FULL_LENGTHS = (2000, 3000, 5000, 10000, 20000, 40000)  # the paper's Tables 9-10 columns
FULL_CHANNELS = (1, 20)
QUICK_LENGTHS = (2000, 5000)
QUICK_CHANNELS = (1,)


class Attention(str, Enum):
    math = "math"
    auto = "auto"
    both = "both"


class Mode(str, Enum):
    forward = "forward"
    train = "train"


def _int_list(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"--{what}: expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise UserError(f"--{what}: expected positive integers, got {text!r}")
    return values


def _resolve_device(device: Device) -> str:
    from ..training.distributed import resolve_device

    with settings_as_flags():
        return resolve_device(device.value).type


@handle_errors
def main(
    out: Annotated[Path, typer.Option(help="Folder for model.csv, scan.csv and the PNG plots.")] = Path("bench-out"),
    device: Annotated[Device, typer.Option(help="Where to run the model benchmark.")] = Device.auto,
    batch_size: Annotated[Optional[int], typer.Option(
        help=f"Batch size. Default: {CUDA_BATCH} on CUDA (as the paper), {CPU_BATCH} on CPU.", min=1)] = None,
    lengths: Annotated[Optional[str], typer.Option(
        help="Input lengths in samples, comma-separated. Default: 2000,3000,5000,10000,20000,40000 "
             "(--quick: 2000,5000).")] = None,
    channels: Annotated[Optional[str], typer.Option(
        help="Channel counts, comma-separated. Default: 1,20 (--quick: 1).")] = None,
    repeats: Annotated[Optional[int], typer.Option(
        help="Timed steps per cell (median reported). Default 5 (--quick: 3).", min=1)] = None,
    warmup: Annotated[Optional[int], typer.Option(
        help="Untimed steps before the timed ones. Default 2 (--quick: 1).", min=0)] = None,
    quick: Annotated[bool, typer.Option(
        "--quick/--no-quick", help="A small subset: 1 channel, 2000 and 5000 samples.")] = False,
    model: Annotated[bool, typer.Option("--model/--no-model", help="EEGMamba vs Transformer grid.")] = True,
    scan: Annotated[bool, typer.Option("--scan/--no-scan", help="The SSM scan alone.")] = True,
    preprocess: Annotated[bool, typer.Option(
        "--preprocess/--no-preprocess", help="Preprocessing throughput (one CHB-MIT hour).")] = True,
    train: Annotated[bool, typer.Option("--train/--no-train", help="Training throughput.")] = True,
    speed: Annotated[bool, typer.Option(
        "--speed/--no-speed", help="Windows/s of the presets: fused vs unfused front end, fp32 vs bf16.")] = True,
    predict: Annotated[bool, typer.Option(
        "--predict/--no-predict", help="`eegmamba predict` on an 8-hour night and a 1-hour 23-channel "
                                       "recording (single-task, multitask; fp32, bf16), beside YASA if "
                                       "installed. Minutes; --quick: tiny models, short recordings.")] = True,
    attention: Annotated[Attention, typer.Option(
        help="Transformer attention: math (materialises L x L, as the paper's baselines), auto "
             "(PyTorch's fused kernel, linear memory), or both.")] = Attention.math,
    mode: Annotated[Mode, typer.Option(
        help="forward: eval + no_grad. train: forward + backward.")] = Mode.forward,
    time_budget: Annotated[Optional[float], typer.Option(
        help="Seconds per cell; a cell predicted to take longer is skipped. Default 60 on CPU, 300 on "
             "CUDA (--quick: 20).", min=1)] = None,
    threads: Annotated[Optional[int], typer.Option(
        help="CPU threads per cell. Default: PyTorch's (all cores); --quick on CPU: 1, which is steadier "
             "on a shared machine.", min=1)] = None,
    isolate: Annotated[bool, typer.Option(
        "--isolate/--no-isolate", help="Run each cell in a fresh process (honest CPU memory).")] = True,
) -> None:
    """Time EEGMamba against a Transformer baseline, the SSM scan, preprocessing and training."""
    dev = _resolve_device(device)
    if model:
        _model_section(out, dev, batch_size, lengths, channels, repeats, warmup, quick, attention, mode,
                       time_budget, threads, isolate)
    if scan:
        from ..bench.scan import benchmark_scan

        _rows_section(out / "scan.csv", "Selective scan", lambda: benchmark_scan(quick=quick))
    if preprocess:
        from ..bench.preprocess import benchmark_preprocess

        _rows_section(out / "preprocess.csv", "Preprocessing throughput",
                      lambda: benchmark_preprocess(quick=quick))
    if train:
        from ..bench.train import benchmark_train

        _rows_section(out / "train.csv", "Training throughput", lambda: benchmark_train(quick=quick, device=dev))
    if speed:
        _speed_section(out, quick, threads)
    if predict:
        _predict_section(out, quick, threads)


def _speed_section(out: Path, quick: bool, threads: int | None) -> None:
    import torch

    from ..bench.speed import benchmark_speed

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    precisions = ("fp32",) if quick else ("fp32", "bf16")  # bf16 on CPU: see eegmamba_cli.precision
    try:
        _rows_section(out / "speed.csv", "Model speed (windows/s, median of repeats)",
                      lambda: benchmark_speed(quick=quick, precisions=precisions))
    finally:  # the caller's thread count (a library caller's later runs must not change their bits)
        torch.set_num_threads(before)


def _predict_section(out: Path, quick: bool, threads: int | None) -> None:
    from ..bench.predict import benchmark_predict, plot_predict

    def progress(row: dict) -> None:
        console.print(f"  {row['recording']} {row['tool']} {row['model']} {row['precision']}: "
                      f"{row['wall_s']} s, {row['peak_mem_mib']:.0f} MiB, {row['status']}", highlight=False)

    rows = _rows_section(out / "predict.csv", "eegmamba predict vs YASA (whole command)",
                         lambda: benchmark_predict(quick=quick, threads=threads, on_row=progress))
    if rows:
        plot_predict(out / "predict.png", rows)
        console.print(f"saved {out / 'predict.png'}", highlight=False)


def _model_section(out, dev, batch_size, lengths, channels, repeats, warmup, quick, attention, mode,
                   time_budget, threads, isolate) -> None:
    import torch

    from models.ops import backend_name

    from ..bench.model import Cell, available_memory_mib, run_grid
    from ..bench.report import paper_tables, plot_lines, ratio_lines, write_csv

    batch = batch_size or (CUDA_BATCH if dev == "cuda" else CPU_BATCH)
    lens = _int_list(lengths, "lengths") if lengths else (QUICK_LENGTHS if quick else FULL_LENGTHS)
    chans = _int_list(channels, "channels") if channels else (QUICK_CHANNELS if quick else FULL_CHANNELS)
    repeats = repeats or (3 if quick else 5)
    warmup = warmup if warmup is not None else (1 if quick else 2)
    budget = time_budget or (20.0 if quick else (300.0 if dev == "cuda" else 60.0))
    mem_budget = None if dev == "cuda" else _half(available_memory_mib())
    threads = threads or (1 if quick and dev == "cpu" else 0)
    kinds = ("math", "auto") if attention == Attention.both else (attention.value,)

    batch_note = "" if batch_size else f" (default on {dev.upper() if dev == 'cuda' else 'CPU'})"
    console.print(f"[bold]Model benchmark[/]: device {dev}, batch size {batch}{batch_note}, mode {mode.value}, "
                  f"lengths {','.join(map(str, lens))}, channels {','.join(map(str, chans))}, "
                  f"{warmup} warm-up + {repeats} timed steps, budget {budget:.0f} s/cell, "
                  f"threads {threads or torch.get_num_threads()}, SSM backend {backend_name()}", highlight=False)
    cells = [Cell("eegmamba", c, n, batch, dev, "-", mode.value, repeats, warmup, threads)
             for c in chans for n in lens]
    cells += [Cell("transformer", c, n, batch, dev, k, mode.value, repeats, warmup, threads)
              for k in kinds for c in chans for n in lens]
    rows = run_grid(cells, budget, mem_budget, isolate=isolate, on_row=_print_progress)

    method = next((r["mem_method"] for r in rows if r.get("mem_method")), "")
    where = ("each cell in a fresh process" if isolate else
             "all cells in this process, so memory freed by an earlier cell is reused and under-counted")
    caption = (f"Batch {batch} on {dev}, {mode.value}, {warmup} warm-up + {repeats} timed steps; speed = 1 / "
               f"median time per batch. Memory: {method}; {where}. skipped: predicted over the "
               f"{budget:.0f} s time budget (or half the free RAM on CPU).")
    for table in paper_tables(rows, caption):
        console.print(table)
    for line in ratio_lines(rows, 20000):
        console.print(line, highlight=False)

    out.mkdir(parents=True, exist_ok=True)
    columns = ["model", "channels", "length", "tokens", "batch_size", "device", "mode", "status", "time_ms",
               "it_per_s", "peak_mem_mib", "attention_kernel", "repeats", "threads", "ssm_backend", "mem_method"]
    write_csv(out / "model.csv", rows, columns)
    title = f"batch {batch}, {dev}, {mode.value}"
    plot_lines(out / "model_time.png", rows, "time_ms", "time per batch (ms)", f"Time per batch vs length ({title})")
    plot_lines(out / "model_memory.png", rows, "peak_mem_mib", "peak memory (MiB)",
               f"Peak memory vs length ({title})")
    console.print(f"saved {out / 'model.csv'}, {out / 'model_time.png'}, {out / 'model_memory.png'}",
                  highlight=False)


def _half(mib: float | None) -> float | None:
    return None if mib is None else mib / 2


def _print_progress(row: dict) -> None:
    if row["status"] == "ok":
        detail = f"{row['time_ms']:.1f} ms/batch, {row['it_per_s']:.2f} it/s, {row['peak_mem_mib']:.0f} MiB"
    else:
        detail = row["status"]
    console.print(f"  {row['model']:<22} {row['channels']:>3} ch {row['length']:>6}: {detail}", highlight=False)


def _rows_section(csv_path: Path, title: str, produce) -> list[dict]:
    """Run one benchmark that returns rows (dicts), print them as a table, save them as CSV, return them."""
    from ..bench.report import plain_table, write_csv

    rows = produce()
    if not rows:
        console.print(f"{title}: no rows")
        return rows
    console.print(plain_table(title, rows))
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(csv_path, rows)
    console.print(f"saved {csv_path}", highlight=False)
    return rows
