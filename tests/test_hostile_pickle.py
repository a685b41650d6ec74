"""Pickles that try to run code, through the command line: a DEAP file and a checkpoint.

* `eegmamba preprocess deap` meets a DEAP `sXX.dat` whose pickle calls `os.system` on load: the file is
  skipped with one line (or stops the run under --strict), and the command never runs.
* `eegmamba evaluate` meets a checkpoint whose weights are a pickle (`model.pt`) instead of
  safetensors: refused unless `--allow-pickle-checkpoint` is given; with it, a plain state dict is read
  with torch.load(weights_only=True) and gives exactly the safetensors results, while a `__reduce__`
  payload is still refused and never runs.
* `eegmamba predict` follows the same rule for a run, a checkpoint folder or a `.pt` file named directly.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from eegmamba_cli.app import app
from eegmamba_cli.console import UserError
from eegmamba_cli.data.edf import write_edf
from eegmamba_cli.training.checkpoint import load_checkpoint
from eegmamba_cli.training.trainer import TrainConfig, train
from helpers_cache import make_cache
from tests.fixtures.deap import write_deap

runner = CliRunner()


class Payload:
    """Unpickling this calls os.system(command): the classic pickle attack."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


# --- DEAP through `eegmamba preprocess` --------------------------------------------------------------
@pytest.fixture
def deap_raw(tmp_path):
    raw = tmp_path / "deap"
    write_deap(raw, 1, [[2, 5, 5, 5], [7, 5, 5, 5]])
    marker = tmp_path / "pwned"
    hostile = raw / "data_preprocessed_python" / "s02.dat"
    hostile.write_bytes(pickle.dumps({"data": Payload(f"touch {marker}"), "labels": np.zeros((1, 4))}, protocol=2))
    return raw, marker


