"""Training recipes: paper = the old defaults exactly, auto's rule, flags over recipe values, the LR
schedule, early stopping (the rule and a real run), and bit-identical resume with the small recipe."""
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from eegmamba_cli.app import app
from eegmamba_cli.commands.train import Recipe as CliRecipe, Schedule as CliSchedule
from eegmamba_cli.errors import ConfigError
from eegmamba_cli.training.config import resolve_recipe
from eegmamba_cli.training.recipe import (PAPER, RECIPE_CHOICES, SCHEDULES, SMALL, SMALL_DATA_THRESHOLD,
                                          choose_recipe, early_stop, lr_factor, warmup_epochs)
from eegmamba_cli.training.trainer import TrainConfig, model_config, train
from eegmamba_cli.data.cache import WindowCache
from eegmamba_cli.training.checkpoint import load_checkpoint
from eegmamba_cli.predict.model import load_head
from eegmamba_cli.predict.run import classify
from eegmamba_cli.training.evaluation import EvalConfig, evaluate_run
from eegmamba_cli.training.run_folder import RunFolder
from helpers_cache import make_cache
from helpers_reliability import sha256
from models import preset

runner = CliRunner()
TIMING = {"time_s", "windows_per_s"}


def no_count():
    raise AssertionError("the training windows were counted though nothing needed them")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("recipe")
    make_cache(root, "toya", n_subjects=6, windows_per_subject=12)  # fold 1: 6-8 training windows
    return root


def small_cfg(data, out, **kw):
    base = dict(out=out, data=data, tasks="toya", fold="1", recipe="small", d_model=16, layers=1, device="cpu",
                batch_size=4, epochs=3, seed=5)
    return TrainConfig(**{**base, **kw})


# --- the paper recipe is what train did before recipes ----------------------------------------------------
# TrainConfig's defaults and resume key before recipes existed (commit 47148ce)
OLD_DEFAULTS = dict(tasks="all", fold="all", preset="multitask", ablations=[], d_model=None, layers=None,
                    epochs=100, batch_size=128, lr=2e-4, weight_decay=1e-6, balance_weight=1.0, z_weight=1.0,
                    seed=0, device="auto", resume=True, select="best-val", max_windows_per_dataset=None,
                    val_fraction=0.1, grad_clip=None)
OLD_RESUME_KEY = dict(preset="multitask", ablations=[], d_model=None, layers=None, batch_size=128, lr=2e-4,
                      weight_decay=1e-6, balance_weight=1.0, z_weight=1.0, seed=0, max_windows_per_dataset=None,
                      val_fraction=0.1,
                      # the protocol fields are new and stay in the key: validation is now carved by the
                      # protocol, so a run trained before protocols cannot resume bit-identically
                      protocol="subject-kfold", n_folds=None, test_subjects=[], test_sessions=[])


def test_paper_recipe_resolves_to_the_old_defaults_and_resume_key(tmp_path):
    cfg, recipe, why = resolve_recipe(TrainConfig(out=tmp_path), no_count)  # the library's default: paper
    assert recipe is PAPER and why == "as asked"
    got = cfg.to_json()
    assert {k: got[k] for k in OLD_DEFAULTS} == OLD_DEFAULTS
    assert dict(recipe=got["recipe"], schedule=got["schedule"], warmup=got["warmup"], patience=got["patience"],
                augment=got["augment"]) == dict(recipe="paper", schedule="constant", warmup=0.0, patience=0,
                                                augment=True)
    assert not cfg.augmentations().enabled
    assert cfg.resume_key() == OLD_RESUME_KEY  # the recipe adds nothing to the key
    assert model_config(cfg) == preset("multitask")


