"""The training loop behind `eegmamba train`: folds, dynamic sampling, AdamW, validation, checkpoints.

Randomness (what makes `--resume` bit-identical on CPU): every random choice is a pure function of the
run's seed, the fold and the epoch, never of what ran before in the process:
* model initialisation: torch seeded from (seed, fold) just before the model is built;
* validation subjects and --max-windows subsampling: numpy generators from (seed, fold, dataset);
* batch order: `DynamicSampler(fold_seed).epoch(e)`, a numpy generator from (fold_seed, e);
* dropout and the MoE gate noise: torch's global generator re-seeded from (fold_seed, e, rank) at the
  start of every epoch.
A run resumed from the checkpoint of epoch e therefore replays epoch e+1 exactly as an uninterrupted run.

DDP: every rank takes a slice of each global batch and scales its loss so that DDP's gradient average is
the gradient of the global batch's mean loss, as in one process (sampler.rank_share).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.nn.parallel import DistributedDataParallel

from models import EEGMamba, EEGMambaConfig, ablate, preset

from .. import __version__
from ..bench.report import write_csv
from ..console import UserError, console
from ..data.cache import WindowCache
from ..fileio import atomic_write_json, atomic_write_text, directory_lock, remove_stale_temporaries
from . import checkpoint as ckpt
from .data import (Split, available_folds, dataset_record, dataset_spec, default_cache_root,
                   resolve_datasets, split_fold)
from .distributed import (DistInfo, all_reduce_sum, barrier, broadcast_refusal, init_from_env,
                          ranks_in_sync, resolve_device, shutdown)
from .sampler import DynamicSampler, rank_share

ADAMW_BETAS, ADAMW_EPS = (0.9, 0.999), 1e-8
MOE_ABLATIONS = ("vanilla-moe", "no-task-gate", "no-universal")


@dataclass
class TrainConfig:
    """Everything `eegmamba train` was asked to do (recorded in run.json and every checkpoint)."""

    out: Path
    tasks: str = "all"
    data: Path = field(default_factory=default_cache_root)
    fold: str = "all"  # "all", "3" or "1,2"
    preset: str = "multitask"
    ablations: tuple[str, ...] = ()
    d_model: int | None = None  # override the preset's width (quick experiments, tests)
    layers: int | None = None  # override the preset's block count
    epochs: int = 100
    batch_size: int = 128
    lr: float = 2e-4
    weight_decay: float = 1e-6
    balance_weight: float = 1.0
    z_weight: float = 1.0
    seed: int = 0
    device: str = "auto"
    resume: bool = True
    select: str = "best-val"  # or "final" (spec §16 #22)
    max_windows_per_dataset: int | None = None
    val_fraction: float = 0.1
    grad_clip: float | None = None  # spec §12: off; a number clips the global gradient norm to it

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(out=str(self.out), data=str(self.data), ablations=list(self.ablations))
        return d

    def resume_key(self) -> dict:
        """The settings a resumed run must share with the run it continues (epochs may grow)."""
        d = self.to_json()
        for k in ("out", "data", "fold", "epochs", "device", "resume", "select", "tasks"):
            d.pop(k)
        if d["grad_clip"] is None:  # runs from before the option existed resume as they are
            d.pop("grad_clip")
        return d


def model_config(cfg: TrainConfig) -> EEGMambaConfig:
    try:
        mc = preset(cfg.preset)
        for name in cfg.ablations:
            if name in MOE_ABLATIONS and not mc.use_moe:
                raise ValueError(f"--ablation {name} changes the MoE, which the {cfg.preset} preset has not")
            mc = ablate(mc, name)
    except ValueError as err:
        raise UserError(str(err)) from None
    mc = replace(mc, balance_loss_weight=cfg.balance_weight, z_loss_weight=cfg.z_weight)
    if cfg.d_model is not None:
        mc = replace(mc, d_model=cfg.d_model)
    if cfg.layers is not None:
        mc = replace(mc, n_layers=cfg.layers)
    return mc


def derive_seed(*keys: int) -> int:
    """A 32-bit seed that depends only on `keys` (no Python hash salt, no process history)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


def unwrap(model: torch.nn.Module) -> EEGMamba:
    return model.module if isinstance(model, DistributedDataParallel) else model


