"""`eegmamba demo --tiny`: the whole chain on a much smaller synthetic corpus (files, tables, outputs).

No timing and no accuracy assertions: at this size the model trains for one epoch of a few steps.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from eegmamba_cli.app import app
from eegmamba_cli.data.registry import CORPUS_NAMES, get_corpus
from eegmamba_cli.demo import corpus as demo_corpus

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    result = runner.invoke(app, ["demo", "--out", str(out), "--tiny", "--seed", "3"])
    return out, result


def test_demo_runs_and_prints_the_tables(demo):
    out, result = demo
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "demo-sized" in text
    assert "Demo results" in text and "Time" in text
    for name in ("Siena", "CHB-MIT", "SHHS", "DEAP", "SEED", "Shu"):
        assert name in text


def test_demo_writes_every_corpus_in_its_native_layout(demo):
    out, _ = demo
    raw = out / "raw"
    expected = {
        "siena": ["PN00/PN00-1.edf", "PN00/Seizures-list-PN00.txt"],
        "chbmit": ["chb01/chb01_01.edf", "chb01/chb01-summary.txt", "RECORDS-WITH-SEIZURES"],
        "sleepedf": ["sleep-cassette/SC4001E0-PSG.edf", "sleep-cassette/SC4001EC-Hypnogram.edf"],
        "shhs": ["polysomnography/edfs/shhs1/shhs1-200010.edf",
                 "polysomnography/annotations-events-nsrr/shhs1/shhs1-200010-nsrr.xml", "subjects.txt"],
        "deap": ["data_preprocessed_python/s01.dat"],
        "seed": ["Preprocessed_EEG/label.mat", "Preprocessed_EEG/readme.txt"],
        "shu": ["mat/sub-001_ses-01_task_motorimagery_eeg.mat"],
        "bciiv2a": ["A01T.gdf", "A01E.gdf", "A01E.mat"],
    }
    for name, files in expected.items():
        for f in files:
            assert (raw / name / f).is_file(), f"{name}/{f}"
    assert (raw / "bciiv2a" / "A01T.gdf").read_bytes()[:8] == b"GDF 1.25"
    assert (raw / "deap" / "data_preprocessed_python" / "s01.dat").read_bytes()[:2] == b"\x80\x02"


def test_demo_caches_fill_every_fold(demo):
    from eegmamba_cli.data.cache import WindowCache

    out, _ = demo
    for name in CORPUS_NAMES:
        cache = WindowCache(out / "cache" / name)
        assert sorted(set(cache.folds.tolist())) == [1, 2, 3, 4, 5], name
        assert set(cache.labels.tolist()) == set(range(len(get_corpus(name).info.class_names))), name


def test_demo_run_results_and_predictions(demo):
    out, _ = demo
    assert (out / "run" / "fold-1" / "best" / "checkpoint.json").is_file()
    results = pd.read_csv(out / "run" / "results.csv")
    assert sorted(results["dataset"]) == sorted(CORPUS_NAMES)
    assert (results["fold"] == 1).all()
    for name in CORPUS_NAMES:
        assert (out / "run" / "confusion" / f"{name}.png").read_bytes()[:8] == PNG
    for stem in ("SC4001E0-PSG", "chb01_01"):
        table = pd.read_csv(out / "predictions" / f"{stem}.csv")
        probs = table[[c for c in table.columns if c.startswith("p_")]].to_numpy()
        assert len(table) > 0 and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
        assert (out / "predictions" / f"{stem}.png").read_bytes()[:8] == PNG
    summary = json.loads((out / "demo-summary.json").read_text())
    assert summary["tiny"] is True and summary["epochs"] == 1 and len(summary["results"]) == 8
    assert set(summary["seconds"]) == {"generate", "preprocess", "train", "evaluate", "predict"}


def test_demo_refuses_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    result = runner.invoke(app, ["demo", "--out", str(tmp_path), "--tiny"])
    assert result.exit_code == 1
    assert "is not an earlier demo folder" in result.output
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_demo_subjects_follow_the_fold_table():
    for name in CORPUS_NAMES:
        corpus = get_corpus(name)
        subjects = demo_corpus.subjects(name, demo_corpus.FULL)
        assert [corpus.fold_of(s) for s in subjects] == [1, 2, 3, 4, 5], name


def test_demo_model_predicts_the_real_sleepedf_excerpt(demo, realdata, tmp_path):
    """The issue's check: a model trained on the synthetic sleep data, run on a real recording. Its stages
    mean nothing; the run, the 30-s window times and the output files must be right."""
    out, _ = demo
    psg = realdata / "sleep-edf" / "excerpt" / "SC4001E0-PSG.edf"
    csv, as_json, png = tmp_path / "excerpt.csv", tmp_path / "excerpt.json", tmp_path / "excerpt.png"
    base = ["predict", str(psg), "--model", str(out / "run"), "--dataset", "sleepedf", "--device", "cpu"]
    result = runner.invoke(app, [*base, "--out", str(csv), "--plot", str(png)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(csv)
    assert list(table["start_s"]) == list(range(0, 300, 30))  # the excerpt: 300 s, ten 30-s windows
    assert list(table["end_s"]) == list(range(30, 301, 30))
    assert list(table.columns) == ["start_s", "end_s", "prediction", "p_W", "p_N1", "p_N2", "p_N3", "p_REM"]
    assert np.allclose(table.filter(like="p_").sum(axis=1), 1, atol=1e-5)
    assert png.read_bytes()[:8] == PNG
    assert runner.invoke(app, [*base, "--out", str(as_json)]).exit_code == 0
    data = json.loads(as_json.read_text())
    assert data["channels"] == [{"expected": "Fpz-Cz", "from": "EEG Fpz-Cz", "how": "name"}]
    assert [w["prediction"] for w in data["windows"]] == list(table["prediction"])
    assert sum(s["windows"] for s in data["summary"]["stages"].values()) == 10


@pytest.mark.parametrize("idle, threads", [(None, 1), (0.2, 1), (1.4, 1), (1.6, 2), (3.0, 3), (15.0, 4)])
def test_threads_follow_the_idle_cores(idle, threads):
    from eegmamba_cli.demo.run import threads_for

    assert threads_for(idle) == threads


def test_idle_cores_is_a_share_of_the_cores():
    import os

    from eegmamba_cli.demo.run import idle_cores

    idle = idle_cores(interval=0.05)
    assert idle is not None and -0.01 <= idle <= (os.cpu_count() or 1) + 0.01


def test_own_cpu_time_does_not_count_as_busy():
    """Busy in this process only: the cores other processes left idle stay (nearly) all of them, even
    though the machine was busy. Another process keeping one core busy lowers it by about one."""
    import os
    import subprocess
    import sys
    import time

    from eegmamba_cli.demo.run import cpu_snapshot, idle_cores_since

    cores = os.cpu_count() or 1
    before = cpu_snapshot()
    end = time.perf_counter() + 0.5
    while time.perf_counter() < end:  # spin on one core ourselves
        pass
    alone = idle_cores_since(before)
    spinner = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time() + 2\nwhile time.time() < t: pass"])
    try:
        time.sleep(0.3)  # let it start
        before = cpu_snapshot()
        time.sleep(1.0)
        shared = idle_cores_since(before)
    finally:
        spinner.kill()
    assert alone is not None and shared is not None
    assert alone > shared + 0.5  # the other process's core counts as busy, ours did not
    assert shared <= cores - 0.5


# --- the synthetic classes carry the structure the docs describe (on the tiny demo's caches) ----------
def _cache(demo, name):
    from eegmamba_cli.data.cache import WindowCache

    cache = WindowCache(demo[0] / "cache" / name)
    return cache, cache.windows(np.arange(len(cache.labels))).astype(np.float64), cache.labels


def _band_power(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """Power in [low, high] Hz of (windows, channels, samples) at 200 Hz -> (windows, channels)."""
    power = np.abs(np.fft.rfft(x, axis=-1)) ** 2
    f = np.fft.rfftfreq(x.shape[-1], 1 / 200)
    return power[..., (f >= low) & (f <= high)].sum(-1)


@pytest.mark.parametrize("name", ["siena", "chbmit"])
def test_seizure_windows_are_spiky(demo, name):
    _, x, y = _cache(demo, name)
    kurtosis = np.median((x ** 4).mean(-1) / (x ** 2).mean(-1) ** 2, axis=1)  # per window, over channels
    assert kurtosis[y == 1].mean() > kurtosis[y == 0].mean() + 1.0


@pytest.mark.parametrize("name", ["sleepedf", "shhs"])
def test_sleep_stages_differ_in_their_rhythms(demo, name):
    _, x, y = _cache(demo, name)
    total = _band_power(x, 0.5, 30)[:, 0]
    delta, alpha = _band_power(x, 0.5, 2)[:, 0] / total, _band_power(x, 8, 12)[:, 0] / total
    wake, n3 = y == 0, y == 3
    assert delta[n3].mean() > 2 * delta[wake].mean()
    assert alpha[wake].mean() > 2 * alpha[n3].mean()


@pytest.mark.parametrize("name", ["shu", "bciiv2a"])
def test_imagined_hands_desynchronise_the_opposite_motor_cortex(demo, name):
    cache, x, y = _cache(demo, name)
    mu = _band_power(x, 8, 13)
    c3, c4 = cache.channels.index("C3"), cache.channels.index("C4")
    right_over_left = np.log(mu[:, c4] / mu[:, c3])  # low when the right hemisphere desynchronises
    assert right_over_left[y == 0].mean() < right_over_left[y == 1].mean() - 0.5  # left hand vs right hand


def test_deap_valence_shows_frontal_alpha_asymmetry(demo):
    cache, x, y = _cache(demo, "deap")
    alpha = _band_power(x, 8, 12)
    left_over_right = np.log(alpha[:, cache.channels.index("F3")] / alpha[:, cache.channels.index("Fp2")])
    assert left_over_right[y == 1].mean() < left_over_right[y == 0].mean() - 0.5  # high valence: less left alpha


def test_seed_emotions_differ_by_region_and_rhythm(demo):
    cache, x, y = _cache(demo, "seed")
    total = _band_power(x, 1, 45)
    fz, oz = cache.channels.index("FZ"), cache.channels.index("OZ")
    theta_front = (_band_power(x, 4, 7) / total)[:, fz]
    alpha_back = (_band_power(x, 8, 12) / total)[:, oz]
    assert theta_front[y == 0].mean() > theta_front[y != 0].mean() + 0.1  # negative: frontal theta
    assert alpha_back[y == 1].mean() > alpha_back[y != 1].mean() + 0.1  # neutral: posterior alpha
