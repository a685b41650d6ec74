"""Model speed and memory (paper App. I, Tables 9-10): single-task EEGMamba vs a Transformer baseline.

One *cell* is (model, channels, input length). Each cell runs in a fresh Python process by default
(`python -m eegmamba_cli.bench.model '<json>'`), so that one cell's allocations, caches or out-of-memory
death never colour the next. In the cell:

1. build the model (single-task preset: D=128, 2 layers) and a random batch (B, C, L);
2. run one forward at a short length, so that one-time library initialisation (thread pools, kernels)
   is not counted as memory, and record which SDPA kernel ran;
3. baseline: CUDA `torch.cuda.memory_allocated()` after `reset_peak_memory_stats()`; CPU the resident set
   size (VmRSS) after resetting the kernel's high-water mark (`/proc/self/clear_refs` <- 5);
4. `warmup` + `repeats` timed steps; time = median of the repeats (CUDA synchronised), it/s = 1 / time;
5. memory = peak minus baseline: CUDA `max_memory_allocated()`, CPU VmHWM (ru_maxrss where the
   high-water mark cannot be reset). That is the step's working memory: activations and workspaces,
   not the weights or the input batch.
"""
from __future__ import annotations

import json
import re
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn.functional as F

from ..child_env import python_child_env

MODELS = ("eegmamba", "transformer")


@dataclass(frozen=True)
class Cell:
    model: str  # eegmamba | transformer
    channels: int
    length: int
    batch_size: int
    device: str = "cpu"
    attention: str = "math"  # transformer only: math (materialised L x L) | auto (PyTorch's choice)
    mode: str = "forward"  # forward: eval + no_grad | train: forward + backward
    repeats: int = 5
    warmup: int = 2
    threads: int = 0  # 0: torch's default

    @property
    def label(self) -> str:
        return "EEGMamba" if self.model == "eegmamba" else f"Transformer ({self.attention})"


def build_model(cell: Cell) -> torch.nn.Module:
    from models import DatasetSpec, EEGMamba, TransformerBaseline, preset

    cfg = preset("single-task")
    datasets = [DatasetSpec("bench", cell.channels, 2)]
    if cell.model == "eegmamba":
        return EEGMamba(cfg, datasets)
    if cell.model == "transformer":
        return TransformerBaseline(cfg, datasets, attention=cell.attention)
    raise ValueError(f"unknown model {cell.model!r} (expected {', '.join(MODELS)})")


# --- memory probes -------------------------------------------------------------------------------------

def _status_kib(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) if match else None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0). False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return _status_kib("VmHWM") is not None
    except OSError:
        return False


def _peak_rss_kib() -> int:
    hwm = _status_kib("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class _OpRecorder:
    """Names of the aten ops a call dispatches (to tell which SDPA kernel really ran)."""

    def __init__(self):
        from torch.utils._python_dispatch import TorchDispatchMode

        names = self.names = set()

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                names.add(func.name())
                return func(*args, **(kwargs or {}))

        self.mode = Mode()


def attention_kernel(op_names: Iterable[str]) -> str:
    """Map dispatched aten ops to the SDPA kernel that produced them."""
    names = set(op_names)
    fused = {"aten::_scaled_dot_product_flash_attention_for_cpu": "flash (CPU)",
             "aten::_scaled_dot_product_flash_attention": "flash",
             "aten::_scaled_dot_product_efficient_attention": "memory-efficient",
             "aten::_scaled_dot_product_cudnn_attention": "cudnn",
             "aten::_scaled_dot_product_attention_math": "math"}
    found = sorted(label for op, label in fused.items() if op in names)
    if found:
        return "+".join(found)
    if "aten::bmm" in names and any("softmax" in n for n in names):
        return "math"  # the math path decomposes into bmm + softmax: the (B, H, L, L) matrix exists
    return "unknown"


# --- one cell, in this process ---------------------------------------------------------------------------

def measure(cell: Cell) -> dict:
    """Run one cell here and return its row. Raises on out-of-memory (the caller reports it)."""
    from models.ops import backend_name
    from models.st_adaptive import token_count

    if cell.threads:
        torch.set_num_threads(cell.threads)
    device = torch.device(cell.device)
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    model = build_model(cell).to(device).train(cell.mode == "train")
    x = torch.randn(cell.batch_size, cell.channels, cell.length, device=device)
    y = torch.zeros(cell.batch_size, dtype=torch.long, device=device)

    def step(inp):
        if cell.mode == "train":
            logits, aux = model(inp, 0)
            (F.cross_entropy(logits, y[: len(inp)]) + aux["balance"] + aux["z"]).backward()
            model.zero_grad(set_to_none=True)
            return
        with torch.no_grad():
            model.classify(inp, 0)  # what the inference loop runs

    def sync():
        if cuda:
            torch.cuda.synchronize(device)

    recorder = _OpRecorder()
    with recorder.mode:  # a short step: library init + which attention kernel runs
        step(x[:1, :, : min(cell.length, 1000)])
    sync()
    kernel = attention_kernel(recorder.names) if cell.model == "transformer" else "-"

    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        mem_method = "CUDA max_memory_allocated minus allocated before (weights, input excluded)"
    else:
        exact = _reset_peak_rss()
        base = (_status_kib("VmRSS") if exact else _peak_rss_kib()) * 1024
        mem_method = ("peak RSS (VmHWM, reset before the steps) minus RSS before (weights, input excluded)"
                      if exact else "ru_maxrss growth over the high-water mark after model creation")

    times = []
    for _ in range(cell.warmup + cell.repeats):
        sync()
        start = time.perf_counter()
        step(x)
        sync()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times[cell.warmup:])
    peak = torch.cuda.max_memory_allocated(device) if cuda else _peak_rss_kib() * 1024
    return {**row_header(cell), "tokens": token_count(cell.length), "status": "ok",
            "time_ms": round(seconds * 1e3, 3), "it_per_s": round(1.0 / seconds, 3),
            "peak_mem_mib": round(max(peak - base, 0) / 2**20, 1), "attention_kernel": kernel,
            "threads": torch.get_num_threads(), "ssm_backend": backend_name(), "mem_method": mem_method}


