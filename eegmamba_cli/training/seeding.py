"""Seeds that are pure functions of (seed, fold, epoch, ...): what makes a resumed run bit-identical."""
from __future__ import annotations

import numpy as np


def derive_seed(*keys: int) -> int:
    """A 32-bit seed that depends only on `keys` (no Python hash salt, no process history)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])
