"""The predict benchmark's inputs: a synthetic recording of the right shape and a loadable preset model."""
import sys

import mne

from eegmamba_cli.bench.predict import cases, plot_predict, save_model, timed_process, write_recording
from eegmamba_cli.training.checkpoint import load_checkpoint


def test_recording_has_the_corpus_montage_and_duration(tmp_path):
    path = write_recording(tmp_path, "chbmit", hours=0.01, sfreq=256.0)
    raw = mne.io.read_raw_edf(path, preload=False, verbose=False)
    assert len(raw.ch_names) == 22 and raw.ch_names[0] == "FP1-F7"  # T8-P8 written once
    assert raw.n_times == round(36 * 256)


def test_saved_preset_model_loads_with_its_head(tmp_path):
    model, _ = load_checkpoint(save_model(tmp_path / "m", "single-task", "sleepedf"))
    assert model.config.n_layers == 2 and not model.config.use_moe
    assert [d.name for d in model.datasets] == ["sleepedf"]


def test_timed_process_reports_exit_code_and_memory():
    wall, mib, code, last = timed_process([sys.executable, "-c", "import sys; sys.exit('boom')"])
    assert code == 1 and last == "boom" and mib > 1 and wall > 0


def test_cases_run_emulated_bf16_once_and_native_bf16_everywhere():
    def plan(native):
        return [(rec["name"], preset, p) for rec, preset, p in cases(("fp32", "bf16"), native)]

    assert plan(False) == [("night-8h-1ch", "single-task", "fp32"), ("night-8h-1ch", "single-task", "bf16"),
                           ("night-8h-1ch", "multitask", "fp32"), ("hour-1h-23ch", "single-task", "fp32"),
                           ("hour-1h-23ch", "multitask", "fp32")]
    assert len(plan(True)) == 8 and plan(True)[:2] == plan(False)[:2]


def test_predict_plot_is_a_png(tmp_path):
    rows = [dict(recording="night", tool="yasa", model="SleepStaging", precision="-", wall_s=8.0,
                 peak_mem_mib=600.0, status="ok"),
            dict(recording="night", tool="eegmamba", model="single-task", precision="fp32", wall_s=20.0,
                 peak_mem_mib=900.0, status="ok"),
            dict(recording="hour", tool="eegmamba", model="single-task", precision="fp32", wall_s=0,
                 peak_mem_mib=0, status="killed")]  # a failed run has no bar
    plot_predict(tmp_path / "p.png", rows)
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
