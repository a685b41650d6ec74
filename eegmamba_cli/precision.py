"""Numeric precision of a run: one place that decides fp32 or bf16 and opens the matching autocast region.

`--precision fp32|bf16|auto`. bf16 means `torch.autocast(device, dtype=torch.bfloat16)` with fp32 weights:
matmuls and convolutions run in bf16, LayerNorm, softmax, the losses and the selective scan stay in fp32
(the scan turns autocast off for itself: its recurrence multiplies hundreds of decays).

`auto` picks bf16 only where it is both faster and in agreement with fp32:

* CUDA: when the GPU supports bf16 (Ampere and later), as training has always done there.
* CPU: only with native bf16 arithmetic, AVX512-BF16 or AMX (oneDNN then runs bf16 matmuls and convs on
  those units). Measured on a Xeon with AMX: 1.48x on the single-task forward, the same argmax on 32 sleep
  windows. Without them oneDNN emulates bf16 by converting to fp32 and back, which is slower than fp32
  (see `eegmamba benchmark` speed rows), so `auto` stays fp32 there.

Runs recorded before the switch existed carry no precision; they ran bf16 on CUDA and fp32 elsewhere
(`recorded_precision`). torch is imported inside the functions: the CLI reads PRECISIONS at start-up.
"""
from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

PRECISIONS = ("fp32", "bf16", "auto")
Precision = Literal["fp32", "bf16"]

# Linux /proc/cpuinfo flags of the x86 bf16 units oneDNN uses.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo is unavailable, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX present and oneDNN (mkldnn) built in, so bf16 autocast runs on real bf16 units."""
    import torch

    return torch.backends.mkldnn.is_available() and any(f in cpu_flags() for f in NATIVE_BF16_FLAGS)


def resolve_precision(choice: str, device: torch.device | str) -> Precision:
    """fp32 | bf16 | auto -> the precision to run with on `device` (see the module docstring for auto)."""
    if choice not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {choice!r}")
    if choice != "auto":
        return choice  # type: ignore[return-value]
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return "fp32"


def recorded_precision(recorded: str | None, device: torch.device | str) -> Precision:
    """The precision a run or checkpoint records; one from before the switch (None) ran as the code then
    did: bf16 autocast on CUDA, fp32 elsewhere."""
    if recorded is not None:
        return resolve_precision(recorded, device)
    import torch

    return "bf16" if torch.device(device).type == "cuda" else "fp32"


def autocast(device: torch.device | str, precision: Precision):
    """The context manager for a forward pass (and its loss) at `precision`: bf16 autocast or nothing."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be fp32 or bf16 (resolve 'auto' first), got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


__all__ = ["PRECISIONS", "Precision", "resolve_precision", "recorded_precision", "autocast",
           "cpu_has_native_bf16"]
