"""EEGMamba model package: ST-Adaptive front end, BiMamba blocks, task-aware MoE."""
from .config import (ABLATIONS, DatasetSpec, EEGMambaConfig,
                     MambaConfig, MoEConfig, ablate, preset)
from .bimamba import BiMamba, BiMambaBlock
from .eegmamba import EEGMamba
from .moe import MoEBlock, TaskAwareMoE
from .st_adaptive import STAdaptive, token_count
from .transformer import TransformerBaseline

__all__ = ["ABLATIONS", "DatasetSpec", "EEGMambaConfig",
           "MambaConfig", "MoEConfig", "ablate", "preset",
           "BiMamba", "BiMambaBlock", "EEGMamba", "MoEBlock", "TaskAwareMoE", "STAdaptive", "token_count",
           "TransformerBaseline"]
