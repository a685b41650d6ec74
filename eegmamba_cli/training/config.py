"""What `train` is asked to do (`TrainConfig`), the checks on it, and the model it describes.

Errors name the settings as TrainConfig fields (`ConfigError`); the CLI rewords them with its flags.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from models import EEGMambaConfig, ablate, preset

from ..errors import ConfigError, literal
from ..precision import PRECISIONS
from .data import default_cache_root
from .run_folder import SELECTIONS

SINGLE_TASK_PRESETS = ("single-task", "singletask")


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
    precision: str = "auto"  # fp32 | bf16 | auto (eegmamba_cli.precision); run.json records the resolved one
    resume: bool = True
    select: str = "best-val"  # or "final": which checkpoint stands for a fold
    max_windows_per_dataset: int | None = None
    val_fraction: float = 0.1
    grad_clip: float | None = None  # off, as in the paper; a number clips the global gradient norm to it

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(out=str(self.out), data=str(self.data), ablations=list(self.ablations))
        return d

    def resume_key(self) -> dict:
        """The settings a resumed run must share with the run it continues (epochs may grow)."""
        d = self.to_json()
        # precision: compared resolved, beside this key (trainer.check_resumable), so auto = fp32 resumes fp32
        for k in ("out", "data", "fold", "epochs", "device", "precision", "resume", "select", "tasks"):
            d.pop(k)
        if d["grad_clip"] is None:  # runs from before the option existed resume as they are
            d.pop("grad_clip")
        return d

    def validate(self) -> None:
        """Refuse settings the trainer cannot use, before anything is read or written."""
        if self.precision not in PRECISIONS:
            raise ConfigError(f"{{precision}} must be one of {', '.join(PRECISIONS)}", got=repr(self.precision))
        if self.select not in SELECTIONS:
            raise ConfigError(f"{{select}} must be one of {', '.join(SELECTIONS)}", got=repr(self.select))
        if self.select == "best-val" and self.val_fraction <= 0:
            raise ConfigError("{select} best-val needs a validation set; set {val_fraction} > 0 or {select} final")
        for name in ("epochs", "batch_size"):
            _at_least_one(name, getattr(self, name))
        for name in ("d_model", "layers"):
            if getattr(self, name) is not None:
                _at_least_one(name, getattr(self, name))
        if not 0 < self.lr < math.inf:
            raise ConfigError("{lr} must be a finite number > 0", got=self.lr)
        for name in ("weight_decay", "balance_weight", "z_weight"):
            if not 0 <= getattr(self, name) < math.inf:
                raise ConfigError(f"{{{name}}} must be a finite number >= 0", got=getattr(self, name))
        if self.grad_clip is not None and not 0 < self.grad_clip < math.inf:
            raise ConfigError("{grad_clip} must be a finite number > 0", got=self.grad_clip)
        if not 0 <= self.val_fraction < 1:
            raise ConfigError("{val_fraction} must be a fraction in [0, 1)", got=self.val_fraction)


def _at_least_one(name: str, value: int) -> None:
    if value < 1:
        raise ConfigError(f"{{{name}}} must be at least 1", got=value)


def model_config(cfg: TrainConfig) -> EEGMambaConfig:
    """The preset with the ablations, loss weights and size overrides of `cfg`."""
    try:
        mc = preset(cfg.preset)
    except ValueError as err:
        raise ConfigError("{preset}: " + literal(err)) from None
    for name in cfg.ablations:
        try:
            ablated = ablate(mc, name)
        except ValueError as err:
            raise ConfigError("{ablations}: " + literal(err)) from None
        if not mc.use_moe and ablated.moe != mc.moe:  # it would change experts the model does not have
            raise ConfigError(f"{{ablations}} {name} changes the MoE, which the {cfg.preset} preset has not")
        mc = ablated
    mc = replace(mc, balance_loss_weight=cfg.balance_weight, z_loss_weight=cfg.z_weight)
    if cfg.d_model is not None:
        mc = replace(mc, d_model=cfg.d_model)
    if cfg.layers is not None:
        mc = replace(mc, n_layers=cfg.layers)
    return mc


def check_dataset_count(cfg: TrainConfig, names: list[str]) -> None:
    if cfg.preset in SINGLE_TASK_PRESETS and len(names) > 1:
        raise ConfigError(f"{{preset}} single-task trains one dataset, got {len(names)} ({literal(', '.join(names))}); "
                          "train it once per dataset")


def parse_folds(spec: str, present: list[int]) -> list[int]:
    """The test folds `spec` ("all", "3", "1,3") asks for, checked against the folds the caches have."""
    if spec.strip().lower() == "all":
        if not present:
            raise ConfigError("{fold} all: no subject in the caches has a fold number (manifest column "
                              "'fold' is 0 everywhere)")
        return present
    try:
        folds = sorted({int(f) for f in spec.split(",") if f.strip()})
    except ValueError:
        raise ConfigError("{fold}: expected 'all' or fold numbers like 1 or 1,3", got=repr(spec)) from None
    absent = [f for f in folds if f not in present]
    if not folds or absent:
        raise ConfigError(f"{{fold}} {literal(spec)}: no test subjects in fold(s) {absent or folds}; the caches have "
                          f"folds {present or 'none'}")
    return folds
