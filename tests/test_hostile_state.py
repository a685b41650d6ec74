"""Damaged caches and run folders (edited by hand, half-copied, from another tool) given to `train` and
`evaluate`: one error line naming the file and exit code 1, never a traceback.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from eegmamba_cli.app import app
from eegmamba_cli.training.trainer import TrainConfig, train
from helpers_cache import make_cache

runner = CliRunner()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("state")
    make_cache(base / "cache", "toya", n_subjects=6, windows_per_subject=8)
    # s00 is fold 1's test subject, so evaluate reads the array the cases below damage.
    train(TrainConfig(out=base / "run", data=base / "cache", tasks="toya", fold="1", epochs=1, d_model=16,
                      layers=1, device="cpu", batch_size=8, protocol="held-out", test_subjects=("s00",)))
    return base


def edit_json(path: Path, change) -> None:
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def drop(*keys):
    return lambda d: {k: v for k, v in d.items() if k not in keys}


CASES = {  # name: (damage to the copied folder, command, text expected in the error line)
    "cache info.json without keys": (lambda w: (w / "cache/toya/info.json").write_text('{"format": 1}'), "train",
                                     "damaged cache (missing or malformed info.json: dataset"),
    "cache info.json a list": (lambda w: (w / "cache/toya/info.json").write_text("[1]"), "train",
                               "cache format None is not supported"),
    "cache info.json not JSON": (lambda w: (w / "cache/toya/info.json").write_text("{"), "train", "unreadable cache"),
    "manifest not parquet": (lambda w: (w / "cache/toya/manifest.parquet").write_bytes(b"PAR1"), "train",
                             "unreadable cache"),
    "manifest without columns": (lambda w: pd.DataFrame({"a": [1]}).to_parquet(w / "cache/toya/manifest.parquet"),
                                 "train", "damaged cache (missing or malformed manifest: dataset"),
    "window array missing": (lambda w: [p.unlink() for p in (w / "cache/toya/arrays").glob("*.npy")], "train",
                             "unreadable window array"),
    "window array of another shape": (lambda w: np.save(w / "cache/toya/arrays/s00-r1.npy",
                                                        np.zeros((2, 5, 7), np.float32)), "evaluate",
                                      "s00-r1.npy: damaged window array (float32 (2, 5, 7)"),
    "window array too short": (lambda w: np.save(w / "cache/toya/arrays/s00-r1.npy",
                                                 np.zeros((2, 2, 64), np.float32)), "evaluate",
                               "the manifest needs float32 (8, 2, 64)"),
    "window array of objects": (lambda w: np.save(w / "cache/toya/arrays/s00-r1.npy",
                                                  np.array([{}] * 8, dtype=object), allow_pickle=True), "evaluate",
                                "s00-r1.npy: unreadable window array ("),
    "metrics.jsonl not JSON": (lambda w: (w / "run/fold-1/metrics.jsonl").write_text("{bad\n"), "train",
                               "metrics.jsonl: unreadable (JSONDecodeError"),
    "run.json not JSON": (lambda w: (w / "run/run.json").write_text("[1,"), "train", "run.json: unreadable run record"),
    "run.json a list": (lambda w: (w / "run/run.json").write_text("[1]"), "evaluate",
                        "run.json: not a run record of eegmamba train"),
    "run.json without config": (lambda w: (w / "run/run.json").write_text("{}"), "evaluate",
                                "run.json: not a run record of eegmamba train"),
    "checkpoint.json without datasets": (lambda w: [edit_json(w / f"run/fold-1/{n}/checkpoint.json", drop("datasets"))
                                                    for n in ("last", "best")], "evaluate",
                                         "checkpoint.json: damaged checkpoint metadata"),
    "checkpoint.json with a foreign model config": (
        lambda w: [edit_json(w / f"run/fold-1/{n}/checkpoint.json", lambda d: dict(d, model_config={"x": 1}))
                   for n in ("last", "best")], "evaluate", "checkpoint.json: its model config does not describe"),
    "checkpoint.json of a resumed fold without datasets": (
        lambda w: edit_json(w / "run/fold-1/last/checkpoint.json", drop("datasets")), "train",
        "last/checkpoint.json: damaged checkpoint metadata"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_damaged_state_is_one_line(pristine, tmp_path, case):
    damage, command, expected = CASES[case]
    shutil.copytree(pristine / "cache", tmp_path / "cache")
    shutil.copytree(pristine / "run", tmp_path / "run")
    damage(tmp_path)
    if command == "train":
        args = ["train", "--data", str(tmp_path / "cache"), "--out", str(tmp_path / "run"), "--tasks", "toya",
                "--fold", "1", "--epochs", "2", "--d-model", "16", "--layers", "1", "--device", "cpu",
                "--batch-size", "8", "--test-subjects", "s00", "--recipe", "paper"]
    else:
        args = ["evaluate", str(tmp_path / "run"), "--device", "cpu", "--data", str(tmp_path / "cache")]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and expected in lines[0], result.output
