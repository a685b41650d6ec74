"""What `train` is asked to do (`TrainConfig`), the checks on it, and the model it describes.

Errors name the settings as TrainConfig fields (`ConfigError`); the CLI rewords them with its flags.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from models import EEGMambaConfig, ablate, preset

from ..errors import ConfigError, literal
from .augment import Augmentations
from ..precision import PRECISIONS
from .data import default_cache_root
from .protocols import MAX_VAL_FRACTION, Protocol, ProtocolError, parse_protocol
from .recipe import PAPER, RECIPE_CHOICES, RECIPES, SCHEDULES, Recipe, choose_recipe, recipe_named
from .run_folder import SELECTIONS

SINGLE_TASK_PRESETS = ("single-task", "singletask")

# Settings that came with recipes, at the paper recipe's values: the values runs before them trained with.
RESUME_KEY_DEFAULTS = dict(recipe=PAPER.name, schedule=PAPER.schedule, warmup=PAPER.warmup, patience=0,
                           min_delta=PAPER.min_delta, augmentations=None, grad_clip=None,
                           init_from=None, freeze="none", pretrained_lr_factor=1.0, train_fraction=None)
FREEZE_CHOICES = ("none", "backbone", "tokenizer")  # transfer.FREEZE (importing it here would load torch)


@dataclass
class TrainConfig:
    """Everything `eegmamba train` was asked to do (recorded in run.json and every checkpoint)."""

    out: Path
    tasks: str = "all"
    data: Path = field(default_factory=default_cache_root)
    fold: str = "all"  # "all", "3" or "1,2"
    preset: str | None = "multitask"  # None: the recipe's for one dataset (recipe.Recipe.preset), else multitask
    ablations: tuple[str, ...] = ()
    # None below: the recipe's value (recipe.py); a value given here overrides the recipe.
    recipe: str = "paper"  # auto | small | paper; auto: small below recipe.SMALL_DATA_THRESHOLD training windows
    d_model: int | None = None  # the model's width (the recipe's, else the preset's)
    layers: int | None = None  # the model's block count (the recipe's, else the preset's)
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None  # the peak learning rate
    schedule: str | None = None  # constant | cosine, after the warm-up
    warmup: float | None = None  # fraction of all steps spent ramping the LR up
    weight_decay: float | None = None
    patience: int | None = None  # early stopping on the validation loss; 0: never stop
    min_delta: float | None = None  # the least decrease of the validation loss that counts as improving
    augment: bool = True  # False: no augmentation whatever the recipe says
    balance_weight: float | None = None
    z_weight: float | None = None
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # fp32 | bf16 | auto (eegmamba_cli.precision); run.json records the resolved one
    resume: bool = True
    select: str = "best-val"  # or "final": which checkpoint stands for a fold
    max_windows_per_dataset: int | None = None
    val_fraction: float | None = None  # None: the recipe's (paper 0.1, small 0.2)
    grad_clip: float | None = None  # off, as in the paper; a number clips the global gradient norm to it
    protocol: str = "subject-kfold"  # training/protocols.py: which windows train, validate and test per fold
    n_folds: int | None = None  # for subject-kfold and within-subject; None: 5 (or the corpus's fixed folds)
    test_subjects: tuple[str, ...] = ()  # held-out: the test part
    test_sessions: tuple[str, ...] = ()  # held-out or cross-session: the test part
    train_fraction: float | None = None  # a class-stratified share of each fold's training windows; None: all
    # Fine-tuning (training/transfer.py): start from a trained run, fold, checkpoint or exported model folder
    init_from: Path | None = None
    freeze: str = "none"  # none | backbone | tokenizer: shared parts that do not learn
    pretrained_lr_factor: float = 1.0  # learning-rate multiplier of the parts loaded from init_from

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(out=str(self.out), data=str(self.data), ablations=list(self.ablations),
                 test_subjects=list(self.test_subjects), test_sessions=list(self.test_sessions),
                 init_from=None if self.init_from is None else str(self.init_from))
        return d

    def resume_key(self) -> dict:
        """The settings a resumed run must share with the run it continues: those of a resolved config
        (`resolve_recipe`). Epochs may grow unless the LR schedule is planned over them (cosine, warm-up)."""
        d = self.to_json()
        for k in ("out", "data", "fold", "device", "precision", "resume", "select", "tasks"):
            d.pop(k)
        if d["schedule"] == "constant" and not d["warmup"]:
            d.pop("epochs")
        d.pop("augment")
        augmentations = self.augmentations() if self.recipe in RECIPES else None
        d["augmentations"] = asdict(augmentations) if augmentations and augmentations.enabled else None
        # Runs from before an option existed recorded no value for it; the paper recipe's values are what
        # they used, so those are left out and such runs resume as they are.
        for k, v in RESUME_KEY_DEFAULTS.items():
            if d.get(k, v) == v:
                d.pop(k, None)
        return d

    def augmentations(self) -> Augmentations:
        """The augmentations a resolved config trains with."""
        return recipe_named(self.recipe).augment if self.augment else Augmentations()

    def validate(self) -> None:
        """Refuse settings the trainer cannot use, before anything is read or written. Settings left to the
        recipe (None) are checked once resolved."""
        if self.recipe not in RECIPE_CHOICES:
            raise ConfigError(f"{{recipe}} must be one of {', '.join(RECIPE_CHOICES)}", got=repr(self.recipe))
        if self.precision not in PRECISIONS:
            raise ConfigError(f"{{precision}} must be one of {', '.join(PRECISIONS)}", got=repr(self.precision))
        if self.select not in SELECTIONS:
            raise ConfigError(f"{{select}} must be one of {', '.join(SELECTIONS)}", got=repr(self.select))
        if self.select == "best-val" and self.val_fraction is not None and self.val_fraction <= 0:
            raise ConfigError("{select} best-val needs a validation set; set {val_fraction} > 0 or {select} final")
        for name in ("epochs", "batch_size", "d_model", "layers"):
            if getattr(self, name) is not None:
                _at_least_one(name, getattr(self, name))
        if self.lr is not None and not 0 < self.lr < math.inf:
            raise ConfigError("{lr} must be a finite number > 0", got=self.lr)
        for name in ("weight_decay", "balance_weight", "z_weight", "min_delta"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < math.inf:
                raise ConfigError(f"{{{name}}} must be a finite number >= 0", got=value)
        if self.schedule is not None and self.schedule not in SCHEDULES:
            raise ConfigError(f"{{schedule}} must be one of {', '.join(SCHEDULES)}", got=repr(self.schedule))
        if self.warmup is not None and not 0 <= self.warmup < 1:
            raise ConfigError("{warmup} must be a fraction in [0, 1)", got=self.warmup)
        if self.patience is not None and self.patience < 0:
            raise ConfigError("{patience} must be 0 (no early stopping) or more", got=self.patience)
        if self.patience and self.val_fraction is not None and self.val_fraction <= 0:
            raise ConfigError("{patience} (early stopping) needs a validation set; set {val_fraction} > 0 "
                              "or {patience} 0")
        if self.grad_clip is not None and not 0 < self.grad_clip < math.inf:
            raise ConfigError("{grad_clip} must be a finite number > 0", got=self.grad_clip)
        if self.val_fraction is not None and not 0 <= self.val_fraction <= MAX_VAL_FRACTION:
            raise ConfigError(f"{{val_fraction}} must be a fraction from 0 to {MAX_VAL_FRACTION}", got=self.val_fraction)
        if self.train_fraction is not None and not 0 < self.train_fraction <= 1:
            raise ConfigError("{train_fraction} must be a fraction in (0, 1]", got=self.train_fraction)
        if self.freeze not in FREEZE_CHOICES:
            raise ConfigError(f"{{freeze}} must be one of {', '.join(FREEZE_CHOICES)}", got=repr(self.freeze))
        if not 0 < self.pretrained_lr_factor < math.inf:
            raise ConfigError("{pretrained_lr_factor} must be a finite number > 0", got=self.pretrained_lr_factor)
        if self.init_from is None and (self.freeze != "none" or self.pretrained_lr_factor != 1.0):
            raise ConfigError("{freeze} and {pretrained_lr_factor} apply to a fine-tune; give {init_from} too")
        if self.n_folds is not None and self.n_folds < 2:
            raise ConfigError("{n_folds} must be at least 2", got=self.n_folds)
        self.split_protocol()

    def split_protocol(self) -> Protocol:
        """The evaluation protocol these settings ask for (checked against the windows by make_folds)."""
        return protocol_of(self.to_json())


def _or_paper(val_fraction: float | None) -> float:
    """A share not resolved yet (left to the recipe) is checked as the paper recipe's."""
    return PAPER.val_fraction if val_fraction is None else val_fraction


