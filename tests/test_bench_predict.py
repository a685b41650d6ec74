"""The predict benchmark's inputs: a synthetic recording of the right shape and a loadable preset model."""
import sys

import mne

from eegmamba_cli.bench.predict import save_model, timed_process, write_recording
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
