"""Shared test setup: the `cuda` marker skips cleanly on machines without a GPU."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tests run many tiny ops; on a 2-core machine shared with other work, torch's intra-op threads spin
    and wait ~10x longer than one thread computes. Tests that exercise threading set it themselves."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip(f"{REALDATA} not found (the shared/ folder beside the checkout)")
    return REALDATA
