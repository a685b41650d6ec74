"""DDP on CPU with gloo: ranks stay identical, and a DDP step equals the single-process step on the union."""
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file
from torch.nn.parallel import DistributedDataParallel

from eegmamba_cli.training.sampler import rank_share
from eegmamba_cli.training.trainer import make_optimizer, train_step
from helpers_cache import make_cache, tiny_config
from models import DatasetSpec, EEGMamba

REPO = Path(__file__).resolve().parents[1]
SPECS = [DatasetSpec("a", 2, 2), DatasetSpec("b", 3, 3)]
# Global batches (dataset, size): 5 splits 3/2, 1 leaves rank 1 with a placeholder, 4 splits 2/2.
STEPS = [(0, 5), (1, 1), (0, 4)]


def _config():
    # Deterministic forward: no dropout, no gate noise; the balance loss is a whole-batch statistic
    # (std/mean of expert importance), so it is computed per rank under DDP and left out of the exact test.
    cfg = tiny_config(tokenizer_dropout=0.0, balance_loss_weight=0.0)
    return replace(cfg, moe=replace(cfg.moe, noisy_gating=False))


def _batches():
    g = torch.Generator().manual_seed(123)
    return [(d, torch.randn(n, SPECS[d].n_channels, 64, generator=g),
             torch.randint(0, SPECS[d].n_classes, (n,), generator=g)) for d, n in STEPS]


def _model():
    torch.manual_seed(0)
    return EEGMamba(_config(), SPECS)


def _optimizers(model):
    # With SGD the weight change is proportional to the gradient, which is what DDP must get right; AdamW's
    # first steps are ~lr·sign(g) and would turn rounding noise in tiny gradients into ±lr differences.
    return {"sgd": torch.optim.SGD(model.parameters(), lr=0.1),
            "adamw": make_optimizer(model, 1e-3, 1e-6)}


def _worker(rank, world, store, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", store=dist.FileStore(store, world), rank=rank, world_size=world)
    for kind in ("sgd", "adamw"):
        model = _model()
        ddp = DistributedDataParallel(model, find_unused_parameters=True)
        opt = _optimizers(model)[kind]
        for d, x, y in _batches():
            rows, _, scale = rank_share(np.arange(len(x)), rank, world)
            train_step(ddp, opt, x[rows], y[rows], d, scale=scale)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{out}/{kind}-rank{rank}.safetensors")
    dist.destroy_process_group()


def test_ddp_step_equals_single_process_step(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    for kind in ("sgd", "adamw"):
        r0 = load_file(tmp_path / f"{kind}-rank0.safetensors")
        r1 = load_file(tmp_path / f"{kind}-rank1.safetensors")
        assert all(torch.equal(r0[k], r1[k]) for k in r0), f"{kind}: ranks drifted apart"
    single = _model()
    opt = _optimizers(single)["sgd"]
    start = {k: v.clone() for k, v in single.state_dict().items()}
    for d, x, y in _batches():
        train_step(single, opt, x, y, d)
    ddp = load_file(tmp_path / "sgd-rank0.safetensors")
    moved = 0
    for k, v in single.state_dict().items():
        # the weight change of the DDP run equals the single-process one up to float32 summation order
        want, got = v - start[k], ddp[k] - start[k]
        assert (got - want).norm() <= 1e-4 * want.norm() + 1e-7, k
        moved += bool(want.norm() > 0)
    assert moved > 0


def test_torchrun_two_ranks_train_in_sync(tmp_path):
    data = tmp_path / "cache"
    make_cache(data, "toya", n_subjects=6, windows_per_subject=7)
    make_cache(data, "toyb", n_subjects=6, windows_per_subject=5, n_classes=3, n_channels=3, seed=1)
    run = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "eegmamba_cli", "train", "--data", str(data), "--out", str(run), "--fold", "1",
           "--epochs", "2", "--batch-size", "5", "--d-model", "16", "--layers", "1", "--device", "cpu",
           "--recipe", "paper"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (run / "fold-1" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and all(r["ranks_in_sync"] for r in rows)
    record = json.loads((run / "run.json").read_text())
    assert record["world_size"] == 2
    # every training window was used once per epoch across the two ranks
    split = json.loads((run / "fold-1" / "run.json").read_text())["splits"]
    assert rows[0]["windows"] == sum(s["sizes"]["train"] for s in split.values())
    assert proc.stderr.count("fold 1 epoch 2/2") == 1  # only rank 0 reports