def test_paper_recipe_run_records_the_old_settings(data, tmp_path):
    out = tmp_path / "run"
    train(TrainConfig(out=out, data=data, tasks="toya", fold="1", epochs=2, d_model=16, layers=1, device="cpu",
                      batch_size=8, seed=3), quiet=True)
    record = json.loads((out / "run.json").read_text())
    assert record["recipe"]["chosen"] == "paper" and record["recipe"]["asked"] == "paper"
    meta = json.loads((out / "fold-1" / "last" / "checkpoint.json").read_text())
    assert meta["resume_key"] == {**OLD_RESUME_KEY, "d_model": 16, "layers": 1, "batch_size": 8, "seed": 3}
    rows = [json.loads(line) for line in (out / "fold-1" / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in rows] == [2e-4, 2e-4] and not any("stopped" in r for r in rows)


# --- auto, and flags over the recipe ------------------------------------------------------------------------
def test_auto_takes_small_below_the_threshold_and_paper_from_it():
    below, why_below = choose_recipe("auto", SMALL_DATA_THRESHOLD - 1)
    at, why_at = choose_recipe("auto", SMALL_DATA_THRESHOLD)
    assert below is SMALL and at is PAPER
    assert f"{SMALL_DATA_THRESHOLD - 1:,} training windows < {SMALL_DATA_THRESHOLD:,}" in why_below
    assert f">= {SMALL_DATA_THRESHOLD:,}" in why_at
    assert choose_recipe("paper", None)[0] is PAPER and choose_recipe("small", 10**9)[0] is SMALL
    with pytest.raises(ValueError, match="unknown recipe"):
        choose_recipe("huge", 10)


def test_small_recipe_batch_rule_and_values(tmp_path):
    sizes = {n: resolve_recipe(TrainConfig(out=tmp_path, recipe="small"), lambda n=n: n)[0].batch_size
             for n in (10, 128, 200, 256, 5000)}
    assert sizes == {10: 16, 128: 16, 200: 25, 256: 32, 5000: 32}  # clamp(n // 8, 16, 32)
    cfg, recipe, _ = resolve_recipe(TrainConfig(out=tmp_path, recipe="auto"), lambda: 300)
    assert recipe is SMALL
    assert (cfg.recipe, cfg.lr, cfg.schedule, cfg.warmup, cfg.weight_decay, cfg.epochs, cfg.patience,
            cfg.d_model, cfg.layers, cfg.balance_weight, cfg.z_weight) == (
        "small", SMALL.lr, "cosine", SMALL.warmup, SMALL.weight_decay, SMALL.epochs, SMALL.patience,
        SMALL.d_model, SMALL.layers, SMALL.balance_weight, SMALL.z_weight)
    assert cfg.augmentations() == SMALL.augment and cfg.augmentations().enabled


@pytest.mark.parametrize("asked,recipe,n_datasets,expected", [
    (None, "small", 1, "single-task"),  # one dataset: no task for the experts to route by
    (None, "small", 2, "multitask"),
    (None, "paper", 1, "multitask"),  # the paper's recipe keeps the paper's model
    ("multitask", "small", 1, "multitask"),  # a given preset wins
])
def test_preset_left_open_comes_from_the_recipe(tmp_path, asked, recipe, n_datasets, expected):
    cfg, _, why = resolve_recipe(TrainConfig(out=tmp_path, recipe=recipe, preset=asked, batch_size=16), no_count,
                                 n_datasets)
    assert cfg.preset == expected
    assert (f"{expected} preset" in why) == (asked is None)
    assert model_config(cfg).use_moe == (expected == "multitask")


def test_small_recipe_trains_on_random_crops(tmp_path):
    cfg, _, _ = resolve_recipe(TrainConfig(out=tmp_path, recipe="small", batch_size=16), no_count)
    aug = cfg.augmentations()
    assert aug.crop_s == 0.5 and aug.time_shift_s == 0  # crops instead of a zero-filled shift
    out, _ = aug.crop(torch.zeros(2, 3, 800), None, 200.0, torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 700)


def test_a_model_trained_on_crops_is_validated_and_evaluated_on_centre_crops(tmp_path):
    make_cache(tmp_path, "long", n_subjects=6, windows_per_subject=6, samples=300)  # 1.5 s at 200 Hz
    out = tmp_path / "run"
    train(small_cfg(tmp_path, out, tasks="long", epochs=2), quiet=True)
    meta = json.loads((out / "fold-1" / "last" / "checkpoint.json").read_text())
    assert meta["datasets"][0]["crop_samples"] == 100  # 0.5 s: the model reads 200 of the 300 samples
    assert json.loads((out / "run.json").read_text())["datasets"][0]["crop_samples"] == 100
    evaluate_run(EvalConfig(run_dir=out, device="cpu"))
    saved = pd.read_parquet(RunFolder(out).fold(1).predictions_file("long"))
    model, _ = load_checkpoint(out / "fold-1" / "best")
    model.eval()
    cache = WindowCache(tmp_path / "long")
    x = torch.from_numpy(cache.windows(saved["row"].to_numpy()))
    with torch.no_grad():
        centre = torch.softmax(model(x[..., 50:250], 0)[0].double(), 1).numpy()
        whole = torch.softmax(model(x, 0)[0].double(), 1).numpy()
    assert np.allclose(saved["p_0"], centre[:, 0], atol=1e-6)
    assert not np.allclose(saved["p_0"], whole[:, 0], atol=1e-4)  # the crop changes the answer
    head = load_head(out, "long", "cpu", fold=1)  # predict's path (the best checkpoint, as evaluate's)
    assert np.allclose(classify(head, x.numpy(), 4, "cpu"), centre, atol=1e-6)
    without = tmp_path / "whole"
    train(small_cfg(tmp_path, without, tasks="long", epochs=1, augment=False), quiet=True)
    meta = json.loads((without / "fold-1" / "last" / "checkpoint.json").read_text())
    assert "crop_samples" not in meta["datasets"][0]  # trained on whole windows: records as before


def test_given_settings_override_the_recipe(tmp_path):
    asked = TrainConfig(out=tmp_path, recipe="small", lr=5e-4, epochs=7, batch_size=4, d_model=24, patience=0,
                        schedule="constant", augment=False, z_weight=1.0)
    cfg, recipe, why = resolve_recipe(asked, no_count)  # batch size given: nothing to count
    assert (cfg.lr, cfg.epochs, cfg.batch_size, cfg.d_model, cfg.patience, cfg.schedule, cfg.z_weight) == (
        5e-4, 7, 4, 24, 0, "constant", 1.0)
    assert (cfg.layers, cfg.warmup, cfg.weight_decay, cfg.balance_weight) == (
        SMALL.layers, SMALL.warmup, SMALL.weight_decay, SMALL.balance_weight)  # the rest: the recipe's
    assert not cfg.augmentations().enabled
    assert why.endswith("given instead of the recipe's: d_model, epochs, batch_size, lr, schedule, patience, "
                        "z_weight, augment")


def test_early_stopping_without_validation_set(tmp_path):
    cfg, _, why = resolve_recipe(TrainConfig(out=tmp_path, recipe="small", val_fraction=0, select="final",
                                             batch_size=8), no_count)
    assert cfg.patience == 0 and "no early stopping without a validation set" in why
    with pytest.raises(ConfigError, match="needs a validation set"):
        TrainConfig(out=tmp_path, recipe="small", val_fraction=0, select="final", patience=3).validate()
    for bad in (dict(recipe="tiny"), dict(schedule="linear"), dict(warmup=1.0), dict(patience=-1)):
        with pytest.raises(ConfigError):
            TrainConfig(out=tmp_path, **bad).validate()


def test_cli_choices_are_the_library_choices():
    assert tuple(r.value for r in CliRecipe) == RECIPE_CHOICES
    assert tuple(s.value for s in CliSchedule) == SCHEDULES


# --- the schedule -------------------------------------------------------------------------------------------
def test_lr_factor_at_known_steps():
    total, warm = 100, 0.1  # 10 warm-up steps, then 90 cosine steps
    assert [lr_factor(s, total, warm, "cosine") for s in (0, 4, 9)] == [0.1, 0.5, 1.0]
    assert lr_factor(10, total, warm, "cosine") == 1.0  # the cosine starts at the peak
    assert lr_factor(55, total, warm, "cosine") == pytest.approx(0.5)  # halfway through the cosine
    assert lr_factor(99, total, warm, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi * 89 / 90)))
    assert lr_factor(500, total, warm, "cosine") == 0.0  # past the end: stays at 0
    assert lr_factor(50, total, warm, "constant") == 1.0 and lr_factor(3, total, warm, "constant") == 0.4
    assert all(lr_factor(s, total, 0.0, "constant") == 1.0 for s in range(total))  # the paper's


