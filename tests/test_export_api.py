"""`eegmamba export`, the model folder it writes, and the Python API against the CLI; docs/python-api.md runs."""
from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import eegmamba_cli
from eegmamba_cli.app import app
from eegmamba_cli.data.cache import CacheWriter
from eegmamba_cli.data.edf import write_edf

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
CHANNELS = ["C3", "C4"]
PARAMS = {"normalize": "window", "band": "default", "eps": 1e-6, "bad_channels": "skip", "options": {}}
TINY = ["--d-model", "16", "--layers", "1", "--device", "cpu", "--batch-size", "8", "--recipe", "paper",
        "--epochs", "1", "--fold", "1", "--seed", "3"]


def write_study_cache(root: Path, name: str = "mystudy", n_subjects: int = 6, per_subject: int = 8) -> Path:
    """A small custom cache of 1-s windows over C3 and C4: class 1 has a 10-Hz rhythm on C3."""
    rng = np.random.default_rng(0)
    writer = CacheWriter(root / name, dataset=name, task="custom", channels=CHANNELS, sfreq=200.0,
                         window_samples=200, class_names=["rest", "task"], params=PARAMS,
                         fingerprint=f"fp-{name}", version="test")
    t = np.arange(200) / 200.0
    for i in range(n_subjects):
        labels = np.arange(per_subject) % 2
        x = rng.standard_normal((per_subject, 2, 200))
        x[labels == 1, 0] += 2 * np.sin(2 * np.pi * 10 * t)
        x = (x - x.mean(-1, keepdims=True)) / x.std(-1, keepdims=True)
        rows = pd.DataFrame({"subject": [f"s{i}"] * per_subject, "session": ["1"] * per_subject,
                             "start_s": np.arange(per_subject, dtype=float), "label": labels,
                             "fold": [i % 5 + 1] * per_subject})
        writer.write_recording(f"s{i}", x.astype(np.float32), rows)
    writer.finalize()
    return root


def write_recording(path: Path, seconds: float = 12.0, sfreq: float = 200.0) -> Path:
    t = np.arange(int(seconds * sfreq)) / sfreq
    rng = np.random.default_rng(1)
    c3 = 20 * np.sin(2 * np.pi * 10 * t) + 5 * rng.standard_normal(t.size)
    c4 = 5 * rng.standard_normal(t.size)
    return write_edf(path, CHANNELS, [sfreq, sfreq], [c3, c4], start=dt.datetime(2024, 1, 1),
                     physical=[(-200, 200), (-200, 200)])


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def one_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code != 0 and len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> SimpleNamespace:
    """In one folder, as docs/python-api.md expects: cache/, my-run/ (trained and evaluated), my-model/
    (its export) and recording.edf."""
    home = tmp_path_factory.mktemp("study")
    write_study_cache(home / "cache")
    invoke("train", "--data", home / "cache", "--out", home / "my-run", *TINY)
    invoke("evaluate", home / "my-run", "--device", "cpu")
    invoke("export", home / "my-run", "--out", home / "my-model")
    write_recording(home / "recording.edf")
    return SimpleNamespace(home=home, run=home / "my-run", model=home / "my-model", edf=home / "recording.edf")


def predict_csv(model: Path, edf: Path, out: Path) -> pd.DataFrame:
    invoke("predict", edf, "--model", model, "--device", "cpu", "--precision", "fp32", "--out", out)
    return pd.read_csv(out)


# --- export -------------------------------------------------------------------------------------------
def test_export_folder_is_self_describing(study):
    files = sorted(p.name for p in study.model.iterdir())
    assert files == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((study.model / "config.json").read_text())
    best = study.run / "fold-1" / "best"
    checkpoint = json.loads((best / "checkpoint.json").read_text())
    assert (study.model / "model.safetensors").read_bytes() == (best / "model.safetensors").read_bytes()
    assert config["kind"] == "eegmamba-model" and config["files"] == {"model.safetensors": checkpoint["files"]["model.safetensors"]}
    head = config["datasets"][0]
    assert head["name"] == "mystudy" and head["channels"] == CHANNELS and head["class_names"] == ["rest", "task"]
    assert head["window_s"] == 1.0 and head["sfreq"] == 200.0 and head["params"]["normalize"] == "window"
    assert config["training"]["protocol"]["protocol"] == "subject-kfold" and config["training"]["fold"] == 1
    assert config["model_config"] == checkpoint["model_config"]


