"""The run as one object: its folder, the trainer's per-epoch metrics, the one inference loop, the run
folder's lock during evaluate, and settings errors worded for the library and for the CLI."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from eegmamba_cli.app import app
from eegmamba_cli.commands.options import Ablation, settings_as_flags
from eegmamba_cli.console import UserError
from eegmamba_cli.data.cache import WindowCache
from eegmamba_cli.errors import ConfigError
from eegmamba_cli.fileio import directory_lock
from eegmamba_cli.predict.model import load_head
from eegmamba_cli.predict.run import classify
from eegmamba_cli.training.checkpoint import load_checkpoint
from eegmamba_cli.training.evaluation import EvalConfig, evaluate_run
from eegmamba_cli.training.inference import cache_logits, probabilities, window_logits
from eegmamba_cli.training.run_folder import RunFolder, resolve_model
from eegmamba_cli.training.trainer import TrainConfig, model_config, train
from helpers_cache import make_cache
from models import ABLATIONS

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two folds of a toy dataset, two epochs each, with every epoch's metrics as the trainer handed them."""
    root = tmp_path_factory.mktemp("runfolder")
    make_cache(root / "cache", "toya", n_subjects=6, windows_per_subject=8)
    seen = []
    cfg = TrainConfig(out=root / "run", data=root / "cache", fold="1,2", epochs=2, d_model=16, layers=1,
                      device="cpu", batch_size=8, lr=3e-3, seed=4)
    train(cfg, on_epoch=seen.append, quiet=True)
    return root, cfg, seen


def test_on_epoch_hands_over_what_the_files_record(trained):
    root, cfg, seen = trained
    assert [(m.fold, m.epoch) for m in seen] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    for fold in (1, 2):
        folder = RunFolder(root / "run").fold(fold)
        rows = [json.loads(line) for line in folder.metrics_jsonl.read_text().splitlines()]
        assert [m.row for m in seen if m.fold == fold] == rows
        plan = next(m.plan for m in seen if m.fold == fold)
        assert plan.sizes == {"toya": folder.read_record()["splits"]["toya"]["sizes"]}
        model, _ = load_checkpoint(folder.last)
        assert plan.parameters == sum(p.numel() for p in model.parameters())
        best = [m.epoch for m in seen if m.fold == fold and m.is_best]
        assert best and best[-1] == json.loads((folder.best / "checkpoint.json").read_text())["epoch"]


def test_quiet_training_prints_nothing(trained, tmp_path, capsys):
    root, cfg, _ = trained
    shutil.copytree(root / "run", tmp_path / "run")
    seen = []
    train(TrainConfig(**{**cfg.__dict__, "out": tmp_path / "run", "epochs": 3, "fold": "1"}), on_epoch=seen.append,
          quiet=True)
    assert [m.epoch for m in seen] == [3] and seen[0].plan.epochs == 3  # resumed after epoch 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_model_paths_resolve_to_one_checkpoint(trained):
    root, _, _ = trained
    run = RunFolder(root / "run")
    assert [f.number for f in run.folds()] == [1, 2]
    assert resolve_model(run.fold(2).path) == run.fold(2).best  # the run selects best-val
    assert resolve_model(run.path, fold=1) == run.fold(1).best
    assert resolve_model(run.fold(1).last) == run.fold(1).last
    with pytest.raises(UserError, match=r"no fold-7/ \(folds here: 1, 2\)"):
        resolve_model(run.path, fold=7)
    with pytest.raises(UserError, match="not a checkpoint, fold or run folder"):
        resolve_model(root / "cache")


def test_one_inference_loop_for_evaluate_and_predict(trained):
    root, _, _ = trained
    cache = WindowCache(root / "cache" / "toya")
    head = load_head(root / "run", "toya", "cpu", fold=1)
    rows = np.arange(len(cache.labels))
    from_cache = cache_logits(head.model, cache, rows, head.index, 5, torch.device("cpu"))
    from_array = window_logits(head.model, cache.windows(rows), head.index, 5, torch.device("cpu"), 2)
    assert from_cache.dtype == np.float32 and from_cache.shape == (len(rows), 2)
    assert np.array_equal(from_cache, from_array)
    proba = classify(head, cache.windows(rows), 5, "cpu")
    assert np.array_equal(proba, probabilities(from_cache)) and np.allclose(proba.sum(1), 1, atol=1e-12)


