"""Bootstrap intervals over seeds: what they contain, how often, and paired comparisons."""

from __future__ import annotations

import numpy as np
import pytest

from rlbook.stats import Interval, bootstrap_mean, paired_difference

SCORES = [212.0, 480.5, 500.0, 133.0, 377.25, 499.0, 250.0, 461.0]


def test_mean_is_the_plain_mean_and_the_interval_lies_within_the_data():
    interval = bootstrap_mean(SCORES)
    assert interval.mean == np.mean(SCORES)
    assert min(SCORES) <= interval.low < interval.mean < interval.high <= max(SCORES)
    assert (interval.level, interval.n) == (0.95, len(SCORES))


@pytest.mark.parametrize("where", [0, 9])
def test_every_seed_is_resampled_wherever_it_sits(where):
    """One lucky seed of ten scores 100: the resampled means reach past the mean."""
    values = np.zeros(10)
    values[where] = 100.0
    interval = bootstrap_mean(values)
    assert interval.mean == 10.0
    assert interval.low == 0.0  # resamples without the lucky seed: 0.9^10 = 35%
    # The top 2.5% of resamples hold 3 copies: P(>= 3) = 7%, P(>= 4) = 1.3%.
    assert interval.high == 30.0
    two = bootstrap_mean([0.0, 1.0])  # means 0, 0.5, 1 with chances 1/4, 1/2, 1/4
    assert (two.low, two.high) == (0.0, 1.0)


def test_same_seed_same_interval_and_another_seed_another():
    assert bootstrap_mean(SCORES, seed=3) == bootstrap_mean(SCORES, seed=3)
    other = bootstrap_mean(SCORES, seed=4)
    assert other != bootstrap_mean(SCORES, seed=3)
    assert other.mean == bootstrap_mean(SCORES, seed=3).mean


def test_a_higher_level_gives_a_wider_interval():
    narrow = bootstrap_mean(SCORES, level=0.5)
    wide = bootstrap_mean(SCORES, level=0.99)
    assert wide.low < narrow.low < narrow.high < wide.high


def test_constant_scores_give_a_zero_width_interval():
    interval = bootstrap_mean([500.0] * 5)
    assert (interval.mean, interval.low, interval.high) == (500.0, 500.0, 500.0)


def test_one_seed_gives_a_single_point():
    interval = bootstrap_mean([42.0])
    assert (interval.low, interval.high, interval.n) == (42.0, 42.0, 1)


def test_95_percent_intervals_cover_the_true_mean_about_95_percent_of_the_time():
    """Normal samples of 10 seeds: the percentile bootstrap is a little narrow
    for so few (about 91% coverage), but neither wildly narrow nor trivially wide."""
    rng = np.random.default_rng(2024)
    trials, true_mean = 300, 5.0
    covered = 0
    widths = []
    for trial in range(trials):
        sample = rng.normal(true_mean, 2.0, size=10)
        interval = bootstrap_mean(sample, resamples=2_000, seed=trial)
        covered += interval.low <= true_mean <= interval.high
        widths.append(interval.high - interval.low)
    assert 0.85 * trials <= covered <= 0.99 * trials, covered / trials
    # A 95% interval of a mean of 10 draws of sd 2 is about 2 * 1.96 * 2 / sqrt(10) wide.
    assert np.mean(widths) == pytest.approx(2 * 1.96 * 2 / np.sqrt(10), rel=0.2)


def test_paired_difference_of_a_shift_is_the_shift_exactly():
    values = np.array([10.0, 250.0, 31.5, 480.0])
    interval = paired_difference(values + 2.5, values)
    assert (interval.mean, interval.low, interval.high) == (2.5, 2.5, 2.5)
    assert interval.n == 4
    assert interval.excludes(0.0)


def test_pairing_removes_what_the_seeds_share():
    """Seeds differ by a lot (sd 100), the variant adds 5 to each (noise sd 2):
    unpaired intervals overlap, the paired one is narrow and excludes zero."""
    rng = np.random.default_rng(0)
    per_seed = rng.normal(250.0, 100.0, size=12)
    baseline = per_seed + rng.normal(0.0, 2.0, size=12)
    variant = per_seed + 5.0 + rng.normal(0.0, 2.0, size=12)
    paired = paired_difference(variant, baseline)
    alone = [bootstrap_mean(variant), bootstrap_mean(baseline)]
    assert paired.mean == pytest.approx(np.mean(variant - baseline))
    assert paired.excludes(0.0)
    assert 2.0 < paired.low < paired.high < 8.0
    for interval in alone:
        assert paired.high - paired.low < 0.1 * (interval.high - interval.low)
    # Unpaired, the two intervals overlap: they cannot tell the variants apart.
    assert alone[0].low < alone[1].high and alone[1].low < alone[0].high


def test_paired_difference_is_values_minus_baseline():
    interval = paired_difference([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])
    assert interval.mean == pytest.approx(-2.0)
    assert interval.high < 0


@pytest.mark.parametrize(
    ("values", "kwargs", "message"),
    [
        ([], {}, "at least one value"),
        ([1.0, np.nan], {}, "finite"),
        ([1.0, np.inf], {}, "finite"),
        ([1.0, 2.0], {"level": 0.0}, r"level must lie in \(0, 1\), got 0.0"),
        ([1.0, 2.0], {"level": 1.0}, r"level must lie in \(0, 1\), got 1.0"),
        ([1.0, 2.0], {"level": 95}, r"level must lie in \(0, 1\), got 95"),
        ([1.0, 2.0], {"resamples": 0}, "resamples must be at least 1, got 0"),
    ],
)
def test_bad_arguments_are_clear_errors(values, kwargs, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_mean(values, **kwargs)


def test_paired_scores_must_pair_up():
    with pytest.raises(ValueError, match="got 3 and 2"):
        paired_difference([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        paired_difference([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="level"):
        paired_difference([1.0, 2.0], [1.0, 2.0], level=1.5)


def test_format_shows_mean_and_bounds():
    interval = Interval(mean=412.345, low=380.0, high=440.06, level=0.95, n=10)
    assert format(interval, ".1f") == "412.3 [380.0, 440.1]"
    assert f"{interval:.0f}" == "412 [380, 440]"
    assert f"{interval}" == "412.3 [380.0, 440.1]"  # one decimal by default


@pytest.mark.parametrize(
    ("value", "excluded"),
    [(0.0, True), (1.0, False), (2.0, False), (3.0, False), (3.5, True), (-4.0, True)],
)
def test_excludes_is_outside_the_closed_interval(value, excluded):
    assert (
        Interval(mean=2.0, low=1.0, high=3.0, level=0.95, n=5).excludes(value)
        is excluded
    )


def test_excludes_zero_by_default():
    assert Interval(mean=2.0, low=1.0, high=3.0, level=0.95, n=5).excludes()
    assert not Interval(mean=0.5, low=-1.0, high=3.0, level=0.95, n=5).excludes()
