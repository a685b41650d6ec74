"""Bad option values and misplaced paths on the command line: one error line and exit code 1, never a
traceback (found by a sweep of every command's numeric options and path arguments).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from eegmamba_cli.app import app
from eegmamba_cli.training.trainer import TrainConfig, train
from helpers_cache import make_cache
from helpers_reliability import write_chb_corpus

runner = CliRunner()


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("options")
    make_cache(base / "cache", "toya", n_subjects=6, windows_per_subject=8)
    train(TrainConfig(out=base / "run", data=base / "cache", tasks="toya", fold="1", epochs=1, d_model=16, layers=1,
                      device="cpu", batch_size=8))
    write_chb_corpus(base / "raw", n_files=1, seconds=16, broken=False)
    (base / "afile").write_text("not a folder")
    return base


TRAIN = ["--tasks", "toya", "--fold", "1", "--device", "cpu", "--epochs", "1", "--batch-size", "8"]
CASES = {  # name: (arguments with {b} for the base folder, text expected in the error line)
    "train --d-model 0": ("train --data {b}/cache --out {b}/t1 --d-model 0 --layers 1", "--d-model must be at least 1 (got 0)"),
    "train --d-model -4": ("train --data {b}/cache --out {b}/t2 --d-model -4 --layers 1", "--d-model must be at least 1 (got -4)"),
    "train --layers 0": ("train --data {b}/cache --out {b}/t3 --d-model 16 --layers 0", "--layers must be at least 1 (got 0)"),
    "train --lr nan": ("train --data {b}/cache --out {b}/t4 --d-model 16 --layers 1 --lr nan", "--lr must be a finite number > 0 (got nan)"),
    "train --lr inf": ("train --data {b}/cache --out {b}/t5 --d-model 16 --layers 1 --lr inf", "--lr must be a finite number > 0 (got inf)"),
    "train --weight-decay -1": ("train --data {b}/cache --out {b}/t6 --d-model 16 --layers 1 --weight-decay -1",
                                "--weight-decay must be a finite number >= 0 (got -1.0)"),
    "train --z-weight nan": ("train --data {b}/cache --out {b}/t7 --d-model 16 --layers 1 --z-weight nan",
                             "--z-weight must be a finite number >= 0 (got nan)"),
    "train --grad-clip 0": ("train --data {b}/cache --out {b}/t8 --d-model 16 --layers 1 --grad-clip 0",
                            "--grad-clip must be a finite number > 0 (got 0.0)"),
    "train --patience -1": ("train --data {b}/cache --out {b}/t9 --patience -1",
                            "--patience must be 0 (no early stopping) or more (got -1)"),
    "train --warmup 1": ("train --data {b}/cache --out {b}/t10 --warmup 1", "--warmup must be a fraction in [0, 1) (got 1.0)"),
    "train --patience without validation": ("train --data {b}/cache --out {b}/t11 --patience 3 --val-fraction 0 "
                                            "--select final", "--patience (early stopping) needs a validation set"),
    "train --out is a file": ("train --data {b}/cache --out {b}/afile --d-model 16 --layers 1",
                              "afile: cannot create the lock file"),
    "evaluate --batch-size 0": ("evaluate {b}/run --device cpu --batch-size 0", "--batch-size must be at least 1 (got 0)"),
    "evaluate --batch-size -1": ("evaluate {b}/run --device cpu --batch-size -1", "--batch-size must be at least 1 (got -1)"),
    "download --base-url not a URL": ("download chbmit --root {b}/dl --base-url not-a-url --no-progress",
                                      "SHA256SUMS.txt: cannot fetch not-a-url/SHA256SUMS.txt (unknown url type"),
    "download --root is a file": ("download chbmit --root {b}/afile --no-progress --offline", "Not a directory"),
    "preprocess --out is a file": ("preprocess chbmit --raw {b}/raw --out {b}/afile --workers 1 -o files=all",
                                   "cannot create the lock file (Not a directory)"),
    "preprocess min_ictal_fraction=nan": ("preprocess chbmit --raw {b}/raw --out {b}/p1 --workers 1 -o files=all "
                                          "-o min_ictal_fraction=nan", "min_ictal_fraction=nan must be a finite number"),
    "preprocess min_ictal_fraction=2": ("preprocess chbmit --raw {b}/raw --out {b}/p2 --workers 1 -o files=all "
                                        "-o min_ictal_fraction=2", "min_ictal_fraction=2.0 must be a fraction in (0, 1]"),
    "preprocess siena min_ictal_fraction=0": ("preprocess siena --raw {b}/raw --out {b}/p3 --workers 1 "
                                              "-o min_ictal_fraction=0", "must be a fraction in (0, 1]"),
    "preprocess custom --window inf": ("preprocess custom --raw {b}/raw --out {b}/p4 --workers 1 --window inf "
                                       "--labels a,b", "--window must be a number of seconds (at least one sample at 200 Hz) or event, not 'inf'"),
    "preprocess custom --window 0.001": ("preprocess custom --raw {b}/raw --out {b}/p5 --workers 1 --window 0.001 "
                                         "--labels a,b", "--window must be a number of seconds (at least one sample at 200 Hz) or event"),
    "preprocess custom --stride 1e-9": ("preprocess custom --raw {b}/raw --out {b}/p6 --workers 1 --stride 1e-9 "
                                        "--labels a,b", "--stride must be 0 (= the window) or at least one sample"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_option_is_one_line(places, case):
    template, expected = CASES[case]
    args = template.format(b=places).split()
    if args[0] == "train":
        args += TRAIN
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and expected in lines[0], result.output