def test_preprocess_skips_a_code_running_deap_pickle(deap_raw, tmp_path):
    raw, marker = deap_raw
    result = runner.invoke(app, ["preprocess", "deap", "--raw", str(raw), "--out", str(tmp_path / "out"),
                                 "--workers", "1", "--no-progress"])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    skipped = [line for line in result.output.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 1 and skipped[0].startswith("skipped: s02.dat: refused to load")
    assert "system" in skipped[0]
    assert not marker.exists()
    assert "2 windows, 1 recordings" in result.output  # s01 is still preprocessed


def test_preprocess_strict_stops_at_the_code_running_pickle(deap_raw, tmp_path):
    raw, marker = deap_raw
    (raw / "data_preprocessed_python" / "s01.dat").unlink()
    for workers in ("1", "2"):  # in-process and in a spawned worker
        result = runner.invoke(app, ["preprocess", "deap", "--raw", str(raw), "--out", str(tmp_path / f"o{workers}"),
                                     "--workers", workers, "--no-progress", "--strict"])
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        lines = error_lines(result.output)
        assert len(lines) == 1 and lines[0].startswith("error: s02.dat: refused to load"), result.output
        assert not marker.exists()


# --- checkpoints through `eegmamba evaluate` -----------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("pickle-ckpt")
    data = root / "cache"
    make_cache(data, "toya", n_subjects=6, windows_per_subject=8)
    run = root / "run"
    train(TrainConfig(out=run, data=data, tasks="toya", fold="1", epochs=1, d_model=16, layers=1, device="cpu",
                      batch_size=8, seed=2))
    result = runner.invoke(app, ["evaluate", str(run), "--device", "cpu", "--select", "final"])
    assert result.exit_code == 0, result.output
    return run, json.loads((run / "results.json").read_text())["per_fold"]


def as_pickle_checkpoint(run: Path, tmp_path: Path, payload=None) -> Path:
    """A copy of the run whose fold-1/last/ holds model.pt (torch.save of the state dict, or of
    `payload`) instead of model.safetensors."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    last = copy / "fold-1" / "last"
    state = load_file(last / "model.safetensors")
    (last / "model.safetensors").unlink()
    torch.save(state if payload is None else payload, last / "model.pt")
    return copy


def evaluate(run: Path, *extra: str):
    result = runner.invoke(app, ["evaluate", str(run), "--device", "cpu", "--select", "final", *extra])
    assert "Traceback" not in result.output, result.output
    return result


def test_evaluate_refuses_a_pickled_checkpoint_without_the_flag(trained, tmp_path):
    run, _ = trained
    copy = as_pickle_checkpoint(run, tmp_path)
    result = evaluate(copy)
    lines = error_lines(result.output)
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert "model.pt: pickle-based checkpoints are never loaded without --allow-pickle-checkpoint" in lines[0]
    with pytest.raises(UserError, match="--allow-pickle-checkpoint"):
        load_checkpoint(copy / "fold-1" / "last" / "model.pt")


def test_evaluate_with_the_flag_reads_a_state_dict_and_matches_safetensors(trained, tmp_path):
    run, expected = trained
    copy = as_pickle_checkpoint(run, tmp_path)
    (copy / "results.json").unlink()
    result = evaluate(copy, "--allow-pickle-checkpoint")
    assert result.exit_code == 0, result.output
    assert json.loads((copy / "results.json").read_text())["per_fold"] == expected
    model, meta = load_checkpoint(copy / "fold-1" / "last" / "model.pt", allow_pickle=True)
    reference, _ = load_checkpoint(run / "fold-1" / "last")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))


@pytest.mark.parametrize("payload", ["reduce", "not-a-state-dict", "truncated"])
def test_evaluate_with_the_flag_still_refuses_code_and_junk(trained, tmp_path, payload):
    run, _ = trained
    marker = tmp_path / "pwned"
    if payload == "reduce":
        copy = as_pickle_checkpoint(run, tmp_path, {"w": Payload(f"touch {marker}")})
        expected = "refused or unreadable by torch.load(weights_only=True) (UnpicklingError"
    elif payload == "not-a-state-dict":
        copy = as_pickle_checkpoint(run, tmp_path, [1, 2, 3])
        expected = "not a state dict"
    else:
        copy = as_pickle_checkpoint(run, tmp_path)
        weights = copy / "fold-1" / "last" / "model.pt"
        weights.write_bytes(weights.read_bytes()[:200])
        expected = "refused or unreadable by torch.load(weights_only=True)"
    result = evaluate(copy, "--allow-pickle-checkpoint")
    lines = error_lines(result.output)
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert "model.pt: " in lines[0] and expected in lines[0], lines[0]
    assert not marker.exists()


# --- the same checkpoints through `eegmamba predict` ----------------------------------------------------
@pytest.fixture
def toy_recording(tmp_path) -> Path:
    """Channels C0 and C1 of the toy cache at its 200 Hz: 2 s, so six 64-sample windows."""
    t = np.arange(400) / 200.0
    signals = [20 * np.sin(2 * np.pi * 8 * t), 20 * np.sin(2 * np.pi * 16 * t)]
    return write_edf(tmp_path / "toy.edf", ["C0", "C1"], [200, 200], signals, start=dt.datetime(2020, 1, 1),
                     physical=[(-100, 100)] * 2)


def predict(model: Path, recording: Path, out: Path, *extra: str):
    result = runner.invoke(app, ["predict", str(recording), "--model", str(model), "--device", "cpu",
                                 "--out", str(out), *extra])
    assert "Traceback" not in result.output, result.output
    return result


@pytest.mark.parametrize("target", ["folder", "pt-file"])
def test_predict_refuses_a_pickled_checkpoint_without_the_flag(trained, tmp_path, toy_recording, target):
    copy = as_pickle_checkpoint(trained[0], tmp_path)
    model = copy / "fold-1" / "last" if target == "folder" else copy / "fold-1" / "last" / "model.pt"
    out = tmp_path / "windows.csv"
    result = predict(model, toy_recording, out)
    lines = error_lines(result.output)
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert "model.pt: pickle-based checkpoints are never loaded without --allow-pickle-checkpoint" in lines[0]
    assert not out.exists()


@pytest.mark.parametrize("target", ["folder", "pt-file"])
def test_predict_with_the_flag_matches_the_safetensors_model(trained, tmp_path, toy_recording, target):
    run, _ = trained
    reference = tmp_path / "reference.csv"
    assert predict(run / "fold-1" / "last", toy_recording, reference).exit_code == 0
    copy = as_pickle_checkpoint(run, tmp_path)
    model = copy / "fold-1" / "last" if target == "folder" else copy / "fold-1" / "last" / "model.pt"
    out = tmp_path / "windows.csv"
    result = predict(model, toy_recording, out, "--allow-pickle-checkpoint")
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 1 + 6
    assert out.read_text() == reference.read_text()


def test_predict_with_the_flag_never_runs_a_payload(trained, tmp_path, toy_recording):
    marker = tmp_path / "pwned"
    copy = as_pickle_checkpoint(trained[0], tmp_path, {"w": Payload(f"touch {marker}")})
    result = predict(copy / "fold-1" / "last" / "model.pt", toy_recording, tmp_path / "w.csv",
                     "--allow-pickle-checkpoint")
    lines = error_lines(result.output)
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert "refused or unreadable by torch.load(weights_only=True)" in lines[0]
    assert not marker.exists()
