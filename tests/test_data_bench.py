"""The preprocessing benchmark returns sane rows (speed targets are reported, not asserted: shared CI)."""
from eegmamba_cli.bench.preprocess import benchmark_preprocess


def test_quick_rows_are_sane():
    rows = benchmark_preprocess(quick=True, workers=[1, 2], repeats=1)
    assert [r["workers"] for r in rows] == [1, 2]
    for r in rows:
        assert r["benchmark"] == "preprocess" and r["signal_s"] == 300.0 * r["workers"]
        assert r["wall_s"] > 0 and r["realtime_factor"] > 10
        assert abs(r["realtime_per_core"] * r["workers"] - r["realtime_factor"]) < 0.2
    assert rows[0]["scaling_efficiency"] == 1.0 and rows[1]["scaling_efficiency"] > 0
