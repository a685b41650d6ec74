"""custom on real studies through the CLI: EEGMMIDB (EDF+, BCI2000 names, run-dependent codes), the EEGLAB
sample set, a BrainVision file; predict on the EEGLAB set; bad options as one line each."""
from __future__ import annotations

import json
from pathlib import Path

import mne
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import signal as sps
from typer.testing import CliRunner

from eegmamba_cli.app import app
from eegmamba_cli.data.cache import WindowCache
from eegmamba_cli.data.corpora.custom import entities, parse_labels
from eegmamba_cli.data.base import OptionError
from eegmamba_cli.predict import load_head
from eegmamba_cli.predict.run import prepare_windows
from eegmamba_cli.training.checkpoint import write_checkpoint
from models import DatasetSpec, EEGMamba, EEGMambaConfig

runner = CliRunner()
IMAGINED = "*R04.edf,*R08.edf,*R12.edf"  # EEGMMIDB runs of imagined left (T1) / right (T2) fist
EEGLAB_SET = "eeglab/test_raw.set"


def cli(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def preprocess(raw: Path, out: Path, *args):
    result = cli("preprocess", "custom", "--raw", raw, "--out", out, "--workers", "1", "--no-progress", *args)
    assert result.exit_code == 0, result.output
    return WindowCache(out / "custom")


def error_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and result.output.rstrip().endswith(lines[0].rstrip()), result.output
    return lines[0]


def annotations(path: Path) -> mne.Annotations:
    return mne.io.read_raw(path, preload=False, verbose="error").annotations


# --- EEGMMIDB S001: imagined left / right fist --------------------------------------------------------

def test_eegmmidb_imagined_fists_by_labels_and_include(realdata, tmp_path):
    cache = preprocess(realdata / "eegmmidb", tmp_path, "--labels", "left=T1,right=T2", "--include", IMAGINED)
    m = cache.manifest
    assert len(m) == 45 and cache.class_names == ["left", "right"]
    assert m["label"].value_counts().to_dict() == {0: 23, 1: 22}
    assert set(m["subject"]) == {"S001"} and sorted(m["run"].unique()) == ["04", "08", "12"]
    assert set(m["session"]) == {"1"} and m["event"].nunique() == 45
    assert len(cache.channels) == 64 and cache.channels[:3] == ["Fc5", "Fc3", "Fc1"]  # `Fc5.` without dots
    assert cache.window_samples == 800 and (cache.lengths == 800).all() and not cache.padded
    assert cache.info["params"]["normalize"] == "recording"  # the custom corpus's default
    for run in ("04", "08", "12"):  # every T1/T2 annotation of the run, in time order, is one window
        ann = annotations(realdata / "eegmmidb" / "S001" / f"S001R{run}.edf")
        wanted = [(round(o, 3), d == "T2") for o, d in zip(ann.onset, ann.description) if d in ("T1", "T2")]
        rows = m[m["run"] == run]
        assert list(zip(rows["start_s"].round(3), rows["label"] == 1)) == wanted


def test_eegmmidb_one_window_per_event_of_its_own_length(realdata, tmp_path):
    cache = preprocess(realdata / "eegmmidb", tmp_path, "--labels", "left=T1,right=T2", "--include", IMAGINED,
                       "--window", "event", "--band", "8,30", "--normalize", "window")
    m = cache.manifest
    durations = []
    for run in ("04", "08", "12"):
        ann = annotations(realdata / "eegmmidb" / "S001" / f"S001R{run}.edf")
        durations += [d for d, t in zip(ann.duration, ann.description) if t in ("T1", "T2")]
    assert len(m) == 45 and m["event"].nunique() == 45
    assert cache.lengths.tolist() == [int(round(d * 200)) for d in durations]
    assert set(cache.lengths) == {820} and cache.window_samples == 820  # every T1/T2 lasts 4.1 s
    assert not cache.padded  # unequal events are padded: see the BrainVision test
    x, lengths = cache.windows_and_lengths(np.arange(len(m)))
    assert x.shape == (45, 64, 820) and lengths.tolist() == cache.lengths.tolist()
    for window, n in zip(x, lengths):  # z-scored over the signal part, zero padding after it
        assert np.all(window[:, n:] == 0)
        np.testing.assert_allclose(window[:, :n].mean(1), 0, atol=1e-4)
        np.testing.assert_allclose(window[:, :n].std(1), 1, atol=1e-3)
    assert json.loads((tmp_path / "custom" / "info.json").read_text())["params"]["band"] == [8.0, 30.0]


def test_exclude_and_plain_labels(realdata, tmp_path):
    # Runs 3 and 4 only, every T0/T1/T2 event; 4-s windows (T0 lasts 4.2 s: one window each)
    cache = preprocess(realdata / "eegmmidb", tmp_path, "--labels", "T0,T1,T2", "--include", "*R03.edf,*R04.edf",
                       "--exclude", "*R03.edf", "--channels", "C3,Cz,C4")
    ann = annotations(realdata / "eegmmidb" / "S001" / "S001R04.edf")
    assert len(cache.manifest) == 30 == len(ann)
    assert set(cache.manifest["run"]) == {"04"} and cache.channels == ["C3", "Cz", "C4"]


# --- the EEGLAB sample set ------------------------------------------------------------------------------

def test_eeglab_set_through_custom(realdata, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for suffix in (".set", ".fdt"):  # symlinks: the real files are never copied
        (raw / f"test_raw{suffix}").symlink_to(realdata / EEGLAB_SET.replace(".set", suffix))
    cache = preprocess(raw, tmp_path / "out", "--labels", "square,rt")
    # 80 `square` + 74 `rt` events without duration: one 4-s window at each onset that leaves 4 s of the
    # 238.3 s recording; the last 2 events (236.3 s, 236.8 s) do not
    ann = annotations(raw / "test_raw.set")
    assert len(ann) == 154 and sorted(ann.onset)[-3] < 234.3 < sorted(ann.onset)[-2]
    m = cache.manifest
    assert len(m) == 152 and m["label"].value_counts().to_dict() == {0: 79, 1: 73}
    assert len(cache.channels) == 32 and set(m["subject"]) == {"test_raw"} and set(m["run"]) == {"1"}


def custom_head(directory: Path, channels: list[str], params: dict, window_samples: int = 800) -> Path:
    """An untrained one-head model whose record says how its (custom) training windows were made."""
    record = dict(name="custom", n_channels=len(channels), n_classes=2, task="custom", class_names=["a", "b"],
                  channels=channels, window_samples=window_samples, sfreq=200.0, fingerprint="test",
                  params=params)
    config = EEGMambaConfig(d_model=16, n_layers=1)
    torch.manual_seed(0)
    model = EEGMamba(config, [DatasetSpec("custom", len(channels), 2, "custom")])
    write_checkpoint(directory, model, dict(kind="eegmamba-checkpoint", model_config=config.to_dict(),
                                            datasets=[record], epoch=0, fold=1, best_val_loss=None))
    return directory


def test_eeglab_set_through_predict_with_band_and_recording_normalisation(realdata, tmp_path):
    channels = [f"EEG {i:03d}" for i in range(32)]
    model = custom_head(tmp_path / "model", channels, {"normalize": "recording", "band": [1.0, 40.0], "eps": 1e-6})
    path = realdata / EEGLAB_SET
    result = cli("predict", path, "--model", model, "--out", tmp_path / "pred.csv")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "pred.csv", comment="#")
    assert len(table) == 59 and table["start_s"].iloc[-1] == 232.0  # 238.3 s in 4-s windows

    # the windows are the float64 reference: 1-40 Hz, 128 -> 200 Hz, then the recording's median and IQR
    windows = prepare_windows(path, load_head(model, None, "cpu"))
    x = mne.io.read_raw_eeglab(path, preload=True, verbose="error").get_data(units="uV")[[0, 31]]
    sos = sps.butter(4, [1.0, 40.0], btype="bandpass", fs=128.0, output="sos")
    y = sps.resample_poly(sps.sosfiltfilt(sos, x, axis=1), 25, 16, axis=1)
    q25, median, q75 = np.percentile(y, [25, 50, 75], axis=1, keepdims=True)
    y = (y - median) / ((q75 - q25) / 1.3489795 + 1e-6)
    for k in (0, 30, 58):
        np.testing.assert_allclose(windows.data[k][[0, 31]], y[:, k * 800:(k + 1) * 800], atol=2e-4)


# --- BrainVision ---------------------------------------------------------------------------------------

def write_brainvision(folder: Path, sfreq: int = 250, seconds: int = 20) -> Path:
    """A hand-written BrainVision header, marker file and float32 multiplexed data: C3/Cz/C4 tones."""
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(sfreq * seconds) / sfreq
    data = np.stack([40 * np.sin(2 * np.pi * f * t) for f in (7, 11, 13)]).astype("<f4")
    data.T.tofile(folder / "rec.eeg")
    (folder / "rec.vhdr").write_text(
        "Brain Vision Data Exchange Header File Version 1.0\n\n[Common Infos]\nCodepage=UTF-8\nDataFile=rec.eeg\n"
        "MarkerFile=rec.vmrk\nDataFormat=BINARY\nDataOrientation=MULTIPLEXED\nNumberOfChannels=3\n"
        f"SamplingInterval={1_000_000 // sfreq}\n\n[Binary Infos]\nBinaryFormat=IEEE_FLOAT_32\n\n"
        "[Channel Infos]\nCh1=C3,,1,µV\nCh2=Cz,,1,µV\nCh3=C4,,1,µV\n", encoding="utf-8")
    # markers at 2 s (4 s long), 8 s (3 s) and 14 s (4 s); positions are 1-based samples
    (folder / "rec.vmrk").write_text(
        "Brain Vision Data Exchange Marker File, Version 1.0\n\n[Common Infos]\nCodepage=UTF-8\nDataFile=rec.eeg\n\n"
        "[Marker Infos]\nMk1=New Segment,,1,1,0\nMk2=Comment,left,501,1000,0\nMk3=Comment,right,2001,750,0\n"
        "Mk4=Comment,left,3501,1000,0\n", encoding="utf-8")
    return folder / "rec.vhdr"


def test_brainvision_through_custom(tmp_path):
    write_brainvision(tmp_path / "raw" / "sub-07" / "ses-2" / "eeg")
    cache = preprocess(tmp_path / "raw", tmp_path / "out", "--labels", "left=Comment/left,right=Comment/right",
                       "--window", "event", "--normalize", "none", "--band", "none")
    m = cache.manifest
    assert m["start_s"].tolist() == [2.0, 8.0, 14.0] and m["label"].tolist() == [0, 1, 0]
    assert cache.lengths.tolist() == [800, 600, 800] and cache.window_samples == 800
    assert set(m["subject"]) == {"07"} and set(m["session"]) == {"2"}
    # no filter, no normalisation: 250 -> 200 Hz resampling of the µV tone only
    x, lengths = cache.windows_and_lengths([1])
    t = 8.0 + np.arange(600) / 200
    np.testing.assert_allclose(x[0, 1, 50:550], (40 * np.sin(2 * np.pi * 11 * t))[50:550], atol=0.5)
    assert np.all(x[0, :, 600:] == 0)


# --- options --------------------------------------------------------------------------------------------

def test_label_mapping_and_entities():
    assert parse_labels("left=T1,right=T2+T3") == {"left": ("T1",), "right": ("T2", "T3")}
    assert parse_labels("left,right") == {"left": ("left",), "right": ("right",)}
    for bad, why in (("left=", "names no class or no event code"), ("a=T1,a=T2", "named twice"),
                     ("a=T1,b=T1", "'T1' belongs to both a and b")):
        with pytest.raises(OptionError, match=why):
            parse_labels(bad)
    raw = Path("/r")
    assert entities(raw / "S001" / "S001R04.edf", raw) == ("S001", "1", "04")
    assert entities(raw / "S001R04.edf", raw) == ("S001", "1", "04")
    assert entities(raw / "sub-01/ses-2/eeg/sub-01_ses-2_task-mi_run-3_eeg.edf", raw) == ("01", "2", "3")
    assert entities(raw / "sub-01/eeg/sub-01_task-mi_eeg.edf", raw) == ("01", "1", "1")
    assert entities(raw / "night.edf", raw) == ("night", "1", "1")


@pytest.mark.parametrize("args,expected", [
    (("--band", "30,8"), "error: --band 30,8: needs 0 <= LOW < HIGH (Hz)"),
    (("--band", "x"), "error: --band 'x': expected LOW,HIGH in Hz (e.g. 8,30), or none"),
    (("--normalize", "foo"), "error: --normalize foo: expected window, recording or none"),
    (("--labels", "left="), "error: custom: --labels: 'left=' names no class or no event code "
                            "(expected NAME=CODE[+CODE...])"),
    (("--labels", "left=T1,right=T2", "--include", "*R99.edf"), "error: custom: --include pattern '*R99.edf' "
                                                                "matches no recording under"),
    (("--labels", "left=T1,right=T2", "--window", "soon"), "error: custom: --window must be a number of seconds"),
])
def test_bad_options_are_one_line(realdata, tmp_path, args, expected):
    result = cli("preprocess", "custom", "--raw", realdata / "eegmmidb", "--out", tmp_path, "--workers", "1", *args)
    assert error_line(result).startswith(expected)
    assert not (tmp_path / "custom").exists()  # nothing half-written
