"""Segment-level classification metrics (docs/design.md#metrics), all computed by scikit-learn.

The paper's three come first: accuracy, AUROC (binary: positive-class probability; multi-class:
one-vs-rest macro) and support-weighted F1. Balanced accuracy, Cohen's kappa, macro F1 and AUPRC
(binary tasks only) are reported beside them, never instead.

A class absent from a fold's test labels makes the metrics that need every class (AUROC, AUPRC) NaN,
with a `MissingClassWarning`; the other metrics are computed by scikit-learn over the classes present.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
from sklearn.metrics import (accuracy_score, average_precision_score, balanced_accuracy_score,
                             cohen_kappa_score, f1_score, roc_auc_score)

PAPER_METRICS = ("accuracy", "auroc", "f1_weighted")
METRICS = PAPER_METRICS + ("balanced_accuracy", "cohen_kappa", "f1_macro", "auprc")


class MissingClassWarning(UserWarning):
    """A test set lacks a class, so some metrics are undefined (NaN)."""


def classification_metrics(y_true: Sequence[int], proba: np.ndarray,
                           class_names: Sequence[str] | None = None, where: str = "") -> dict[str, float]:
    """All METRICS for labels `y_true` (n,) and class probabilities `proba` (n, K)."""
    y = np.asarray(y_true, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    n_classes = proba.shape[1]
    names = list(class_names) if class_names is not None else [str(k) for k in range(n_classes)]
    prefix = f"{where}: " if where else ""
    if len(y) == 0:
        warnings.warn(f"{prefix}no test windows; every metric is NaN", MissingClassWarning, stacklevel=2)
        return {m: float("nan") for m in METRICS}
    pred = proba.argmax(axis=1)
    missing = sorted(set(range(n_classes)) - set(y.tolist()))
    if missing:
        warnings.warn(f"{prefix}class(es) {', '.join(names[k] for k in missing)} absent from the test labels; "
                      "AUROC and AUPRC are NaN", MissingClassWarning, stacklevel=2)
    with warnings.catch_warnings():  # sklearn's own warnings about undefined values: we report NaN instead
        warnings.simplefilter("ignore")
        out = {
            "accuracy": accuracy_score(y, pred),
            "auroc": _auroc(y, proba) if not missing else np.nan,
            "f1_weighted": f1_score(y, pred, average="weighted", zero_division=0),
            "balanced_accuracy": balanced_accuracy_score(y, pred),
            "cohen_kappa": cohen_kappa_score(y, pred, labels=list(range(n_classes))),
            "f1_macro": f1_score(y, pred, average="macro", zero_division=0),
            "auprc": average_precision_score(y, proba[:, 1]) if n_classes == 2 and not missing else np.nan,
        }
    return {k: float(v) for k, v in out.items()}


def _auroc(y: np.ndarray, proba: np.ndarray) -> float:
    if proba.shape[1] == 2:
        return roc_auc_score(y, proba[:, 1])
    proba = proba / proba.sum(axis=1, keepdims=True)  # sklearn insists the rows sum to 1
    return roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=list(range(proba.shape[1])))


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """(mean, population std with ddof=0, count) over the finite values; NaN when there are none."""
    finite = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if finite.size == 0:
        return float("nan"), float("nan"), 0
    return float(finite.mean()), float(finite.std(ddof=0)), int(finite.size)
