"""`eegmamba evaluate`: test-set predictions and metrics for every trained fold of a run.

For each fold of the run, the selected checkpoint (best validation loss or final epoch, as the run was
trained, unless overridden) predicts the fold's test windows, rebuilt from the caches under the run's
protocol exactly as training split them (splits.py); folds of another protocol are refused. Outputs, all written atomically into the run folder (where exactly:
run_folder.py):

    results.csv         one row per fold and dataset, every metric
    results.json        the same, plus mean ± std over folds (ddof=0) and the paper's rows
    confusion PNGs      one per dataset, summed over folds, with class names
    predictions         per fold and dataset, per window: manifest row, subject, label, prediction,
                        probabilities (parquet)
    peers.csv, .png     with `peers`: EEGMamba beside the peer baselines (peer_report.py)
"""
from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rich.table import Table
from sklearn.metrics import confusion_matrix

from ..console import UserError, console
from ..data.cache import WindowCache
from ..errors import ConfigError
from ..fileio import atomic_write_bytes, atomic_write_json, atomic_writer
from ..precision import PRECISIONS, recorded_precision
from .checkpoint import load_checkpoint
from .config import protocol_of, protocol_settings
from .distributed import resolve_device
from .environment import environment
from .inference import cache_logits, crop_for, probabilities
from .metrics import METRICS, PAPER_METRICS, MissingClassWarning, classification_metrics, mean_std
from .paper import DISPLAY_NAMES, PAPER_RESULTS, PAPER_TABLES
from .run_folder import DEFAULT_SELECT, SELECTIONS, FoldFolder, RunFolder
from .splits import DatasetFolds, dataset_folds, split_for


@dataclass
class EvalConfig:
    run_dir: Path
    data: Path | None = None  # None: the cache root the run was trained on
    select: str | None = None  # None: the run's own selection
    device: str = "auto"
    precision: str | None = None  # None: the one the run recorded (fp32 | bf16 | auto otherwise)
    batch_size: int = 256
    max_windows_per_dataset: int | None = None  # None: the run's setting
    allow_pickle: bool = False  # also .pt state dicts, via torch.load(weights_only=True)
    peers: bool = False  # also fit the peer baselines on the same folds (peer_report.py)


def _open_cache(root: Path, record: dict) -> WindowCache:
    cache = WindowCache(root / record["name"])
    if cache.fingerprint != record["fingerprint"]:
        raise UserError(f"{cache.directory}: cache fingerprint {cache.fingerprint} differs from the one the "
                        f"model was trained on ({record['fingerprint']}); evaluate with the training cache")
    return cache


def evaluate_run(cfg: EvalConfig) -> dict:
    """Evaluate every trained fold of the run, holding the run folder's lock (the one train holds), so
    that no other train or evaluate writes into the folder meanwhile."""
    if cfg.batch_size < 1:
        raise ConfigError("{batch_size} must be at least 1", got=cfg.batch_size)
    if cfg.precision is not None and cfg.precision not in PRECISIONS:
        raise ConfigError(f"{{precision}} must be one of {', '.join(PRECISIONS)}", got=repr(cfg.precision))
    if cfg.select is not None and cfg.select not in SELECTIONS:
        raise ConfigError(f"{{select}} must be one of {', '.join(SELECTIONS)}", got=repr(cfg.select))
    run_folder = RunFolder(cfg.run_dir)
    run_folder.read()  # refuse a folder that is no run before creating a lock file in it
    if cfg.peers:  # peers skipped for a missing extra: one warning line before anything is computed
        from .peer_report import warn_skipped_peers

        warn_skipped_peers()
    device = resolve_device(cfg.device)
    with run_folder.lock("eegmamba evaluate"):
        return _evaluate(cfg, run_folder, run_folder.read(), device)


