"""Model speed on CPU: the fused front end against the unfused one, fp32 against bf16 autocast.

Rows (windows per second, median over repeats, with the slowest and fastest repeat):

* train: single-task preset, 6 channels x 700 samples, batch 32: forward, loss, backward, AdamW step;
* infer: eval + no_grad forward, 1 channel x 6000 samples (a 30-s sleep epoch) and 23 channels x 800
  (a 4-s CHB-MIT window), single-task and multitask presets.

The variants of one shape run interleaved (ref, fused, ref, fused, ...) so that a machine shared with
other work slows them alike. bf16 rows are only worth reading on CPUs with native bf16 units
(`eegmamba_cli.precision.cpu_has_native_bf16`); elsewhere they show the cost of emulation.

    python -m eegmamba_cli.bench.speed --threads 2 [--quick] [--precisions fp32,bf16]
"""
from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import torch

from models import DatasetSpec, EEGMamba, preset

from ..precision import autocast


@dataclass(frozen=True)
class Shape:
    mode: str  # train | infer
    preset: str
    channels: int
    samples: int
    batch: int


SHAPES = (
    Shape("train", "single-task", 6, 700, 32),
    Shape("infer", "single-task", 1, 6000, 32),
    Shape("infer", "single-task", 23, 800, 32),
    Shape("infer", "multitask", 1, 6000, 32),
    Shape("infer", "multitask", 23, 800, 32),
)
QUICK_SHAPES = (Shape("train", "single-task", 6, 700, 8), Shape("infer", "single-task", 1, 6000, 8),
                Shape("infer", "multitask", 23, 800, 8))


def _step(shape: Shape, model, optimizer, x, y, precision: str) -> None:
    if shape.mode == "infer":
        with torch.no_grad(), autocast("cpu", precision):
            model.classify(x, 0)  # what the inference loop runs
        return
    with autocast("cpu", precision):
        logits, aux = model(x, 0)
        loss, _ = model.loss(logits.float(), y, aux)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def gflop_per_window(shape: Shape, model, optimizer, x, y, precision: str) -> float:
    """Matmul/conv FLOPs of one step per window (FlopCounterMode): exact, whatever the machine's load."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        if shape.mode == "train":
            _step(shape, model, optimizer, x, y, precision)
        else:  # with grad enabled: FlopCounterMode's module tracker trips on no_grad in the MoE
            with autocast("cpu", precision):
                model.classify(x, 0)
    return counter.get_total_flops() / shape.batch / 1e9


def measure(shape: Shape, variants, repeats: int, steps: int) -> list[dict]:
    """variants: (fused, precision) pairs, timed interleaved on one model (the fusion is a flag)."""
    torch.manual_seed(0)
    model = EEGMamba(preset(shape.preset), [DatasetSpec("bench", shape.channels, 5)])
    model.train(shape.mode == "train")
    optimizer = torch.optim.AdamW(model.param_groups(1e-6), lr=1e-4) if shape.mode == "train" else None
    x = torch.randn(shape.batch, shape.channels, shape.samples)
    y = torch.randint(0, 5, (shape.batch,))
    rates = {v: [] for v in variants}
    gflop = {}
    for fused, precision in variants:  # warm-up (thread pools, oneDNN primitives), counting FLOPs
        model.st.fused = fused
        gflop[(fused, precision)] = gflop_per_window(shape, model, optimizer, x, y, precision)
    for _ in range(repeats):
        for fused, precision in variants:
            model.st.fused = fused
            start = time.perf_counter()
            for _ in range(steps):
                _step(shape, model, optimizer, x, y, precision)
            rates[(fused, precision)].append(shape.batch * steps / (time.perf_counter() - start))
    return [dict(bench="speed", mode=shape.mode, preset=shape.preset, channels=shape.channels,
                 samples=shape.samples, batch=shape.batch, front_end="fused" if fused else "unfused",
                 precision=precision, gflop_per_window=round(gflop[(fused, precision)], 3),
                 windows_per_s=round(statistics.median(r), 2),
                 min_per_s=round(min(r), 2), max_per_s=round(max(r), 2), repeats=len(r),
                 threads=torch.get_num_threads())
            for (fused, precision), r in rates.items()]


def benchmark_speed(quick: bool = False, precisions=("fp32",), repeats: int | None = None,
                    shapes=None) -> list[dict]:
    shapes = shapes or (QUICK_SHAPES if quick else SHAPES)
    repeats = repeats or (2 if quick else 3)
    variants = [(fused, p) for p in precisions for fused in (False, True)]
    rows = []
    for shape in shapes:
        rows.extend(measure(shape, variants, repeats, steps=1))
    return rows


def main() -> None:
    from rich.console import Console

    from .report import plain_table

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--precisions", default="fp32", help="comma-separated: fp32,bf16")
    parser.add_argument("--only", default=None, help="train | infer: one mode only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shapes = [s for s in (QUICK_SHAPES if args.quick else SHAPES) if args.only in (None, s.mode)]
    rows = benchmark_speed(args.quick, tuple(args.precisions.split(",")), args.repeats, shapes)
    Console(width=250).print(plain_table("Model speed (windows/s, median of repeats)", rows))


if __name__ == "__main__":
    main()
