"""Checkpoints: safetensors + JSON round trip, optimizer state, refusal of pickles and corrupt files."""
import json
import pickle

import pytest
import torch
from safetensors.torch import load_file

from eegmamba_cli.console import UserError
from eegmamba_cli.training import checkpoint as ckpt
from eegmamba_cli.training.trainer import make_optimizer, train_step
from helpers_cache import tiny_config
from models import DatasetSpec, EEGMamba

SPECS = [DatasetSpec("a", 2, 2), DatasetSpec("b", 3, 3)]


def _meta(cfg):
    return dict(model_config=cfg.to_dict(), epoch=3, seed=1, fold=2, best_val_loss=0.5,
                datasets=[dict(name=s.name, n_channels=s.n_channels, n_classes=s.n_classes, task=s.task,
                               class_names=[str(k) for k in range(s.n_classes)], channels=[], fingerprint="f")
                          for s in SPECS])


@pytest.fixture
def trained(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_config()
    model = EEGMamba(cfg, SPECS)
    opt = make_optimizer(model, 1e-3, 1e-6)
    for d, c in ((0, 2), (1, 3), (0, 2)):
        train_step(model, opt, torch.randn(4, c, 64), torch.randint(0, SPECS[d].n_classes, (4,)), d)
    directory = tmp_path / "ck"
    ckpt.write_checkpoint(directory, model, _meta(cfg), opt)
    return model, opt, directory


def test_round_trip_weights_meta_and_optimizer(trained):
    model, opt, directory = trained
    loaded, meta = ckpt.load_checkpoint(directory)
    assert meta["epoch"] == 3 and meta["fold"] == 2 and set(meta["files"]) == {
        "model.safetensors", "optimizer.safetensors", "optimizer.json"}
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert next(loaded.parameters()).device.type == "cpu"
    # the same file through plain safetensors: nothing eegmamba-specific is needed to read weights
    assert set(load_file(directory / "model.safetensors")) == set(model.state_dict())
    state = ckpt.load_optimizer_state(directory)
    fresh = make_optimizer(loaded, 1e-3, 1e-6)
    fresh.load_state_dict(state)
    ref = opt.state_dict()
    got = fresh.state_dict()
    assert got["param_groups"] == ref["param_groups"]
    for pid, st in ref["state"].items():
        for key, value in st.items():
            assert torch.equal(got["state"][pid][key], value), (pid, key)


def test_load_accepts_the_json_or_weights_path(trained):
    _, _, directory = trained
    for p in (directory / "checkpoint.json", directory / "model.safetensors"):
        assert ckpt.load_checkpoint(p)[1]["seed"] == 1


def test_pickle_checkpoints_are_refused_unread(tmp_path):
    evil = tmp_path / "model.pt"
    evil.write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(UserError, match=r"model.pt: pickle-based checkpoints are never loaded"):
        ckpt.load_checkpoint(evil)


def test_corrupt_or_missing_files_give_one_clear_line(trained):
    _, _, directory = trained
    weights = directory / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"model.safetensors: corrupt \(sha256") as err:
        ckpt.load_checkpoint(directory)
    assert "\n" not in str(err.value)
    weights.unlink()
    with pytest.raises(UserError, match="model.safetensors: missing or unreadable"):
        ckpt.load_checkpoint(directory)
    (directory / "checkpoint.json").write_text("{not json")
    with pytest.raises(UserError, match="checkpoint.json: unreadable"):
        ckpt.load_checkpoint(directory)
    with pytest.raises(UserError, match="not an eegmamba checkpoint"):
        ckpt.load_checkpoint(directory.parent)


def test_weights_that_do_not_fit_the_config_are_refused(trained):
    _, _, directory = trained
    meta = json.loads((directory / "checkpoint.json").read_text())
    meta["model_config"]["d_model"] = 8
    (directory / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="weights do not fit the model"):
        ckpt.load_checkpoint(directory)


def test_publish_replaces_and_recover_restores(tmp_path):
    fold = tmp_path / "fold-1"
    for epoch in (1, 2):
        tmp = fold / f".tmp-last-{epoch}"
        tmp.mkdir(parents=True)
        (tmp / "epoch").write_text(str(epoch))
        ckpt.publish(tmp, fold / "last")
    assert (fold / "last" / "epoch").read_text() == "2" and not list(fold.glob(".*"))
    # a crash between the two renames of publish: last/ moved aside, new folder not yet in place
    (fold / "last").rename(fold / ".last.old")
    ckpt.recover(fold / "last")
    assert (fold / "last" / "epoch").read_text() == "2" and not list(fold.glob(".*"))
