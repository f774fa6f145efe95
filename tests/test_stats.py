"""Intervals over seeds (bootstrap and Student's t), paired tests, Holm's
adjustment and Agarwal et al.'s metrics, against values known independently.

The paired tests, Holm and Agarwal et al.'s metrics are the lesson of the page
chapters/dqn_improvements.md and live in its module."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlbook.chapters.dqn_improvements import (
    bootstrap_iqm,
    holm,
    paired_sign_flip_pvalue,
    paired_t,
    paired_t_pvalue,
    performance_profile,
    probability_of_improvement,
)
from rlbook.chapters.dqn_pixels import bootstrap_mean
from rlbook.stats import (
    Interval,
    _t_two_sided,
    regularized_beta,
    t_interval,
    t_quantile,
)

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


def test_pairing_removes_what_the_seeds_share():
    """Seeds differ by a lot (sd 100), the variant adds 5 to each (noise sd 2):
    unpaired intervals overlap, the paired one is narrow and excludes zero."""
    rng = np.random.default_rng(0)
    per_seed = rng.normal(250.0, 100.0, size=12)
    baseline = per_seed + rng.normal(0.0, 2.0, size=12)
    variant = per_seed + 5.0 + rng.normal(0.0, 2.0, size=12)
    paired = paired_t(variant, baseline)
    alone = [bootstrap_mean(variant), bootstrap_mean(baseline)]
    assert paired.mean == pytest.approx(np.mean(variant - baseline))
    assert paired.excludes(0.0)
    assert 2.0 < paired.low < paired.high < 8.0
    for interval in alone:
        assert paired.high - paired.low < 0.1 * (interval.high - interval.low)
    # Unpaired, the two intervals overlap: they cannot tell the variants apart.
    assert alone[0].low < alone[1].high and alone[1].low < alone[0].high


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


# --- Student's t ---------------------------------------------------------------


def t_cdf(t: float, df: float) -> float:
    """P(T <= t), from the two-sided tail the module's tests and intervals use."""
    tail = 0.5 * _t_two_sided(t, df)
    return tail if t < 0 else 1.0 - tail


# Quantiles of Student's t computed with mpmath at 30 digits (findroot on
# 1 - I_x(df/2, 1/2) / 2); they agree with printed tables to their 3 decimals.
T_QUANTILES = [
    (0.975, 1, 12.7062047361747046),
    (0.975, 2, 4.30265272974946385),
    (0.975, 4, 2.77644510519779436),
    (0.975, 9, 2.26215716279820554),
    (0.975, 30, 2.04227245630123831),
    (0.995, 30, 2.74999565356722533),
]


@pytest.mark.parametrize(("p", "df", "expected"), T_QUANTILES)
def test_t_quantiles_match_known_values(p, df, expected):
    assert t_quantile(p, df) == pytest.approx(expected, rel=1e-12)
    assert t_quantile(1.0 - p, df) == pytest.approx(-expected, rel=1e-12)
    assert t_cdf(expected, df) == pytest.approx(p, rel=1e-12)


@pytest.mark.parametrize("t", [-40.0, -3.0, -0.5, 0.0, 0.25, 1.0, 2.5, 12.0, 1e4])
def test_t_cdf_matches_its_closed_forms_at_one_and_two_degrees_of_freedom(t):
    """df = 1 is the Cauchy distribution; df = 2 has F(t) = 1/2 + t / (2 sqrt(2 + t^2))."""
    assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-14)
    assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-14)


def test_t_quantile_approaches_the_normal_one_with_many_degrees_of_freedom():
    assert t_quantile(0.975, 1e8) == pytest.approx(1.959963984540054, abs=1e-7)
    assert t_quantile(0.5, 3) == 0.0
    assert t_cdf(math.inf, 5) == 1.0 and t_cdf(-math.inf, 5) == 0.0


def test_regularized_beta_matches_closed_forms():
    # I_x(a, 1) = x^a and I_x(1, b) = 1 - (1 - x)^b; I_x(a, b) = 1 - I_{1-x}(b, a).
    for x in (0.0, 0.1, 0.5, 0.93, 1.0):
        assert regularized_beta(x, 3.5, 1.0) == pytest.approx(x**3.5, abs=1e-14)
        assert regularized_beta(x, 1.0, 2.5) == pytest.approx(
            1 - (1 - x) ** 2.5, abs=1e-14
        )
        assert regularized_beta(x, 4.5, 0.5) == pytest.approx(
            1 - regularized_beta(1 - x, 0.5, 4.5), abs=1e-14
        )