def _evaluate(cfg: EvalConfig, run_folder: RunFolder, run: dict, device: torch.device) -> dict:
    train_cfg = run["config"]
    select = cfg.select or train_cfg.get("select", DEFAULT_SELECT)
    root = Path(cfg.data) if cfg.data is not None else Path(train_cfg["data"])
    cap = cfg.max_windows_per_dataset if cfg.max_windows_per_dataset is not None \
        else train_cfg.get("max_windows_per_dataset")
    protocol = protocol_of(train_cfg)
    settings = protocol_settings(train_cfg)
    # Runs from before protocols: every cache split by its manifest's fold column, as they were trained.
    fixed_folds = True if "protocol" not in train_cfg else None
    precision = recorded_precision(cfg.precision or run.get("precision"), device)
    rows, confusions, classes, caches = [], {}, {}, {}
    folds_of: dict[str, DatasetFolds] = {}
    for folder in run_folder.folds():
        chosen = folder.pick(select)
        if chosen is None:
            console.print(f"[yellow]warning:[/] {folder.path}: no checkpoint yet; skipped")
            continue
        model, meta = load_checkpoint(chosen, device, allow_pickle=cfg.allow_pickle)
        _check_protocol(folder, meta, settings)
        trained = folder.epochs_trained()
        trained = meta.get("epoch", 0) if trained is None else trained
        if trained < train_cfg["epochs"] and not folder.stopped_early():
            console.print(f"[yellow]warning:[/] {folder.path}: trained {trained} of {train_cfg['epochs']} epochs "
                          "so far")
        for d, record in enumerate(meta["datasets"]):
            name = record["name"]
            if name not in caches:
                caches[name] = _open_cache(root, record)
                folds_of[name] = dataset_folds(caches[name], protocol, max_windows=cap, fixed_folds=fixed_folds)
            test = split_for(folds_of[name], folder.number, len(caches[name])).test
            if len(test) == 0:
                console.print(f"[yellow]warning:[/] fold {folder.number} {name}: no test subjects; skipped")
                continue
            y, proba, scores = _score(model, d, record, caches[name], test, cfg.batch_size, device, folder.number,
                                     precision)
            k = record["n_classes"]
            confusions[name] = confusions.get(name, 0) + confusion_matrix(y, proba.argmax(1), labels=list(range(k)))
            classes[name] = record["class_names"]
            rows.append(dict(fold=folder.number, dataset=name, task=record.get("task", ""), n_windows=int(len(test)),
                             checkpoint=chosen.name, epoch=int(meta.get("epoch", 0)), **scores))
            _write_predictions(folder.predictions_file(name), caches[name], test, y, proba)
    if not rows:
        raise UserError(f"{cfg.run_dir}: no fold with a checkpoint and test windows to evaluate")
    results = _summarise(rows, run, select, cap, precision)
    if cfg.peers:
        from .peer_report import compare_peers

        results["peers"] = compare_peers(run_folder, caches, folds_of, rows, seed=int(train_cfg["seed"]))
    _write_results(run_folder, rows, results)
    for name, cm in confusions.items():
        folds = sorted({r["fold"] for r in rows if r["dataset"] == name})
        save_confusion_png(run_folder.confusion_png(name), cm, classes[name],
                           f"{DISPLAY_NAMES.get(name, name)} ({settings['protocol']}): test fold(s) "
                           f"{', '.join(map(str, folds))}")
    return results


def _check_protocol(folder: FoldFolder, meta: dict, run_settings: dict) -> None:
    """Refuse to put a fold trained under another protocol beside the run's: its test part is another."""
    mine = protocol_settings(meta.get("train") or {})
    if mine != run_settings:
        raise UserError(f"{folder.path}: trained under protocol {mine['protocol']} ({_protocol_words(mine)}), "
                        f"the run under {run_settings['protocol']} ({_protocol_words(run_settings)}); results of "
                        "different protocols are not averaged: evaluate them as separate runs")


def _protocol_words(settings: dict) -> str:
    return ", ".join(f"{k}={v if not isinstance(v, list) else ','.join(v) or '-'}" for k, v in settings.items()
                     if k != "protocol") or "defaults"


def _score(model, d: int, record: dict, cache: WindowCache, test: np.ndarray, batch_size: int,
           device: torch.device, fold: int, precision: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """(labels, probabilities, metrics) of head `d` on the test rows; a missing class is a warning."""
    proba = probabilities(cache_logits(model, cache, test, d, batch_size, device, precision, crop_for(record)))
    y = cache.labels[test]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MissingClassWarning)
        scores = classification_metrics(y, proba, record["class_names"], where=f"fold {fold} {record['name']}")
    for w in caught:
        console.print(f"[yellow]warning:[/] {w.message}")
    return y, proba, scores


