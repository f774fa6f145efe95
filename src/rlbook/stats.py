"""Confidence intervals over seeds, what several chapters share.

The percentile bootstrap (:func:`percentile_bootstrap`) is too narrow with few seeds
(about 91% coverage for a nominal 95% at 10); Student's t (:func:`t_interval`)
is exact for normal scores and close at n = 10. Written without SciPy rather
than taken from ``rliable``, which needs SciPy, ``arch``, ``statsmodels`` and
``absl-py``. Introduced in *Deep Q-learning on CartPole's state*.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .seeding import numpy_stream


@dataclass(frozen=True)
class Interval:
    """A statistic over ``n`` seeds (the mean, or another such as the IQM) and
    its confidence interval ``[low, high]`` at ``level``."""

    mean: float
    low: float
    high: float
    level: float
    n: int
    method: str = "percentile bootstrap"

    def excludes(self, value: float = 0.0) -> bool:
        """Whether ``value`` lies outside ``[low, high]``."""
        return not self.low <= value <= self.high

    def __format__(self, spec: str) -> str:
        spec = spec or ".1f"
        return f"{self.mean:{spec}} [{self.low:{spec}}, {self.high:{spec}}]"


def as_scores(values: np.ndarray | list[float]) -> np.ndarray:
    """``values`` as a flat float array, checked: at least one, all finite."""
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise ValueError("need at least one value (one per seed)")
    if not np.all(np.isfinite(array)):
        raise ValueError("values must be finite")
    return array


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")


def percentile_bootstrap(
    array: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    level: float,
    resamples: int,
    seed: int,
) -> tuple[float, float]:
    """The central ``level`` share of ``statistic`` (a (resamples, seeds) array
    to one value per row) over seeds resampled with replacement."""
    _check_level(level)
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    rng = numpy_stream(seed, "bootstrap")
    picks = rng.integers(0, array.size, size=(resamples, array.size))
    estimates = statistic(array[picks])
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(estimates, [tail, 1.0 - tail])
    return float(low), float(high)


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz), which
    converges quickly for ``x < (a + 1) / (a + b + 2)``; *Numerical Recipes*, 6.4."""
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 1000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),  # even step
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),  # odd
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < eps:
            return result
    raise ArithmeticError(f"incomplete beta did not converge for a={a}, b={b}, x={x}")


def regularized_beta(x: float, a: float, b: float) -> float:
    """The regularized incomplete beta function I_x(a, b), x in [0, 1], a, b > 0."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must lie in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    log_front = (
        math.lgamma(a + b)
        - math.lgamma(a)
        - math.lgamma(b)
        + a * math.log(x)
        + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def _t_two_sided(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return regularized_beta(df / (df + t * t), df / 2.0, 0.5)


@functools.lru_cache(maxsize=1024)
def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom, by bisection
    on the upper tail (precise far out, about 2 ms); cached, as pages repeat them."""

    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    if not df > 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    upper = 1.0 - p
    low, high = 0.0, 1.0
    while 0.5 * _t_two_sided(high, df) > upper:
        low, high = high, 2.0 * high
    for _ in range(2_000):
        middle = 0.5 * (low + high)
        if middle in (low, high):
            break
        if 0.5 * _t_two_sided(middle, df) > upper:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def t_interval(values: np.ndarray | list[float], *, level: float = 0.95) -> Interval:
    """The mean of ``values`` (one per seed) with Student's t interval,
    ``mean +- t_{(1 + level) / 2, n - 1} * sd / sqrt(n)``; one seed gives (-inf, inf)."""
    array = as_scores(values)
    _check_level(level)
    mean, n = float(array.mean()), array.size
    if n == 1:
        return Interval(mean, -math.inf, math.inf, level, n, "Student t")
    half = (
        t_quantile((1.0 + level) / 2.0, n - 1) * float(array.std(ddof=1)) / math.sqrt(n)
    )
    return Interval(mean, mean - half, mean + half, level, n, "Student t")