def autocast_for(device: torch.device):
    """bf16 autocast on CUDA with fp32 parameters (spec §8); plain fp32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_optimizer(model: EEGMamba, lr: float, weight_decay: float) -> torch.optim.AdamW:
    return torch.optim.AdamW(model.param_groups(weight_decay), lr=lr, betas=ADAMW_BETAS, eps=ADAMW_EPS)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               dataset: int, *, scale: float = 1.0, clip: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One AdamW step on one batch of one dataset; returns (total loss, CE) of the batch, detached.

    `scale` multiplies the loss before backward: 1 in a single process, `sampler.rank_share`'s scale
    under DDP. `clip`: the global gradient norm is clipped to it before the step (off when None).
    """
    optimizer.zero_grad(set_to_none=True)
    with autocast_for(x.device):
        logits, aux = model(x, dataset)  # logits (B, K_dataset)
    total, parts = unwrap(model).loss(logits.float(), y, aux)
    (total * scale).backward()
    if clip is not None:  # after backward, so under DDP the all-reduced gradients are clipped alike
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    ce = parts.get("ce", total) if isinstance(parts, dict) else total
    return total.detach(), torch.as_tensor(ce, device=total.device).detach().float()


def prefetch(load: Callable, items: Iterable, depth: int = 2) -> Iterator:
    """`map(load, items)` with up to `depth` items read ahead in a thread, so disk I/O overlaps compute."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(load, item))
            if len(pending) > depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


@torch.no_grad()
def predict_logits(model: EEGMamba, cache: WindowCache, rows: np.ndarray, dataset: int, batch_size: int,
                   device: torch.device) -> np.ndarray:
    """float32 logits (len(rows), K) of `model` in eval mode on the manifest rows `rows` of `cache`."""
    model.eval()
    chunks = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
    out = []
    for x in prefetch(cache.windows, chunks):
        with autocast_for(device):
            logits, _ = model(torch.from_numpy(x).to(device), dataset)
        out.append(logits.float().cpu().numpy())
    n_classes = len(cache.class_names)
    return np.concatenate(out) if out else np.zeros((0, n_classes), np.float32)


# --- the run --------------------------------------------------------------------------------------
def parse_folds(spec: str, caches: dict[str, WindowCache]) -> list[int]:
    present = available_folds(caches)
    if spec.strip().lower() == "all":
        if not present:
            raise UserError("--fold all: no subject in the caches has a fold number (manifest column "
                            "'fold' is 0 everywhere)")
        return present
    try:
        folds = sorted({int(f) for f in spec.split(",") if f.strip()})
    except ValueError:
        raise UserError(f"--fold {spec!r}: expected 'all' or fold numbers like 1 or 1,3") from None
    absent = [f for f in folds if f not in present]
    if not folds or absent:
        raise UserError(f"--fold {spec}: no test subjects in fold(s) {absent or folds}; the caches have "
                        f"folds {present or 'none'}")
    return folds


def environment() -> dict:
    import safetensors
    import sklearn
    from models.ops import backend_name
    return dict(eegmamba=__version__, python=platform.python_version(), torch=torch.__version__,
                numpy=np.__version__, sklearn=sklearn.__version__, safetensors=safetensors.__version__,
                cuda=torch.version.cuda, platform=platform.platform(), backend=backend_name(),
                # CPU results are bit-identical only at the same thread count (reduction order)
                torch_threads=torch.get_num_threads())


@dataclass
class RunContext:
    cfg: TrainConfig
    caches: dict[str, WindowCache]
    mconfig: EEGMambaConfig
    device: torch.device
    dist: DistInfo

    @property
    def names(self) -> list[str]:
        return list(self.caches)

    def record(self) -> dict:
        return dict(config=self.cfg.to_json(), model_config=self.mconfig.to_dict(),
                    datasets=[dataset_record(c) for c in self.caches.values()],
                    device=str(self.device), world_size=self.dist.world_size, environment=environment())


def train(cfg: TrainConfig) -> list[int]:
    """Train every requested fold into cfg.out; returns the folds trained. Safe under torchrun."""
    if cfg.select not in ("best-val", "final"):
        raise UserError(f"--select {cfg.select!r}: expected best-val or final")
    if cfg.select == "best-val" and cfg.val_fraction <= 0:
        raise UserError("--select best-val needs a validation set; use --val-fraction > 0 or --select final")
    if cfg.epochs < 1 or cfg.batch_size < 1 or not 0 < cfg.lr < math.inf:
        raise UserError("--epochs and --batch-size must be >= 1 and --lr a finite number > 0")
    for flag, value in (("--weight-decay", cfg.weight_decay), ("--balance-weight", cfg.balance_weight),
                        ("--z-weight", cfg.z_weight)):
        if not 0 <= value < math.inf:
            raise UserError(f"{flag} {value}: expected a finite number >= 0")
    for flag, value in (("--d-model", cfg.d_model), ("--layers", cfg.layers)):
        if value is not None and value < 1:
            raise UserError(f"{flag} {value}: expected at least 1")
    if cfg.grad_clip is not None and not 0 < cfg.grad_clip < math.inf:
        raise UserError(f"--grad-clip {cfg.grad_clip}: expected a finite number > 0")
    if not 0 <= cfg.val_fraction < 1:
        raise UserError(f"--val-fraction {cfg.val_fraction}: expected a fraction in [0, 1)")
    caches = resolve_datasets(cfg.tasks, Path(cfg.data))
    if cfg.preset in ("single-task", "singletask") and len(caches) > 1:
        raise UserError(f"--preset single-task trains one dataset, got {len(caches)} "
                        f"({', '.join(caches)}); run it once per dataset")
    folds = parse_folds(cfg.fold, caches)
    mconfig = model_config(cfg)
    device = resolve_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    info = init_from_env(device)
    try:
        ctx = RunContext(cfg, caches, mconfig, device, info)
        with _lock_run_dir(ctx):
            if info.is_main:  # a killed run's atomic-writer temporaries (fold folders: FoldTrainer.run)
                remove_stale_temporaries(cfg.out)
            for fold in folds:  # cheap: reads fold-K/last/checkpoint.json only
                check_resumable(ctx, fold)
            if info.is_main:
                _write_run_record(ctx, folds)
            for fold in folds:
                FoldTrainer(ctx, fold).run()
    finally:
        shutdown(info)
    return folds


@contextlib.contextmanager
def _lock_run_dir(ctx: RunContext):
    """Rank 0 holds the run folder's lock; its refusal stops every rank."""
    stack = contextlib.ExitStack()
    refusal = ""
    if ctx.dist.is_main:
        try:
            stack.enter_context(directory_lock(ctx.cfg.out, "eegmamba train"))
        except UserError as err:
            refusal = str(err)
    refusal = broadcast_refusal(refusal, ctx.dist, ctx.device)
    if refusal:
        stack.close()
        raise UserError(refusal)
    with stack:
        yield


