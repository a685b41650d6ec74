"""Configuration dataclasses for EEGMamba (spec: ../shared/spec/EEGMAMBA.md).

Every value marked [D] in the spec is a field here, so that a run records exactly what it used.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Literal


@dataclass(frozen=True)
class DatasetSpec:
    """What the model needs to know about one dataset: its input channels and its classes."""

    name: str
    n_channels: int
    n_classes: int
    task: str = ""  # seizure | sleep | emotion | mi | custom

    def __post_init__(self) -> None:
        if self.n_channels < 1 or self.n_classes < 2:
            raise ValueError(f"dataset {self.name!r}: needs >= 1 channel and >= 2 classes")


@dataclass(frozen=True)
class MambaConfig:
    """Mamba-1 settings [D]: the mamba_ssm defaults (spec §3)."""

    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: int | None = None  # None -> ceil(d_model / 16)
    dt_min: float = 0.001
    dt_max: float = 0.1
    dt_init_floor: float = 1e-4
    bidirectional: bool = True  # False: the "single-directional Mamba" ablation

    def resolved_dt_rank(self, d_model: int) -> int:
        return self.dt_rank if self.dt_rank is not None else math.ceil(d_model / 16)


@dataclass(frozen=True)
class MoEConfig:
    """Task-aware mixture of experts (spec §4)."""

    n_experts: int = 8
    top_k: int = 2
    task_aware_gate: bool = True  # False: the gate sees the token only
    universal_expert: bool = True  # False: no universal expert (omega term dropped)
    noisy_gating: bool = True  # noise only in training mode
    expert_hidden_mult: int = 2  # Linear(D, 2D) -> GELU -> Linear(2D, D)


@dataclass(frozen=True)
class EEGMambaConfig:
    d_model: int = 128
    n_layers: int = 8
    use_moe: bool = True  # False: the "w/o MoE" ablation (BiMamba blocks only)
    mamba: MambaConfig = field(default_factory=MambaConfig)
    moe: MoEConfig = field(default_factory=MoEConfig)
    # ST-Adaptive module
    spatial_kernel: int = 1  # [D] k=1: a pure spatial mix per dataset
    tokenizer_norm: Literal["none", "batch", "group"] = "none"
    tokenizer_padding: Literal["same", "valid"] = "same"
    tokenizer_dropout: float = 0.5
    final_norm: bool = True
    # [D] Where the class token sits. The paper puts it first (Eq. 7); a forward-only scan never carries
    # information back to position 0, so the single-directional ablation puts it last instead.
    cls_position: Literal["first", "last"] = "first"
    # Loss weights for the MoE auxiliary losses (spec §5)
    balance_loss_weight: float = 1.0
    z_loss_weight: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EEGMambaConfig":
        d = dict(d)
        mamba = MambaConfig(**d.pop("mamba", {}))
        moe = MoEConfig(**d.pop("moe", {}))
        return cls(mamba=mamba, moe=moe, **d)


def preset(name: str) -> EEGMambaConfig:
    """`multitask`: 8 BiMamba + 8 MoE blocks. `single-task`: 2 BiMamba blocks, no MoE."""
    if name in ("multitask", "multi-task"):
        return EEGMambaConfig()
    if name in ("single-task", "singletask"):
        return EEGMambaConfig(n_layers=2, use_moe=False)
    raise ValueError(f"unknown preset {name!r} (expected 'multitask' or 'single-task')")


ABLATIONS = ("unidirectional", "no-moe", "vanilla-moe", "no-task-gate", "no-universal")


def ablate(cfg: EEGMambaConfig, ablation: str) -> EEGMambaConfig:
    """Apply one of the paper's ablation variants (spec §7) to a config."""
    if ablation == "unidirectional":
        return replace(cfg, mamba=replace(cfg.mamba, bidirectional=False), cls_position="last")
    if ablation == "no-moe":
        return replace(cfg, use_moe=False)
    if ablation == "vanilla-moe":
        return replace(cfg, moe=replace(cfg.moe, task_aware_gate=False, universal_expert=False))
    if ablation == "no-task-gate":
        return replace(cfg, moe=replace(cfg.moe, task_aware_gate=False))
    if ablation == "no-universal":
        return replace(cfg, moe=replace(cfg.moe, universal_expert=False))
    raise ValueError(f"unknown ablation {ablation!r} (expected one of {', '.join(ABLATIONS)})")
