"""The environment for a child Python that must import this very copy of eegmamba_cli and models.

The peer baselines and the benchmarks run their work in child processes (`python -m eegmamba_cli...`).
From an installed package that import is found anyway; from a source checkout (tests, a clone) it is
found only if the checkout is on the path, so this puts it first.
"""
from __future__ import annotations

import os
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[1]  # the folder that holds eegmamba_cli/ and models/


def python_child_env() -> dict[str, str]:
    """os.environ with SOURCE_ROOT first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SOURCE_ROOT), env.get("PYTHONPATH")) if p)
    return env