def _write_predictions(path: Path, cache: WindowCache, rows: np.ndarray, y: np.ndarray, proba: np.ndarray) -> None:
    m = cache.manifest.iloc[rows]
    df = pd.DataFrame({"row": rows, "subject": m["subject"].to_numpy(), "recording": m["recording"].to_numpy(),
                       "window": m["window"].to_numpy(), "label": y, "pred": proba.argmax(1)})
    for k in range(proba.shape[1]):
        df[f"p_{k}"] = proba[:, k].astype(np.float32)
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    atomic_write_bytes(path, buf.getvalue())


def _summarise(rows: list[dict], run: dict, select: str, cap, precision: str) -> dict:
    summary = {}
    for name in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == name]
        summary[name] = {m: dict(zip(("mean", "std", "n_folds"), mean_std([r[m] for r in mine])))
                         for m in METRICS}
    paper = {method: {n: v for n, v in table.items() if n in summary} for method, table in PAPER_RESULTS.items()}
    return dict(run=run["config"], protocol=protocol_settings(run["config"]), select=select, max_windows_per_dataset=cap, precision=precision,
                per_fold=rows, summary=summary,
                std_ddof=0, paper=paper, environment=environment())


def _nan_to_none(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def _write_results(run_folder: RunFolder, rows: list[dict], results: dict) -> None:
    columns = ["fold", "dataset", "task", "n_windows", "checkpoint", "epoch", *METRICS]
    atomic_write_bytes(run_folder.results_csv,
                       pd.DataFrame(rows)[columns].to_csv(index=False, na_rep="NaN").encode())
    atomic_write_json(run_folder.results_json, _nan_to_none(results))  # NaN is not JSON: null


def save_confusion_png(path: Path, cm: np.ndarray, class_names: list[str], title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: no global backend state, headless-safe

    k = len(class_names)
    fig = Figure(figsize=(1.2 * k + 2.5, 1.1 * k + 2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)  # colour by row-normalised recall
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{cm[i, j]}\n{rates[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    with atomic_writer(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=120)


# --- tables ------------------------------------------------------------------------------------------
def _cell(mean: float, std: float | None, n: int = 2) -> str:
    if mean is None or not np.isfinite(mean):
        return "—"
    return f"{mean:.4f}±{std:.4f}" if std is not None and n > 1 else f"{mean:.4f}"


def paper_tables(results: dict) -> list[Table]:
    """One table per task in the paper's layout (dataset ACC / AUROC / F1), paper rows beside ours."""
    summary = results["summary"]
    label = f"this run ({results['run'].get('preset', '?')}, {results['protocol']['protocol']}, {results['select']})"
    groups = [(title, [n for n in names if n in summary]) for title, names in PAPER_TABLES.values()]
    others = [n for n in summary if not any(n in names for _, names in PAPER_TABLES.values())]
    groups = [g for g in groups if g[1]] + ([("Other datasets", others)] if others else [])
    tables = []
    for title, names in groups:
        table = Table(title=title, title_justify="left")
        table.add_column("Method")
        for name in names:
            for metric in ("ACC", "AUROC", "F1"):
                table.add_column(f"{DISPLAY_NAMES.get(name, name)} {metric}", justify="right")
        for method, paper in PAPER_RESULTS.items():
            if not any(n in paper for n in names):
                continue
            table.add_row(f"{method} (paper)", *[_cell(*paper[n][m]) if n in paper else "—"
                                                 for n in names for m in PAPER_METRICS])
        table.add_row(label, *[_cell(summary[n][m]["mean"], summary[n][m]["std"], summary[n][m]["n_folds"])
                               for n in names for m in PAPER_METRICS], style="bold")
        tables.append(table)
    return tables


def all_metrics_table(results: dict) -> Table:
    table = Table(title=f"All metrics, protocol {results['protocol']['protocol']} (mean ± std over folds, ddof=0)",
                  title_justify="left")
    table.add_column("Dataset")
    table.add_column("folds", justify="right")
    for m in METRICS:
        table.add_column(m, justify="right")
    for name, s in results["summary"].items():
        table.add_row(DISPLAY_NAMES.get(name, name), str(max(v["n_folds"] for v in s.values())),
                      *[_cell(s[m]["mean"], s[m]["std"], s[m]["n_folds"]) for m in METRICS])
    return table
