"""Training end to end on tiny learnable caches: learning, bit-identical resume, fold isolation, the CLI."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from eegmamba_cli.app import app
from eegmamba_cli.data.cache import WindowCache
from eegmamba_cli.training.checkpoint import load_checkpoint
from eegmamba_cli.training.data import resolve_datasets
from eegmamba_cli.training.splits import dataset_folds
from eegmamba_cli.fileio import directory_lock
from eegmamba_cli.training.distributed import DistInfo
from eegmamba_cli.training.inference import cache_logits
from eegmamba_cli.training.trainer import FoldTrainer, RunContext, TrainConfig, model_config, train
from helpers_cache import make_toy_pair

runner = CliRunner()
TINY = ["--d-model", "16", "--layers", "1", "--device", "cpu", "--batch-size", "8", "--recipe", "paper"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_toy_pair(tmp_path_factory.mktemp("cache"))


def _cfg(data, out, **kw):
    base = dict(out=out, data=data, fold="1", d_model=16, layers=1, device="cpu", batch_size=8, lr=3e-3,
                epochs=2, seed=7)
    return TrainConfig(**{**base, **kw})


def _rows(run: Path, fold=1):
    return [json.loads(line) for line in (run / f"fold-{fold}" / "metrics.jsonl").read_text().splitlines()]


def test_learns_a_learnable_task(data, tmp_path):
    run = tmp_path / "run"
    cfg = _cfg(data, run, epochs=12, tasks="toya")
    train(cfg)
    rows = _rows(run)
    assert rows[-1]["train_loss"] < 0.7 * rows[0]["train_loss"]
    model, meta = load_checkpoint(run / "fold-1" / "best")
    cache = WindowCache(data / "toya")
    test = dataset_folds(cache, cfg.split_protocol()).splits[1].test
    logits = cache_logits(model, cache, test, 0, 16, torch.device("cpu"))
    acc = float(np.mean(logits.argmax(1) == cache.labels[test]))
    assert acc >= 0.8, acc  # two balanced classes: chance is 0.5


def test_resume_is_bit_identical(data, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(_cfg(data, straight, epochs=3))
    train(_cfg(data, resumed, epochs=1))
    train(_cfg(data, resumed, epochs=3, resume=True))
    a = load_file(straight / "fold-1" / "last" / "model.safetensors")
    b = load_file(resumed / "fold-1" / "last" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    oa = load_file(straight / "fold-1" / "last" / "optimizer.safetensors")
    ob = load_file(resumed / "fold-1" / "last" / "optimizer.safetensors")
    assert all(torch.equal(oa[k], ob[k]) for k in oa)
    ra, rb = _rows(straight), _rows(resumed)
    assert [r["epoch"] for r in rb] == [1, 2, 3]
    assert [r["train_loss"] for r in ra] == [r["train_loss"] for r in rb]
    assert [r["val_loss"] for r in ra] == [r["val_loss"] for r in rb]
    best = json.loads((straight / "fold-1" / "best" / "checkpoint.json").read_text())
    assert best["epoch"] == best["best_epoch"] == min(ra, key=lambda r: r["val_loss"])["epoch"]


def test_training_touches_only_training_subjects(data, tmp_path):
    cfg = _cfg(data, tmp_path / "iso", fold="2")
    caches = resolve_datasets(cfg.tasks, data)
    folds = {name: dataset_folds(cache, cfg.split_protocol()) for name, cache in caches.items()}
    trainer = FoldTrainer(RunContext(cfg, caches, model_config(cfg), torch.device("cpu"), DistInfo(), folds), 2)
    for name, cache in caches.items():
        split = trainer.splits[name]
        test_subjects = set(cache.subjects[split.test])
        assert test_subjects and set(split.subjects["test"]) == test_subjects == set(split.holds_out["subjects"])
        assert not test_subjects & set(cache.subjects[split.train]) and not test_subjects & set(split.subjects["val"])
        assert not set(split.subjects["val"]) & set(cache.subjects[split.train])
    seen = {name: set() for name in caches}
    for d, _, _, rows in trainer._my_batches(epoch=1):
        seen[trainer.ctx.names[d]].update(rows.tolist())
    for name, cache in caches.items():
        assert seen[name] == set(trainer.splits[name].train.tolist())  # every training window, nothing else


def test_cli_train_resume_no_resume_and_refusals(data, tmp_path):
    run = tmp_path / "cli"
    args = ["train", "--data", str(data), "--out", str(run), "--fold", "1", "--epochs", "1", *TINY]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    # default --resume: the fold is complete, nothing is retrained
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "already trained" in again.output
    # --resume with longer training continues from epoch 1
    longer = runner.invoke(app, [*args[:-len(TINY) - 2], "--epochs", "2", *TINY])
    assert longer.exit_code == 0 and "resuming after epoch 1" in longer.output
    assert [r["epoch"] for r in _rows(run)] == [1, 2]
    # --no-resume really starts over (L12): one epoch, fresh metrics
    fresh = runner.invoke(app, [*args, "--no-resume"])
    assert fresh.exit_code == 0 and "resuming" not in fresh.output and "already trained" not in fresh.output
    assert [r["epoch"] for r in _rows(run)] == [1]
    assert json.loads((run / "fold-1" / "last" / "checkpoint.json").read_text())["epoch"] == 1
    # resuming with other settings is refused with one line
    other = runner.invoke(app, [*args[:-len(TINY) - 2], "--epochs", "2", *TINY, "--lr", "0.1"])
    assert other.exit_code == 1 and "lr differs" in other.output and "Traceback" not in other.output
    record = json.loads((run / "run.json").read_text())
    # the refused invocation left run.json as the last accepted one wrote it
    assert record["environment"]["torch"] == torch.__version__ and len(record["invocations"]) == 4
    assert record["config"]["lr"] != 0.1 and record["invocations"][-1]["resume"] is False


def test_cli_refuses_busy_run_dir_and_bad_options(data, tmp_path):
    run = tmp_path / "busy"
    with directory_lock(run, "someone else"):
        busy = runner.invoke(app, ["train", "--data", str(data), "--out", str(run), "--epochs", "1", *TINY])
    assert busy.exit_code == 1 and "already in use" in busy.output
    bad = runner.invoke(app, ["train", "--data", str(data), "--out", str(run), "--tasks", "sleep", *TINY])
    assert bad.exit_code == 1 and "no cache for sleepedf, shhs" in bad.output
    fold = runner.invoke(app, ["train", "--data", str(data), "--out", str(run), "--fold", "9", *TINY])
    assert fold.exit_code == 1 and "no test subjects in fold" in fold.output
    st = runner.invoke(app, ["train", "--data", str(data), "--out", str(run), "--preset", "single-task", *TINY])
    assert st.exit_code == 1 and "single-task trains one dataset" in st.output
    sel = runner.invoke(app, ["train", "--data", str(data), "--out", str(run), "--val-fraction", "0", *TINY])
    assert sel.exit_code == 1 and "--select final" in sel.output


def test_select_final_without_validation(data, tmp_path):
    run = tmp_path / "final"
    train(_cfg(data, run, epochs=1, val_fraction=0.0, select="final", tasks="toya"))
    assert (run / "fold-1" / "last").is_dir() and not (run / "fold-1" / "best").exists()
    assert _rows(run)[0]["val_loss"] is None
    train(_cfg(data, run, epochs=2, val_fraction=0.0, select="final", tasks="toya"))  # resume without a best
    assert [r["epoch"] for r in _rows(run)] == [1, 2]


def test_cli_ablations_reach_the_checkpoint(data, tmp_path):
    run = tmp_path / "abl"
    result = runner.invoke(app, ["train", "--data", str(data), "--out", str(run), "--tasks", "toya", "--fold", "1",
                                 "--epochs", "1", "--ablation", "no-universal", "--ablation", "unidirectional",
                                 "--balance-weight", "0.01", "--z-weight", "0.001", *TINY])
    assert result.exit_code == 0, result.output
    mc = json.loads((run / "fold-1" / "last" / "checkpoint.json").read_text())["model_config"]
    assert mc["moe"]["universal_expert"] is False and mc["mamba"]["bidirectional"] is False
    assert (mc["balance_loss_weight"], mc["z_loss_weight"]) == (0.01, 0.001)
    refused = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "st"), "--tasks", "toya",
                                  "--preset", "single-task", "--ablation", "vanilla-moe", *TINY])
    assert refused.exit_code == 1 and "vanilla-moe changes the MoE" in refused.output


def test_grad_clip_bounds_the_gradient_norm_the_optimizer_sees():
    from eegmamba_cli.training.trainer import train_step
    from models import DatasetSpec, EEGMamba
    from helpers_cache import tiny_config

    seen = []

    class Recorder(torch.optim.SGD):
        def step(self, closure=None):
            seen.append(float(torch.linalg.vector_norm(torch.stack(
                [p.grad.norm() for g in self.param_groups for p in g["params"] if p.grad is not None]))))
            return super().step(closure)

    torch.manual_seed(0)
    model = EEGMamba(tiny_config(), [DatasetSpec("toy", 2, 2)])
    optimizer = Recorder(model.parameters(), lr=0.0)  # lr 0: both steps see the same weights
    x, y = torch.randn(4, 2, 64) * 50, torch.tensor([0, 1, 0, 1])
    torch.manual_seed(1)
    train_step(model, optimizer, x, y, 0)
    torch.manual_seed(1)
    train_step(model, optimizer, x, y, 0, clip=1e-3)
    assert seen[0] > 1e-2 and seen[1] == pytest.approx(1e-3, rel=1e-4)


def test_grad_clip_enters_the_resume_key_only_when_set(tmp_path):
    plain = TrainConfig(out=tmp_path).resume_key()
    assert "grad_clip" not in plain  # runs from before the option resume unchanged
    assert TrainConfig(out=tmp_path, grad_clip=1.0).resume_key() == {**plain, "grad_clip": 1.0}


def test_the_inference_loop_scores_through_classify():
    """Validation, evaluate and predict share `inference.logits`, which asks the model for `classify`
    (the cheaper inference order), in batches and in order."""
    from eegmamba_cli.training.inference import window_logits

    class Stub(torch.nn.Module):
        def classify(self, x, dataset, lengths=None):  # (B, C, L) -> (B, 2): the window's mean, the dataset
            return torch.stack([x.mean(dim=(1, 2)), torch.full((x.shape[0],), float(dataset))], dim=1)

        def forward(self, x, dataset, lengths=None):
            raise AssertionError("the inference loop must not run the training forward")

    windows = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((5, 2, 3), np.float32)
    out = window_logits(Stub(), windows, 4, batch_size=2, device=torch.device("cpu"), n_classes=2,
                        precision="fp32")
    np.testing.assert_array_equal(out, [[0, 4], [1, 4], [2, 4], [3, 4], [4, 4]])
