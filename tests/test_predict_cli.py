"""`eegmamba predict` end to end: real Sleep-EDF excerpt, formats, channel matching, refusals, model choice.

Models are initialised (untrained) and saved through the checkpoint API: the classes they predict are
meaningless, the mechanics are what is tested.
"""
from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from eegmamba_cli.app import app
from eegmamba_cli.data.corpora import chbmit
from eegmamba_cli.data.edf import write_edf
from eegmamba_cli.data.pipeline import preprocess_corpus
from eegmamba_cli.predict import load_head
from eegmamba_cli.predict.output import seizure_events
from eegmamba_cli.predict.run import prepare_windows, window_table
from tests.fixtures import bciiv2a as bci_fixture
from tests.fixtures import sleepedf as sleep_fixture
from tests.fixtures.checkpoints import save_untrained

runner = CliRunner()
START = dt.datetime(2020, 5, 1, 22, 0, 0)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("models")
    return SimpleNamespace(sleep=save_untrained(root / "sleep", ["sleepedf"]),
                           multi=save_untrained(root / "multi", ["chbmit", "sleepedf", "bciiv2a"]))


def predict(*args: str):
    return runner.invoke(app, ["predict", *map(str, args)])


def error_line(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output  # one line (printed unwrapped), whatever the terminal width
    assert result.output.rstrip().endswith(lines[0].rstrip()), result.output  # and nothing after it
    return lines[0]


def ripple(seconds: float, sfreq: float, freq: float = 7.0, amp: float = 40.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sfreq))) / sfreq
    return amp * np.sin(2 * np.pi * freq * t) + rng.normal(0, 5, len(t))


def write_sleep_edf(path: Path, seconds: float, sfreq: float = 100, label: str = "EEG Fpz-Cz") -> Path:
    return write_edf(path, [label, "Temp rectal"], [sfreq, 1], [ripple(seconds, sfreq), np.full(int(seconds), 36.6)],
                     start=START, physical=[(-500, 500), (30, 40)], digital=(-32768, 32767))


# --- the real Sleep-EDF excerpt ----------------------------------------------------------------------

def test_real_sleepedf_excerpt(realdata, models, tmp_path):
    psg = realdata / "sleep-edf" / "excerpt" / "SC4001E0-PSG.edf"
    csv, as_json, png = tmp_path / "out.csv", tmp_path / "out.json", tmp_path / "hypnogram.png"
    result = predict(psg, "--model", models.sleep, "--out", csv, "--plot", png)
    assert result.exit_code == 0, result.output
    assert "EEG Fpz-Cz" in result.output  # the mapping it used is printed
    table = pd.read_csv(csv)
    assert list(table["start_s"]) == list(range(0, 300, 30))
    assert list(table["end_s"]) == list(range(30, 301, 30))
    assert list(table.columns) == ["start_s", "end_s", "prediction", "p_W", "p_N1", "p_N2", "p_N3", "p_REM"]
    assert np.allclose(table[["p_W", "p_N1", "p_N2", "p_N3", "p_REM"]].sum(axis=1), 1.0, atol=1e-5)
    assert set(table["prediction"]) <= {"W", "N1", "N2", "N3", "REM"}
    assert png.read_bytes()[:8] == PNG_MAGIC

    result = predict(psg, "--model", models.sleep, "--out", as_json)
    assert result.exit_code == 0, result.output
    data = json.loads(as_json.read_text())
    assert data["class_names"] == ["W", "N1", "N2", "N3", "REM"]
    assert data["channels"] == [{"expected": "Fpz-Cz", "from": "EEG Fpz-Cz", "how": "name"}]
    assert [w["start_s"] for w in data["windows"]] == [float(s) for s in range(0, 300, 30)]
    assert [w["end_s"] for w in data["windows"]] == [float(s) for s in range(30, 301, 30)]
    for window in data["windows"]:
        assert math.isclose(sum(window["probabilities"].values()), 1.0, abs_tol=1e-9)
        assert window["prediction"] == max(window["probabilities"], key=window["probabilities"].get)
    assert data["summary"]["kind"] == "sleep stages"
    assert sum(s["windows"] for s in data["summary"]["stages"].values()) == 10


def test_csv_goes_to_stdout_without_out(realdata, models):
    psg = realdata / "sleep-edf" / "excerpt" / "SC4001E0-PSG.edf"
    result = runner.invoke(app, ["predict", str(psg), "--model", str(models.sleep)])
    assert result.exit_code == 0
    lines = [line for line in result.stdout.splitlines() if line.startswith(("start_s", "0,", "30,"))]
    assert lines[0].startswith("start_s,end_s,prediction,p_W")


# --- one code path with preprocessing ----------------------------------------------------------------