def test_model_card_has_hub_front_matter_and_the_evaluation(study):
    card = (study.model / "README.md").read_text()
    front = card.split("---\n")[1]
    assert "library_name: eegmamba\n" in front and "- eeg\n" in front and "\nlicense:" in front
    results = json.loads((study.run / "results.json").read_text())
    accuracy = results["summary"]["mystudy"]["accuracy"]
    assert f"{accuracy['mean']:.3f} ± {accuracy['std']:.3f}" in card
    assert "| mystudy | custom | 2: C3, C4 | 1 s at 200 Hz | rest, task |" in card
    assert f"torch: {torch.__version__}" in card


def test_predict_from_export_equals_predict_from_run(study, tmp_path):
    from_run = predict_csv(study.run, study.edf, tmp_path / "run.csv")
    from_export = predict_csv(study.model, study.edf, tmp_path / "export.csv")
    assert len(from_run) == 12 and from_run.equals(from_export)


def test_reexport_replaces_and_foreign_folders_are_refused(study, tmp_path):
    out = tmp_path / "again"
    invoke("export", study.run, "--out", out)
    invoke("export", study.run, "--out", out)  # an earlier export is replaced whole
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep me")
    line = one_line(runner.invoke(app, ["export", str(study.run), "--out", str(foreign)]))
    assert "exists and is not an earlier export" in line
    assert [p.name for p in foreign.iterdir()] == ["mine.txt"]
    missing = one_line(runner.invoke(app, ["export", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]))
    assert "no such model folder" in missing and not (tmp_path / "x").exists()
    assert not any(p.name.endswith("export-tmp") for p in tmp_path.iterdir())


