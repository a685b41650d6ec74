"""The shared pipeline: filter/resample/window/z-score, and the resumable, idempotent corpus run."""
import hashlib
import json

import numpy as np
import pytest
from scipy import signal as sps

from eegmamba_cli.console import UserError
from eegmamba_cli.data.base import CorpusInfo, NoOptions, Piece, RecordingError, default_passband
from eegmamba_cli.data.cache import WindowCache
from eegmamba_cli.data.pipeline import (PreprocessParams, fingerprint, fitting_windows, preprocess_corpus,
                                        preprocess_piece)
from eegmamba_cli.data.signal import design_sos, fixed_windows, overlap_labels, resample_factor
from eegmamba_cli.fileio import directory_lock
from tests.fixtures.edf import peak_frequency, tone
from tests.fixtures.siena import write_siena

INFO = CorpusInfo(name="toy", title="toy", task="seizure", channels=("A", "B"), native_sfreq=None,
                  window_s=4.0, class_names=("x", "y"), access="open", url="", licence="", citation="")


@pytest.mark.parametrize("sfreq,factor", [(512, (25, 64)), (256, (25, 32)), (100, (2, 1)), (125, (8, 5)),
                                          (128, (25, 16)), (200, (1, 1)), (250, (4, 5))])
def test_rational_resample_factors(sfreq, factor):
    assert resample_factor(sfreq) == factor


def test_odd_rate_refused():
    with pytest.raises(RecordingError, match="no small rational factor"):
        resample_factor(173.61)


def test_passband_high_pass_only_at_100_hz():
    assert default_passband(100) == (0.1, None) and default_passband(256) == (0.1, 50.0)
    sos = design_sos(100.0, 0.1, None)
    w, h = sps.sosfreqz(sos, worN=[0.01, 40.0], fs=100)
    assert abs(h[1]) > 0.99 and abs(h[0]) < 0.01  # passes 40 Hz, stops DC drift
    w, h = sps.sosfreqz(design_sos(512.0, 0.1, 50.0), worN=[10.0, 150.0], fs=512)
    assert abs(h[0]) > 0.99 and abs(h[1]) < 0.01


def test_piece_windows_shape_order_zscore_and_dropped_tail():
    sfreq, seconds = 256, 10
    data = np.stack([tone(5, sfreq, seconds), tone(11, sfreq, seconds) + 300.0])  # B has a DC offset
    piece = Piece(data, sfreq, [(0.0, 0), (4.0, 1), (8.0, 0)], offset_s=100.0)  # 8-12 s does not fit
    windows, starts = preprocess_piece(piece, INFO, PreprocessParams())
    assert windows.shape == (2, 2, 800) and windows.dtype == np.float32
    assert starts.tolist() == [100.0, 104.0]
    assert fitting_windows(piece, INFO).kept.tolist() == [0, 1]
    np.testing.assert_allclose(windows.mean(axis=2), 0, atol=1e-5)
    np.testing.assert_allclose(windows.std(axis=2), 1, atol=1e-4)
    assert [peak_frequency(windows[1, c]) for c in range(2)] == [5.0, 11.0]
    raw, _ = preprocess_piece(piece, INFO, PreprocessParams(normalize="none"))
    assert 40 < raw[1, 0].std() * np.sqrt(2) < 52  # filtered µV, amplitude 50, DC removed
    assert abs(raw[1, 1].mean()) < 5


def test_nan_and_flat_channels_named_or_kept():
    data = np.stack([tone(5, 200, 8), np.full(1600, 7.0)])
    piece = Piece(data, 200, [(0.0, 0)])
    with pytest.raises(RecordingError, match=r"^rec\.edf: channel B is flat \(constant 7 µV\)$"):
        preprocess_piece(piece, INFO, PreprocessParams(), source="rec.edf")
    kept, _ = preprocess_piece(piece, INFO, PreprocessParams(bad_channels="keep"))
    assert np.abs(kept[0, 1]).max() < 1e-3  # a constant filters to ~0; eps keeps the z-score near 0
    data = np.stack([tone(5, 200, 8), tone(6, 200, 8)])
    data[0, 10:13] = np.nan
    with pytest.raises(RecordingError, match=r"^rec\.edf: channel A has 3 NaN or infinite samples$"):
        preprocess_piece(Piece(data, 200, [(0.0, 0)]), INFO, PreprocessParams(), source="rec.edf")
    out, _ = preprocess_piece(Piece(data, 200, [(0.0, 0)]), INFO, PreprocessParams(bad_channels="keep"))
    assert np.isfinite(out).all()


def test_segmentation_helpers():
    assert fixed_windows(17.9, 4).tolist() == [0, 4, 8, 12]
    starts = np.array([0.0, 4.0, 8.0, 12.0])
    # 2 s of 4 (exactly 50 %) is ictal, 1.9 s is not; overlapping seizures are merged, not double counted
    assert overlap_labels(starts, 4, [(2, 6)]).tolist() == [1, 1, 0, 0]
    assert overlap_labels(starts, 4, [(10.1, 12.5), (10.5, 11)]).tolist() == [0, 0, 0, 0]
    assert overlap_labels(starts, 4, [(9, 11), (10, 14)]).tolist() == [0, 0, 1, 1]