def _write_run_record(ctx: RunContext, folds: list[int]) -> None:
    path = ctx.cfg.out / "run.json"
    previous = []
    if path.exists():
        try:
            previous = json.loads(path.read_text())["invocations"]
            if not isinstance(previous, list):
                raise TypeError("invocations is not a list")
        except (OSError, ValueError, KeyError, TypeError):
            raise UserError(f"{path}: unreadable run record (not written by eegmamba train?); move it away "
                            "or choose another --out") from None
    invocation = dict(argv=sys.argv, started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      folds=folds, resume=ctx.cfg.resume)
    atomic_write_json(path, dict(ctx.record(), folds=folds, invocations=previous + [invocation]))


# --- one fold --------------------------------------------------------------------------------------
def fold_settings(ctx: RunContext, fold: int) -> dict:
    """What every checkpoint of this fold records about how it was trained."""
    return dict(kind="eegmamba-checkpoint", version=__version__, torch=torch.__version__,
                model_config=ctx.mconfig.to_dict(), preset=ctx.cfg.preset, ablations=list(ctx.cfg.ablations),
                datasets=[dataset_record(c) for c in ctx.caches.values()], seed=ctx.cfg.seed, fold=fold,
                fold_seed=derive_seed(ctx.cfg.seed, fold), train=ctx.cfg.to_json(),
                resume_key=ctx.cfg.resume_key())


def check_resumable(ctx: RunContext, fold: int) -> None:
    """Refuse, before anything is written, to resume a fold that was trained with other settings."""
    fold_dir = ctx.cfg.out / f"fold-{fold}"
    found = [d for d in (fold_dir / "last", fold_dir / ".last.old") if (d / "checkpoint.json").exists()]
    if not ctx.cfg.resume or not found:
        return
    _, meta = ckpt.read_meta(found[0])
    mine = fold_settings(ctx, fold)
    for key in ("resume_key", "datasets", "model_config", "fold"):
        if meta.get(key) != mine[key]:
            diff = key
            if isinstance(mine[key], dict) and isinstance(meta.get(key), dict):
                diff = next((k for k in mine[key] if meta[key].get(k) != mine[key][k]), key)
            raise UserError(f"{found[0]}: was trained with other settings ({diff} differs); pass "
                            "--no-resume to start this fold over, or choose another --out")


