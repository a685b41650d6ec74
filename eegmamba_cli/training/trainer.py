"""The training loop behind `eegmamba train`: folds, dynamic sampling, AdamW, checkpoints every epoch.

Around the loop: config.py (what was asked, its checks), run_folder.py (where everything is written),
validation.py (the pass after each epoch), inference.py (batched forward passes, autocast),
seeding.py, events.py (what the caller hears after each epoch), progress.py (the live bar).

Randomness (what makes a resumed run bit-identical on CPU): every random choice is a pure function of the
run's seed, the fold and the epoch, never of what ran before in the process:
* model initialisation: torch seeded from (seed, fold) just before the model is built;
* the protocol's folds (validation included): scikit-learn splitters seeded with the run's seed, applied
  to each dataset's manifest; max_windows_per_dataset subsampling: numpy generators from (seed, fold, dataset);
* batch order: `DynamicSampler(fold_seed).epoch(e)`, a numpy generator from (fold_seed, e);
* dropout and the MoE gate noise: torch's global generator re-seeded from (fold_seed, e, rank) at the
  start of every epoch;
* augmentation of the training batches: a torch generator of its own from (fold_seed, e, rank, 1).
The learning rate is a pure function of the global step (recipe.lr_factor) and early stopping a pure
function of the validation losses so far (recipe.early_stop, read back from metrics.jsonl on resume).
A run resumed from the checkpoint of epoch e therefore replays epoch e+1 exactly as an uninterrupted run.

Recipes (recipe.py): `train` first resolves the config, filling every setting the user left open from
the recipe chosen (auto: by the number of training windows), prints the choice and records it in run.json.

DDP: every rank takes a slice of each global batch and scales its loss so that DDP's gradient average is
the gradient of the global batch's mean loss, as in one process (sampler.rank_share).
"""
from __future__ import annotations

import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from models import EEGMamba, EEGMambaConfig

from .. import __version__
from ..console import UserError, console
from ..data.cache import WindowCache
from ..errors import ConfigError, literal
from ..fileio import remove_stale_temporaries
from . import checkpoint as ckpt
from .batches import BatchReader
from .config import TrainConfig, check_dataset_count, model_config, parse_folds, protocol_settings, resolve_recipe
from .data import dataset_record, dataset_spec, resolve_datasets
from .distributed import (DistInfo, all_reduce_sum, barrier, entered_on_main, init_from_env, ranks_in_sync,
                          resolve_device, shutdown, unwrap)
from .environment import environment
from .events import EpochMetrics, FoldPlan, OnEpoch, epoch_line
from ..precision import autocast, recorded_precision, resolve_precision
from .inference import prefetch
from .progress import Advance, fold_progress
from .recipe import PAPER, StopVerdict, early_stop, lr_factor, warmup_epochs
from .run_folder import FoldFolder, RunFolder
from .sampler import DynamicSampler, rank_share
from . import transfer
from .splits import DatasetFolds, Split, dataset_folds, fold_numbers, split_for
from .seeding import derive_seed
from .validation import selection_loss, validation_sums

__all__ = ["TrainConfig", "model_config", "train", "train_step", "make_optimizer", "FoldTrainer", "RunContext"]

ADAMW_BETAS, ADAMW_EPS = (0.9, 0.999), 1e-8