# --- early stopping ---------------------------------------------------------------------------------------
def first_stop(losses, patience, min_delta=0.0, warmup_epochs=0):
    """The epoch after which the rule stops, reading the losses one epoch at a time as the trainer does."""
    for epoch in range(1, len(losses) + 1):
        if early_stop(losses[:epoch], patience, min_delta, warmup_epochs).stop:
            return epoch
    return None


def test_early_stop_rule_on_scripted_losses():
    losses = [1.0, 0.8, 0.85, 0.81, 0.9, 0.7, 0.75, 0.72, 0.71, 0.74]
    assert first_stop(losses, 3) == 5  # best at epoch 2, then 3 epochs without a lower loss
    assert first_stop(losses, 4) == 10  # epoch 6 improves; 7..10 do not
    assert first_stop(losses, None) is None and first_stop(losses, 5) is None
    assert first_stop([1.0, 0.95, 0.94, 0.5], 2, min_delta=0.1) == 3  # 0.95 and 0.94 are not 0.1 lower
    assert first_stop([None, None, 1.0], 2) == 2  # no validation loss: no improvement
    # warm-up epochs neither compete nor count: a lucky near-chance loss at epoch 1 does not end the fold
    lucky = [0.62, 0.70, 0.72, 0.69, 0.66, 0.64, 0.60, 0.61, 0.63, 0.65]
    assert first_stop(lucky, 3) == 4 and first_stop(lucky, 3, warmup_epochs=3) == 10
    assert early_stop(lucky, 3, 0.0, warmup_epochs=3).reference_epoch == 7
    assert warmup_epochs(0.1, 60) == 6 and warmup_epochs(0.0, 60) == 0 and warmup_epochs(0.5, 1) == 0
    verdict = early_stop(losses[:5], 3, 0.0)
    assert verdict.reference_epoch == 2 and verdict.waited == 3 and "best epoch 2" in verdict.reason


