"""The live progress bar of a fold on rank 0's terminal: epoch, dataset, loss, windows/s, time left."""
from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..console import console

Advance = Callable[[int, int, torch.Tensor, int], None]  # (epoch, dataset, loss, windows of the step)


@contextlib.contextmanager
def fold_progress(fold: int, names: list[str], total_steps: int, epochs: int, live: bool) -> Iterator[Advance]:
    """Yields `advance`, to call once per step; draws nothing unless `live`."""
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[speed]}"), TimeRemainingColumn(),
                        console=console, transient=True, disable=not live)
    task = progress.add_task(f"fold {fold}", total=total_steps, speed="")
    t0, steps, windows = time.perf_counter(), 0, 0

    def advance(epoch: int, d: int, loss: torch.Tensor, n_windows: int) -> None:
        nonlocal steps, windows
        steps, windows = steps + 1, windows + n_windows
        if live and (steps % 10 == 1 or steps == total_steps):  # .item() waits for CUDA: not every step
            rate = windows / max(time.perf_counter() - t0, 1e-9)
            progress.update(task, completed=steps, speed=f"{rate:,.0f} win/s",
                            description=f"fold {fold} epoch {epoch}/{epochs} {names[d]} loss {loss.item():.4f}")

    with progress:
        yield advance
