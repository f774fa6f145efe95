import numpy as np
import pytest

from rlbook.chapters.tabular_cartpole import Discretizer

D = Discretizer.uniform([-2.4, -3.0, -0.21, -3.5], [2.4, 3.0, 0.21, 3.5], 8)


def test_4096_rows():
    assert D.n_states == 8**4 == 4096


@pytest.mark.parametrize(
    "value, bucket",
    [
        (-100.0, 0),
        (-0.21, 0),
        (-0.21 + 1e-9, 0),
        (-0.15, 1),
        (-1e-9, 3),
        (0.0, 4),
        (0.21 - 1e-9, 7),
        (0.21, 7),
        (100.0, 7),
    ],
)
def test_bucket_edges_of_the_angle(value, bucket):
    obs = np.array([0.0, 0.0, value, 0.0])
    assert D.buckets(obs)[2] == bucket


def test_corners_map_to_first_and_last_row():
    assert D.index(np.array(D.lows)) == 0
    assert D.index(np.array(D.highs)) == 4095
    assert D.index(np.full(4, -1e9)) == 0
    assert D.index(np.full(4, 1e9)) == 4095


def test_every_index_in_range_and_every_row_reachable():
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1.1, 1.1, size=(200_000, 4)) * np.array(D.highs)
    rows = D.index(obs)
    assert rows.min() >= 0 and rows.max() <= 4095
    assert np.unique(rows).size == 4096


def test_mixed_radix_order():
    # bucket (1, 2, 3, 4) is row 1 + 2*8 + 3*64 + 4*512
    buckets = (1, 2, 3, 4)
    centres = [
        lo + (b + 0.5) * (hi - lo) / 8
        for lo, hi, b in zip(D.lows, D.highs, buckets, strict=True)
    ]
    assert D.index(np.array(centres)) == 1 + 2 * 8 + 3 * 64 + 4 * 512


def test_row_matches_index_exactly():
    rng = np.random.default_rng(1)
    obs = (rng.normal(size=(20_000, 4)) * np.array([2, 3, 0.2, 3])).astype(np.float32)
    obs[:4] = [D.lows, D.highs, [0, 0, 0, 0], [9, -9, 9, -9]]
    assert [D.row(o) for o in obs] == D.index(obs).tolist()


def test_dict_round_trip():
    assert Discretizer.from_dict(D.to_dict()) == D


@pytest.mark.parametrize(
    "lows, highs, bins",
    [
        ((0.0,), (1.0, 2.0), (2,)),
        ((0.0,), (0.0,), (2,)),
        ((0.0,), (1.0,), (0,)),
        ((), (), ()),
    ],
)
def test_bad_discretizers_are_rejected(lows, highs, bins):
    with pytest.raises(ValueError):
        Discretizer(lows, highs, bins)


def test_cartpole_starts_fall_into_sixteen_rows():
    # CartPole-v1 resets every variable uniformly within +-0.05; zero is a bin
    # edge of every variable and the bins are wider than 0.05, so the starts
    # cover 2 buckets per variable: 2**4 rows. The chapter computes and glues
    # this count; a new reset range or binning would change it.
    from rlbook.envs import make_env

    env = make_env("CartPole-v1")
    starts = np.array([env.reset(seed=seed)[0] for seed in range(2_000)])
    env.close()
    assert np.abs(starts).max() <= 0.05
    assert [np.unique(b).size for b in D.buckets(starts).T] == [2, 2, 2, 2]
    assert np.unique(D.index(starts)).size == 16