def test_t_quantile_matches_mpmath_on_a_grid():
    """A cross-check against an independent implementation, where it is installed."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 30
    for df in (1, 3, 7, 9, 19, 60):
        for p in (0.9, 0.975, 0.995, 0.9995):
            x = df / (df + t_quantile(p, df) ** 2)
            exact = 1 - mpmath.betainc(df / 2, 0.5, 0, x, regularized=True) / 2
            assert float(exact) == pytest.approx(p, rel=1e-12), (df, p)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: t_quantile(1.0, 9), r"p must lie in \(0, 1\), got 1.0"),
        (lambda: t_quantile(0.0, 9), r"p must lie in \(0, 1\), got 0.0"),
        (lambda: t_quantile(0.9, 0), "degrees of freedom must be positive, got 0"),
        (lambda: regularized_beta(1.5, 1.0, 1.0), r"x must lie in \[0, 1\]"),
    ],
)
def test_bad_t_arguments_are_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_t_interval_of_one_to_five_by_hand():
    """Mean 3, sd sqrt(2.5), se sqrt(0.5); t_{0.975, 4} = 2.7764451051977944."""
    interval = t_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    half = 2.7764451051977944 * math.sqrt(0.5)
    assert interval.mean == 3.0
    assert interval.low == pytest.approx(3.0 - half, rel=1e-12)  # 1.03676...
    assert interval.high == pytest.approx(3.0 + half, rel=1e-12)  # 4.96324...
    assert (interval.level, interval.n, interval.method) == (0.95, 5, "Student t")
    assert f"{interval:.2f}" == "3.00 [1.04, 4.96]"


# Student's sleep data (Cushny and Peebles; R's `sleep`): extra hours of sleep
# of 10 patients under two drugs. R: t.test(extra ~ group, data = sleep,
# paired = TRUE) gives t = -4.0621, df = 9, p-value = 0.002833 and the 95%
# interval [-2.4598858, -0.7001142] around a mean difference of -1.58.
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def test_paired_t_on_students_sleep_data_matches_r():
    interval = paired_t(SLEEP_1, SLEEP_2)
    assert interval.mean == pytest.approx(-1.58)
    assert interval.low == pytest.approx(-2.4598858, abs=1e-7)
    assert interval.high == pytest.approx(-0.7001142, abs=1e-7)
    assert interval.n == 10
    assert paired_t_pvalue(SLEEP_1, SLEEP_2) == pytest.approx(0.002833, abs=5e-7)
    assert paired_t_pvalue(SLEEP_2, SLEEP_1) == paired_t_pvalue(SLEEP_1, SLEEP_2)


def test_the_t_interval_excludes_zero_exactly_when_the_p_value_is_below_alpha():
    rng = np.random.default_rng(7)
    for _ in range(200):
        base = rng.normal(0.0, 1.0, size=10)
        variant = base + rng.normal(rng.uniform(-1, 1), 1.0, size=10)
        p = paired_t_pvalue(variant, base)
        for alpha in (0.05, 0.01):
            if abs(p - alpha) > 1e-9:  # not on the boundary itself
                assert paired_t(variant, base, level=1 - alpha).excludes(0.0) == (
                    p < alpha
                )


def test_paired_t_edge_cases():
    values = np.array([10.0, 250.0, 31.5, 480.0])
    shifted = paired_t(values + 2.5, values)
    assert (shifted.mean, shifted.low, shifted.high) == (2.5, 2.5, 2.5)
    assert paired_t_pvalue(values + 2.5, values) == 0.0
    assert paired_t_pvalue(values, values) == 1.0
    one = paired_t([5.0], [3.0])  # one seed says nothing about the spread
    assert (one.mean, one.low, one.high) == (2.0, -math.inf, math.inf)
    assert not one.excludes(0.0)
    assert paired_t_pvalue([5.0], [3.0]) == 1.0
    with pytest.raises(ValueError, match="got 3 and 2"):
        paired_t([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="got 3 and 2"):
        paired_t_pvalue([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        paired_t_pvalue([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="level"):
        t_interval([1.0, 2.0], level=95)


def test_t_intervals_hold_their_level_at_ten_seeds_where_the_bootstrap_does_not():
    """Normal samples of 10 seeds, 2,000 trials: the t interval covers the true
    mean 95% of the time (binomial sd 0.5%), the percentile bootstrap about 91%."""
    rng = np.random.default_rng(2024)
    trials, true_mean = 2_000, 5.0
    samples = rng.normal(true_mean, 2.0, size=(trials, 10))
    covered = [t_interval(s).excludes(true_mean) is False for s in samples]
    assert 0.935 <= np.mean(covered) <= 0.965, np.mean(covered)
    booted = [
        not bootstrap_mean(s, resamples=1_000, seed=i).excludes(true_mean)
        for i, s in enumerate(samples[:400])
    ]
    assert np.mean(booted) < 0.935, np.mean(booted)


def test_sign_flip_test_by_hand():
    """d = 1, 2, 3: of the 8 sign patterns only +++ and --- reach |sum| 6."""
    assert paired_sign_flip_pvalue([1.0, 2.0, 3.0], [0.0, 0.0, 0.0]) == 0.25
    # d = -1, 2, 4, sum 5: the sums of +-1 +-2 +-4 are +-7, +-5, +-3, +-1, so 4 of 8.
    assert paired_sign_flip_pvalue([-1.0, 2.0, 4.0], [0.0, 0.0, 0.0]) == 0.5
    # Ten differences of one sign: 2 of 1024 patterns, the smallest p at n = 10.
    assert paired_sign_flip_pvalue(np.arange(1.0, 11.0), np.zeros(10)) == 2 / 1024
    assert paired_sign_flip_pvalue([5.0, 5.0], [5.0, 5.0]) == 1.0


def test_sign_flip_test_on_students_sleep_data():
    """Nine differences of one sign and one zero: only the two all-same-sign
    patterns of the nine reach the observed |sum| of 15.8, and the zero's sign
    doubles them: 4 / 1024."""
    assert paired_sign_flip_pvalue(SLEEP_1, SLEEP_2) == 4 / 1024
    with pytest.raises(ValueError, match="n <= 16, got 17"):
        paired_sign_flip_pvalue(np.arange(17.0), np.zeros(17))
    with pytest.raises(ValueError, match="got 3 and 2"):
        paired_sign_flip_pvalue([1.0, 2.0, 3.0], [1.0, 2.0])


# --- Holm -----------------------------------------------------------------------


def test_holm_on_a_textbook_example():
    """p = 0.01, 0.04, 0.03, 0.005: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1
    is 0.02, 0.03, 0.06, 0.04, made non-decreasing: 0.02, 0.03, 0.06, 0.06 (R's
    p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm") gives 0.03 0.06 0.06 0.02)."""
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02], rtol=1e-12)
    assert (adjusted <= 0.05).tolist() == [True, False, False, True]
    # Unadjusted, all four are below 0.05; Bonferroni (times 4) keeps only 0.005.


