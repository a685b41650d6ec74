"""Tiny window caches for training and evaluation tests, written with the real CacheWriter.

The class is easy to learn: class k is a sine of frequency 8·(k+1) Hz and amplitude (k+1) at 200 Hz, in
every channel, plus Gaussian noise. Each subject gets one recording; subject i (0-based) is in test
fold (i % n_folds) + 1 unless `folds` says otherwise.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from eegmamba_cli.data.cache import CacheWriter, WindowCache
from models import preset


def make_cache(root: Path, name: str, *, n_subjects: int = 6, windows_per_subject: int = 8,
               n_channels: int = 2, samples: int = 64, n_classes: int = 2, n_folds: int = 3,
               folds: Sequence[int] | None = None, noise: float = 0.3, seed: int = 0,
               task: str = "custom", fingerprint: str | None = None, sessions: int = 1) -> WindowCache:
    """`sessions` > 1: each subject gets one recording per session ("1", "2", ...), each of
    `windows_per_subject` windows."""
    rng = np.random.default_rng(seed)
    writer = CacheWriter(root / name, dataset=name, task=task, channels=[f"C{i}" for i in range(n_channels)],
                         sfreq=200.0, window_samples=samples, class_names=[f"class{k}" for k in range(n_classes)],
                         params={"test": True}, fingerprint=fingerprint or f"fp-{name}-{seed}", version="test")
    t = np.arange(samples) / 200.0
    for i in range(n_subjects):
        for session in range(1, sessions + 1):
            _write_subject(writer, rng, i, session, windows_per_subject, n_channels, samples, n_classes, t, noise,
                           folds[i] if folds is not None else (i % n_folds) + 1)
    return writer.finalize()


def _write_subject(writer, rng, i, session, windows_per_subject, n_channels, samples, n_classes, t, noise, fold):
    labels = np.arange(windows_per_subject) % n_classes
    rng.shuffle(labels)
    clean = np.stack([(k + 1) * np.sin(2 * np.pi * 8 * (k + 1) * t + rng.uniform(0, 2 * np.pi))
                      for k in labels])[:, None, :]
    x = (clean + noise * rng.standard_normal((windows_per_subject, n_channels, samples))).astype(np.float32)
    rows = pd.DataFrame({"subject": [f"s{i:02d}"] * windows_per_subject,
                         "session": [str(session)] * windows_per_subject,
                         "start_s": np.arange(windows_per_subject) * samples / 200.0,
                         "label": labels, "fold": [fold] * windows_per_subject})
    writer.write_recording(f"s{i:02d}-r{session}", x, rows)


def make_toy_pair(root: Path) -> Path:
    """The trainer tests' two datasets under `root`: toya (2 channels, 2 classes, 6 subjects of 8 windows)
    and toyb (3 channels, 3 classes, 9 subjects of 6 windows of 96 samples)."""
    make_cache(root, "toya", n_subjects=6, windows_per_subject=8)
    make_cache(root, "toyb", n_subjects=9, windows_per_subject=6, n_classes=3, n_channels=3, samples=96, seed=1)
    return root


def tiny_config(**overrides):
    """The multitask architecture at toy size: fast on CPU."""
    cfg = replace(preset("multitask"), d_model=16, n_layers=1)
    return replace(cfg, **overrides)
