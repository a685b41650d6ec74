"""`--precision` through train, evaluate and predict: parsed, resolved once, recorded, compared on resume."""
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from eegmamba_cli import precision
from eegmamba_cli.app import app
from eegmamba_cli.errors import ConfigError
from eegmamba_cli.training.trainer import TrainConfig
from helpers_cache import make_toy_pair
from tests.fixtures.checkpoints import save_untrained
from tests.test_predict_cli import write_sleep_edf

runner = CliRunner()
TINY = ["--tasks", "toya", "--fold", "1", "--d-model", "16", "--layers", "1", "--device", "cpu",
        "--batch-size", "8"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_toy_pair(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def no_native_bf16(monkeypatch):
    """This test's CPU has no bf16 units, whatever the machine: auto = fp32."""
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2"}))


def train(data, run, *extra):
    # the paper recipe: its constant learning rate lets a resumed run grow --epochs
    return runner.invoke(app, ["train", "--data", str(data), "--out", str(run), "--recipe", "paper", *TINY, *extra])


def checkpoint_meta(run: Path) -> dict:
    return json.loads((run / "fold-1" / "last" / "checkpoint.json").read_text())


def test_runs_before_the_switch_ran_bf16_on_cuda_only():
    assert precision.recorded_precision(None, "cpu") == "fp32"
    assert precision.recorded_precision(None, "cuda") == "bf16"
    assert precision.recorded_precision("bf16", "cpu") == "bf16"


def test_bad_precision_is_refused_by_name(data, tmp_path):
    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16, auto"):
        TrainConfig(out=tmp_path, precision="fp16").validate()
    result = train(data, tmp_path / "run", "--precision", "fp16")
    assert result.exit_code == 2 and "Invalid value for '--precision'" in result.output
    assert not (tmp_path / "run").exists()


def test_train_records_the_resolved_precision_and_resume_compares_it(data, tmp_path, no_native_bf16):
    run = tmp_path / "run"
    first = train(data, run, "--epochs", "1", "--precision", "fp32")
    assert first.exit_code == 0, first.output
    record = json.loads((run / "run.json").read_text())
    assert record["config"]["precision"] == "fp32" and record["precision"] == "fp32"
    assert "(fp32)" in first.output  # the fold line says what it runs at
    # A checkpoint from before the switch has no precision: on CPU it ran fp32, so auto (= fp32 here) resumes.
    meta = checkpoint_meta(run)
    assert meta["precision"] == "fp32"
    del meta["precision"]
    (run / "fold-1" / "last" / "checkpoint.json").write_text(json.dumps(meta))
    resumed = train(data, run, "--epochs", "2", "--precision", "auto")
    assert resumed.exit_code == 0 and "resuming after epoch 1" in resumed.output, resumed.output
    record = json.loads((run / "run.json").read_text())
    assert record["config"]["precision"] == "auto" and record["precision"] == "fp32"
    assert checkpoint_meta(run)["precision"] == "fp32"
    # bf16 is another setting: refused in one line, nothing written
    other = train(data, run, "--epochs", "3", "--precision", "bf16")
    assert other.exit_code == 1 and "precision differs" in other.output and "Traceback" not in other.output
    assert checkpoint_meta(run)["epoch"] == 2


def test_bf16_training_and_evaluate_use_what_the_run_recorded(data, tmp_path):
    run = tmp_path / "run"
    trained = train(data, run, "--epochs", "1", "--precision", "bf16")
    assert trained.exit_code == 0, trained.output
    assert json.loads((run / "run.json").read_text())["precision"] == "bf16"
    assert checkpoint_meta(run)["precision"] == "bf16"
    assert np.isfinite(json.loads((run / "fold-1" / "metrics.jsonl").read_text().splitlines()[0])["train_loss"])
    as_run = runner.invoke(app, ["evaluate", str(run), "--device", "cpu"])
    assert as_run.exit_code == 0, as_run.output
    assert json.loads((run / "results.json").read_text())["precision"] == "bf16"
    overridden = runner.invoke(app, ["evaluate", str(run), "--device", "cpu", "--precision", "fp32"])
    assert overridden.exit_code == 0, overridden.output
    assert json.loads((run / "results.json").read_text())["precision"] == "fp32"


def test_predict_bf16_end_to_end_and_recorded(tmp_path, no_native_bf16):
    model = save_untrained(tmp_path / "model", ["sleepedf"])
    edf = write_sleep_edf(tmp_path / "night.edf", seconds=300)
    outputs = {}
    for choice in ("bf16", "auto"):
        out = tmp_path / f"{choice}.json"
        result = runner.invoke(app, ["predict", str(edf), "--model", str(model), "--device", "cpu",
                                     "--precision", choice, "--out", str(out)])
        assert result.exit_code == 0, result.output
        outputs[choice] = json.loads(out.read_text())
    assert outputs["bf16"]["precision"] == "bf16" and outputs["auto"]["precision"] == "fp32"
    proba = {k: np.array([list(w["probabilities"].values()) for w in v["windows"]]) for k, v in outputs.items()}
    assert proba["bf16"].shape == (10, 5)
    assert np.allclose(proba["bf16"].sum(1), 1.0)
    # The same model at bf16 rounding, not another model: probabilities within a few bf16 steps of fp32.
    assert np.abs(proba["bf16"] - proba["auto"]).max() < 0.05
    assert not np.array_equal(proba["bf16"], proba["auto"])  # and bf16 did run


def test_predict_says_its_precision(tmp_path, no_native_bf16):
    model = save_untrained(tmp_path / "model", ["sleepedf"])
    edf = write_sleep_edf(tmp_path / "night.edf", seconds=60)
    result = runner.invoke(app, ["predict", str(edf), "--model", str(model), "--device", "cpu",
                                 "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 0, result.output
    assert "cpu, fp32)" in " ".join(result.output.split())
