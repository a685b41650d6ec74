"""`eegmamba benchmark`: model speed/memory (the paper's Tables 9-10) and the SSM scan; tables, CSV, PNG."""
from __future__ import annotations

import importlib.util
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..console import UserError, console, handle_errors

CPU_BATCH = 8  # a CPU default that keeps the full grid in minutes; the paper's batch (128) is for a GPU
CUDA_BATCH = 128  # spec §14 [D]
FULL_LENGTHS = (2000, 3000, 5000, 10000, 20000, 40000)  # the paper's Tables 9-10 columns
FULL_CHANNELS = (1, 20)
QUICK_LENGTHS = (2000, 5000)
QUICK_CHANNELS = (1,)


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


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
    import torch

    if device == Device.auto:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == Device.cuda and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available to PyTorch")
    return device.value


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
    scan: Annotated[bool, typer.Option("--scan/--no-scan", help="Also benchmark the SSM scan.")] = True,
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
    """Time EEGMamba against a Transformer baseline, and the SSM scan; print tables, save CSV and PNG."""
    import torch

    from models.ops import backend_name

    from ..bench.model import Cell, available_memory_mib, run_grid
    from ..bench.report import paper_tables, plot_lines, ratio_lines, write_csv

    dev = _resolve_device(device)
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
    if scan:
        _scan_section(out, quick)


def _half(mib: float | None) -> float | None:
    return None if mib is None else mib / 2


def _print_progress(row: dict) -> None:
    if row["status"] == "ok":
        detail = f"{row['time_ms']:.1f} ms/batch, {row['it_per_s']:.2f} it/s, {row['peak_mem_mib']:.0f} MiB"
    else:
        detail = row["status"]
    console.print(f"  {row['model']:<22} {row['channels']:>3} ch {row['length']:>6}: {detail}", highlight=False)


def _scan_section(out: Path, quick: bool) -> None:
    from ..bench.report import plain_table, write_csv

    if importlib.util.find_spec("eegmamba_cli.bench.scan") is None:
        console.print("scan benchmark: not available yet (eegmamba_cli.bench.scan is missing); skipped")
        return
    from ..bench import scan as scan_bench

    if not hasattr(scan_bench, "benchmark_scan"):
        console.print("scan benchmark: eegmamba_cli.bench.scan has no benchmark_scan(); skipped")
        return
    try:
        rows = scan_bench.benchmark_scan(quick=quick)
    except Exception as err:  # noqa: BLE001 - the model results are saved already; report and fail
        console.print(f"[bold red]error:[/] scan benchmark failed: {type(err).__name__}: {err}", highlight=False)
        raise typer.Exit(1) from err
    if not rows:
        console.print("scan benchmark: no rows")
        return
    console.print(plain_table("Selective scan", rows))
    write_csv(out / "scan.csv", rows)
    console.print(f"saved {out / 'scan.csv'}", highlight=False)