def protocol_of(settings: dict) -> Protocol:
    """The Protocol of a run's recorded settings (TrainConfig.to_json()). Runs recorded before protocols
    existed split by the caches' fixed folds: subject-kfold."""
    try:
        return parse_protocol(settings.get("protocol", "subject-kfold"), folds=settings.get("n_folds"),
                              seed=settings["seed"], test_subjects=settings.get("test_subjects") or None,
                              test_sessions=settings.get("test_sessions") or None,
                              val_fraction=_or_paper(settings["val_fraction"]))
    except ProtocolError as err:
        raise ConfigError(literal(err)) from None  # its words name the setting already


PROTOCOL_SETTINGS = ("protocol", "n_folds", "test_subjects", "test_sessions")


def protocol_settings(settings: dict) -> dict:
    """The recorded settings that decide a run's folds; runs from before protocols read as subject-kfold."""
    defaults = dict(protocol="subject-kfold", n_folds=None, test_subjects=[], test_sessions=[])
    return {k: settings.get(k, defaults[k]) for k in PROTOCOL_SETTINGS}


def resolve_recipe(cfg: TrainConfig, count_train_windows: Callable[[], int],
                   n_datasets: int = 1) -> tuple[TrainConfig, Recipe, str]:
    """(cfg with every setting left to the recipe filled in and `recipe` the one chosen, the recipe, why).
    A preset left open is the recipe's when the run trains one dataset (`n_datasets`), else multitask.

    `count_train_windows` is called only when the choice or the batch rule needs it (auto, or a batch size
    that depends on the data)."""
    needs_count = cfg.recipe == "auto" or (cfg.batch_size is None and recipe_named(cfg.recipe).batch.divisor)
    n_train = count_train_windows() if needs_count else None
    recipe, why = choose_recipe(cfg.recipe, n_train)
    from_recipe = dict(d_model=recipe.d_model, layers=recipe.layers, epochs=recipe.epochs,
                       batch_size=recipe.batch.size_for(n_train or 0), lr=recipe.lr, schedule=recipe.schedule,
                       warmup=recipe.warmup, weight_decay=recipe.weight_decay, patience=recipe.patience or 0,
                       min_delta=recipe.min_delta, balance_weight=recipe.balance_weight, z_weight=recipe.z_weight,
                       val_fraction=recipe.val_fraction)
    given = [k for k in from_recipe if getattr(cfg, k) is not None]
    if not cfg.augment and recipe.augment.enabled:
        given.append("augment")
    if cfg.patience is None and recipe.patience and cfg.val_fraction is not None and cfg.val_fraction <= 0:
        from_recipe["patience"] = 0  # no validation set: nothing to stop on
        why += "; no early stopping without a validation set"
    resolved = replace(cfg, recipe=recipe.name,
                       **{k: v for k, v in from_recipe.items() if getattr(cfg, k) is None})
    if cfg.preset is None:
        resolved.preset = recipe.preset if n_datasets == 1 else "multitask"
        why += f"; {resolved.preset} preset for {'one dataset' if n_datasets == 1 else f'{n_datasets} datasets'}"
    if given:
        why += "; given instead of the recipe's: " + ", ".join(given)
    resolved.validate()
    return resolved, recipe, why


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
    if cfg.balance_weight is not None:  # None (a config not resolved yet): the preset's
        mc = replace(mc, balance_loss_weight=cfg.balance_weight)
    if cfg.z_weight is not None:
        mc = replace(mc, z_loss_weight=cfg.z_weight)
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
