"""Transfer benchmark: does starting from a trained multi-task EEGMamba help on a new dataset?

    PYTHONPATH=. OMP_NUM_THREADS=1 python3 bench/transfer.py --work /tmp/transfer [--epochs 10] [--folds 1,2,3]

1. Demo corpus (the synthetic eight corpora of `eegmamba demo`): a demo-sized multi-task model is trained on
   seven datasets (all but BCI IV 2a, fold 1); then BCI IV 2a is trained with 10 %, 25 % and 100 % of its
   training windows (`--train-fraction`, stratified by class), from scratch and fine-tuned from that model
   (`--init-from`), the same architecture, settings and epochs for both, on test folds `--folds`.
2. Real EEGMMIDB subject S001 (imagined left / right fist, runs 4, 8, 12), within-subject 5-fold: from
   scratch vs fine-tuned from the same demo-trained model.

Every setting is fixed before any test fold is seen (the demo model's own, docs/commands/demo.md); the
checkpoint of each fold is the one with the lowest validation loss. Writes WORK/transfer.csv (one row per
run, fold and dataset), WORK/transfer-summary.csv (mean and std over folds) and WORK/transfer.png (learning
curves). Every step resumes: a run already trained is not trained again.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eegmamba_cli.demo import corpus as demo_corpus  # noqa: E402
from eegmamba_cli.demo.run import DEMO_MODEL, preprocess_all  # noqa: E402
from eegmamba_cli.training.evaluation import EvalConfig, evaluate_run  # noqa: E402
from eegmamba_cli.training.trainer import TrainConfig, train  # noqa: E402

PRETRAIN = "siena,chbmit,sleepedf,shhs,deap,seed,shu"
TARGET = "bciiv2a"
FRACTIONS = (0.1, 0.25, 1.0)
MMIDB = REPO.parent / "shared" / "realdata" / "eegmmidb" / "S001"
SETTINGS = dict(d_model=DEMO_MODEL.d_model, layers=DEMO_MODEL.layers, balance_weight=DEMO_MODEL.balance_weight,
                z_weight=DEMO_MODEL.z_weight, grad_clip=DEMO_MODEL.grad_clip, batch_size=DEMO_MODEL.batch_size,
                lr=DEMO_MODEL.lr, recipe="paper", device="cpu", seed=0)


def demo_cache(work: Path) -> Path:
    cache = work / "demo" / "cache"
    if not (cache / TARGET / "info.json").is_file():
        written = demo_corpus.write_all(work / "demo" / "raw", demo_corpus.FULL, 0)
        preprocess_all(work / "demo", written)
    return cache


def mmidb_cache(work: Path) -> Path:
    """The documented command line, as a user would type it."""
    import subprocess

    cache = work / "mmidb-cache"
    if not (cache / "custom" / "info.json").is_file():
        subprocess.run([sys.executable, "-m", "eegmamba_cli", "preprocess", "custom", "--raw", str(MMIDB),
                        "--out", str(cache), "--labels", "left=T1,right=T2",
                        "--include", "*R04.edf,*R08.edf,*R12.edf", "--workers", "1"], check=True, cwd=REPO)
    return cache


def run(out: Path, data: Path, tasks: str, epochs: int, fold: str, **extra) -> list[dict]:
    """Train (or resume) and evaluate; the per-fold test rows."""
    start = time.perf_counter()
    train(TrainConfig(out=out, data=data, tasks=tasks, fold=fold, epochs=epochs, **{**SETTINGS, **extra}),
          on_epoch=lambda m: None, quiet=True)
    rows = evaluate_run(EvalConfig(run_dir=out, device="cpu"))["per_fold"]
    print(f"{out.name}: {time.perf_counter() - start:.0f} s; "
          + ", ".join(f"fold {r['fold']} {r['dataset']} acc {r['accuracy']:.3f}" for r in rows), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=10, help="epochs of every fine-tune and scratch run")
    parser.add_argument("--pretrain-epochs", type=int, default=12)
    parser.add_argument("--folds", default="1,2,3", help="BCI IV 2a test folds (one subject each)")
    parser.add_argument("--skip-mmidb", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = args.work
    cache = demo_cache(work)
    parent = work / "pretrain-7"
    run(parent, cache, PRETRAIN, args.pretrain_epochs, "1")
    rows = []
    for fraction in FRACTIONS:
        for start, extra in (("scratch", {}), ("fine-tuned", dict(init_from=parent))):
            out = work / f"{TARGET}-{start}-{fraction:g}"
            for r in run(out, cache, TARGET, args.epochs, args.folds, train_fraction=fraction, **extra):
                rows.append(dict(experiment="demo", start=start, train_fraction=fraction, **r))
    if not args.skip_mmidb and MMIDB.is_dir():
        mmidb = mmidb_cache(work)
        for start, extra in (("scratch", {}), ("fine-tuned", dict(init_from=parent))):
            out = work / f"eegmmidb-{start}"
            for r in run(out, mmidb, "custom", args.epochs, "all", protocol="within-subject", **extra):
                rows.append(dict(experiment="eegmmidb", start=start, train_fraction=1.0, **r))
    table = pd.DataFrame(rows)
    table.to_csv(work / "transfer.csv", index=False)
    summary = (table.groupby(["experiment", "train_fraction", "start"])
               .agg(folds=("fold", "count"), accuracy=("accuracy", "mean"), accuracy_std=("accuracy", lambda v: np.std(v)),
                    balanced_accuracy=("balanced_accuracy", "mean"),
                    balanced_accuracy_std=("balanced_accuracy", lambda v: np.std(v)))
               .reset_index())
    summary.to_csv(work / "transfer-summary.csv", index=False)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    plot(summary, work / "transfer.png")


def plot(summary: pd.DataFrame, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    demo = summary[summary["experiment"] == "demo"]
    for start, marker in (("scratch", "o"), ("fine-tuned", "s")):
        part = demo[demo["start"] == start].sort_values("train_fraction")
        ax.errorbar(part["train_fraction"] * 100, part["balanced_accuracy"], yerr=part["balanced_accuracy_std"],
                    marker=marker, capsize=3, label=start)
    ax.axhline(0.25, color="grey", lw=0.8, ls=":", label="chance (4 classes)")
    ax.set_xscale("log")
    ax.set_xticks([10, 25, 100], ["10 %", "25 %", "100 %"])
    ax.set_xlabel("share of BCI IV 2a training windows (demo corpus)")
    ax.set_ylabel("test balanced accuracy\n(mean ± std over folds)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
