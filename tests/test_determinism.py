"""Same seed, same data, same thread count: bit-identical checkpoints and identical evaluation results on CPU.

Two multi-task runs (two datasets: the MoE, both task heads, dropout and gate noise all in play) train
into two folders; every weight and optimizer byte must match, as must the metrics and everything
`eegmamba evaluate` writes. Reductions in the C scan kernel and in torch depend on the number of threads,
so the test pins it (to 1, like the CI machine's test session) and checks that the run records it.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from eegmamba_cli.app import app
from eegmamba_cli.training.trainer import TrainConfig, train
from helpers_cache import make_toy_pair
from helpers_reliability import sha256

runner = CliRunner()
TIMING = {"time_s", "windows_per_s"}


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_toy_pair(tmp_path_factory.mktemp("determinism"))


def run_once(data: Path, out: Path) -> Path:
    train(TrainConfig(out=out, data=data, fold="1,2", epochs=2, d_model=16, layers=1, device="cpu", batch_size=8,
                      lr=3e-3, seed=13))
    result = runner.invoke(app, ["evaluate", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return out


def without(meta: dict, *keys: str) -> dict:
    return {k: v for k, v in meta.items() if k not in keys}


def test_same_seed_same_bits(data, tmp_path, one_thread):
    a, b = run_once(data, tmp_path / "a"), run_once(data, tmp_path / "b")
    for fold in (1, 2):
        for name in ("last/model.safetensors", "last/optimizer.safetensors", "last/optimizer.json",
                     "best/model.safetensors", "predictions/toya.parquet", "predictions/toyb.parquet"):
            assert sha256(a / f"fold-{fold}" / name) == sha256(b / f"fold-{fold}" / name), (fold, name)
        rows = [[without(json.loads(line), *TIMING) for line in (run / f"fold-{fold}" / "metrics.jsonl")
                 .read_text().splitlines()] for run in (a, b)]
        assert rows[0] == rows[1] and len(rows[0]) == 2
        metas = [json.loads((run / f"fold-{fold}" / "last" / "checkpoint.json").read_text()) for run in (a, b)]
        assert without(metas[0], "saved", "train") == without(metas[1], "saved", "train")
        assert without(metas[0]["train"], "out") == without(metas[1]["train"], "out")
    assert (a / "results.csv").read_bytes() == (b / "results.csv").read_bytes()
    results = [json.loads((run / "results.json").read_text()) for run in (a, b)]
    for key in ("per_fold", "summary", "paper", "environment", "select"):
        assert results[0][key] == results[1][key], key
    for png in ("toya.png", "toyb.png"):
        assert sha256(a / "confusion" / png) == sha256(b / "confusion" / png)
    # the thread count that makes this hold is part of the record
    assert json.loads((a / "run.json").read_text())["environment"]["torch_threads"] == 1
    assert results[0]["environment"]["torch_threads"] == 1
    assert len(pd.read_csv(a / "results.csv")) == 4  # 2 folds x 2 datasets: the comparison was not empty


def test_another_seed_changes_the_bits(data, tmp_path, one_thread):
    """The comparison above can fail: a different seed gives different weights."""
    train(TrainConfig(out=tmp_path / "s1", data=data, tasks="toya", fold="1", epochs=1, d_model=16, layers=1,
                      device="cpu", batch_size=8, seed=1))
    train(TrainConfig(out=tmp_path / "s2", data=data, tasks="toya", fold="1", epochs=1, d_model=16, layers=1,
                      device="cpu", batch_size=8, seed=2))
    assert sha256(tmp_path / "s1/fold-1/last/model.safetensors") != sha256(tmp_path / "s2/fold-1/last/model.safetensors")
