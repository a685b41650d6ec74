"""Protocols wired into train and evaluate, padded batches, and `evaluate --peers`, on tiny caches."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from eegmamba_cli.app import app
from eegmamba_cli.data.cache import WindowCache
from eegmamba_cli.training.batches import BatchReader, crop_to_longest
from eegmamba_cli.training.checkpoint import load_checkpoint
from eegmamba_cli.training.config import TrainConfig
from eegmamba_cli.training.inference import cache_logits, window_logits
from eegmamba_cli.training.splits import dataset_folds
from eegmamba_cli.training.trainer import train
from helpers_cache import make_cache

runner = CliRunner()
TINY = ["--d-model", "16", "--layers", "1", "--device", "cpu", "--batch-size", "8", "--lr", "3e-3"]


def _train(data: Path, out: Path, *args: str):
    return runner.invoke(app, ["train", "--data", str(data), "--out", str(out), *TINY, *args])


def _error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    """One subject of 24 trials: a custom recording of one person."""
    data = tmp_path_factory.mktemp("single") / "cache"
    make_cache(data, "mine", n_subjects=1, windows_per_subject=24)
    return data


@pytest.fixture(scope="module")
def sessions(tmp_path_factory) -> Path:
    """Three subjects, each with a session 1 and a session 2 of 8 trials (a competition's train/test)."""
    data = tmp_path_factory.mktemp("sessions") / "cache"
    make_cache(data, "comp", n_subjects=3, windows_per_subject=8, sessions=2)
    return data


@pytest.fixture(scope="module")
def held_out_run(sessions, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("held") / "run"
    result = _train(sessions, out, "--test-sessions", "2", "--epochs", "2", "--val-fraction", "0.34")
    assert result.exit_code == 0, result.output
    return out


# --- training under a protocol -----------------------------------------------------------------------
def test_one_subject_trains_within_subject_with_validation(single, tmp_path):
    out = tmp_path / "run"
    result = _train(single, out, "--protocol", "within-subject", "--folds", "3", "--epochs", "2",
                    "--val-fraction", "0.25")
    assert result.exit_code == 0, result.output
    record = json.loads((out / "run.json").read_text())
    assert record["protocol"]["protocol"] == "within-subject" and record["protocol"]["n_folds"] == 3
    described = record["protocol"]["per_dataset"]["mine"]
    assert described["folds"] == 3 and [f["validation_grouped_by"] for f in described["per_fold"]] == ["event"] * 3
    cfg = TrainConfig(out=out, data=single, protocol="within-subject", n_folds=3, val_fraction=0.25)
    folds = dataset_folds(WindowCache(single / "mine"), cfg.split_protocol())
    events = WindowCache(single / "mine").manifest["window"].to_numpy()  # one event per window here
    tested = []
    for number in (1, 2, 3):
        fold = json.loads((out / f"fold-{number}" / "run.json").read_text())
        split = folds.splits[number]
        assert fold["protocol"] == "within-subject"
        assert fold["splits"]["mine"]["sizes"] == split.sizes() and sum(split.sizes().values()) == 24
        assert fold["splits"]["mine"]["holds_out"] == {"events_per_subject": {"s00": len(split.test)}}
        assert len(split.val) > 0  # best-val selection has data
        assert not set(events[split.test]) & set(events[np.concatenate([split.train, split.val])])
        best = json.loads((out / f"fold-{number}" / "best" / "checkpoint.json").read_text())
        assert best["best_val_loss"] is not None and best["epoch"] == best["best_epoch"]
        tested += split.test.tolist()
    assert sorted(tested) == list(range(24))  # every trial tested once


def test_held_out_sessions_test_only_those_sessions(sessions, held_out_run):
    record = json.loads((held_out_run / "run.json").read_text())
    assert record["protocol"]["protocol"] == "held-out" and record["protocol"]["test_sessions"] == ["2"]
    assert [f.name for f in sorted(held_out_run.glob("fold-*"))] == ["fold-1"]
    cache = WindowCache(sessions / "comp")
    split = dataset_folds(cache, TrainConfig(out=held_out_run, protocol="held-out", test_sessions=("2",),
                                             val_fraction=0.34).split_protocol()).splits[1]
    session = cache.manifest["session"].to_numpy()
    assert set(session[split.test]) == {"2"} and len(split.test) == 24
    assert set(session[np.concatenate([split.train, split.val])]) == {"1"} and len(split.val)
    fold = json.loads((held_out_run / "fold-1" / "run.json").read_text())
    assert fold["splits"]["comp"]["holds_out"] == {"sessions": ["2"]}


BAD = {  # arguments after the cache: text of the one error line
    "loso with test subjects": (["--protocol", "loso", "--test-subjects", "s00"], "use protocol held-out"),
    "held-out without a test part": (["--protocol", "held-out"], "held-out needs test subjects or test sessions"),
    "one fold": (["--protocol", "within-subject", "--folds", "1"], "--folds must be at least 2 (got 1)"),
    "folds for loso": (["--protocol", "loso", "--folds", "3"], "a number of folds does not apply"),
    "more folds than trials": (["--protocol", "within-subject", "--folds", "30"], "has 24 events, fewer than the 30"),
    "unknown test subject": (["--test-subjects", "nobody"], "test subjects nobody not in the table"),
    "empty test session": (["--protocol", "cross-session", "--test-sessions", "1,"], "empty name"),
    "too large validation": (["--protocol", "within-subject", "--val-fraction", "0.7"],
                             "--val-fraction must be a fraction from 0 to 0.5 (got 0.7)"),
    "subject-kfold with one subject": ([], "5 folds need at least 5 subjects"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_protocol_arguments_are_one_line(single, tmp_path, case):
    args, expected = BAD[case]
    result = _train(single, tmp_path / "bad", "--epochs", "1", *args)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = _error_lines(result)
    assert len(lines) == 1 and expected in lines[0], result.output
    assert not (tmp_path / "bad" / "run.json").exists()  # nothing written


def test_resuming_with_another_protocol_is_refused(sessions, tmp_path):
    out = tmp_path / "run"
    assert _train(sessions, out, "--test-sessions", "2", "--epochs", "1").exit_code == 0
    before = (out / "run.json").read_text()
    other = _train(sessions, out, "--protocol", "cross-session", "--test-sessions", "2", "--epochs", "2")
    assert other.exit_code == 1 and "protocol differs" in _error_lines(other)[0], other.output
    loso = _train(sessions, out, "--protocol", "loso", "--epochs", "2")
    assert loso.exit_code == 1 and len(_error_lines(loso)) == 1, loso.output
    assert (out / "run.json").read_text() == before


# --- evaluate ----------------------------------------------------------------------------------------
def test_evaluate_names_the_protocol(held_out_run, tmp_path):
    result = runner.invoke(app, ["evaluate", str(held_out_run), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "protocol held-out" in result.output
    results = json.loads((held_out_run / "results.json").read_text())
    assert results["protocol"] == {"protocol": "held-out", "n_folds": None, "test_subjects": [],
                                   "test_sessions": ["2"]}
    preds = pd.read_parquet(held_out_run / "fold-1" / "predictions" / "comp.parquet")
    assert len(preds) == 24


def test_evaluate_refuses_folds_of_another_protocol(held_out_run, tmp_path):
    record_path = held_out_run / "run.json"
    original = record_path.read_text()
    record = json.loads(original)
    record["config"].update(protocol="cross-session")
    record_path.write_text(json.dumps(record))
    try:
        result = runner.invoke(app, ["evaluate", str(held_out_run), "--device", "cpu"])
    finally:
        record_path.write_text(original)
    assert result.exit_code == 1, result.output
    lines = _error_lines(result)
    assert len(lines) == 1 and "trained under protocol held-out" in lines[0] and "not averaged" in lines[0]


PEERS_INSTALLED = all(importlib.util.find_spec(m) for m in ("aeon", "pyriemann"))


@pytest.mark.skipif(not PEERS_INSTALLED, reason="the [peers] extra (aeon, pyriemann) is not installed")
def test_evaluate_peers_writes_csv_and_plot(held_out_run):
    result = runner.invoke(app, ["evaluate", str(held_out_run), "--device", "cpu", "--peers"])
    assert result.exit_code == 0, result.output
    assert "EEGMamba and peers, protocol held-out" in result.output
    table = pd.read_csv(held_out_run / "peers.csv")
    assert sorted(table["method"]) == ["eegmamba", "eegnet", "minirocket", "riemann"]
    assert (table["fold"] == 1).all() and (table["n_test"] == 24).all() and (table["n_train"] == 24).all()
    assert table[["accuracy", "balanced_accuracy", "cohen_kappa"]].notna().all().all()
    metrics = [json.loads(line) for line in (held_out_run / "fold-1" / "metrics.jsonl").read_text().splitlines()]
    eegmamba = table[table["method"] == "eegmamba"].iloc[0]
    assert eegmamba["fit_seconds"] == pytest.approx(sum(r["time_s"] for r in metrics))
    results = pd.read_csv(held_out_run / "results.csv")
    assert eegmamba["accuracy"] == pytest.approx(results["accuracy"].iloc[0])
    assert (held_out_run / "peers.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((held_out_run / "results.json").read_text())["peers"]["summary"]["comp"]
    assert set(summary) == {"eegmamba", "eegnet", "minirocket", "riemann"}


def test_evaluate_peers_without_the_extra_runs_eegnet_and_says_so(held_out_run, monkeypatch):
    from eegmamba_cli.training import peers

    real = peers.importlib.util.find_spec
    monkeypatch.setattr(peers.importlib.util, "find_spec",
                        lambda name, *args: None if name in ("aeon", "pyriemann") else real(name, *args))
    result = runner.invoke(app, ["evaluate", str(held_out_run), "--device", "cpu", "--peers"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "--peers" in line]
    assert warnings == ['warning: evaluate --peers: skipping minirocket, riemann (aeon, pyriemann not installed; '
                        'pip install "eegmamba[peers]"); running eegnet']
    table = pd.read_csv(held_out_run / "peers.csv")
    assert table["method"].tolist() == ["eegmamba", "eegnet"]
    assert (table["n_test"] == 24).all() and table["accuracy"].between(0, 1).all()
    peers_json = json.loads((held_out_run / "results.json").read_text())["peers"]
    assert peers_json["skipped"] == {"minirocket": "aeon", "riemann": "pyriemann"}


# --- padded batches ----------------------------------------------------------------------------------
def test_crop_to_longest():
    x = np.arange(3 * 2 * 10, dtype=np.float32).reshape(3, 2, 10)
    cropped, lengths = crop_to_longest(x, np.array([4, 7, 2]))
    assert cropped.shape == (3, 2, 7) and np.array_equal(cropped, x[..., :7]) and lengths.tolist() == [4, 7, 2]
    same, none = crop_to_longest(x, None)
    assert same is x and none is None
    for bad in (np.array([4, 11, 2]), np.array([0, 3, 3]), np.array([4, 7]), np.array([4.0, 7.0, 2.0])):
        with pytest.raises(ValueError, match="lengths"):
            crop_to_longest(x, bad)


def _pad_cache(root: Path) -> WindowCache:
    """A cache whose windows hold 40 to 64 valid samples (a `length` column), garbage beyond."""
    cache = make_cache(root, "padded", n_subjects=6, windows_per_subject=6)
    manifest = cache.manifest.copy()
    manifest["length"] = 40 + (np.arange(len(manifest)) * 7) % 25
    manifest.to_parquet(cache.directory / "manifest.parquet", index=False)
    return WindowCache(cache.directory)


def test_padded_windows_train_and_infer_with_their_lengths(tmp_path):
    cache = _pad_cache(tmp_path / "cache")
    rows = np.array([0, 1, 2, 3])
    x, lengths = BatchReader(cache)(rows)
    assert x.shape[-1] == lengths.max() == cache.manifest["length"].iloc[:4].max()
    out = tmp_path / "run"
    train(TrainConfig(out=out, data=tmp_path / "cache", epochs=1, d_model=16, layers=1, device="cpu",
                      batch_size=8, fold="1", protocol="loso"))
    model, _ = load_checkpoint(out / "fold-1" / "best")
    # Each window alone, cut to its valid samples, must score as it does inside a padded batch.
    padded = cache_logits(model, cache, np.arange(12), 0, 5, torch.device("cpu"))
    windows, valid = cache.windows(np.arange(12)), cache.manifest["length"].to_numpy()[:12]
    alone = np.concatenate([window_logits(model, windows[i:i + 1, :, :valid[i]], 0, 1, torch.device("cpu"), 2)
                            for i in range(12)])
    np.testing.assert_allclose(padded, alone, atol=1e-4)
