"""The hypothesis profile from tests/conftest.py: fixed examples in CI, fresh ones locally."""
from __future__ import annotations

import os
import subprocess
import sys

from hypothesis import settings

from tests.conftest import REPO, running_in_ci
from tests.test_properties_parsers import FUZZ

# Draws 40 integers through hypothesis under the profile conftest picks for the CI variable given.
DRAW = """
import tests.conftest
from hypothesis import given, settings, strategies as st
seen = []
@settings(max_examples=40)
@given(st.integers())
def draw(x):
    seen.append(x)
draw()
print(settings.default.derandomize, *seen)
"""


def draw(ci: str) -> list[str]:
    env = {**os.environ, "CI": ci, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", DRAW], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_loaded_profile_follows_the_ci_variable():
    assert settings.default.derandomize is running_in_ci()
    assert FUZZ.derandomize is running_in_ci()  # settings built by test modules at import inherit it
    assert FUZZ.max_examples == 150  # while keeping their own example counts


def test_ci_draws_the_same_examples_every_run_and_local_runs_do_not_fix_them():
    first, second = draw("true"), draw("true")
    assert first[0] == "True" and len(first) == 41 and first == second
    assert draw("false")[0] == "False"


def test_ci_variable_values(monkeypatch):
    for value, ci in (("true", True), ("1", True), ("yes", True), ("", False), ("0", False), ("False", False)):
        monkeypatch.setenv("CI", value)
        assert running_in_ci() is ci, value
    monkeypatch.delenv("CI")
    assert not running_in_ci()
