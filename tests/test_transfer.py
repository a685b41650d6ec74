"""Fine-tuning (`train --init-from`): what is loaded, new and frozen, the lineage, resume, and refusals."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from eegmamba_cli.app import app
from eegmamba_cli.data.cache import WindowCache
from eegmamba_cli.training import checkpoint as ckpt
from eegmamba_cli.training.protocols import parse_protocol
from eegmamba_cli.training.splits import dataset_folds
from eegmamba_cli.training.trainer import TrainConfig, train
from eegmamba_cli.training.transfer import part_of
from helpers_cache import make_toy_pair

runner = CliRunner()
BASE = dict(fold="1", device="cpu", batch_size=8, lr=3e-3, epochs=1, seed=7)
CLI = ["--fold", "1", "--device", "cpu", "--batch-size", "8", "--epochs", "1", "--seed", "7"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_toy_pair(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def parent(data, tmp_path_factory) -> Path:
    """A run trained on toya only (d_model 16, one block)."""
    run = tmp_path_factory.mktemp("parent") / "run"
    train(TrainConfig(out=run, data=data, tasks="toya", d_model=16, layers=1, **BASE), quiet=True)
    return run


def _child(data, out, parent, **kw):
    return TrainConfig(out=out, data=data, tasks="toya,toyb", init_from=parent, **{**BASE, **kw})


def _weights(run: Path, which="last") -> dict[str, torch.Tensor]:
    return load_file(run / "fold-1" / which / "model.safetensors")


def _by_part(state: dict, part: str) -> dict:
    return {k: v for k, v in state.items() if part_of(k)[0] == part}


def _one_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code != 0 and len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_shared_and_known_parts_are_loaded_new_ones_fresh_and_recorded(data, parent, tmp_path):
    child = tmp_path / "child"
    # lr ~0: what the checkpoint holds after one epoch is what was loaded; recipe small: another width
    train(_child(data, child, parent, lr=1e-12, recipe="small"), quiet=True)
    mine, theirs = _weights(child), _weights(parent, "best")
    for name in ("st.small.layers.0.conv.weight", "st.cls_token", "layers.0.bimamba.mixer.in_proj.weight",
                 "norm_f.weight", "st.spatial.0.weight", "heads.0.weight"):
        assert torch.allclose(mine[name], theirs[name], atol=1e-8), name  # toya is dataset 0 in both
    assert torch.allclose(mine["task_tokens"][0], theirs["task_tokens"][0], atol=1e-8)
    assert mine["heads.1.weight"].shape == (3, 16)  # toyb's head: new, 3 classes
    meta = json.loads((child / "fold-1" / "last" / "checkpoint.json").read_text())
    record = json.loads((child / "run.json").read_text())
    parent_meta = json.loads((parent / "fold-1" / "best" / "checkpoint.json").read_text())
    lineage = meta["lineage"]
    assert lineage == record["lineage"]
    assert lineage["parent_sha256"] == parent_meta["files"]["model.safetensors"]
    assert lineage["loaded"] == ["tokenizer", "class_token", "blocks", "final_norm",
                                 "spatial.toya", "task_token.toya", "head.toya"]
    assert lineage["new"] == ["spatial.toyb", "task_token.toyb", "head.toyb"]
    assert lineage["frozen"] == [] and lineage["parent_datasets"] == ["toya"]
    # the recipe (small) has its own width; the checkpoint's architecture won
    assert meta["model_config"]["d_model"] == 16 and meta["model_config"]["n_layers"] == 1


def test_freeze_backbone_leaves_every_shared_weight_unchanged(data, parent, tmp_path):
    child = tmp_path / "frozen"
    train(_child(data, child, parent, freeze="backbone", epochs=2), quiet=True)
    mine, theirs = _weights(child), _weights(parent, "best")
    for part in ("tokenizer", "class_token", "blocks", "final_norm"):
        for name, value in _by_part(mine, part).items():
            assert torch.equal(value, theirs[name]), name
    assert not torch.equal(mine["heads.0.weight"], theirs["heads.0.weight"])  # the heads did learn
    assert json.loads((child / "run.json").read_text())["lineage"]["frozen"] == [
        "tokenizer", "class_token", "blocks", "final_norm"]


def test_freeze_tokenizer_gives_no_gradients_to_it(data, parent, tmp_path):
    from eegmamba_cli.training.transfer import initialise, kept_datasets, read_parent
    from models import DatasetSpec, EEGMamba

    source = read_parent(parent)
    model = EEGMamba(source.config, [DatasetSpec("toya", 2, 2, "custom")])
    initialise(model, source, kept_datasets(source, list(model.datasets), [{}]), "tokenizer")
    logits, aux = model(torch.randn(4, 2, 64), 0)
    model.loss(logits, torch.tensor([0, 1, 0, 1]), aux)[0].backward()
    for name, p in model.named_parameters():
        if part_of(name)[0] == "tokenizer":
            assert not p.requires_grad and p.grad is None, name
        elif name.startswith("layers.0.bimamba"):
            assert p.grad is not None, name


def test_pretrained_lr_factor_scales_only_the_loaded_parts(data, parent, tmp_path):
    child = tmp_path / "slow"
    train(_child(data, child, parent, pretrained_lr_factor=0.1, lr=2e-3), quiet=True)
    groups = json.loads((child / "fold-1" / "last" / "optimizer.json").read_text())["param_groups"]
    assert sorted({(g["lr_scale"], g["lr"]) for g in groups}) == [(0.1, pytest.approx(2e-4)), (1.0, 2e-3)]


def test_fine_tune_resume_is_bit_identical(data, parent, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    kw = dict(freeze="tokenizer", pretrained_lr_factor=0.5)
    train(_child(data, straight, parent, epochs=3, **kw), quiet=True)
    train(_child(data, resumed, parent, epochs=1, **kw), quiet=True)
    train(_child(data, resumed, parent, epochs=3, **kw), quiet=True)
    a, b = _weights(straight), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    oa, ob = (load_file(r / "fold-1" / "last" / "optimizer.safetensors") for r in (straight, resumed))
    assert oa.keys() == ob.keys() and all(torch.equal(oa[k], ob[k]) for k in oa)


def test_resume_with_other_transfer_settings_is_refused(data, parent, tmp_path):
    run = tmp_path / "child"
    train(_child(data, run, parent), quiet=True)
    result = runner.invoke(app, ["train", "--data", str(data), "--out", str(run), "--tasks", "toya,toyb",
                                 "--init-from", str(parent), "--freeze", "backbone", "--recipe", "paper",
                                 "--lr", "0.003", *CLI[:-4], "--epochs", "2", "--seed", "7"])
    last = result.output.strip().splitlines()[-1]
    assert result.exit_code == 1 and "was trained with other settings (freeze differs)" in last, result.output


def test_cli_fine_tune_prints_where_the_architecture_comes_from(data, parent, tmp_path):
    result = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "c"), "--tasks", "toya,toyb",
                                 "--init-from", str(parent), "--recipe", "small", *CLI])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "the architecture is" in text and "(multitask, d_model 16, layers 1)" in text
    assert "new spatial.toyb, task_token.toyb, head.toyb" in text


def test_width_mismatch_is_one_line_naming_both_shapes(data, parent, tmp_path):
    out = tmp_path / "wide"
    result = runner.invoke(app, ["train", "--data", str(data), "--out", str(out), "--init-from", str(parent),
                                 "--d-model", "32", "--layers", "2", *CLI])
    line = _one_line(result)
    assert "d_model 16 x 1 blocks" in line and "d_model 32 x 2 blocks" in line and "--d-model" in line
    assert not out.exists()


def test_weights_that_do_not_fit_their_config_name_both_shapes(data, parent, tmp_path):
    """A parent whose config.json says d_model 8 while its tensors are 16 wide (hand-edited)."""
    bad = tmp_path / "bad-ckpt"
    model, meta = ckpt.load_checkpoint(parent / "fold-1" / "best")
    ckpt.write_checkpoint(bad, model, dict(meta, model_config=dict(meta["model_config"], d_model=8)))
    out = tmp_path / "out"
    result = runner.invoke(app, ["train", "--data", str(data), "--out", str(out), "--init-from", str(bad), *CLI])
    line = _one_line(result)
    assert f"--init-from {bad}: task_tokens:" in line and "(1, 16)" in line and "(1, 8)" in line
    assert not out.exists()


@pytest.mark.parametrize("args, words", [
    (["--init-from", "/nonexistent/run"], "no such model folder"),
    (["--freeze", "backbone"], "give --init-from too"),
    (["--pretrained-lr-factor", "0.5"], "give --init-from too"),
    (["--init-from", "PARENT", "--pretrained-lr-factor", "0"], "--pretrained-lr-factor must be a finite number > 0"),
    (["--train-fraction", "0"], "--train-fraction must be a fraction in (0, 1]"),
    (["--train-fraction", "1.5"], "--train-fraction must be a fraction in (0, 1]"),
    (["--init-from", "PICKLE"], "pickle-based checkpoints are never loaded"),
])
def test_bad_transfer_options_are_one_line(data, parent, tmp_path, args, words):
    pickle_file = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(1)}, pickle_file)
    args = [str(parent) if a == "PARENT" else str(pickle_file) if a == "PICKLE" else a for a in args]
    out = tmp_path / "out"
    result = runner.invoke(app, ["train", "--data", str(data), "--out", str(out), *args, *CLI])
    assert words in _one_line(result)
    assert not out.exists()


def test_train_fraction_is_stratified_reproducible_and_leaves_val_and_test(data):
    cache = WindowCache(data / "toyb")
    protocol = parse_protocol("subject-kfold", seed=3, val_fraction=0.2)
    full = dataset_folds(cache, protocol).splits[1]
    part = dataset_folds(cache, protocol, train_fraction=0.5).splits[1]
    again = dataset_folds(cache, protocol, train_fraction=0.5).splits[1]
    assert np.array_equal(part.train, again.train) and np.isin(part.train, full.train).all()
    assert np.array_equal(part.val, full.val) and np.array_equal(part.test, full.test)
    labels = cache.labels
    for k in range(3):
        assert (labels[part.train] == k).sum() == round(0.5 * (labels[full.train] == k).sum())


def test_resuming_a_fine_tune_as_a_fresh_run_is_refused(data, parent, tmp_path):
    run = tmp_path / "child"
    train(_child(data, run, parent), quiet=True)
    result = runner.invoke(app, ["train", "--data", str(data), "--out", str(run), "--tasks", "toya,toyb",
                                 "--recipe", "paper", "--lr", "0.003", "--d-model", "16", "--layers", "1",
                                 *CLI[:-4], "--epochs", "2", "--seed", "7"])
    last = result.output.strip().splitlines()[-1]
    assert result.exit_code == 1 and "was trained with other settings" in last, result.output


def test_cli_train_fraction_trains_on_the_share_and_records_it(data, tmp_path):
    full, half = tmp_path / "full", tmp_path / "half"
    args = ["train", "--data", str(data), "--tasks", "toyb", "--d-model", "16", "--layers", "1", "--recipe", "paper",
            *CLI]
    assert runner.invoke(app, [*args, "--out", str(full)]).exit_code == 0
    result = runner.invoke(app, [*args, "--out", str(half), "--train-fraction", "0.5"])
    assert result.exit_code == 0, result.output
    sizes = {name: json.loads((run / "fold-1" / "run.json").read_text())["splits"]["toyb"]["sizes"]
             for name, run in (("full", full), ("half", half))}
    assert sizes["half"]["val"] == sizes["full"]["val"] and sizes["half"]["test"] == sizes["full"]["test"]
    assert abs(sizes["half"]["train"] - sizes["full"]["train"] / 2) <= 2  # rounded per class
    assert json.loads((half / "run.json").read_text())["config"]["train_fraction"] == 0.5