def make_optimizer(model: EEGMamba, lr: float, weight_decay: float,
                   groups: list[dict] | None = None) -> torch.optim.AdamW:
    """AdamW over `groups` (default: the model's decay / no-decay groups)."""
    return torch.optim.AdamW(groups or model.param_groups(weight_decay), lr=lr, betas=ADAMW_BETAS, eps=ADAMW_EPS)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """`lr` in every group, times the group's `lr_scale` (a fine-tune's pretrained parts: transfer.py)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               dataset: int, *, scale: float = 1.0, clip: float | None = None,
               lengths: torch.Tensor | None = None, precision: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """One AdamW step on one batch of one dataset; returns (total loss, CE) of the batch, detached.

    `scale` multiplies the loss before backward: 1 in a single process, `sampler.rank_share`'s scale
    under DDP. `clip`: the global gradient norm is clipped to it before the step (off when None).
    `lengths` (B,): valid samples of right-padded windows (batches.py); None: every window is whole.
    `precision`: fp32 | bf16 | auto (eegmamba_cli.precision); the loss is computed in fp32 either way.
    """
    optimizer.zero_grad(set_to_none=True)
    with autocast(x.device, resolve_precision(precision, x.device)):
        logits, aux = model(x, dataset, lengths)  # logits (B, K_dataset)
    total, parts = unwrap(model).loss(logits.float(), y, aux)
    (total * scale).backward()
    if clip is not None:  # after backward, so under DDP the all-reduced gradients are clipped alike
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    ce = parts.get("ce", total) if isinstance(parts, dict) else total
    return total.detach(), torch.as_tensor(ce, device=total.device).detach().float()


# --- the run --------------------------------------------------------------------------------------
@dataclass
class RunContext:
    cfg: TrainConfig
    caches: dict[str, WindowCache]
    mconfig: EEGMambaConfig
    device: torch.device
    dist: DistInfo
    folds: dict[str, DatasetFolds]  # each dataset's folds under the run's protocol
    on_epoch: OnEpoch | None = None  # None: print each epoch's line
    quiet: bool = False  # no fold descriptions, resume notes or progress bar
    recipe_choice: dict | None = None  # asked, chosen, why, the recipe's values (run.json)
    parent: transfer.Parent | None = None  # the model a fine-tune starts from (--init-from)
    lineage: dict | None = None  # transfer.lineage: parent sha256, parts loaded / new / frozen

    @property
    def names(self) -> list[str]:
        return list(self.caches)

    @property
    def run(self) -> RunFolder:
        return RunFolder(self.cfg.out)

    @property
    def precision(self) -> str:
        return resolve_precision(self.cfg.precision, self.device)

    def say(self, text: str) -> None:
        if self.dist.is_main and not self.quiet:
            console.print(text, highlight=False)

    def crops(self) -> dict[str, int]:
        """Per dataset, the samples a training crop removes, which evaluation's centre crop removes too."""
        augment = self.cfg.augmentations()
        return {name: augment.crop_samples(float(c.info.get("sfreq", 0.0))) for name, c in self.caches.items()}

    def dataset_records(self) -> list[dict]:
        crops = self.crops()
        return [dataset_record(c, crops[name]) for name, c in self.caches.items()]

    def record(self) -> dict:
        return dict(config=self.cfg.to_json(), recipe=self.recipe_choice, model_config=self.mconfig.to_dict(),
                    datasets=self.dataset_records(),
                    device=str(self.device), precision=self.precision, world_size=self.dist.world_size,
                    environment=environment(), **({"lineage": self.lineage} if self.lineage else {}))


def train(cfg: TrainConfig, on_epoch: OnEpoch | None = None, quiet: bool = False) -> list[int]:
    """Train every requested fold into cfg.out; returns the folds trained. Safe under torchrun.

    `on_epoch` receives each finished epoch's metrics on rank 0 (default: print a line); `quiet` leaves
    out everything else the trainer would print."""
    cfg.validate()
    caches = resolve_datasets(cfg.tasks, Path(cfg.data))
    check_dataset_count(cfg, list(caches))
    parent = transfer.read_parent(cfg.init_from) if cfg.init_from is not None else None
    if parent is not None:  # before the recipe fills d_model/layers: only what the user asked is checked
        transfer.architecture(parent, cfg.d_model, cfg.layers)
    # The recipe is chosen from the training windows per fold, which depend on the validation share; it is
    # counted with the paper's share and the folds are made again if the chosen recipe holds out another.
    counting = replace(cfg, val_fraction=PAPER.val_fraction if cfg.val_fraction is None else cfg.val_fraction)
    per_dataset = protocol_folds(counting, caches)
    folds = parse_folds(cfg.fold, fold_numbers(per_dataset))
    asked = cfg.recipe
    cfg, recipe, why = resolve_recipe(cfg, lambda: training_windows(per_dataset), len(caches))
    if cfg.val_fraction != counting.val_fraction:
        per_dataset = protocol_folds(cfg, caches)
    lineage = None
    if parent is not None:  # the checkpoint decides the architecture, whatever the recipe's width
        cfg = replace(cfg, preset="multitask" if parent.config.use_moe else "single-task",
                      d_model=parent.config.d_model, layers=parent.config.n_layers)
        why += (f"; the architecture is {literal(parent.checkpoint)}'s ({cfg.preset}, d_model {cfg.d_model}, "
                f"layers {cfg.layers})")
        lineage = transfer.lineage(parent, [dataset_spec(c) for c in caches.values()],
                                   [dataset_record(c) for c in caches.values()], cfg.freeze, cfg.pretrained_lr_factor)
    choice = dict(asked=asked, chosen=recipe.name, why=why, values=recipe.to_json())
    mconfig = model_config(cfg) if parent is None else transfer.transfer_config(parent, model_config(cfg))
    device = resolve_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    info = init_from_env(device)
    try:
        ctx = RunContext(cfg, caches, mconfig, device, info, per_dataset, on_epoch, quiet, choice, parent, lineage)
        with entered_on_main(ctx.run.lock("eegmamba train"), info, device):
            ctx.say(f"recipe: {recipe.name} ({why})")
            if lineage is not None:
                ctx.say(f"fine-tuning from {parent.checkpoint}: loaded {', '.join(lineage['loaded'])}; new "
                        f"{', '.join(lineage['new']) or 'none'}; frozen {', '.join(lineage['frozen']) or 'none'}")
            if info.is_main:  # a killed run's atomic-writer temporaries (fold folders: FoldTrainer.run)
                remove_stale_temporaries(cfg.out)
            check_same_protocol(ctx)
            for fold in folds:  # cheap: reads fold-K/last/checkpoint.json only
                check_resumable(ctx, fold)
            if info.is_main:
                _write_run_record(ctx, folds)
            for fold in folds:
                FoldTrainer(ctx, fold).run()
    finally:
        shutdown(info)
    return folds


