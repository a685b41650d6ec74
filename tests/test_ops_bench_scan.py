"""The scan benchmark's baseline is a correct scan, and benchmark_scan returns well-formed rows."""
from __future__ import annotations

import pytest
import torch

from eegmamba_cli.bench.scan import benchmark_scan, selective_scan_mamba_style
from models.ops import selective_scan_ref
from models.ops.random_inputs import mamba_like_scan_inputs


def test_mamba_style_baseline_matches_the_reference():
    x = mamba_like_scan_inputs(2, 4, 16, 33, dtype=torch.float64, seed=4)
    truth, last_truth = selective_scan_ref(**x, delta_softplus=True, return_last_state=True)
    out, last = selective_scan_mamba_style(**x, delta_softplus=True, return_last_state=True)
    assert out.dtype == torch.float64  # returns the input dtype (computed in fp32, as mamba_ssm)
    assert (out - truth).abs().max() / truth.abs().max() <= 1e-5
    assert (last - last_truth).abs().max() / last_truth.abs().max() <= 1e-5


@pytest.mark.slow
def test_quick_benchmark_rows():
    rows = benchmark_scan(quick=True, repeats=1)
    ops = {row["op"] for row in rows}
    assert ops == {"scan fwd", "scan fwd+bwd"}
    for op in ops:
        mine = [row for row in rows if row["op"] == op]
        assert mine[0]["impl"].startswith(("mamba-style", "autograd through mamba-style"))
        assert mine[0]["speedup_vs_ref"] == 1.0
        assert "torch loop" in {row["impl"] for row in mine}
    for row in rows:
        assert set(row) >= {"op", "impl", "B", "D", "N", "L", "seconds", "speedup_vs_ref"}
        assert row["seconds"] > 0 and row["speedup_vs_ref"] > 0
