"""The speed benchmark's rows, and the fused front end's arithmetic (FLOPs, not time: tests never time)."""
from eegmamba_cli.bench.speed import Shape, benchmark_speed


def test_rows_per_variant_and_fusion_cuts_the_training_flops():
    rows = benchmark_speed(shapes=[Shape("train", "single-task", 6, 300, 2)], repeats=1)
    assert [(r["front_end"], r["precision"]) for r in rows] == [("unfused", "fp32"), ("fused", "fp32")]
    assert all(r["windows_per_s"] > 0 and r["min_per_s"] <= r["windows_per_s"] <= r["max_per_s"] for r in rows)
    unfused, fused = (r["gflop_per_window"] for r in rows)
    # 6 channels into D = 128: the two first tokenizer convs shrink from 128 to 7 input channels.
    assert fused < 0.6 * unfused