def test_early_stop_in_a_real_run_and_resume_does_nothing_more(data, tmp_path):
    out = tmp_path / "run"
    seen = []
    # min_delta 10: only the first epoch after the warm-up (epoch 1 of 6 at 10 %) improves, so
    # patience 2 stops after epoch 4 of 6
    cfg = small_cfg(data, out, epochs=6, patience=2, min_delta=10.0)
    train(cfg, on_epoch=seen.append, quiet=True)
    rows = [json.loads(line) for line in (out / "fold-1" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4] and [m.epoch for m in seen] == [1, 2, 3, 4]
    assert not any("stopped" in r for r in rows[:3])
    assert "patience 2" in rows[-1]["stopped"] and "best epoch 2" in rows[-1]["stopped"]
    assert json.loads((out / "fold-1" / "last" / "checkpoint.json").read_text())["epoch"] == 4
    before = sha256(out / "fold-1" / "last" / "model.safetensors")
    again = []
    train(cfg, on_epoch=again.append)  # resume: the fold has stopped, nothing is trained
    assert again == [] and sha256(out / "fold-1" / "last" / "model.safetensors") == before
    assert len((out / "fold-1" / "metrics.jsonl").read_text().splitlines()) == 4


# --- resume with the small recipe ---------------------------------------------------------------------------
class Interrupt(Exception):
    pass


def interrupt_after(epoch):
    def on_epoch(m):
        if m.epoch == epoch:
            raise Interrupt
    return on_epoch


def test_small_recipe_resume_is_bit_identical(data, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(small_cfg(data, straight), quiet=True)
    with pytest.raises(Interrupt):  # killed after epoch 1's checkpoint
        train(small_cfg(data, resumed), on_epoch=interrupt_after(1), quiet=True)
    train(small_cfg(data, resumed), quiet=True)
    for name in ("last/model.safetensors", "last/optimizer.safetensors", "best/model.safetensors"):
        assert sha256(straight / "fold-1" / name) == sha256(resumed / "fold-1" / name), name
    rows = [[{k: v for k, v in json.loads(line).items() if k not in TIMING}
             for line in (run / "fold-1" / "metrics.jsonl").read_text().splitlines()] for run in (straight, resumed)]
    assert rows[0] == rows[1] and len(rows[0]) == 3
    assert json.loads((resumed / "fold-1" / "run.json").read_text())["start_epoch"] == 2  # it did resume
    # 36 training windows, batch 4: 9 steps an epoch, 27 in all, 3 of warm-up; the row's LR is its last step's
    assert [r["lr"] for r in rows[0]] == [SMALL.lr * lr_factor(s, 27, SMALL.warmup, "cosine") for s in (8, 17, 26)]
    # the comparison can fail: the same run without augmentation ends elsewhere
    train(small_cfg(data, tmp_path / "plain", augment=False), quiet=True)
    assert sha256(tmp_path / "plain/fold-1/last/model.safetensors") != sha256(straight / "fold-1/last/model.safetensors")


def test_cosine_run_refuses_to_resume_with_other_epochs(data, tmp_path):
    out = tmp_path / "run"
    train(small_cfg(data, out, epochs=1), quiet=True)
    with pytest.raises(ConfigError, match="epochs"):
        train(small_cfg(data, out, epochs=2), quiet=True)


def test_cli_auto_prints_and_records_the_choice(data, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--data", str(data), "--out", str(out), "--tasks", "toya", "--fold", "1",
                                 "--epochs", "1", "--d-model", "16", "--layers", "1", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "recipe: small (" in result.output and "training windows < 2,000" in result.output
    record = json.loads((out / "run.json").read_text())
    assert record["recipe"]["asked"] == "auto" and record["recipe"]["chosen"] == "small"
    assert record["config"]["batch_size"] == 16 and record["config"]["lr"] == SMALL.lr  # the recipe's
    assert record["config"]["epochs"] == 1  # given