class FoldTrainer:
    def __init__(self, ctx: RunContext, fold: int):
        self.ctx, self.cfg, self.fold = ctx, ctx.cfg, fold
        self.dir = ctx.cfg.out / f"fold-{fold}"
        self.fold_seed = derive_seed(ctx.cfg.seed, fold)
        self.splits: dict[str, Split] = {
            name: split_fold(cache, fold, val_fraction=ctx.cfg.val_fraction, seed=ctx.cfg.seed,
                             max_windows=ctx.cfg.max_windows_per_dataset)
            for name, cache in ctx.caches.items()}
        self.labels = {name: cache.labels for name, cache in ctx.caches.items()}  # int64, per manifest row
        self.sampler = DynamicSampler([len(s.train) for s in self.splits.values()],
                                      ctx.cfg.batch_size, self.fold_seed)
        if self.sampler.steps_per_epoch() == 0:
            raise UserError(f"fold {fold}: no training windows in {', '.join(ctx.names)}")
        torch.manual_seed(derive_seed(self.fold_seed, 0))  # initial weights depend on (seed, fold) only
        self.model = EEGMamba(ctx.mconfig, [dataset_spec(c) for c in ctx.caches.values()]).to(ctx.device)
        self.optimizer = make_optimizer(self.model, ctx.cfg.lr, ctx.cfg.weight_decay)
        self.best_val, self.best_epoch, self.start_epoch = math.inf, 0, 1
        self.rows: list[dict] = []

    # -- setup -------------------------------------------------------------------------------------
    def run(self) -> None:
        main = self.ctx.dist.is_main
        if main:
            self.dir.mkdir(parents=True, exist_ok=True)
            ckpt.recover(self.dir)
            remove_stale_temporaries(self.dir)
            if not self.cfg.resume:
                self._clear()
        barrier(self.ctx.dist)
        if self.cfg.resume and (self.dir / "last").exists():
            self._resume()
        if self.start_epoch > self.cfg.epochs:
            if main:
                console.print(f"fold {self.fold}: already trained for {self.start_epoch - 1} epochs "
                              f"(--epochs {self.cfg.epochs}); nothing to do")
            return
        if main:
            self._write_fold_record()
            self._describe()
        model = self.model
        if self.ctx.dist.enabled:
            # Each step uses one dataset's spatial conv, task token and head, and 2 of 8 experts.
            model = DistributedDataParallel(self.model, find_unused_parameters=True,
                                            device_ids=[self.ctx.device] if self.ctx.device.type == "cuda" else None)
        with self._progress() as advance:
            for epoch in range(self.start_epoch, self.cfg.epochs + 1):
                self._epoch(model, epoch, advance)

    def _clear(self) -> None:
        """--no-resume: forget this fold's earlier checkpoints and metrics."""
        for name in ("last", "best"):
            shutil.rmtree(self.dir / name, ignore_errors=True)
        shutil.rmtree(self.dir / "predictions", ignore_errors=True)  # from an earlier evaluate
        for name in ("metrics.jsonl", "metrics.csv"):
            (self.dir / name).unlink(missing_ok=True)

    def _resume(self) -> None:
        last = self.dir / "last"
        directory, meta = ckpt.read_meta(last)
        self.model.load_state_dict(ckpt.load_state_dict(last))
        self.optimizer.load_state_dict(ckpt.load_optimizer_state(last))
        self.start_epoch = int(meta["epoch"]) + 1
        best = meta.get("best_val_loss")
        self.best_val, self.best_epoch = (math.inf if best is None else float(best)), int(meta.get("best_epoch", 0))
        metrics = self.dir / "metrics.jsonl"
        if metrics.exists():  # rows written after the last complete checkpoint are dropped
            try:
                rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
                self.rows = [r for r in rows if r["epoch"] < self.start_epoch]
            except (OSError, ValueError, KeyError, TypeError) as err:
                raise UserError(f"{metrics}: unreadable ({type(err).__name__}: {err}); move it away to resume "
                                "without the earlier epochs' metrics, or pass --no-resume") from None
        if self.ctx.dist.is_main:
            console.print(f"fold {self.fold}: resuming after epoch {meta['epoch']} from {directory}")

    def _write_fold_record(self) -> None:
        splits = {name: dict(sizes=s.sizes(), subjects=s.subjects) for name, s in self.splits.items()}
        atomic_write_json(self.dir / "run.json", dict(self.ctx.record(), fold=self.fold,
                                                      fold_seed=self.fold_seed, splits=splits,
                                                      start_epoch=self.start_epoch))

    def _describe(self) -> None:
        sizes = ", ".join(f"{n} {s.sizes()['train']}/{s.sizes()['val']}/{s.sizes()['test']}"
                          for n, s in self.splits.items())
        n_params = sum(p.numel() for p in self.model.parameters())
        console.print(f"fold {self.fold}: train/val/test windows: {sizes}; {n_params:,} parameters; "
                      f"{self.sampler.steps_per_epoch()} steps per epoch on {self.ctx.device}"
                      + (f" x {self.ctx.dist.world_size} ranks" if self.ctx.dist.enabled else ""))

    # -- one epoch ---------------------------------------------------------------------------------
    def _my_batches(self, epoch: int) -> Iterator[tuple[int, int, float, np.ndarray]]:
        """(dataset, windows that count, loss scale, manifest rows to read) for each step of this rank."""
        info = self.ctx.dist
        for batch in self.sampler.epoch(epoch):
            rows, n_mine, scale = rank_share(batch.rows, info.rank, info.world_size)
            yield batch.dataset, n_mine, scale, self.splits[self.ctx.names[batch.dataset]].train[rows]

    def _load(self, item):
        d, n_mine, scale, rows = item
        name = self.ctx.names[d]
        return d, n_mine, scale, self.ctx.caches[name].windows(rows), self.labels[name][rows]

    def _epoch(self, model: torch.nn.Module, epoch: int, advance: Callable) -> None:
        ctx, info, device = self.ctx, self.ctx.dist, self.ctx.device
        torch.manual_seed(derive_seed(self.fold_seed, epoch, info.rank))  # dropout, gate noise
        model.train()
        stats = torch.zeros(len(ctx.names), 3, dtype=torch.float64, device=device)  # Σ loss·n, Σ CE·n, n
        start = time.perf_counter()
        for d, n_mine, scale, x, y in prefetch(self._load, self._my_batches(epoch)):
            xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
            total, ce = train_step(model, self.optimizer, xt, yt, d, scale=scale, clip=self.cfg.grad_clip)
            stats[d, 0] += total.double() * n_mine
            stats[d, 1] += ce.double() * n_mine
            stats[d, 2] += n_mine
            advance(epoch, d, total, n_mine * info.world_size)
        all_reduce_sum(stats, info)
        elapsed = time.perf_counter() - start
        val = self._validate()
        in_sync = ranks_in_sync(unwrap(model), info)
        if not in_sync:
            raise RuntimeError(f"fold {self.fold} epoch {epoch}: DDP ranks hold different weights")
        if info.is_main:
            self._finish_epoch(epoch, stats.cpu().numpy(), val, elapsed, in_sync)
        barrier(info)

    @contextlib.contextmanager
    def _progress(self):
        """Live bar on rank 0's terminal: epoch, dataset, loss, windows/s, ETA for the rest of the fold."""
        live = self.ctx.dist.is_main and console.is_terminal
        total = self.sampler.steps_per_epoch() * (self.cfg.epochs - self.start_epoch + 1)
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[speed]}"), TimeRemainingColumn(),
                            console=console, transient=True, disable=not live)
        task = progress.add_task(f"fold {self.fold}", total=total, speed="")
        t0, steps, windows = time.perf_counter(), 0, 0

        def advance(epoch: int, d: int, loss: torch.Tensor, n_windows: int) -> None:
            nonlocal steps, windows
            steps, windows = steps + 1, windows + n_windows
            if live and (steps % 10 == 1 or steps == total):  # .item() waits for CUDA: not every step
                rate = windows / max(time.perf_counter() - t0, 1e-9)
                progress.update(task, completed=steps, speed=f"{rate:,.0f} win/s",
                                description=f"fold {self.fold} epoch {epoch}/{self.cfg.epochs} "
                                            f"{self.ctx.names[d]} loss {loss.item():.4f}")

        with progress:
            yield advance

    # -- validation ----------------------------------------------------------------------------------
    def _validate(self) -> dict[str, tuple[float, float, float]]:
        """Per dataset: (Σ CE, Σ correct, n) over its validation windows, summed over ranks."""
        info, device = self.ctx.dist, self.ctx.device
        out = torch.zeros(len(self.ctx.names), 3, dtype=torch.float64, device=device)
        for d, (name, split) in enumerate(self.splits.items()):
            mine = np.array_split(split.val, info.world_size)[info.rank]
            if len(mine) == 0:
                continue
            logits = torch.from_numpy(predict_logits(self.model, self.ctx.caches[name], mine, d,
                                                     self.cfg.batch_size, device))
            y = torch.from_numpy(self.labels[name][mine])
            out[d, 0] += F.cross_entropy(logits, y, reduction="sum").item()
            out[d, 1] += (logits.argmax(1) == y).sum().item()
            out[d, 2] += len(mine)
        all_reduce_sum(out, info)
        return {name: tuple(out[d].tolist()) for d, name in enumerate(self.ctx.names)}

    # -- bookkeeping (rank 0) ----------------------------------------------------------------------
    def _finish_epoch(self, epoch: int, stats: np.ndarray, val: dict, elapsed: float, in_sync: bool) -> None:
        row: dict = dict(fold=self.fold, epoch=epoch, time_s=round(elapsed, 3),
                         windows=int(stats[:, 2].sum()),
                         windows_per_s=round(float(stats[:, 2].sum()) / max(elapsed, 1e-9), 2),
                         lr=self.cfg.lr)
        row["train_loss"] = float(stats[:, 0].sum() / max(stats[:, 2].sum(), 1))
        val_means = []
        for d, name in enumerate(self.ctx.names):
            n = stats[d, 2]
            row[f"train_loss.{name}"] = float(stats[d, 0] / n) if n else None
            row[f"train_ce.{name}"] = float(stats[d, 1] / n) if n else None
            ce_sum, correct, nv = val[name]
            row[f"val_loss.{name}"] = ce_sum / nv if nv else None
            row[f"val_acc.{name}"] = correct / nv if nv else None
            if nv:
                val_means.append(ce_sum / nv)
        # Model selection: the unweighted mean over datasets of each dataset's mean validation CE, so a
        # small corpus counts as much as SHHS.
        row["val_loss"] = float(np.mean(val_means)) if val_means else None
        improved = row["val_loss"] is not None and row["val_loss"] < self.best_val
        if improved:
            self.best_val, self.best_epoch = row["val_loss"], epoch
        row.update(best_epoch=self.best_epoch, ranks_in_sync=in_sync)
        self.rows.append(row)
        self._write_metrics()
        self._save(epoch, row, improved)
        console.print(f"fold {self.fold} epoch {epoch}/{self.cfg.epochs}: train loss {row['train_loss']:.4f}"
                      + (f", val loss {row['val_loss']:.4f}" if row["val_loss"] is not None else "")
                      + (" (best)" if improved else "")
                      + f", {row['windows_per_s']:,.0f} windows/s, {elapsed:.1f} s", highlight=False)

    def _write_metrics(self) -> None:
        atomic_write_text(self.dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in self.rows))
        write_csv(self.dir / "metrics.csv", self.rows)

    def _save(self, epoch: int, row: dict, improved: bool) -> None:
        meta = dict(fold_settings(self.ctx, self.fold), epoch=epoch, val_loss=row["val_loss"],
                    best_val_loss=self.best_val if math.isfinite(self.best_val) else None,
                    best_epoch=self.best_epoch,
                    resume=dict(next_epoch=epoch + 1, sampler="DynamicSampler(fold_seed).epoch(e): numpy "
                                "SeedSequence([fold_seed, e])", torch="manual_seed(derive_seed(fold_seed, e, "
                                "rank)) at the start of epoch e"),
                    saved=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        tmp = self.dir / f".tmp-last-{epoch}"
        tmp_best = self.dir / f".tmp-best-{epoch}"
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            ckpt.write_checkpoint(tmp, self.model, meta, self.optimizer)
            if improved:
                shutil.rmtree(tmp_best, ignore_errors=True)
                ckpt.write_checkpoint(tmp_best, self.model, meta)
                ckpt.publish(tmp_best, self.dir / "best")
            ckpt.publish(tmp, self.dir / "last")
        finally:  # a failed save (full disk) leaves the previous checkpoints and no half-written folder
            for folder in (tmp, tmp_best):
                shutil.rmtree(folder, ignore_errors=True)