def protocol_folds(cfg: TrainConfig, caches: dict[str, WindowCache]) -> dict[str, DatasetFolds]:
    protocol = cfg.split_protocol()
    return {name: dataset_folds(cache, protocol, max_windows=cfg.max_windows_per_dataset,
                                train_fraction=cfg.train_fraction)
            for name, cache in caches.items()}


def training_windows(per_dataset: dict[str, DatasetFolds]) -> int:
    """The mean number of training windows per fold, over every fold of the protocol (not only the folds
    asked for, so that a fold trains the same whether it runs alone or with the others)."""
    counts = [sum(len(d.splits[fold].train) for d in per_dataset.values() if fold in d.splits)
              for fold in fold_numbers(per_dataset)]
    return int(np.mean(counts)) if counts else 0


def _write_run_record(ctx: RunContext, folds: list[int]) -> None:
    previous = ctx.run.invocations()
    invocation = dict(argv=sys.argv, started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      folds=folds, resume=ctx.cfg.resume)
    protocol = dict(protocol_settings(ctx.cfg.to_json()),
                    per_dataset={name: d.description for name, d in ctx.folds.items()})
    ctx.run.write_record(dict(ctx.record(), folds=folds, protocol=protocol, invocations=previous + [invocation]))


def check_same_protocol(ctx: RunContext) -> None:
    """Refuse to add folds of another protocol to a run: their results could not be averaged."""
    if not ctx.run.record_path.exists() or not any(f.resumable_checkpoint() for f in ctx.run.folds()):
        return
    ctx.run.invocations()  # an unreadable record: the one line that writing the record would give
    recorded = protocol_settings(ctx.run.read()["config"])
    mine = protocol_settings(ctx.cfg.to_json())
    if recorded != mine:
        diff = next(k for k in mine if recorded[k] != mine[k])
        raise ConfigError(f"{literal(ctx.run.path)}: holds folds of protocol {literal(recorded['protocol'])} "
                          f"({{{diff}}} differs); train into another {{out}} folder")


# --- one fold --------------------------------------------------------------------------------------
def fold_settings(ctx: RunContext, fold: int) -> dict:
    """What every checkpoint of this fold records about how it was trained."""
    return dict(kind="eegmamba-checkpoint", version=__version__, torch=torch.__version__,
                model_config=ctx.mconfig.to_dict(), preset=ctx.cfg.preset, ablations=list(ctx.cfg.ablations),
                datasets=ctx.dataset_records(), seed=ctx.cfg.seed, fold=fold,
                fold_seed=derive_seed(ctx.cfg.seed, fold), train=ctx.cfg.to_json(),
                resume_key=ctx.cfg.resume_key(), precision=ctx.precision,
                **({"lineage": ctx.lineage} if ctx.lineage else {}))


