import json

import numpy as np
import pandas as pd
import pytest

from eegmamba_cli.console import UserError
from eegmamba_cli.data.cache import MANIFEST_COLUMNS, CacheWriter, WindowCache, find_caches


def _writer(tmp_path, fingerprint="fp1", overwrite=False):
    return CacheWriter(tmp_path / "toy", dataset="toy", task="sleep", channels=["C3", "C4"], sfreq=200,
                       window_samples=5, class_names=["a", "b"], params={"x": 1},
                       fingerprint=fingerprint, version="0.1.0", overwrite=overwrite)


def _rows(n, subject="s1", label=0):
    return pd.DataFrame({"subject": [subject] * n, "session": ["1"] * n,
                         "start_s": np.arange(n) * 4.0, "label": [label] * n, "fold": [2] * n})


def test_roundtrip_exact_windows_and_manifest(tmp_path):
    w = _writer(tmp_path)
    a = np.arange(3 * 2 * 5, dtype=np.float32).reshape(3, 2, 5)
    b = -np.arange(2 * 2 * 5, dtype=np.float32).reshape(2, 2, 5)
    w.write_recording("rec-b", b, _rows(2, "s2", 1))
    w.write_recording("rec-a", a, _rows(3))
    assert w.is_done("rec-a") and not w.is_done("rec-c")
    cache = w.finalize(skipped=[{"file": "x.edf", "reason": "truncated"}])
    assert list(cache.manifest.columns) == MANIFEST_COLUMNS
    assert len(cache) == 5
    # parts are concatenated in sorted recording order: rec-a (3 windows) then rec-b (2)
    assert cache.manifest["recording"].tolist() == ["rec-a"] * 3 + ["rec-b"] * 2
    np.testing.assert_array_equal(cache.windows([4, 0, 3]), np.stack([b[1], a[0], b[0]]))
    assert cache.labels.tolist() == [0, 0, 0, 1, 1]
    info = json.loads((tmp_path / "toy" / "info.json").read_text())
    assert info["windows_per_label"] == {"0": 3, "1": 2} and info["n_subjects"] == 2
    assert info["skipped"][0]["reason"] == "truncated"
    assert set(find_caches(tmp_path)) == {"toy"}


def test_unfinished_cache_is_refused(tmp_path):
    w = _writer(tmp_path)
    w.write_recording("r", np.zeros((1, 2, 5), np.float32), _rows(1))
    with pytest.raises(UserError, match="not a finished eegmamba cache"):
        WindowCache(tmp_path / "toy")


def test_other_fingerprint_refused_unless_overwrite(tmp_path):
    w = _writer(tmp_path)
    w.write_recording("r", np.zeros((1, 2, 5), np.float32), _rows(1))
    with pytest.raises(UserError, match="other preprocessing parameters"):
        _writer(tmp_path, fingerprint="fp2")
    w2 = _writer(tmp_path, fingerprint="fp2", overwrite=True)
    assert not w2.is_done("r")


def test_bad_shapes_and_names_rejected(tmp_path):
    w = _writer(tmp_path)
    with pytest.raises(ValueError, match="cache expects"):
        w.write_recording("r", np.zeros((1, 3, 5), np.float32), _rows(1))
    with pytest.raises(ValueError, match="2 manifest rows"):
        w.write_recording("r", np.zeros((1, 2, 5), np.float32), _rows(2))
    for bad in ("../x", "a/b", ".hidden", ""):
        with pytest.raises(ValueError, match="safe file name"):
            w.write_recording(bad, np.zeros((1, 2, 5), np.float32), _rows(1))
    assert not any((tmp_path / "toy" / "arrays").iterdir())


def test_written_files_honour_the_umask(tmp_path):
    """atomic_writer's temporaries are created 0o600; the renamed result must get a normal file's mode."""
    import os
    import stat

    from eegmamba_cli.fileio import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