def _files(directory):
    return {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_second_run_does_no_work_and_is_byte_identical(tmp_path):
    raw = write_siena(tmp_path / "raw")
    first = preprocess_corpus("siena", raw, tmp_path / "cache", progress=False)
    assert len(first.processed) == 3
    before = _files(tmp_path / "cache" / "siena")
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache" / "siena").rglob("*") if p.is_file()}
    second = preprocess_corpus("siena", raw, tmp_path / "cache", progress=False)
    assert second.processed == [] and second.reused == 3
    assert _files(tmp_path / "cache" / "siena") == before
    assert {p: p.stat().st_mtime_ns for p in mtimes if p.name != ".lock"} == \
        {p: t for p, t in mtimes.items() if p.name != ".lock"}  # not even rewritten


def test_interrupted_run_resumes_and_ends_identical(tmp_path):
    raw = write_siena(tmp_path / "raw")
    preprocess_corpus("siena", raw, tmp_path / "full", progress=False)
    resumed = tmp_path / "resumed"
    preprocess_corpus("siena", raw, resumed, progress=False)
    cache = resumed / "siena"
    # simulate a crash after one recording: its part is gone, info.json too, a temp file lingers
    (cache / "parts" / "PN01-1.parquet").unlink()
    (cache / "info.json").unlink()
    (cache / "arrays" / ".PN01-1.npy.abc.tmp").write_bytes(b"half")
    again = preprocess_corpus("siena", raw, resumed, progress=False)
    assert again.processed == ["PN01-1"] and again.reused == 2
    assert _files(cache) == _files(tmp_path / "full" / "siena")


def test_workers_give_the_same_cache(tmp_path):
    raw = write_siena(tmp_path / "raw")
    preprocess_corpus("siena", raw, tmp_path / "one", workers=1, progress=False)
    preprocess_corpus("siena", raw, tmp_path / "two", workers=2, progress=False)
    assert _files(tmp_path / "one" / "siena") == _files(tmp_path / "two" / "siena")


def test_other_parameters_refused_then_overwrite(tmp_path):
    raw = write_siena(tmp_path / "raw")
    preprocess_corpus("siena", raw, tmp_path / "c", progress=False)
    with pytest.raises(UserError, match="other preprocessing parameters; overwrite it or choose another cache folder$"):
        preprocess_corpus("siena", raw, tmp_path / "c", normalize="none", progress=False)
    report = preprocess_corpus("siena", raw, tmp_path / "c", normalize="none", overwrite=True, progress=False)
    assert len(report.processed) == 3
    info = json.loads((tmp_path / "c" / "siena" / "info.json").read_text())
    assert info["params"]["normalize"] == "none" and info["fingerprint"] == report.cache.fingerprint


def test_fingerprint_covers_params_and_options():
    base = fingerprint(INFO, PreprocessParams())
    assert base == fingerprint(INFO, PreprocessParams())
    assert base != fingerprint(INFO, PreprocessParams(eps=1e-5))
    assert base != fingerprint(INFO, PreprocessParams(options={"trim_wake": False}))


def test_locked_directory_refused(tmp_path):
    raw = write_siena(tmp_path / "raw")
    with directory_lock(tmp_path / "c" / "siena", "another eegmamba preprocess"):
        with pytest.raises(UserError, match="already in use by another eegmamba preprocess"):
            preprocess_corpus("siena", raw, tmp_path / "c", progress=False)


def test_unknown_option_and_bad_values_refused(tmp_path):
    raw = write_siena(tmp_path / "raw")
    with pytest.raises(UserError, match=r"siena: unknown option\(s\) trim_wake; known: min_ictal_fraction"):
        preprocess_corpus("siena", raw, tmp_path / "c", options={"trim_wake": False}, progress=False)
    with pytest.raises(UserError, match="raw folder not found"):
        preprocess_corpus("siena", tmp_path / "nope", tmp_path / "c", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no siena recordings found"):
        preprocess_corpus("siena", tmp_path / "empty", tmp_path / "c", progress=False)
    assert WindowCache  # imported for the cache-format contract


class _DyingCorpus:
    """A corpus whose worker dies on one recording (as the OOM killer would); picklable for spawn."""

    info = INFO
    Options = NoOptions
    options = NoOptions()

    def bind(self, raw, options=None):
        return self

    def find_recordings(self, raw, subjects=None):
        from eegmamba_cli.data.base import RecordingRef
        return [RecordingRef(id=i, subject="s1", session="1", paths=[raw / f"{i}.x"]) for i in ("a", "boom")]

    def read(self, ref):
        import os
        from eegmamba_cli.data.base import Recording
        if ref.id == "boom":
            os._exit(3)
        return Recording(ref, [Piece(np.stack([tone(5, 200, 8), tone(7, 200, 8)]), 200, [(0.0, 1)])])

    def passband(self, sfreq):
        return default_passband(sfreq)

    def fold_of(self, subject):
        return 1


def test_dead_worker_stops_cleanly_and_is_not_remembered_as_a_skip(tmp_path, monkeypatch):
    import eegmamba_cli.data.pipeline as pipeline
    monkeypatch.setattr(pipeline, "get_corpus", lambda name: _DyingCorpus())
    with pytest.raises(UserError, match=r"a worker process died while reading (a\.x, )?boom\.x \(.*run again to resume"):
        preprocess_corpus("toy", tmp_path, tmp_path / "cache", workers=2, progress=False)
    assert not (tmp_path / "cache" / "toy" / "info.json").exists()
    skipped = tmp_path / "cache" / "toy" / "skipped.json"
    assert not skipped.exists() or "boom" not in skipped.read_text()