def check_resumable(ctx: RunContext, fold: int) -> None:
    """Refuse, before anything is written, to resume a fold that was trained with other settings."""
    found = ctx.run.fold(fold).resumable_checkpoint()
    if not ctx.cfg.resume or found is None:
        return
    _, meta = ckpt.read_meta(found)
    meta = dict(meta, precision=recorded_precision(meta.get("precision"), ctx.device))
    mine = fold_settings(ctx, fold)
    for key in ("resume_key", "datasets", "model_config", "fold", "precision", "lineage"):
        if meta.get(key) != mine.get(key):
            diff = key
            if isinstance(mine.get(key), dict) and isinstance(meta.get(key), dict):
                diff = next((k for k in mine[key] if meta[key].get(k) != mine[key][k]), key)
            raise ConfigError(f"{literal(found)}: was trained with other settings ({literal(diff)} differs); "
                              "start this fold over with {resume=False}, or train into another {out} folder")


class FoldTrainer:
    def __init__(self, ctx: RunContext, fold: int):
        self.ctx, self.cfg, self.fold = ctx, ctx.cfg, fold
        self.folder: FoldFolder = ctx.run.fold(fold)
        self.fold_seed = derive_seed(ctx.cfg.seed, fold)
        self.splits: dict[str, Split] = {name: split_for(ctx.folds[name], fold, len(cache))
                                         for name, cache in ctx.caches.items()}
        self.readers = {name: BatchReader(cache) for name, cache in ctx.caches.items()}
        self.labels = {name: cache.labels for name, cache in ctx.caches.items()}  # int64, per manifest row
        self.sampler = DynamicSampler([len(s.train) for s in self.splits.values()],
                                      ctx.cfg.batch_size, self.fold_seed)
        if self.sampler.steps_per_epoch() == 0:
            raise UserError(f"fold {fold}: no training windows in {', '.join(ctx.names)}")
        torch.manual_seed(derive_seed(self.fold_seed, 0))  # initial weights depend on (seed, fold) only
        self.model = EEGMamba(ctx.mconfig, [dataset_spec(c) for c in ctx.caches.values()])
        groups = None
        if ctx.parent is not None:  # on the CPU, before the move: the parent's tensors are CPU tensors
            kept = transfer.kept_datasets(ctx.parent, list(self.model.datasets), ctx.dataset_records())
            loaded = transfer.initialise(self.model, ctx.parent, kept, ctx.cfg.freeze)
            groups = transfer.param_groups(self.model, ctx.cfg.weight_decay, loaded, ctx.cfg.pretrained_lr_factor)
        self.model = self.model.to(ctx.device)
        self.optimizer = make_optimizer(self.model, ctx.cfg.lr, ctx.cfg.weight_decay, groups)
        self.best_val, self.best_epoch, self.start_epoch = math.inf, 0, 1
        self.rows: list[dict] = []
        self.val_losses: list[float | None] = []  # per epoch, on every rank: what early stopping reads
        self.augment = ctx.cfg.augmentations()
        self.sfreq = [float(c.info.get("sfreq", 0.0)) for c in ctx.caches.values()]
        self.total_steps = self.sampler.steps_per_epoch() * ctx.cfg.epochs
        self.warmup_epochs = warmup_epochs(ctx.cfg.warmup or 0.0, ctx.cfg.epochs)

    @property
    def plan(self) -> FoldPlan:
        return FoldPlan(self.fold, {n: s.sizes() for n, s in self.splits.items()},
                        sum(p.numel() for p in self.model.parameters()), self.sampler.steps_per_epoch(),
                        self.cfg.epochs)

    # -- setup -------------------------------------------------------------------------------------
    def run(self) -> None:
        main = self.ctx.dist.is_main
        if main:
            self.folder.path.mkdir(parents=True, exist_ok=True)
            self.folder.recover()
            remove_stale_temporaries(self.folder.path)
            if not self.cfg.resume:
                self.folder.clear()  # forget this fold's earlier checkpoints, metrics and predictions
        barrier(self.ctx.dist)
        if self.cfg.resume and self.folder.last.exists():
            self._resume()
        if self.start_epoch > self.cfg.epochs:
            self.ctx.say(f"fold {self.fold}: already trained for {self.start_epoch - 1} epochs "
                         f"(asked for {self.cfg.epochs}); nothing to do")
            return
        stopped = self._stop_verdict()
        if stopped.stop:
            self.ctx.say(f"fold {self.fold}: stopped early after epoch {self.start_epoch - 1} "
                         f"({stopped.reason}); nothing to do")
            return
        plan = self.plan
        if main:
            self._write_fold_record()
            self.ctx.say(f"fold {self.fold}: train/val/test windows: {plan.sizes_line()}; {plan.parameters:,} "
                         f"parameters; {plan.steps_per_epoch} steps per epoch on {self.ctx.device} "
                         f"({self.ctx.precision})"
                         + (f" x {self.ctx.dist.world_size} ranks" if self.ctx.dist.enabled else ""))
        model = self.model
        if self.ctx.dist.enabled:
            # Each step uses one dataset's spatial conv, task token and head, and 2 of 8 experts.
            model = DistributedDataParallel(self.model, find_unused_parameters=True,
                                            device_ids=[self.ctx.device] if self.ctx.device.type == "cuda" else None)
        live = self.ctx.dist.is_main and console.is_terminal and not self.ctx.quiet
        total = self.sampler.steps_per_epoch() * (self.cfg.epochs - self.start_epoch + 1)
        with fold_progress(self.fold, self.ctx.names, total, self.cfg.epochs, live) as advance:
            for epoch in range(self.start_epoch, self.cfg.epochs + 1):
                if self._epoch(model, epoch, advance, plan).stop:
                    break

    def _resume(self) -> None:
        directory, meta = ckpt.read_meta(self.folder.last)
        self.model.load_state_dict(ckpt.load_state_dict(self.folder.last))
        self.optimizer.load_state_dict(ckpt.load_optimizer_state(self.folder.last))
        self.start_epoch = int(meta["epoch"]) + 1
        best = meta.get("best_val_loss")
        self.best_val, self.best_epoch = (math.inf if best is None else float(best)), int(meta.get("best_epoch", 0))
        self.rows = self.folder.read_metrics(before_epoch=self.start_epoch)
        self.val_losses = [r.get("val_loss") for r in self.rows]
        self.ctx.say(f"fold {self.fold}: resuming after epoch {meta['epoch']} from {directory}")

    def _write_fold_record(self) -> None:
        splits = {name: dict(sizes=s.sizes(), holds_out=s.holds_out, subjects=s.subjects)
                  for name, s in self.splits.items()}
        self.folder.write_record(dict(self.ctx.record(), fold=self.fold, fold_seed=self.fold_seed,
                                      protocol=self.cfg.protocol, splits=splits,
                                      start_epoch=self.start_epoch))

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
        x, lengths = self.readers[name](rows)
        return d, n_mine, scale, x, lengths, self.labels[name][rows]

    def _stop_verdict(self) -> StopVerdict:
        return early_stop(self.val_losses, self.cfg.patience or None, self.cfg.min_delta or 0.0,
                          self.warmup_epochs)

    def _lr_at(self, step: int) -> float:
        return self.cfg.lr * lr_factor(step, self.total_steps, self.cfg.warmup or 0.0, self.cfg.schedule or "constant")

    def _epoch(self, model: torch.nn.Module, epoch: int, advance: Advance, plan: FoldPlan) -> StopVerdict:
        ctx, info, device = self.ctx, self.ctx.dist, self.ctx.device
        torch.manual_seed(derive_seed(self.fold_seed, epoch, info.rank))  # dropout, gate noise
        augment_rng = torch.Generator().manual_seed(derive_seed(self.fold_seed, epoch, info.rank, 1))
        model.train()
        stats = torch.zeros(len(ctx.names), 3, dtype=torch.float64, device=device)  # Σ loss·n, Σ CE·n, n
        start = time.perf_counter()
        step = (epoch - 1) * self.sampler.steps_per_epoch()
        for d, n_mine, scale, x, lengths, y in prefetch(self._load, self._my_batches(epoch)):
            xt, yt = torch.from_numpy(x), torch.from_numpy(y).to(device)
            if self.augment.enabled:  # on the CPU, with the epoch's own generator
                xt, lengths = self.augment.crop(xt, lengths, self.sfreq[d], augment_rng)
                xt = self.augment(xt, self.sfreq[d], augment_rng)
            xt = xt.to(device)
            lt = None if lengths is None else torch.from_numpy(lengths).to(device)
            lr = self._lr_at(step)
            set_lr(self.optimizer, lr)
            total, ce = train_step(model, self.optimizer, xt, yt, d, scale=scale, clip=self.cfg.grad_clip, lengths=lt,
                                   precision=ctx.precision)
            step += 1
            stats[d, 0] += total.double() * n_mine
            stats[d, 1] += ce.double() * n_mine
            stats[d, 2] += n_mine
            advance(epoch, d, total, n_mine * info.world_size)
        all_reduce_sum(stats, info)
        elapsed = time.perf_counter() - start
        val = validation_sums(self.model, ctx.caches, self.splits, self.labels, self.cfg.batch_size, device, info,
                              ctx.precision, ctx.crops())
        in_sync = ranks_in_sync(unwrap(model), info)
        if not in_sync:
            raise RuntimeError(f"fold {self.fold} epoch {epoch}: DDP ranks hold different weights")
        self.val_losses.append(selection_loss([ce_sum / n for ce_sum, _, n in val.values() if n]))
        verdict = self._stop_verdict()
        if info.is_main:
            self._finish_epoch(epoch, stats.cpu().numpy(), val, elapsed, in_sync, plan, lr, verdict)
        barrier(info)
        return verdict

    # -- bookkeeping (rank 0) ----------------------------------------------------------------------
    def _metrics_row(self, epoch: int, stats: np.ndarray, val: dict, elapsed: float, lr: float) -> dict:
        n = float(stats[:, 2].sum())
        row: dict = dict(fold=self.fold, epoch=epoch, time_s=round(elapsed, 3), windows=int(n),
                         windows_per_s=round(n / max(elapsed, 1e-9), 2), lr=lr,
                         train_loss=float(stats[:, 0].sum() / max(n, 1)))
        for d, name in enumerate(self.ctx.names):
            n_d = stats[d, 2]
            row[f"train_loss.{name}"] = float(stats[d, 0] / n_d) if n_d else None
            row[f"train_ce.{name}"] = float(stats[d, 1] / n_d) if n_d else None
            ce_sum, correct, nv = val[name]
            row[f"val_loss.{name}"] = ce_sum / nv if nv else None
            row[f"val_acc.{name}"] = correct / nv if nv else None
        row["val_loss"] = self.val_losses[-1]  # this epoch's (_epoch appended it)
        return row

    def _finish_epoch(self, epoch: int, stats: np.ndarray, val: dict, elapsed: float, in_sync: bool,
                      plan: FoldPlan, lr: float, verdict: StopVerdict) -> None:
        row = self._metrics_row(epoch, stats, val, elapsed, lr)
        improved = (row["val_loss"] is not None and row["val_loss"] < self.best_val
                    and epoch > self.warmup_epochs)
        if improved:
            self.best_val, self.best_epoch = row["val_loss"], epoch
        row.update(best_epoch=self.best_epoch, ranks_in_sync=in_sync)
        if verdict.stop:  # only on the last row, so the metrics of a run that never stops keep their columns
            row["stopped"] = verdict.reason
        self.rows.append(row)
        self.folder.write_metrics(self.rows)
        self._save(epoch, row, improved)
        metrics = EpochMetrics(plan, dict(row))
        if self.ctx.on_epoch is not None:
            self.ctx.on_epoch(metrics)
        else:
            console.print(epoch_line(metrics), highlight=False)
        if verdict.stop:
            self.ctx.say(f"fold {self.fold}: {verdict.reason}; best/ holds epoch {self.best_epoch}")

    def _save(self, epoch: int, row: dict, improved: bool) -> None:
        meta = dict(fold_settings(self.ctx, self.fold), epoch=epoch, val_loss=row["val_loss"],
                    best_val_loss=self.best_val if math.isfinite(self.best_val) else None,
                    best_epoch=self.best_epoch,
                    resume=dict(next_epoch=epoch + 1, sampler="DynamicSampler(fold_seed).epoch(e): numpy "
                                "SeedSequence([fold_seed, e])", torch="manual_seed(derive_seed(fold_seed, e, "
                                "rank)) at the start of epoch e"),
                    saved=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        tmp, tmp_best = self.folder.temporary(self.folder.last, epoch), self.folder.temporary(self.folder.best, epoch)
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            ckpt.write_checkpoint(tmp, self.model, meta, self.optimizer)
            if improved:
                shutil.rmtree(tmp_best, ignore_errors=True)
                ckpt.write_checkpoint(tmp_best, self.model, meta)
                ckpt.publish(tmp_best, self.folder.best)
            ckpt.publish(tmp, self.folder.last)
        finally:  # a failed save (full disk) leaves the previous checkpoints and no half-written folder
            for folder in (tmp, tmp_best):
                shutil.rmtree(folder, ignore_errors=True)
