"""Model speed of this checkout against an earlier commit, interleaved in one process.

The machine this toolkit is developed on is shared, so absolute times drift by tens of percent from one
minute to the next; a ratio measured with the two versions taking turns (base, new, base, new, ...) on the
same inputs and weights is what stays steady. The earlier commit's `models/` package is extracted with
`git archive` into a temporary folder and imported as `basemodels` (its imports are all relative, so it
runs its own ops and builds its own C kernels); both models get the same state_dict.

    python -m eegmamba_cli.bench.ab --base 5a88829 --threads 1 \\
        --case train:6:700:32:single-task --case infer:1:6000:32:single-task

A case is mode:channels:samples:batch:preset (mode train = forward, loss, backward and AdamW step;
infer = eval-mode `classify`, or forward in versions without it, under no_grad). Prints windows/s of
each and the ratio, median over repeats, with the ratio of every repeat.
"""
from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..child_env import SOURCE_ROOT


@dataclass(frozen=True)
class Case:
    mode: str  # train | infer
    channels: int
    samples: int
    batch: int
    preset: str

    @classmethod
    def parse(cls, text: str) -> "Case":
        mode, channels, samples, batch, preset = text.split(":")
        if mode not in ("train", "infer"):
            raise ValueError(f"case mode must be train or infer, got {mode!r}")
        return cls(mode, int(channels), int(samples), int(batch), preset)


def import_models_at(commit: str, folder: Path):
    """The `models` package of `commit`, imported as `basemodels` from `folder`."""
    archive = subprocess.run(["git", "-C", str(SOURCE_ROOT), "archive", commit, "models"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    (folder / "models").rename(folder / "basemodels")
    sys.path.insert(0, str(folder))
    return importlib.import_module("basemodels")


def _step(case: Case, model, optimizer, x, y):
    if case.mode == "infer":  # what the inference loop runs: `classify` where the version has it
        with torch.no_grad():
            model.classify(x, 0) if hasattr(model, "classify") else model(x, 0)
        return
    torch.manual_seed(1)  # the same dropout draws for both versions
    logits, aux = model(x, 0)
    loss, _ = model.loss(logits, y, aux)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def compare(case: Case, packages: dict, repeats: int) -> dict:
    """Windows/s per package (median over repeats) and the per-repeat ratios new/base."""
    torch.manual_seed(0)
    models = {name: pkg.EEGMamba(pkg.preset(case.preset), [pkg.DatasetSpec("ab", case.channels, 5)])
              for name, pkg in packages.items()}
    state = models["base"].state_dict()
    for model in models.values():
        model.load_state_dict(state)
        model.train(case.mode == "train")
    optimizers = {name: torch.optim.AdamW(m.param_groups(1e-6), lr=1e-4) for name, m in models.items()}
    x = torch.randn(case.batch, case.channels, case.samples)
    y = torch.randint(0, 5, (case.batch,))
    seconds = {name: [] for name in models}
    for name in models:  # warm-up: kernel builds, thread pools, oneDNN primitives
        _step(case, models[name], optimizers[name], x, y)
    for _ in range(repeats):
        for name in models:
            start = time.perf_counter()
            _step(case, models[name], optimizers[name], x, y)
            seconds[name].append(time.perf_counter() - start)
    rate = {name: case.batch / statistics.median(s) for name, s in seconds.items()}
    return dict(case=case, base=rate["base"], new=rate["new"], ratio=rate["new"] / rate["base"],
                per_repeat=[b / n for b, n in zip(seconds["base"], seconds["new"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="the earlier commit (anything git archive accepts)")
    parser.add_argument("--case", action="append", required=True, help="mode:channels:samples:batch:preset")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = [Case.parse(c) for c in args.case]
    import models

    with tempfile.TemporaryDirectory(prefix="eegmamba-ab-") as tmp:
        packages = {"base": import_models_at(args.base, Path(tmp)), "new": models}
        for case in cases:
            r = compare(case, packages, args.repeats)
            print(f"{case.mode} {case.preset} {case.channels}x{case.samples} batch {case.batch}: "
                  f"base {r['base']:.2f} win/s, new {r['new']:.2f} win/s, x{r['ratio']:.2f} "
                  f"(per repeat {', '.join(f'{q:.2f}' for q in r['per_repeat'])})", flush=True)


if __name__ == "__main__":
    main()