def row_header(cell: Cell) -> dict:
    return {"model": cell.label, "channels": cell.channels, "length": cell.length,
            "batch_size": cell.batch_size, "device": cell.device, "mode": cell.mode, "repeats": cell.repeats}


def failed_row(cell: Cell, status: str) -> dict:
    from models.st_adaptive import token_count

    return {**row_header(cell), "tokens": token_count(cell.length), "status": status, "time_ms": None,
            "it_per_s": None, "peak_mem_mib": None,
            "attention_kernel": "-" if cell.model == "eegmamba" else None}


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, (MemoryError, torch.cuda.OutOfMemoryError)) or "can't allocate memory" in str(err) \
        or "out of memory" in str(err).lower()


def measure_safely(cell: Cell) -> dict:
    threads = torch.get_num_threads()  # measure() may change it; in-process runs get it back
    try:
        return measure(cell)
    except Exception as err:  # noqa: BLE001 - a cell reports its failure as a row, never kills the run
        if not _is_oom(err):
            raise
        return failed_row(cell, "OOM")
    finally:
        torch.set_num_threads(threads)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


# --- one cell, in a fresh process ------------------------------------------------------------------------

def run_isolated(cell: Cell, timeout_s: float) -> dict:
    """Run `measure` in a child Python; out-of-memory, crashes and timeouts come back as status rows."""
    env = python_child_env()
    cmd = [sys.executable, "-m", "eegmamba_cli.bench.model", json.dumps(asdict(cell))]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return failed_row(cell, f"timeout (>{timeout_s:.0f} s)")
    if proc.returncode in (-9, 137):
        return failed_row(cell, "OOM (killed)")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return failed_row(cell, f"error: {last[:120]}")
    return json.loads(lines[-1])


# --- the grid --------------------------------------------------------------------------------------------

def _growth(model: str, attention: str) -> tuple[float, float]:
    """Exponents of time and memory in the token count, used only to skip cells that cannot fit."""
    if model == "eegmamba":
        return 1.0, 1.0
    return 2.0, (2.0 if attention == "math" else 1.0)


def available_memory_mib() -> float | None:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    match = re.search(r"^MemAvailable:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) / 1024 if match else None


def run_grid(cells: list[Cell], time_budget_s: float, memory_budget_mib: float | None, isolate: bool = True,
             on_row: Callable[[dict], None] | None = None) -> list[dict]:
    """Measure cells in order of increasing length per (model, channels). A cell whose predicted cost
    (from the previous length, linear for EEGMamba, quadratic for attention) exceeds the time or memory
    budget is skipped, and so is every longer one; a failed cell stops its series too."""
    rows: list[dict] = []
    series: dict[tuple, dict] = {}
    for cell in sorted(cells, key=lambda c: (MODELS.index(c.model), c.attention, c.channels, c.length)):
        key = (cell.model, cell.attention, cell.channels)
        prev = series.get(key)
        row = None
        if prev is not None and prev["status"] != "ok":
            row = failed_row(cell, prev["status"] if prev["status"].startswith("skipped") else "skipped")
        elif prev is not None:
            p_time, p_mem = _growth(cell.model, cell.attention)
            scale = cell.length / prev["length"]
            cost = prev["time_ms"] / 1e3 * scale ** p_time * (cell.warmup + cell.repeats)
            mem = prev["peak_mem_mib"] * scale ** p_mem
            if cost > time_budget_s:
                row = failed_row(cell, f"skipped (~{cost:.0f} s > {time_budget_s:.0f} s budget)")
            elif memory_budget_mib is not None and mem > memory_budget_mib:
                row = failed_row(cell, f"skipped (~{mem:.0f} MiB > {memory_budget_mib:.0f} MiB budget)")
        if row is None:
            row = run_isolated(cell, timeout_s=3 * time_budget_s + 120) if isolate else measure_safely(cell)
        series[key] = row
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


if __name__ == "__main__":  # the child process of run_isolated
    result = measure_safely(Cell(**json.loads(sys.argv[1])))
    print(json.dumps(result), flush=True)