def test_holm_keeps_names_caps_at_one_and_handles_ties_and_one_test():
    adjusted = holm({"a": 0.2, "b": 0.001, "c": 0.6, "d": 0.001})
    assert list(adjusted) == ["a", "b", "c", "d"]
    assert adjusted == pytest.approx({"a": 0.4, "b": 0.004, "c": 0.6, "d": 0.004})
    assert holm([0.7, 0.9]).tolist() == [1.0, 1.0]
    assert holm([0.03]).tolist() == [0.03]
    assert holm([]).tolist() == []
    with pytest.raises(ValueError, match="must lie in"):
        holm([0.5, 1.2])


def test_holm_rejects_at_least_what_bonferroni_does_and_at_most_what_no_correction_does():
    rng = np.random.default_rng(3)
    for _ in range(500):
        p = rng.uniform(0, 0.1, size=5) ** rng.uniform(0.5, 3)
        adjusted = holm(p)
        assert np.all(adjusted >= p)
        assert np.all(adjusted <= np.minimum(1.0, 5 * p) + 1e-15)


def test_holm_keeps_the_family_wise_error_below_alpha():
    """Five true nulls, ten seeds each: with no correction some test is wrongly
    "different" in about 1 - 0.95^5 = 23% of families; with Holm in at most 5%."""
    rng = np.random.default_rng(11)
    families, any_raw, any_holm = 1_000, 0, 0
    for _ in range(families):
        base = rng.normal(0.0, 1.0, size=10)
        p = [paired_t_pvalue(base + rng.normal(0, 1, 10), base) for _ in range(5)]
        any_raw += min(p) < 0.05
        any_holm += min(holm(p)) <= 0.05
    assert any_raw / families > 0.15
    assert any_holm / families < 0.065


