"""The datasets and preprocess commands through CliRunner: exit codes, one-line messages, no tracebacks."""
import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from eegmamba_cli.app import app
from eegmamba_cli.commands import datasets as datasets_cmd
from eegmamba_cli.fileio import directory_lock
from tests.fixtures.chbmit import write_chbmit
from tests.fixtures.custom import write_custom
from tests.fixtures.edf import corrupt_header, truncate
from tests.fixtures.sleepedf import write_hypnogram, write_psg, write_sleepedf

runner = CliRunner()


def run(*args, env=None):
    args = [str(a) for a in args]
    if args[0] == "preprocess" and "--workers" not in args:
        args += ["--workers", "1"]  # no process start-up cost; workers=2 is covered in test_data_pipeline
    result = runner.invoke(app, args, env=env)
    assert "Traceback" not in result.output, result.output
    return result


def lines_with(output, text):
    return [line for line in output.splitlines() if text in line]


def test_datasets_table_and_json(tmp_path, monkeypatch):
    write_sleepedf(tmp_path / "raw" / "sleepedf")
    result = run("preprocess", "sleepedf", "--root", tmp_path, "--no-progress")
    assert result.exit_code == 0, result.output
    real_get = datasets_cmd.get_corpus

    def get_corpus(name):  # another engineer's reader absent: one row says so, nothing crashes
        if name == "deap":
            raise ImportError("No module named 'eegmamba_cli.data.corpora.deap'")
        return real_get(name)
    monkeypatch.setattr(datasets_cmd, "get_corpus", get_corpus)
    result = run("datasets", env={"EEGMAMBA_DATA": str(tmp_path), "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert lines_with(result.output, "siena") and "reader not installed" in lines_with(result.output, "deap")[0]
    row = lines_with(result.output, "sleepedf")[0]
    assert "100 Hz" in row and "W/N1/N2/N3/REM" in row and "yes" in row and "10" in row
    result = run("datasets", "--root", tmp_path, "--json")
    rows = {r["name"]: r for r in json.loads(result.stdout)["datasets"]}
    assert rows["chbmit"]["channels"] == 23 and rows["chbmit"]["raw"] == "no"
    assert rows["sleepedf"]["cache"] == "10" and rows["sleepedf"]["window_samples"] == 6000
    assert rows["deap"]["title"] == "reader not installed"
    assert {o["key"]: o["default"] for o in rows["chbmit"]["options"]} == {
        "files": "seizures", "merge_chb21_into_chb01": "false", "min_ictal_fraction": "0.5", "crosscheck": "true"}
    assert rows["chbmit"]["download"] == "https://physionet.org/files/chbmit/1.0.0/"
    assert rows["shhs"]["download"] is None
    assert rows["custom"]["task"] == "custom"


def test_preprocess_summary_and_flags(tmp_path):
    raw = write_custom(tmp_path / "raw")
    result = run("preprocess", "custom", "--raw", raw, "--out", tmp_path / "cache", "--labels", "left,right",
                 "--window", "4", "--strict", "--no-strict", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "custom: 6 windows, 2 recordings, 2 subjects" in result.output
    assert "windows per class" in result.output and "0 left" in result.output
    result = run("preprocess", "chbmit", "--raw", raw, "--window", "4")
    assert result.exit_code == 1 and "--window apply to the custom corpus only" in result.output
    result = run("preprocess", "siena", "--raw", raw, "--subjects", "PN01,15")
    assert result.exit_code == 1 and lines_with(result.output, "no patient PN15")
    import importlib.util
    if importlib.util.find_spec("eegmamba_cli.data.corpora.shu") is None:
        result = run("preprocess", "shu", "--raw", raw)
        assert result.exit_code == 1 and "shu: the reader is not installed" in result.output
    result = run("preprocess", "nosuch", "--raw", raw)
    assert result.exit_code == 1 and "unknown dataset 'nosuch'" in result.output
    result = run("preprocess", "sleepedf", "--raw", raw, "--option", "trim_wake")
    assert result.exit_code == 1 and "expected KEY=VALUE" in result.output


def _damage(raw, kind):
    """One damaged recording in the CHB-MIT fixture; returns its file name and the expected problem."""
    if kind == "truncated":
        truncate(raw / "chb02" / "chb02_16+.edf", 20000)
        return "chb02_16+.edf", "truncated (header declares"
    if kind == "corrupt":
        corrupt_header(raw / "chb17" / "chb17a_03.edf")
        return "chb17a_03.edf", "not an EDF/BDF file"
    if kind == "unreadable":
        (raw / "chb01" / "chb01_04.edf").unlink()
        (raw / "chb01" / "chb01_04.edf").mkdir()
        return "chb01_04.edf", "cannot read"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["truncated", "corrupt", "unreadable"])
def test_bad_recordings_skipped_with_one_line_or_strict_stop(tmp_path, kind):
    raw = write_chbmit(tmp_path / "raw")
    name, problem = _damage(raw, kind)
    result = run("preprocess", "chbmit", "--raw", raw, "--out", tmp_path / "cache", "--no-progress")
    assert result.exit_code == 0, result.output
    skipped = lines_with(result.output, f"skipped: {name}: ")
    assert len(skipped) == 1 and problem in skipped[0]
    info = json.loads((tmp_path / "cache" / "chbmit" / "info.json").read_text())
    assert any(s["file"] == name and problem in s["reason"] for s in info["skipped"])

    listed = raw / "RECORDS-WITH-SEIZURES"  # leave the damaged file as the only problem for --strict
    listed.write_text(listed.read_text().replace("chb01/chb01_05.edf\n", ""))
    result = run("preprocess", "chbmit", "--raw", raw, "--out", tmp_path / "strict", "--strict", "--no-progress")
    assert result.exit_code == 1
    errors = lines_with(result.output, "error:")
    assert len(errors) == 1 and name in errors[0] and problem in errors[0] and "--strict" in errors[0]
    cache = tmp_path / "strict" / "chbmit"
    assert not (cache / "info.json").exists()  # never a finished-looking half cache
    assert not list(cache.rglob("*.tmp"))
    for part in (cache / "parts").glob("*.parquet"):  # what was written is complete and resumable
        assert (cache / "arrays" / f"{part.stem}.npy").is_file()


def test_flat_channel_and_hypnogram_mismatch_via_cli(tmp_path):
    raw = write_sleepedf(tmp_path / "raw")
    folder = raw / "sleep-cassette"
    write_psg(folder / "SC4061E0-PSG.edf", seconds=120)
    write_hypnogram(folder / "SC4061EC-Hypnogram.edf", runs=[(9000, 60, "Sleep stage 2")])
    # a PSG whose Fpz-Cz is flat: rewrite the EEG samples of SC4071E0 with a constant
    write_psg(folder / "SC4071E0-PSG.edf", seconds=120)
    write_hypnogram(folder / "SC4071EC-Hypnogram.edf", runs=[(0, 120, "Sleep stage 2")])
    path = folder / "SC4071E0-PSG.edf"
    data = bytearray(path.read_bytes())
    header, record = 256 * 8, (3000 * 3 + 30 * 4) * 2
    for r in range(4):
        data[header + r * record: header + r * record + 6000] = np.full(3000, 100, "<i2").tobytes()
    path.write_bytes(bytes(data))
    result = run("preprocess", "sleepedf", "--raw", raw, "--out", tmp_path / "cache", "--no-progress")
    assert result.exit_code == 0, result.output
    assert lines_with(result.output, "skipped: SC4061EC-Hypnogram.edf: no scored epoch falls inside")
    flat = lines_with(result.output, "skipped: SC4071E0-PSG.edf: channel Fpz-Cz is flat")
    assert len(flat) == 1
    assert "10 windows, 1 recordings" in result.output


def test_second_preprocess_into_locked_dir_refused(tmp_path):
    raw = write_sleepedf(tmp_path / "raw")
    with directory_lock(tmp_path / "cache" / "sleepedf", "eegmamba preprocess sleepedf (pid 1)"):
        result = run("preprocess", "sleepedf", "--raw", raw, "--out", tmp_path / "cache")
    assert result.exit_code == 1
    assert lines_with(result.output, "already in use by eegmamba preprocess sleepedf (pid 1)")


def test_rerun_reports_cached_skips_without_work(tmp_path):
    raw = write_chbmit(tmp_path / "raw")
    first = run("preprocess", "chbmit", "--raw", raw, "--out", tmp_path / "cache", "--no-progress")
    second = run("preprocess", "chbmit", "--raw", raw, "--out", tmp_path / "cache", "--no-progress")
    assert "processed 4, already done 0, skipped 1" in first.output
    assert "processed 0, already done 4, skipped 1" in second.output
    assert not lines_with(second.output, "skipped: ")  # remembered, not re-read
    shutil.rmtree(tmp_path / "cache")


def test_no_strict_really_turns_strict_off_and_progress_bar_runs(tmp_path):
    raw = write_chbmit(tmp_path / "raw")  # chb01_05 lacks channels
    strict = run("preprocess", "chbmit", "--raw", raw, "--out", tmp_path / "a", "--strict")
    assert strict.exit_code == 1 and "(stopped: --strict)" in strict.output
    relaxed = run("preprocess", "chbmit", "--raw", raw, "--out", tmp_path / "b", "--strict", "--no-strict")
    assert relaxed.exit_code == 0 and "skipped: chb01_05.edf: missing 5 of 23 channels" in relaxed.output


def test_cli_words_library_errors_with_its_flags(tmp_path):
    """The library names options and folders; the command names its flags."""
    write_sleepedf(tmp_path / "raw" / "sleepedf")
    assert run("preprocess", "sleepedf", "--root", tmp_path, "--no-progress").exit_code == 0
    result = run("preprocess", "sleepedf", "--root", tmp_path, "--normalize", "none", "--no-progress")
    assert result.exit_code == 1
    assert "other preprocessing parameters; pass --overwrite to replace it or choose another --out" in result.output
    result = run("preprocess", "siena", "--root", tmp_path, "--no-progress")
    assert result.exit_code == 1 and "run `eegmamba download siena` or pass --raw" in result.output
    result = run("preprocess", "sleepedf", "--root", tmp_path, "--option", "trim_wake=maybe")
    assert result.exit_code == 1 and "sleepedf: option trim_wake=maybe should be true or false" in result.output