def test_evaluate_refuses_a_run_folder_in_use(trained):
    root, _, _ = trained
    run = RunFolder(root / "run")
    before = sorted(p.name for p in run.path.iterdir())
    with directory_lock(run.path, "eegmamba train"):
        result = runner.invoke(app, ["evaluate", str(run.path), "--device", "cpu"])
        with pytest.raises(UserError, match="already in use"):
            evaluate_run(EvalConfig(run_dir=run.path, device="cpu"))
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert errors == [f"error: {run.path}: already in use by eegmamba train (pid {__import__('os').getpid()}); "
                      "wait for it to finish"]
    assert sorted(p.name for p in run.path.iterdir()) == before  # no results.csv, no confusion/
    evaluate_run(EvalConfig(run_dir=run.path, device="cpu"))  # free again: evaluates, releases the lock
    assert run.results_csv.exists() and (run.path / ".lock").read_text() == ""


def test_evaluate_does_not_lock_a_folder_that_is_no_run(tmp_path):
    with pytest.raises(UserError, match="not an eegmamba training run"):
        evaluate_run(EvalConfig(run_dir=tmp_path / "nothing", device="cpu"))
    assert not (tmp_path / "nothing").exists()


# --- settings errors: the library's words, the CLI's flags ------------------------------------------
@pytest.mark.parametrize("change, library, cli", [
    (dict(epochs=0), "epochs must be at least 1 (got 0)", "--epochs must be at least 1 (got 0)"),
    (dict(max_windows_per_dataset=None, val_fraction=0.0),
     "select best-val needs a validation set; set val_fraction > 0 or select final",
     "--select best-val needs a validation set; set --val-fraction > 0 or --select final"),
    (dict(weight_decay=float("nan")), "weight_decay must be a finite number >= 0 (got nan)",
     "--weight-decay must be a finite number >= 0 (got nan)"),
])
def test_config_errors_name_settings_as_the_caller_knows_them(tmp_path, change, library, cli):
    cfg = TrainConfig(out=tmp_path, **change)
    with pytest.raises(ConfigError) as caught:
        cfg.validate()
    assert str(caught.value) == library
    with pytest.raises(UserError) as worded, settings_as_flags():
        cfg.validate()
    assert str(worded.value) == cli


def test_moe_ablation_without_moe_is_refused_in_the_library_terms(tmp_path):
    cfg = TrainConfig(out=tmp_path, preset="single-task", ablations=("no-task-gate",))
    with pytest.raises(ConfigError, match="^ablations no-task-gate changes the MoE, which the single-task "
                                          "preset has not$"):
        model_config(cfg)
    model_config(TrainConfig(out=tmp_path, preset="single-task", ablations=("no-moe", "unidirectional")))
    with pytest.raises(UserError, match="^--ablation no-task-gate changes the MoE"), \
            settings_as_flags(ablations="--ablation"):
        model_config(cfg)


def test_the_cli_offers_exactly_the_models_ablations():
    assert tuple(a.value for a in Ablation) == ABLATIONS


def test_config_error_keeps_braces_in_values(tmp_path):
    err = ConfigError("{fold}: expected 'all' or fold numbers", got="'{1}'")
    assert str(err) == "fold: expected 'all' or fold numbers (got '{1}')"
    assert err.in_terms({"fold": "--fold"}) == "--fold: expected 'all' or fold numbers (got '{1}')"


def test_library_errors_do_not_leak_flags_to_api_callers(trained, tmp_path):
    """The demo calls train() itself; its users never typed --fold."""
    root, cfg, _ = trained
    with pytest.raises(ConfigError) as caught:
        train(TrainConfig(**{**cfg.__dict__, "out": tmp_path / "x", "fold": "9"}))
    assert str(caught.value).startswith("fold 9: no test subjects in fold(s) [9]") and "--" not in str(caught.value)


def test_old_layout_names_are_the_run_folders(tmp_path):
    """Run folders written before this module existed use the same names: they still evaluate and predict."""
    run = RunFolder(tmp_path)
    assert run.record_path == tmp_path / "run.json"
    assert run.fold(3).path == tmp_path / "fold-3"
    assert (run.fold(3).last, run.fold(3).best) == (tmp_path / "fold-3" / "last", tmp_path / "fold-3" / "best")
    assert run.fold(3).metrics_jsonl == tmp_path / "fold-3" / "metrics.jsonl"
    assert run.fold(3).predictions_file("siena") == tmp_path / "fold-3" / "predictions" / "siena.parquet"
    assert Path(run.results_csv).name == "results.csv" and run.confusion_png("siena").parent.name == "confusion"
