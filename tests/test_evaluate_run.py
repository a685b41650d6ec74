"""`eegmamba evaluate` on a tiny trained run: files, table, paper rows, missing classes, refusals."""
import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from eegmamba_cli.app import app
from eegmamba_cli.training.trainer import TrainConfig, train
from helpers_cache import make_cache

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    data = root / "cache"
    make_cache(data, "siena", n_subjects=6, windows_per_subject=6, task="seizure")
    # three classes but two windows per subject: class 2 never occurs, so its AUROC is undefined
    make_cache(data, "toyc", n_subjects=6, windows_per_subject=2, n_classes=3, seed=2)
    out = root / "run"
    train(TrainConfig(out=out, data=data, fold="1,2", epochs=2, d_model=16, layers=1, device="cpu",
                      batch_size=8, lr=3e-3, seed=1))
    return data, out


def test_evaluate_writes_results_table_and_plots(run):
    data, out = run
    result = runner.invoke(app, ["evaluate", str(out), "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    assert "Table 2: seizure detection" in result.output and "EEGMamba (paper)" in result.output
    assert "0.9897±0.0038" in result.output  # the paper's Siena accuracy beside ours
    assert "class2 absent" in result.output  # the warning, not a crash
    df = pd.read_csv(out / "results.csv")
    assert sorted(zip(df["fold"], df["dataset"])) == [(1, "siena"), (1, "toyc"), (2, "siena"), (2, "toyc")]
    assert list(df.columns[6:9]) == ["accuracy", "auroc", "f1_weighted"]
    assert df.loc[df["dataset"] == "toyc", "auroc"].isna().all()
    assert (df["checkpoint"] == "best").all()
    results = json.loads((out / "results.json").read_text())
    assert results["summary"]["siena"]["accuracy"]["n_folds"] == 2 and results["std_ddof"] == 0
    assert results["summary"]["toyc"]["auroc"]["mean"] is None  # NaN is written as null
    assert results["paper"]["EEGMamba"]["siena"]["accuracy"] == [0.9897, 0.0038]
    assert json.loads(result.stdout)["select"] == "best-val"
    for name in ("siena", "toyc"):
        assert (out / "confusion" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    preds = pd.read_parquet(out / "fold-1" / "predictions" / "siena.parquet")
    assert {"row", "subject", "label", "pred", "p_0", "p_1"} <= set(preds.columns)
    test_subjects = {f"s{i:02d}" for i in range(6) if i % 3 == 0}  # fold 1 in make_cache's round robin
    assert set(preds["subject"]) == test_subjects


def test_select_final_uses_last(run):
    _, out = run
    result = runner.invoke(app, ["evaluate", str(out), "--device", "cpu", "--select", "final"])
    assert result.exit_code == 0, result.output
    assert (pd.read_csv(out / "results.csv")["checkpoint"] == "last").all()


def test_refusals_are_one_line(run, tmp_path):
    data, out = run
    nothing = runner.invoke(app, ["evaluate", str(tmp_path)])
    assert nothing.exit_code == 1 and "no run.json" in nothing.output
    other = tmp_path / "other"
    make_cache(other, "siena", n_subjects=6, windows_per_subject=6, fingerprint="different")
    make_cache(other, "toyc", n_subjects=6, windows_per_subject=2, n_classes=3, seed=2)
    changed = runner.invoke(app, ["evaluate", str(out), "--data", str(other), "--device", "cpu"])
    assert changed.exit_code == 1 and "fingerprint" in changed.output and "Traceback" not in changed.output
