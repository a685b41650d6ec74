"""DDP plumbing: the same `eegmamba train` command runs single-process or under `torchrun`.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE (plus MASTER_ADDR/PORT); when WORLD_SIZE > 1 we join the
process group from those variables: nccl when training on CUDA, gloo on CPU. Only rank 0 writes files
and shows progress.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import ContextManager, Iterator

import torch
import torch.distributed as dist

from ..console import UserError
from ..errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel wrapper (the model itself when not wrapped)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def resolve_device(choice: str, local_rank: int = 0) -> torch.device:
    """"auto" (CUDA when available), "cpu" or "cuda"; under torchrun each local rank gets its own GPU."""
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("{device} cuda: no CUDA device is available to PyTorch")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def init_from_env(device: torch.device) -> DistInfo:
    """Join the process group torchrun describes in the environment; a no-op without torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend=backend, **kwargs)
    return info


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_refusal(message: str, info: DistInfo, device: torch.device) -> str:
    """Rank 0's refusal message ('' when all is well) on every rank, so that all ranks stop together.

    Sent as a byte tensor rather than with broadcast_object_list, which would unpickle.
    """
    if not info.enabled:
        return message
    data = torch.tensor(list(message.encode()[:4096]), dtype=torch.uint8, device=device)
    size = torch.tensor([data.numel()], dtype=torch.int64, device=device)
    dist.broadcast(size, src=0)
    buf = data if info.is_main else torch.empty(int(size), dtype=torch.uint8, device=device)
    if int(size):
        dist.broadcast(buf, src=0)
    return bytes(buf.cpu().tolist()).decode(errors="replace")


@contextlib.contextmanager
def entered_on_main(context: ContextManager, info: DistInfo, device: torch.device) -> Iterator[None]:
    """Rank 0 enters `context` (a lock); if it refuses with a UserError, every rank raises that error."""
    stack = contextlib.ExitStack()
    refusal = ""
    if info.is_main:
        try:
            stack.enter_context(context)
        except UserError as err:
            refusal = str(err)
    refusal = broadcast_refusal(refusal, info, device)
    if refusal:
        stack.close()
        raise UserError(refusal)
    with stack:
        yield


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def params_checksum(model: torch.nn.Module) -> torch.Tensor:
    """Two float64 sums (plain and position-weighted) that differ between ranks whose weights drifted."""
    flat = torch.cat([p.detach().double().reshape(-1) for p in model.parameters()])
    weights = torch.linspace(1.0, 2.0, flat.numel(), dtype=torch.float64, device=flat.device)
    return torch.stack([flat.sum(), (flat * weights).sum()])


def ranks_in_sync(model: torch.nn.Module, info: DistInfo) -> bool:
    if not info.enabled:
        return True
    mine = params_checksum(model)
    gathered = [torch.empty_like(mine) for _ in range(info.world_size)]
    dist.all_gather(gathered, mine)
    return all(torch.equal(g, gathered[0]) for g in gathered)
