"""`evaluate --peers`: the peer baselines (peers.py) on exactly EEGMamba's folds, side by side with it.

For each dataset and each evaluated fold, the peers are fitted on the fold's training and validation
windows and scored on its test windows, the rows `evaluate` rebuilt for EEGMamba. EEGNet always runs;
MiniRocket and the Riemannian pipeline run when the `peers` extra is installed, and are otherwise skipped
with one warning line before anything is computed.
EEGMamba's fit time is its training time for the fold (the sum of the epochs' `time_s` in metrics.jsonl,
validation passes excluded); in a multi-task run that time covers every dataset of the run together.

The peers are fitted in a child process (peer_process.py): their libraries never load into this one.

Writes peers.csv (one row per dataset, method and fold) and peers.png (mean ± std over folds, ddof=0).
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
from rich.markup import escape
from rich.table import Table

from ..console import UserError, console
from ..data.cache import WindowCache
from ..fileio import atomic_write_bytes, atomic_writer
from .metrics import mean_std
from .paper import DISPLAY_NAMES
from .peer_process import run_peers_in_child
from .peers import INSTALL_HINT, PeersUnavailable, installed_peers, missing_libraries
from .protocols import Fold
from .run_folder import RunFolder
from .splits import DatasetFolds

SCORES = ("accuracy", "balanced_accuracy", "cohen_kappa")
COLUMNS = ("dataset", "method", "fold", *SCORES, "fit_seconds", "n_train", "n_test")
EEGMAMBA = "eegmamba"


def warn_skipped_peers() -> None:
    """One warning line naming the peers skipped for a missing library and the extra that brings them;
    EEGNet needs none, so some peer always runs."""
    missing = missing_libraries()
    if missing:
        libraries = ", ".join(sorted(set(missing.values())))
        message = (f"evaluate --peers: skipping {', '.join(missing)} ({libraries} not installed; {INSTALL_HINT}); "
                   f"running {', '.join(installed_peers())}")
        console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def compare_peers(run_folder: RunFolder, caches: dict[str, WindowCache], folds_of: dict[str, DatasetFolds],
                  eegmamba_rows: list[dict], *, seed: int) -> dict:
    """Fit the peers on the folds EEGMamba was evaluated on; write peers.csv and peers.png; return the
    per-fold rows, the summary and the peers skipped for a missing library, for results.json."""
    peers = installed_peers()
    frames = [_eegmamba_rows(run_folder, folds_of, eegmamba_rows)]
    for name, cache in caches.items():
        numbers = sorted({r["fold"] for r in eegmamba_rows if r["dataset"] == name})
        if numbers:
            frames.append(_peer_rows(cache, [folds_of[name].splits[n] for n in numbers], numbers, seed, peers))
    table = pd.concat(frames, ignore_index=True)[list(COLUMNS)]
    atomic_write_bytes(run_folder.peers_csv, table.to_csv(index=False, na_rep="NaN").encode())
    summary = summarise(table)
    save_peers_png(run_folder.peers_png, summary)
    return dict(per_fold=json.loads(table.to_json(orient="records")), summary=summary,
                skipped=missing_libraries())


def _peer_rows(cache: WindowCache, splits: list, numbers: list[int], seed: int,
               peers: tuple[str, ...]) -> pd.DataFrame:
    # The peers read one array: every window any of these folds uses, once, in manifest order.
    used = np.unique(np.concatenate([np.concatenate([s.train, s.val, s.test]) for s in splits]))
    at = lambda rows: np.searchsorted(used, rows)  # noqa: E731  manifest rows -> positions in `used`
    folds = [Fold(n, at(s.train), at(s.val), at(s.test)) for n, s in zip(numbers, splits)]
    try:
        found = run_peers_in_child(cache.windows(used), cache.labels[used], folds, cache.class_names, seed=seed,
                                   peers=peers, sfreq=cache.info.get("sfreq"))
    except PeersUnavailable as err:  # installed, yet the import failed in the child
        raise UserError(f"evaluate --peers: {err}") from None
    found = found.rename(columns={"peer": "method"})
    found.insert(0, "dataset", cache.name)
    return found


def _eegmamba_rows(run_folder: RunFolder, folds_of: dict[str, DatasetFolds], rows: list[dict]) -> pd.DataFrame:
    fit = {}
    for r in rows:
        if r["fold"] not in fit:
            fit[r["fold"]] = fit_seconds(run_folder, r["fold"])
    out = []
    for r in rows:
        split = folds_of[r["dataset"]].splits[r["fold"]]
        out.append(dict(dataset=r["dataset"], method=EEGMAMBA, fold=r["fold"], **{m: r[m] for m in SCORES},
                        fit_seconds=fit[r["fold"]], n_train=len(split.train) + len(split.val), n_test=r["n_windows"]))
    return pd.DataFrame(out)


def fit_seconds(run_folder: RunFolder, fold: int) -> float:
    """The fold's training time: its epochs' `time_s` summed (NaN without metrics)."""
    path = run_folder.fold(fold).metrics_jsonl
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return float(sum(r["time_s"] for r in rows)) if rows else float("nan")
    except (OSError, ValueError, KeyError, TypeError):
        return float("nan")


def summarise(table: pd.DataFrame) -> dict:
    """{dataset: {method: {score: {mean, std, n_folds}}}}, methods in the order EEGMamba, then the peers."""
    out: dict = {}
    for (dataset, method), group in table.groupby(["dataset", "method"], sort=False):
        out.setdefault(dataset, {})[method] = {
            m: dict(zip(("mean", "std", "n_folds"), mean_std(group[m].tolist()))) for m in (*SCORES, "fit_seconds")}
    return out


def peers_table(summary: dict, protocol: str) -> Table:
    table = Table(title=f"EEGMamba and peers, protocol {protocol} (test folds, mean ± std, ddof=0)",
                  title_justify="left")
    for column in ("Dataset", "Method", "folds", *SCORES, "fit s"):
        table.add_column(column, justify="left" if column in ("Dataset", "Method") else "right")
    for dataset, methods in summary.items():
        for method, s in methods.items():
            cells = [_cell(s[m]) for m in SCORES]
            fit = s["fit_seconds"]["mean"]
            table.add_row(DISPLAY_NAMES.get(dataset, dataset), method, str(s["accuracy"]["n_folds"]), *cells,
                          "—" if fit is None or not np.isfinite(fit) else f"{fit:.1f}",
                          style="bold" if method == EEGMAMBA else None)
    return table


def _cell(s: dict) -> str:
    if s["mean"] is None or not np.isfinite(s["mean"]):
        return "—"
    return f"{s['mean']:.4f}±{s['std']:.4f}" if s["n_folds"] > 1 else f"{s['mean']:.4f}"


def save_peers_png(path, summary: dict) -> None:
    """One panel per dataset: a bar per method and score, mean with a ± std error bar."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: no global backend state, headless-safe

    fig = Figure(figsize=(7.5, 3.2 * len(summary)))
    FigureCanvasAgg(fig)
    for i, (dataset, methods) in enumerate(summary.items()):
        ax = fig.add_subplot(len(summary), 1, i + 1)
        width = 0.8 / len(methods)
        for j, (method, s) in enumerate(methods.items()):
            means = [s[m]["mean"] for m in SCORES]
            stds = np.nan_to_num([s[m]["std"] for m in SCORES])  # one fold: no spread to draw
            ax.bar(np.arange(len(SCORES)) + (j - (len(methods) - 1) / 2) * width, means, width, yerr=stds,
                   capsize=3, label=method)
        ax.set_xticks(range(len(SCORES)), [m.replace("_", " ") for m in SCORES])
        ax.set_ylim(min(0.0, ax.get_ylim()[0]), 1.05)  # room for a ± std bar above a perfect score
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_title(DISPLAY_NAMES.get(dataset, dataset), fontsize=10)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars, never over them
    fig.tight_layout()
    with atomic_writer(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=120)
