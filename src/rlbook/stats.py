"""Confidence intervals over seeds: how sure a comparison of RL runs can be.

A training run's score depends on its seed as much as on its algorithm
(Henderson et al., 2018), so the book reports every comparison as a mean over
seeds with a bootstrap confidence interval, and compares variants *paired*:
seed ``s`` of every variant starts from the same weights and the same start
states, so the per-seed differences cancel what the seeds share (Agarwal et
al., 2021, recommend interval estimates over point estimates for the same
reason).

Introduced in the chapter *Deep Q-learning on CartPole's state*.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .seeding import numpy_stream


@dataclass(frozen=True)
class Interval:
    """A mean over seeds and its percentile-bootstrap confidence interval."""

    mean: float
    low: float
    high: float
    level: float
    n: int

    def excludes(self, value: float = 0.0) -> bool:
        """Whether ``value`` lies outside ``[low, high]``."""
        return not self.low <= value <= self.high

    def __format__(self, spec: str) -> str:
        spec = spec or ".1f"
        return f"{self.mean:{spec}} [{self.low:{spec}}, {self.high:{spec}}]"


def bootstrap_mean(
    values: np.ndarray | list[float],
    *,
    level: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> Interval:
    """The mean of ``values`` (one per seed) with a percentile-bootstrap interval.

    The interval resamples the seeds with replacement ``resamples`` times and
    takes the central ``level`` share of the resampled means. It describes
    how much the mean would move with other seeds of the same kind; with few
    seeds it is too narrow, and with one seed it is a single point.

    Raises:
        ValueError: for no values, non-finite values or a level outside (0, 1).
    """
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise ValueError("need at least one value (one per seed)")
    if not np.all(np.isfinite(array)):
        raise ValueError("values must be finite")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    rng = numpy_stream(seed, "bootstrap")
    picks = rng.integers(0, array.size, size=(resamples, array.size))
    means = array[picks].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(float(array.mean()), float(low), float(high), level, array.size)


def paired_difference(
    values: np.ndarray | list[float],
    baseline: np.ndarray | list[float],
    *,
    level: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> Interval:
    """``values - baseline`` seed by seed, with :func:`bootstrap_mean`'s interval.

    Both arrays list one score per seed, in the same seed order. Pairing
    removes the variation the two share through their seed.
    """
    a = np.asarray(values, dtype=np.float64).ravel()
    b = np.asarray(baseline, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(
            f"paired scores need one value per seed on both sides, got {a.size} and {b.size}"
        )
    return bootstrap_mean(a - b, level=level, resamples=resamples, seed=seed)
