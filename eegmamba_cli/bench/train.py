"""Training throughput: windows per second of full optimisation steps on synthetic batches.

Each row times the same `train_step` that `eegmamba train` runs (forward, loss with the MoE auxiliary
terms, backward, AdamW; bf16 autocast on CUDA), for the single-task preset (one dataset) and the
multi-task preset (all eight paper datasets' heads), on CHB-MIT-shaped windows (23 channels, 4 s).
"""
from __future__ import annotations

import time

import torch

from models import EEGMamba, preset

from ..data.registry import dataset_specs, segment_samples

from ..training.trainer import make_optimizer, train_step

DATASET = "chbmit"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def benchmark_train(quick: bool = False, device: str = "cpu", batch: int | None = None) -> list[dict]:
    """One row per preset: windows/s of training steps; peak memory on CUDA (None on CPU).

    The batch defaults to the paper's 128 on CUDA but 8 on CPU: the pure-PyTorch scan keeps every
    step's state for backward, and batch 128 of 4-s windows needed more than 24 GB of RAM.
    """
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    spec = next(d for d in dataset_specs() if d.name == DATASET)
    if batch is None:
        batch = 4 if quick else (128 if cuda else 8)
    samples = 200 if quick else segment_samples()[DATASET]
    warmup, steps = (1, 1) if quick else ((5, 20) if cuda else (1, 3))
    rows = []
    for name in ("single-task", "multitask"):
        specs = [spec] if name == "single-task" else list(dataset_specs())
        torch.manual_seed(0)
        model = EEGMamba(preset(name), specs).to(dev).train()
        optimizer = make_optimizer(model, 2e-4, 1e-6)
        index = [d.name for d in specs].index(DATASET)
        x = torch.randn(batch, spec.n_channels, samples, device=dev)
        y = torch.randint(0, spec.n_classes, (batch,), device=dev)
        for _ in range(warmup):
            train_step(model, optimizer, x, y, index)
        _sync(dev)
        if cuda:
            torch.cuda.reset_peak_memory_stats(dev)
        start = time.perf_counter()
        for _ in range(steps):
            train_step(model, optimizer, x, y, index)
        _sync(dev)
        elapsed = time.perf_counter() - start
        rows.append(dict(
            bench="train", preset=name, device=torch.cuda.get_device_name(dev) if cuda else "cpu",
            dtype="bf16 autocast" if cuda else "fp32", dataset=DATASET, batch=batch, channels=spec.n_channels,
            window_samples=samples, steps=steps, step_ms=round(1000 * elapsed / steps, 2),
            windows_per_s=round(batch * steps / elapsed, 2),
            peak_mem_mib=round(torch.cuda.max_memory_allocated(dev) / 2**20, 1) if cuda else None,
            params=sum(p.numel() for p in model.parameters()), threads=torch.get_num_threads()))
        del model, optimizer
    return rows