def test_corrupt_export_is_one_line(study, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(study.model, bad)
    data = bytearray((bad / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (bad / "model.safetensors").write_bytes(bytes(data))
    line = one_line(runner.invoke(app, ["predict", str(study.edf), "--model", str(bad), "--device", "cpu"]))
    assert "corrupt (sha256" in line


def test_fine_tune_from_an_export(study, tmp_path):
    write_study_cache(tmp_path / "cache", name="other", n_subjects=5)
    out = tmp_path / "tuned"
    invoke("train", "--data", tmp_path / "cache", "--out", out, "--init-from", study.model,
           "--freeze", "backbone", *TINY[6:])
    lineage = json.loads((out / "run.json").read_text())["lineage"]
    assert lineage["parent_checkpoint"] == str(study.model)
    assert lineage["new"] == ["spatial.other", "task_token.other", "head.other"]


# --- the Python API -------------------------------------------------------------------------------------
def test_api_equals_cli_for_a_file_a_raw_and_an_array(study, tmp_path):
    import mne

    cli = predict_csv(study.model, study.edf, tmp_path / "cli.csv")
    model = eegmamba_cli.from_pretrained(study.model)
    from_file = model.predict(study.edf)
    raw = mne.io.read_raw_edf(study.edf, preload=True, verbose="error")
    from_raw = model.predict(raw)
    from_array = model.predict(raw.get_data(), sfreq=raw.info["sfreq"], ch_names=raw.ch_names)
    assert from_file.equals(from_raw) and from_file.equals(from_array)
    assert list(from_file.columns) == list(cli.columns) == ["start_s", "end_s", "prediction", "p_rest", "p_task"]
    assert (from_file["prediction"] == cli["prediction"]).all()
    np.testing.assert_allclose(from_file[["p_rest", "p_task"]], cli[["p_rest", "p_task"]], rtol=1e-5)


def test_api_bad_inputs_are_one_clear_error(study):
    from eegmamba_cli.console import UserError

    model = eegmamba_cli.from_pretrained(study.run)
    with pytest.raises(UserError, match=r"give sfreq= and ch_names="):
        model.predict(np.zeros((2, 400)))
    with pytest.raises(UserError, match=r"2 channels but 3 ch_names"):
        model.predict(np.zeros((2, 400)), sfreq=200, ch_names=["C3", "C4", "Cz"])
    with pytest.raises(UserError, match=r"missing 1 of 2 channels the model needs \(C4\)"):
        model.predict(np.zeros((2, 400)), sfreq=200, ch_names=["C3", "Pz"])
    with pytest.raises(UserError, match="no head 'sleepedf'"):
        model.predict(np.zeros((2, 400)), sfreq=200, ch_names=CHANNELS, dataset="sleepedf")


def test_cache_dataset_rows_are_the_trainers(study):
    from eegmamba_cli.data.cache import WindowCache

    record = json.loads((study.run / "fold-1" / "run.json").read_text())
    train_set = eegmamba_cli.CacheDataset(study.home / "cache", "mystudy", split="train", fold=1, seed=3)
    assert len(train_set) == record["splits"]["mystudy"]["sizes"]["train"]
    x, y = train_set[0]
    cache = WindowCache(study.home / "cache" / "mystudy")
    row = train_set.rows[0]
    assert x.dtype == torch.float32 and x.shape == (2, 200) and y == int(cache.labels[row])
    assert torch.equal(x, torch.from_numpy(cache.windows(np.array([row]))[0]))
    assert len(eegmamba_cli.CacheDataset(study.home / "cache" / "mystudy")) == 48


def test_hub_ids_without_the_extra_say_how_to_get_it(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_hub(name, *args, **kwargs):
        if name.startswith("huggingface_hub"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_hub)
    from eegmamba_cli.console import UserError

    with pytest.raises(UserError, match=r'someone/eegmamba-sleep: no such folder; .*pip install "eegmamba\[hub\]"'):
        eegmamba_cli.from_pretrained("someone/eegmamba-sleep")


def test_hub_download_goes_through_snapshot_download(study, monkeypatch):
    hub = pytest.importorskip("huggingface_hub")
    asked = {}

    def fake_snapshot(repo_id, revision=None, cache_dir=None):
        asked.update(repo_id=repo_id, revision=revision)
        return str(study.model)

    monkeypatch.setattr(hub, "snapshot_download", fake_snapshot)
    model = eegmamba_cli.from_pretrained("someone/eegmamba-study", revision="v1")
    assert asked == {"repo_id": "someone/eegmamba-study", "revision": "v1"} and model.datasets == ["mystudy"]


def test_python_api_page_runs(study, monkeypatch):
    """Every ```python block of docs/python-api.md, in order, in one namespace, in the study folder."""
    page = (ROOT / "docs" / "python-api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    assert len(blocks) >= 4
    monkeypatch.chdir(study.home)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/python-api.md", "exec"), namespace)


def test_push_to_hub_uploads_an_export_folder(study, monkeypatch):
    hub = pytest.importorskip("huggingface_hub")
    seen = {}

    class FakeApi:
        def __init__(self, token=None):
            seen["token"] = token

        def create_repo(self, repo_id, repo_type, private, exist_ok):
            seen["repo"] = (repo_id, repo_type, private)

        def upload_folder(self, folder_path, repo_id, repo_type):
            seen["files"] = sorted(p.name for p in Path(folder_path).iterdir())

    monkeypatch.setattr(hub, "HfApi", FakeApi)
    url = eegmamba_cli.from_pretrained(study.run).push_to_hub("someone/eegmamba-study", token="t")
    assert url == "https://huggingface.co/someone/eegmamba-study"
    assert seen == {"token": "t", "repo": ("someone/eegmamba-study", "model", False),
                    "files": ["README.md", "config.json", "model.safetensors"]}


def test_card_says_which_part_of_the_window_a_crop_trained_model_reads():
    from eegmamba_cli.training.export import _window_words

    assert _window_words(dict(window_s=4.0, sfreq=200.0)) == "4 s at 200 Hz"
    assert _window_words(dict(window_s=4.0, sfreq=200.0, crop_samples=100)) == "4 s at 200 Hz (centre 3.5 s)"