def test_windows_equal_the_preprocessed_cache(tmp_path, models):
    raw = sleep_fixture.write_sleepedf(tmp_path / "raw")
    report = preprocess_corpus("sleepedf", raw, tmp_path / "cache", options={"trim_wake": False},
                               progress=False)
    cache = report.cache
    head = load_head(models.sleep, None, "cpu")
    made = prepare_windows(raw / "sleep-cassette" / "SC4051E0-PSG.edf", head)
    assert list(made.starts_s) == [float(s) for s in range(0, 360, 30)]
    rows = cache.manifest.reset_index(drop=True)
    cached = cache.windows(np.arange(len(rows)))
    index = {round(s, 3): i for i, s in enumerate(made.starts_s)}
    for row, start in enumerate(rows["start_s"]):
        np.testing.assert_allclose(made.data[index[round(start, 3)]], cached[row], atol=2e-4)


# --- formats and channel derivations -----------------------------------------------------------------

def test_chbmit_bipolar_from_a_referential_recording(tmp_path, models):
    sfreq, seconds = 256, 12
    electrodes = sorted({e for pair in chbmit.CHANNELS for e in pair.split("-")})
    signals = {e: ripple(seconds, sfreq, freq=2 + k, seed=k) for k, e in enumerate(electrodes)}
    fine = [(-300.0, 300.0)] * len(electrodes)  # small quantisation steps, so the two files agree closely
    referential = write_edf(tmp_path / "ref.edf", [f"EEG {e}-REF" for e in electrodes], [sfreq] * len(electrodes),
                            list(signals.values()), start=START, physical=fine)
    bipolar_data = [signals[a] - signals[b] for a, b in (p.split("-") for p in chbmit.CHANNELS)]
    bipolar = write_edf(tmp_path / "bip.edf", list(chbmit.CHANNELS), [sfreq] * 23, bipolar_data, start=START,
                        physical=[(-300.0, 300.0)] * 23)
    head = load_head(models.multi, "chbmit", "cpu")
    from_ref, from_bip = prepare_windows(referential, head), prepare_windows(bipolar, head)
    assert [s.how for s in from_ref.sources] == ["bipolar"] * 23
    assert from_ref.data.shape == (3, 23, 800)
    np.testing.assert_allclose(from_ref.data, from_bip.data, atol=1e-3)  # EDF quantisation differs slightly
    result = predict(referential, "--model", models.multi, "--dataset", "chbmit", "--out", tmp_path / "p.csv",
                     "--plot", tmp_path / "p.png")
    assert result.exit_code == 0, result.output
    assert "EEG Fp1-REF − EEG F7-REF" in result.output.replace("\n", " ") or "bipolar" in result.output
    assert len(pd.read_csv(tmp_path / "p.csv")) == 3
    assert (tmp_path / "p.png").read_bytes()[:8] == PNG_MAGIC


def test_gdf_bci_recording(tmp_path, models):
    path = bci_fixture.write_bci_file(tmp_path / "A01T.gdf", bci_fixture.T_CUES)
    head = load_head(models.multi, "bci2a", "cpu")  # the registry's aliases work for --dataset
    made = prepare_windows(path, head)
    assert [s.how for s in made.sources] == ["corpus label"] * 22
    assert made.sfreq == 250 and made.data.shape == (11, 22, 600)  # 34 s in 3-s windows


def test_bdf_and_fif_recordings(tmp_path, models):
    import mne
    import pyedflib

    head = load_head(models.sleep, None, "cpu")
    bdf = tmp_path / "night.bdf"
    writer = pyedflib.EdfWriter(str(bdf), 1, file_type=pyedflib.FILETYPE_BDF)
    writer.setSignalHeaders([dict(label="EEG Fpz-Cz", dimension="uV", sample_frequency=128, physical_min=-500,
                                  physical_max=500, digital_min=-8388608, digital_max=8388607)])
    writer.writeSamples([ripple(60, 128)])
    writer.close()
    assert prepare_windows(bdf, head).data.shape == (2, 1, 6000)

    fif = tmp_path / "night_raw.fif"
    info = mne.create_info(["Fpz", "Cz"], 200.0, "eeg")
    mne.io.RawArray(np.stack([ripple(90, 200), ripple(90, 200, seed=3)]) * 1e-6, info, verbose="error").save(
        fif, verbose="error")
    made = prepare_windows(fif, head)  # Fpz-Cz derived from referential Fpz and Cz
    assert made.data.shape == (3, 1, 6000) and made.sources[0].how == "bipolar"


# --- refusals: one line, the file and the problem ----------------------------------------------------

def test_missing_channels(tmp_path, models):
    path = write_sleep_edf(tmp_path / "other.edf", 60, label="EEG C3-A2")
    line = error_line(predict(path, "--model", models.sleep))
    assert "other.edf: missing 1 of 1 channels the model needs (Fpz-Cz)" in line
    assert "the file has EEG C3-A2, Temp rectal" in line


