"""Fit the peer baselines in a child Python process, so that their libraries never load into ours.

aeon compiles MiniRocket with numba, and importing aeon, pyriemann or numba into a process that trains or
evaluates with torch changed that process's later floating-point results (thread pools and math
libraries are process-wide). So `evaluate --peers` never imports them itself: it writes the windows,
labels and folds to a temporary .npz, runs `python -m eegmamba_cli.training.peer_process IN OUT` with the
same interpreter, and reads the child's per-fold table back from a CSV. Nothing crosses as a pickle
(`np.load(..., allow_pickle=False)`, JSON, CSV). Fit and predict times are measured in the child, around
the fits alone.

The child exits 0 with OUT.csv written, or non-zero with OUT.error.json: {"kind": "unavailable" | "input",
"message": one line}, raised again here as PeersUnavailable or ValueError.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..child_env import python_child_env
from .peers import PEERS, RESULT_COLUMNS, PeersUnavailable, run_peers
from .protocols import Fold

CHILD_COMMAND = (sys.executable, "-m", "eegmamba_cli.training.peer_process")


def run_peers_in_child(X: np.ndarray, y: np.ndarray, folds: Sequence[Fold], class_names: Sequence[str], *,
                       seed: int = 0, peers: Sequence[str] = PEERS, sfreq: float | None = None,
                       command: Sequence[str] = CHILD_COMMAND) -> pd.DataFrame:
    """`peers.run_peers` with the same arguments and result, computed in a child process (`command` IN OUT)."""
    with tempfile.TemporaryDirectory(prefix="eegmamba-peers-") as tmp:
        inputs, outputs = Path(tmp) / "inputs.npz", Path(tmp) / "results.csv"
        write_inputs(inputs, X, y, folds, class_names, seed=seed, peers=peers, sfreq=sfreq)
        done = subprocess.run([*command, str(inputs), str(outputs)], capture_output=True, text=True,
                              env=python_child_env())
        error = _error_path(outputs)
        if error.exists():
            report = json.loads(error.read_text())
            raise (PeersUnavailable if report["kind"] == "unavailable" else ValueError)(report["message"])
        if done.returncode != 0 or not outputs.exists():
            tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise RuntimeError(f"the peer process failed (exit {done.returncode}): {tail}")
        return pd.read_csv(outputs)[list(RESULT_COLUMNS)]


def write_inputs(path: Path, X, y, folds: Sequence[Fold], class_names: Sequence[str], *, seed: int,
                 peers: Sequence[str], sfreq: float | None = None) -> None:
    arrays = {"X": np.asarray(X), "y": np.asarray(y)}
    for i, fold in enumerate(folds):
        arrays |= {f"fold{i}_train": fold.train, f"fold{i}_val": fold.val, f"fold{i}_test": fold.test}
    meta = dict(fold_numbers=[int(f.number) for f in folds], class_names=list(class_names), seed=int(seed),
                peers=list(peers), sfreq=None if sfreq is None else float(sfreq))
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


def read_inputs(path: Path) -> tuple[np.ndarray, np.ndarray, list[Fold], dict]:
    with np.load(path, allow_pickle=False) as f:
        meta = json.loads(f["meta"].tobytes().decode())
        folds = [Fold(n, f[f"fold{i}_train"], f[f"fold{i}_val"], f[f"fold{i}_test"])
                 for i, n in enumerate(meta["fold_numbers"])]
        return f["X"], f["y"], folds, meta


def _error_path(outputs: Path) -> Path:
    return outputs.with_suffix(".error.json")


def main(argv: Sequence[str] | None = None) -> int:
    inputs, outputs = (Path(a) for a in (sys.argv[1:] if argv is None else argv))
    X, y, folds, meta = read_inputs(inputs)
    try:
        table = run_peers(X, y, folds, meta["class_names"], seed=meta["seed"], peers=meta["peers"],
                          sfreq=meta.get("sfreq"))
    except PeersUnavailable as err:
        _error_path(outputs).write_text(json.dumps({"kind": "unavailable", "message": str(err)}))
        return 3
    except ValueError as err:
        _error_path(outputs).write_text(json.dumps({"kind": "input", "message": str(err)}))
        return 2
    table.to_csv(outputs, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
