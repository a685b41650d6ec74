"""Dynamic sampling: proportions, exactly-once coverage, partial batches, reproducibility, DDP split."""
import numpy as np
import pytest

from eegmamba_cli.training.sampler import DynamicSampler, rank_share, shard

SIZES = [300, 50, 7, 0, 128]


def _drawn(batches, n_datasets):
    out = [[] for _ in range(n_datasets)]
    for b in batches:
        out[b.dataset].extend(b.rows.tolist())
    return out


def test_every_sample_exactly_once_per_epoch():
    sampler = DynamicSampler(SIZES, batch_size=32, seed=3)
    for epoch in (1, 2, 7):
        drawn = _drawn(sampler.epoch(epoch), len(SIZES))
        for n, rows in zip(SIZES, drawn):
            assert sorted(rows) == list(range(n))


def test_batches_are_single_dataset_and_partial_batches_kept():
    sampler = DynamicSampler(SIZES, batch_size=32, seed=0)
    batches = sampler.epoch(1)
    assert len(batches) == sampler.steps_per_epoch() == 10 + 2 + 1 + 0 + 4  # Σ ceil(n_d / 32)
    sizes = {d: sorted(len(b.rows) for b in batches if b.dataset == d) for d in range(len(SIZES))}
    assert sizes[0] == [12] + [32] * 9 and sizes[1] == [18, 32] and sizes[2] == [7] and sizes[3] == []
    assert sizes[4] == [32] * 4  # 128 = 4 x 32: no partial batch
    # within a dataset, batches follow one shuffled order: only the last one can be partial
    for d in range(len(SIZES)):
        lens = [len(b.rows) for b in batches if b.dataset == d]
        assert all(n == 32 for n in lens[:-1])


def test_reproducible_from_seed_and_epoch_only():
    a = DynamicSampler(SIZES, 16, seed=5)
    b = DynamicSampler(SIZES, 16, seed=5)
    b.epoch(1), b.epoch(2)  # drawing other epochs first must not change epoch 3
    ea, eb = a.epoch(3), b.epoch(3)
    assert [(x.dataset, x.rows.tolist()) for x in ea] == [(x.dataset, x.rows.tolist()) for x in eb]
    other_epoch, other_seed = a.epoch(4), DynamicSampler(SIZES, 16, seed=6).epoch(3)
    key = lambda bs: [(x.dataset, x.rows.tolist()) for x in bs]  # noqa: E731
    assert key(other_epoch) != key(ea) and key(other_seed) != key(ea)


def test_first_draw_follows_dataset_sizes():
    sizes = [600, 300, 100]
    counts = np.zeros(3)
    n_seeds = 3000
    for seed in range(n_seeds):
        counts[DynamicSampler(sizes, 64, seed).epoch(1)[0].dataset] += 1
    expected = np.array(sizes) / sum(sizes)
    # binomial std <= sqrt(0.25 / 3000) ~ 0.009: 4 sigma
    np.testing.assert_allclose(counts / n_seeds, expected, atol=0.036)


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_rank_slices_are_disjoint_and_cover_every_batch(world):
    sampler = DynamicSampler([37, 5, 1], batch_size=8, seed=2)
    for batch in sampler.epoch(1):
        parts = [shard(batch.rows, r, world) for r in range(world)]
        joined = np.concatenate(parts)
        assert sorted(joined.tolist()) == sorted(batch.rows.tolist())  # covering and disjoint
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    # every rank runs the same number of steps: the number of global batches


def test_rejects_bad_batch_size():
    with pytest.raises(ValueError):
        DynamicSampler([3], 0, 0)


def test_rank_share_scales_make_the_ddp_average_the_global_mean():
    rows = np.arange(5)
    for world in (1, 2, 3, 7):
        shares = [rank_share(rows, r, world) for r in range(world)]
        counted = np.concatenate([s[0][:s[1]] for s in shares])
        assert sorted(counted.tolist()) == rows.tolist()
        # DDP gradient = (1/W) Σ_r scale_r · mean_r(g) must equal mean(g) = (1/n) Σ g for any g
        g = np.random.default_rng(world).standard_normal(5)
        ddp = sum(scale * g[r].mean() for r, _, scale in shares if len(r)) / world
        assert np.isclose(ddp, g.mean())
    placeholder = rank_share(np.array([4]), 1, 2)
    assert placeholder[0].tolist() == [4] and placeholder[1:] == (0, 0.0)