def test_shorter_than_one_window(tmp_path, models):
    path = write_sleep_edf(tmp_path / "short.edf", 20)
    line = error_line(predict(path, "--model", models.sleep))
    assert "short.edf: lasts 20 s, shorter than one 30-s sleepedf window" in line


def test_sampling_rate_too_low(tmp_path, models):
    path = write_sleep_edf(tmp_path / "slow.edf", 60, sfreq=64)
    line = error_line(predict(path, "--model", models.sleep))
    assert "slow.edf: sampled at 64 Hz; the sleepedf head needs at least 100 Hz" in line


def test_nan_stretch_is_refused_with_its_times(tmp_path, models):
    import mne

    data = ripple(120, 200)
    data[int(40.0 * 200):int(42.5 * 200)] = np.nan
    path = tmp_path / "gap_raw.fif"
    mne.io.RawArray(data[None, :] * 1e-6, mne.create_info(["EEG Fpz-Cz"], 200.0, "eeg"), verbose="error").save(
        path, verbose="error")
    line = error_line(predict(path, "--model", models.sleep))
    assert "gap_raw.fif: channel EEG Fpz-Cz has 500 NaN or infinite samples (40.0-42.5 s)" in line


def test_unsupported_and_unreadable_files(tmp_path, models):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert "notes.txt: unsupported file type .txt" in error_line(predict(text, "--model", models.sleep))
    fake = tmp_path / "fake.edf"
    fake.write_bytes(b"garbage" * 100)
    assert "fake.edf: not an EDF/BDF file" in error_line(predict(fake, "--model", models.sleep))
    good = write_sleep_edf(tmp_path / "ok.edf", 60)
    assert "--out must end in .csv or .json" in error_line(predict(good, "--model", models.sleep, "--out",
                                                                   tmp_path / "x.txt"))


def test_channel_map_file(tmp_path, models):
    path = write_sleep_edf(tmp_path / "odd.edf", 60, label="Ch1")
    mapping = tmp_path / "map.tsv"
    mapping.write_text("Fpz-Cz\tCh1\n")
    result = predict(path, "--model", models.sleep, "--channel-map", mapping, "--out", tmp_path / "o.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "o.json").read_text())["channels"] == [
        {"expected": "Fpz-Cz", "from": "Ch1", "how": "map"}]


# --- which model and head --------------------------------------------------------------------------------

def test_dataset_must_be_chosen_for_a_multi_head_model(tmp_path, models):
    path = write_sleep_edf(tmp_path / "n.edf", 60)
    line = error_line(predict(path, "--model", models.multi))
    assert "the model has 3 heads; choose one with --dataset (chbmit, sleepedf, bciiv2a)" in line
    line = error_line(predict(path, "--model", models.multi, "--dataset", "shu"))
    assert "no head 'shu'; this model has chbmit, sleepedf, bciiv2a" in line


def test_run_folder_picks_the_fold_with_the_lowest_validation_loss(tmp_path):
    run = tmp_path / "run"
    (run).mkdir()
    (run / "run.json").write_text(json.dumps({"config": {"select": "best-val"}}))
    for fold, loss in ((1, 0.9), (2, 0.4), (3, 0.7)):
        save_untrained(run / f"fold-{fold}" / "best", ["sleepedf"], seed=fold)
        meta_path = run / f"fold-{fold}" / "best" / "checkpoint.json"
        meta = json.loads(meta_path.read_text())
        meta_path.write_text(json.dumps(dict(meta, best_val_loss=loss, fold=fold)))
    assert load_head(run, None, "cpu").checkpoint == run / "fold-2" / "best"
    assert load_head(run, None, "cpu", fold=3).checkpoint == run / "fold-3" / "best"
    assert load_head(run / "fold-1", None, "cpu").checkpoint == run / "fold-1" / "best"


# --- summaries ---------------------------------------------------------------------------------------------

def test_seizure_events_merge_consecutive_windows():
    p = np.array([0.1, 0.8, 0.9, 0.2, 0.7, 0.4, 0.6, 0.95])
    proba = np.stack([1 - p, p], axis=1)
    head = SimpleNamespace(class_names=["non-seizure", "seizure"], task="seizure", window_s=4.0, name="chbmit")
    table = window_table(np.arange(8) * 4.0, 4.0, proba, head.class_names)
    prediction = SimpleNamespace(head=head, windows=table, probabilities=proba)
    events = seizure_events(prediction)
    assert [(e["start_s"], e["end_s"], e["windows"]) for e in events] == [(4, 12, 2), (16, 20, 1), (24, 32, 2)]
    assert events[2]["peak_probability"] == pytest.approx(0.95)