# --- IQM, probability of improvement, performance profile ----------------------


def iqm(values):
    """The IQM itself: :func:`bootstrap_iqm`'s point estimate."""
    return bootstrap_iqm(values, resamples=1).mean


def test_iqm_of_zero_to_ninety_nine_is_the_mean_of_twenty_five_to_seventy_four():
    assert iqm(np.arange(100)) == 49.5
    assert iqm(np.arange(100)[::-1]) == 49.5  # order does not matter


def test_iqm_where_a_quarter_of_the_runs_is_not_whole():
    """rliable's convention (SciPy's trim_mean(0.25)) drops floor(n / 4) runs
    from each end. Five runs 1, 2, 4, 8, 100: (2 + 4 + 8) / 3."""
    assert iqm([100.0, 1.0, 8.0, 2.0, 4.0]) == pytest.approx(14 / 3)
    ten = [0, 1, 2, 3, 4, 5, 6, 7, 8, 1000]  # n = 10: the middle 6 (2..7)
    assert iqm(ten) == pytest.approx(4.5)
    assert iqm([0, 0, 1, 1, 1, 1, 1, 1, 9, 9]) == pytest.approx(1.0)
    # Seven runs: floor(7 / 4) = 1 dropped from each end, not round(1.75) = 2.
    seven = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 1000.0]
    assert iqm(seven) == pytest.approx((2 + 4 + 8 + 16 + 32) / 5)
    assert iqm([3.0]) == 3.0 and iqm([3.0, 5.0]) == 4.0  # under 4 runs: the mean


def test_bootstrap_iqm_is_within_the_data_and_ignores_outliers():
    scores = [480.0, 490.0, 500.0, 500.0, 495.0, 470.0, 500.0, 485.0, 10.0, 500.0]
    interval = bootstrap_iqm(scores)
    assert interval.mean == iqm(scores)  # whatever the resamples
    assert 485.0 <= interval.mean <= interval.high <= 500.0
    # Resamples with three or more copies of the failed run move the IQM too,
    # but less than the mean (whose low end falls to about 300).
    mean = bootstrap_mean(scores)
    assert mean.low < 350.0 < interval.low
    assert bootstrap_iqm(scores, seed=3) == bootstrap_iqm(scores, seed=3)
    assert bootstrap_iqm([7.0] * 6) == Interval(7.0, 7.0, 7.0, 0.95, 6)
    with pytest.raises(ValueError, match="level"):
        bootstrap_iqm(scores, level=0.0)


def test_probability_of_improvement_on_tiny_samples_by_hand():
    """X = 1, 2, 3 against Y = 2, 2, 0: of the 9 pairs X wins 5 (1 > 0; 2 > 0;
    3 > 2, 2, 0) and ties 2 (2 = 2 twice): (5 + 0.5 * 2) / 9 = 2 / 3."""
    assert probability_of_improvement([1, 2, 3], [2, 2, 0]) == pytest.approx(2 / 3)
    assert probability_of_improvement([2, 2, 0], [1, 2, 3]) == pytest.approx(1 / 3)
    assert probability_of_improvement([5, 6], [1, 2, 3]) == 1.0
    assert probability_of_improvement([500.0] * 4, [500.0] * 7) == 0.5
    assert probability_of_improvement([1.0], [2.0]) == 0.0


def test_probability_of_improvement_is_mann_whitneys_u_over_the_pairs():
    rng = np.random.default_rng(5)
    x, y = rng.integers(0, 6, size=9), rng.integers(0, 6, size=12)
    u = sum((a > b) + 0.5 * (a == b) for a in x for b in y)
    assert probability_of_improvement(x, y) == pytest.approx(u / (9 * 12))
    assert probability_of_improvement(x, y) + probability_of_improvement(y, x) == 1.0


def test_performance_profile_counts_runs_strictly_above_each_threshold():
    profile = performance_profile(
        [0.0, 100.0, 200.0, 500.0, 500.0], [-1, 0, 100, 499, 500]
    )
    np.testing.assert_allclose(profile, [1.0, 0.8, 0.6, 0.4, 0.0])
    steps = np.linspace(0, 500, 11)
    curve = performance_profile(np.random.default_rng(1).uniform(0, 500, 50), steps)
    assert np.all(np.diff(curve) <= 0)  # never rises
    with pytest.raises(ValueError, match="finite"):
        performance_profile([1.0, np.inf], steps)
