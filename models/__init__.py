"""EEGMamba model package: ST-Adaptive front end, BiMamba blocks, task-aware MoE."""
from .config import (ABLATIONS, PAPER_DATASETS, PAPER_SEGMENT_SAMPLES, DatasetSpec, EEGMambaConfig,
                     MambaConfig, MoEConfig, ablate, preset)

__all__ = ["ABLATIONS", "PAPER_DATASETS", "PAPER_SEGMENT_SAMPLES", "DatasetSpec", "EEGMambaConfig",
           "MambaConfig", "MoEConfig", "ablate", "preset"]
