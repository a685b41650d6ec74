"""Shared test setup: the hypothesis profile, one torch thread, the `cuda` marker, the real-data folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"


def running_in_ci() -> bool:
    """CI services set CI=true (GitHub Actions, GitLab, .ci/run)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


# In CI every property test draws the same examples on every run (derandomize: a seed fixed per test), so a
# red build is reproducible and not a lucky draw, and no example database carries state between runs.
# Locally each run draws new examples and remembers failing ones, so repeated runs explore more inputs.
# Loaded here, at import, because the test modules build their `settings(...)` objects at import and
# those inherit from the profile loaded at that moment. Both start from hypothesis's defaults: recent
# hypothesis versions load their own "ci" profile on import when CI is set at all (even CI=false).
_DEFAULTS = settings.get_profile("default")
settings.register_profile("ci", _DEFAULTS, derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("dev", _DEFAULTS, deadline=None)
settings.load_profile("ci" if running_in_ci() else "dev")


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
