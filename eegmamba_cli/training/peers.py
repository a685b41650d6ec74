"""Peer baselines fitted on exactly the windows and folds that EEGMamba is evaluated on.

Three established methods, so a study can tell what EEGMamba adds:
* `minirocket`: aeon's MiniRocket, random dilated convolution kernels pooled into ~10,000 features, then a
  ridge classifier whose penalty is chosen by leave-one-out cross-validation on the training windows;
* `riemann`: pyriemann's Oracle-Approximating-Shrinkage spatial covariance of each window, mapped to the
  tangent space at the training windows' Riemannian mean, then logistic regression (the classic
  motor-imagery pipeline);
* `eegnet`: EEGNet-8,2, the compact convolutional network most EEG deep-learning studies compare against,
  in plain PyTorch (eegnet.py), trained for a fixed number of epochs.

Each peer is fitted on a fold's training and validation windows together: none stops early or picks
a checkpoint, so they have no use for a held-out validation part, and holding it back would only starve
them. Each is scored on the fold's test windows with scikit-learn's metrics.

MiniRocket and the Riemannian pipeline need the optional extra (pip install "eegmamba[peers]"); EEGNet
needs only torch and always runs. `evaluate --peers` runs `run_peers` in a child process
(peer_process.py), so these libraries never load into a process that trains with torch.
"""
from __future__ import annotations

import importlib.util
import time
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, balanced_accuracy_score, cohen_kappa_score

from .protocols import Fold

PEERS = ("minirocket", "riemann", "eegnet")
RESULT_COLUMNS = ("peer", "fold", "accuracy", "balanced_accuracy", "cohen_kappa",
                  "fit_seconds", "predict_seconds", "n_train", "n_test")
INSTALL_HINT = 'pip install "eegmamba[peers]"'
LIBRARIES = {"minirocket": "aeon", "riemann": "pyriemann"}  # the optional ones; eegnet needs only torch


class PeersUnavailable(ImportError):
    """A peer's library is not installed (the optional `peers` extra)."""


def run_peers(X: np.ndarray, y: np.ndarray, folds: Sequence[Fold], class_names: Sequence[str], *,
              seed: int = 0, peers: Sequence[str] = PEERS, sfreq: float | None = None) -> pd.DataFrame:
    """One row per (peer, fold) with RESULT_COLUMNS, for windows `X` (N, C, T) sampled at `sfreq` Hz
    (EEGNet sizes its kernels by it) and class codes `y` (N,)."""
    X, y = _check_inputs(X, y, folds, class_names, peers, sfreq)
    builders = builders_for(peers, sfreq)  # every missing library is reported before any fit
    labels = list(range(len(class_names)))
    rows = []
    for name in peers:
        for fold in folds:
            train = np.concatenate([fold.train, fold.val])
            model = builders[name](seed)
            started = time.perf_counter()
            model.fit(X[train], y[train])
            fitted = time.perf_counter()
            pred = np.asarray(model.predict(X[fold.test]))
            done = time.perf_counter()
            truth = y[fold.test]
            rows.append({"peer": name, "fold": fold.number,
                         "accuracy": accuracy_score(truth, pred),
                         "balanced_accuracy": balanced_accuracy_score(truth, pred),
                         "cohen_kappa": cohen_kappa_score(truth, pred, labels=labels),
                         "fit_seconds": fitted - started, "predict_seconds": done - fitted,
                         "n_train": len(train), "n_test": len(fold.test)})
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def _check_inputs(X, y, folds, class_names, peers, sfreq) -> tuple[np.ndarray, np.ndarray]:
    unknown = [p for p in peers if p not in PEERS]
    if unknown or not peers:
        raise ValueError(f"unknown peer(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(PEERS)}")
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 3 or y.shape != (len(X),):
        raise ValueError(f"windows must be (N, channels, samples) with one label each, got {X.shape} and {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= len(class_names):
        raise ValueError(f"labels must be class codes 0..{len(class_names) - 1}, got values {np.unique(y)[:8]}")
    if not folds:
        raise ValueError("no folds to fit the peers on")
    for fold in folds:
        rows = np.concatenate([fold.train, fold.val, fold.test])
        if len(rows) and (rows.min() < 0 or rows.max() >= len(X)):
            raise ValueError(f"fold {fold.number} indexes rows outside the {len(X)} windows")
        classes = np.unique(y[np.concatenate([fold.train, fold.val])])
        if len(fold.test) == 0 or len(classes) < 2:
            raise ValueError(f"fold {fold.number}: needs test windows and at least two classes to train on")
    if "eegnet" in peers and not (sfreq is not None and sfreq > 0):
        raise ValueError(f"peer eegnet needs the windows' sampling rate, got {sfreq}")
    return X, y


def builders_for(peers: Sequence[str] = PEERS, sfreq: float | None = None) -> dict[str, Callable[[int], object]]:
    """The model builder of each peer; PeersUnavailable names the extra when a library is missing."""
    return {name: _builder(name, sfreq) for name in peers}


def missing_libraries(peers: Sequence[str] = PEERS) -> dict[str, str]:
    """{peer: library} for each of `peers` whose library is not installed; imports nothing (see
    peer_process.py for why the parent process must not)."""
    return {name: LIBRARIES[name] for name in peers
            if name in LIBRARIES and importlib.util.find_spec(LIBRARIES[name]) is None}


def check_installed(peers: Sequence[str] = PEERS) -> None:
    """PeersUnavailable, naming the extra, when a peer's library is not installed; imports nothing."""
    missing = missing_libraries(peers)
    if missing:
        name, library = next(iter(missing.items()))
        raise PeersUnavailable(f"peer {name} needs {library} ({library} is not installed); {INSTALL_HINT}")


def installed_peers(peers: Sequence[str] = PEERS) -> tuple[str, ...]:
    """Those of `peers` whose library is installed (eegnet always); imports nothing."""
    missing = missing_libraries(peers)
    return tuple(name for name in peers if name not in missing)


def _builder(name: str, sfreq: float | None) -> Callable[[int], object]:
    """A function from a seed to an unfitted classifier with fit(X (N, C, T), y) and predict(X)."""
    if name == "eegnet":
        from .eegnet import EEGNetClassifier

        return lambda seed: EEGNetClassifier(sfreq, seed=seed)
    try:
        if name == "minirocket":
            from aeon.classification.convolution_based import MiniRocketClassifier

            return lambda seed: MiniRocketClassifier(random_state=seed, n_jobs=1)
        from pyriemann.estimation import Covariances
        from pyriemann.tangentspace import TangentSpace
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import FunctionTransformer

        # pyriemann estimates covariances in the input's precision; float32 sums over thousands of samples
        # lose the small eigenvalues the Riemannian distance depends on.
        as_float64 = FunctionTransformer(lambda X: np.asarray(X, dtype=np.float64))
        return lambda seed: make_pipeline(as_float64, Covariances(estimator="oas"), TangentSpace(metric="riemann"),
                                          LogisticRegression(max_iter=1000, random_state=seed))
    except ImportError as error:
        raise PeersUnavailable(f"peer {name} needs {LIBRARIES[name]} ({error.name or error} could not be imported); "
                               f"{INSTALL_HINT}") from error
