"""The software a run or an evaluation used, recorded beside its results."""
from __future__ import annotations

import platform

import numpy as np
import torch

from .. import __version__


def environment() -> dict:
    import safetensors
    import sklearn
    from models.ops import backend_name
    return dict(eegmamba=__version__, python=platform.python_version(), torch=torch.__version__,
                numpy=np.__version__, sklearn=sklearn.__version__, safetensors=safetensors.__version__,
                cuda=torch.version.cuda, platform=platform.platform(), backend=backend_name(),
                # CPU results are bit-identical only at the same thread count (reduction order)
                torch_threads=torch.get_num_threads())
