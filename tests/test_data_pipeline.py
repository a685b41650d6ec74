"""The shared pipeline: filter/resample/window/z-score, and the resumable, idempotent corpus run."""
import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from scipy import signal as sps

from eegmamba_cli.console import UserError
from eegmamba_cli.data.base import CorpusError, CorpusInfo, NoOptions, Piece, RecordingError, default_passband
from eegmamba_cli.data.cache import WindowCache
from eegmamba_cli.data.pipeline import (PreprocessParams, fingerprint, fitting_windows, preprocess_corpus,
                                        preprocess_piece, preprocess_pieces)
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


# --- normalisation, band, per-event lengths ----------------------------------------------------------

def _noise_piece(seconds, seed, offset_s=0.0, shift=0.0, gain=1.0):
    rng = np.random.default_rng(seed)
    data = rng.normal(shift, 20.0 * gain, (2, int(seconds * 200)))
    return Piece(data, 200.0, [(float(s), 0) for s in fixed_windows(seconds, 4.0)], offset_s=offset_s)


def test_recording_normalisation_is_the_median_and_iqr_of_all_pieces():
    # at 200 Hz with no band, filtering and resampling are the identity: the float64 reference is plain numpy
    pieces = [_noise_piece(8, 0), _noise_piece(12, 1, offset_s=20.0, shift=100.0, gain=2.0)]
    params = PreprocessParams(normalize="recording", band="none")
    done = preprocess_pieces(pieces, INFO, params, [(None, None)] * 2)
    whole = np.concatenate([p.data for p in pieces], axis=1)
    q25, median, q75 = np.percentile(whole, [25, 50, 75], axis=1, keepdims=True)
    scale = (q75 - q25) / 1.3489795 + 1e-6
    for piece, (windows, starts_s, plan) in zip(pieces, done):
        assert plan.lengths.tolist() == [800] * len(piece.windows)
        for k, start in enumerate(starts_s - piece.offset_s):
            i = int(round(start * 200))
            np.testing.assert_allclose(windows[k], (piece.data[:, i:i + 800] - median) / scale, atol=1e-5)
    # the slow shift and the doubled amplitude of the second piece survive; a per-window z-score erases both
    assert done[1][0][:, 0].mean() - done[0][0][:, 0].mean() > 1.0
    assert 1.8 < done[1][0][:, 0].std() / done[0][0][:, 0].std() < 2.2
    zscored = preprocess_pieces(pieces, INFO, PreprocessParams(band="none"), [(None, None)] * 2)
    assert abs(zscored[1][0][:, 0].mean() - zscored[0][0][:, 0].mean()) < 1e-5
    assert abs(zscored[1][0][:, 0].std() / zscored[0][0][:, 0].std() - 1) < 1e-3


def test_event_lengths_are_zero_padded_and_zscored_over_their_own_samples():
    piece = _noise_piece(12, 2)
    piece.windows, piece.lengths_s, piece.events = [(1.0, 0), (5.0, 1), (10.0, 0)], [3.0, 4.0, 2.5], [0, 1, 2]
    windows, starts_s, plan = preprocess_pieces([piece], INFO, PreprocessParams(band="none"), [(None, None)])[0]
    assert plan.lengths.tolist() == [600, 800] and starts_s.tolist() == [1.0, 5.0]  # 10 + 2.5 > 12 s: dropped
    assert np.all(windows[0, :, 600:] == 0)
    reference = piece.data[:, 200:800]
    reference = (reference - reference.mean(1, keepdims=True)) / (reference.std(1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(windows[0, :, :600], reference, atol=1e-5)


def test_band_choices_and_old_names():
    assert PreprocessParams(band="8,30").passband((0.1, 50.0)) == (8.0, 30.0)
    assert PreprocessParams(band=[0, 30]).passband((0.1, 50.0)) == (None, 30.0)  # low 0: low-pass only
    assert PreprocessParams(band="none").passband((0.1, 50.0)) == (None, None)
    assert PreprocessParams().passband((0.1, None)) == (0.1, None)
    assert PreprocessParams(normalize="zscore").normalize == "window"  # caches and checkpoints before 0.2
    assert PreprocessParams.from_record({"normalize": "zscore", "eps": 1e-6, "bad_channels": "skip",
                                         "options": {}}) == PreprocessParams()
    for bad in ("30,8", "8", "a,b", (1, float("inf")), "-1,4"):
        with pytest.raises(CorpusError, match=r"^band "):
            PreprocessParams(band=bad)
    with pytest.raises(CorpusError, match=r"^normalize foo: expected window, recording or none$"):
        PreprocessParams(normalize="foo")
    assert fingerprint(INFO, PreprocessParams(band="8,30")) != fingerprint(INFO, PreprocessParams())


def test_a_band_filters_the_piece():
    sfreq, seconds = 256, 8
    data = np.stack([tone(3, sfreq, seconds) + tone(20, sfreq, seconds), tone(20, sfreq, seconds)])
    piece = Piece(data, sfreq, [(0.0, 0), (4.0, 0)])
    params = PreprocessParams(band="8,30", normalize="none")
    windows, _ = preprocess_piece(piece, INFO, params, passband=params.passband(default_passband(sfreq)))
    assert peak_frequency(windows[1, 0]) == 20  # the 3-Hz tone is gone


def test_old_cache_without_run_event_length_still_loads(tmp_path):
    raw = write_siena(tmp_path / "raw")
    cache = preprocess_corpus("siena", raw, tmp_path / "c", progress=False).cache
    path = cache.directory / "manifest.parquet"
    old = pd.read_parquet(path).drop(columns=["run", "event", "length"])
    old.to_parquet(path, index=False)
    again = WindowCache(cache.directory)
    assert list(again.manifest.columns) == list(cache.manifest.columns)
    assert (again.lengths == again.window_samples).all() and set(again.manifest["run"]) == {"1"}
    assert again.events.tolist() == (old["recording"] + "/e" + old["window"].astype(str)).tolist()
    assert again.events.tolist() == cache.events.tolist()  # continuous corpus: each window its own event
