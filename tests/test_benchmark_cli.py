"""`eegmamba benchmark`: runs end to end on tiny inputs and writes the CSV and PNG files (no timing checks)."""
import csv

import pytest
from typer.testing import CliRunner

from eegmamba_cli.app import app
from eegmamba_cli.bench.model import Cell, attention_kernel, run_grid, run_isolated
from eegmamba_cli.bench.predict import yasa_available

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COLUMNS = ["model", "channels", "length", "tokens", "batch_size", "device", "mode", "status", "time_ms",
           "it_per_s", "peak_mem_mib", "attention_kernel", "repeats", "threads", "ssm_backend", "mem_method"]


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_quick_benchmark_writes_csv_and_pngs(tmp_path):
    out = tmp_path / "bench"
    result = runner.invoke(app, ["benchmark", "--quick", "--lengths", "160,320", "--channels", "1,2",
                                 "--batch-size", "1", "--repeats", "1", "--warmup", "0", "--no-isolate",
                                 "--device", "cpu", "--no-preprocess", "--no-train", "--no-speed", "--no-predict",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = read_csv(out / "model.csv")
    assert list(rows[0]) == COLUMNS
    assert len(rows) == 2 * 2 * 2  # 2 models x 2 channel counts x 2 lengths
    assert {r["model"] for r in rows} == {"EEGMamba", "Transformer (math)"}
    assert {(r["channels"], r["length"]) for r in rows} == {("1", "160"), ("1", "320"), ("2", "160"), ("2", "320")}
    assert all(r["status"] == "ok" and float(r["time_ms"]) > 0 and r["batch_size"] == "1" for r in rows)
    assert {r["attention_kernel"] for r in rows if r["model"].startswith("Transformer")} == {"math"}
    assert {r["tokens"] for r in rows if r["length"] == "320"} == {"51"}  # ceil(320/8) + ceil(320/32) + 1
    for name in ("model_time.png", "model_memory.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    assert "batch size 1" in result.output
    scan = read_csv(out / "scan.csv")
    assert {r["op"] for r in scan} == {"scan fwd", "scan fwd+bwd"}
    assert not (out / "preprocess.csv").exists() and not (out / "train.csv").exists()


def test_no_scan_and_attention_both(tmp_path):
    result = runner.invoke(app, ["benchmark", "--quick", "--lengths", "200", "--batch-size", "1", "--repeats",
                                 "1", "--warmup", "0", "--no-isolate", "--no-scan", "--no-preprocess", "--no-train",
                                 "--no-speed", "--no-predict", "--attention", "both",
                                 "--device", "cpu", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = read_csv(tmp_path / "model.csv")
    assert [r["model"] for r in rows] == ["EEGMamba", "Transformer (auto)", "Transformer (math)"]
    assert rows[1]["attention_kernel"] == "flash (CPU)"  # what torch 2.x picks on CPU: linear memory
    assert not (tmp_path / "scan.csv").exists() and "Selective scan" not in result.output


def test_preprocess_section_alone(tmp_path):
    result = runner.invoke(app, ["benchmark", "--quick", "--no-model", "--no-scan", "--no-train", "--no-speed",
                                 "--no-predict", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert read_csv(tmp_path / "preprocess.csv") and not (tmp_path / "model.csv").exists()


def test_predict_section_alone(tmp_path, monkeypatch):
    from eegmamba_cli import precision

    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset())  # bf16 emulated: one bf16 case
    # --quick: width-32 models on a 15-minute night and a 3-minute 23-channel recording, in child processes
    result = runner.invoke(app, ["benchmark", "--quick", "--no-model", "--no-scan", "--no-preprocess", "--no-train",
                                 "--no-speed", "--threads", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = read_csv(tmp_path / "predict.csv")
    eegmamba = [(r["recording"], r["model"], r["precision"]) for r in rows if r["tool"] == "eegmamba"]
    assert eegmamba == [("night-8h-1ch", "single-task (d_model 32)", "fp32"),
                        ("night-8h-1ch", "single-task (d_model 32)", "bf16"),
                        ("night-8h-1ch", "multitask (d_model 32)", "fp32"),
                        ("hour-1h-23ch", "single-task (d_model 32)", "fp32"),
                        ("hour-1h-23ch", "multitask (d_model 32)", "fp32")]
    assert all(r["status"] == "ok" and float(r["wall_s"]) > 0 and float(r["peak_mem_mib"]) > 0 for r in rows), rows
    assert {r["hours"] for r in rows} == {"0.25", "0.05"} and {r["threads"] for r in rows} == {"1"}
    assert [r["tool"] for r in rows].count("yasa") == (1 if yasa_available() else 0)
    assert (tmp_path / "predict.png").read_bytes()[:8] == PNG_MAGIC
    assert not (tmp_path / "speed.csv").exists() and not (tmp_path / "model.csv").exists()


def test_bad_options_are_one_line_errors(tmp_path):
    result = runner.invoke(app, ["benchmark", "--lengths", "12,abc", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "--lengths" in result.output


def test_isolated_cell_runs_in_a_child_process():
    row = run_isolated(Cell("eegmamba", 1, 160, 1, "cpu", "-", "forward", 1, 0, 1), timeout_s=120)
    assert row["status"] == "ok" and row["peak_mem_mib"] >= 0 and row["tokens"] == 26  # 20 + 5 + 1


def test_grid_skips_cells_over_budget_and_everything_longer():
    seen = []

    def fake_run(cells):
        return run_grid(cells, time_budget_s=1e-9, memory_budget_mib=None, isolate=False, on_row=seen.append)

    cells = [Cell("transformer", 1, n, 1, "cpu", "math", "forward", 1, 0) for n in (160, 320, 640)]
    rows = fake_run(cells)
    assert rows[0]["status"] == "ok"
    assert [r["status"].split(" ")[0] for r in rows[1:]] == ["skipped", "skipped"]
    assert seen == rows


@pytest.mark.parametrize("ops,kernel", [
    ({"aten::_scaled_dot_product_flash_attention_for_cpu"}, "flash (CPU)"),
    ({"aten::_scaled_dot_product_efficient_attention"}, "memory-efficient"),
    ({"aten::bmm", "aten::_safe_softmax"}, "math"),
    ({"aten::mm"}, "unknown"),
])
def test_attention_kernel_names(ops, kernel):
    assert attention_kernel(ops) == kernel
