"""Generated from chapters/tabular_cartpole.md by scripts/sync_notebooks.py: do not edit.

The page's code cells tagged ``export``, in page order. Edit them on the
page, then run scripts/sync_notebooks.py.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlbook.agents import ArtifactError, register_kind
from rlbook.chapters import add_to_class
from rlbook.envs import make_env
from rlbook.evaluate import EvalResult


@dataclass(frozen=True)
class Discretizer:
    """Uniform bins per state variable, combined into one table row.

    Each variable ``i`` is clipped to ``[lows[i], highs[i]]`` and cut into
    ``bins[i]`` equal-width buckets numbered ``0 .. bins[i] - 1``; the
    bucket numbers are read as the digits of a mixed-radix number, so a
    state maps to exactly one row in ``0 .. prod(bins) - 1``.

    Attributes:
        lows, highs: clipping range per variable, shape ``(D,)``.
        bins: buckets per variable, shape ``(D,)``.
    """

    lows: tuple[float, ...]
    highs: tuple[float, ...]
    bins: tuple[int, ...]

    def __post_init__(self) -> None:
        if (
            not (len(self.lows) == len(self.highs) == len(self.bins))
            or not self.bins
        ):
            raise ValueError(
                "lows, highs and bins need one entry per state variable"
            )
        if any(b < 1 for b in self.bins):
            raise ValueError(
                f"every variable needs at least one bin, got {self.bins}"
            )
        if any(
            hi <= lo for lo, hi in zip(self.lows, self.highs, strict=True)
        ):
            raise ValueError(
                "each high must exceed its low: "
                f"{self.lows} vs {self.highs}"
            )

    @classmethod
    def uniform(
        cls, lows: Sequence[float], highs: Sequence[float], bins: int
    ) -> "Discretizer":
        """The same number of ``bins`` for every variable."""
        return cls(
            tuple(map(float, lows)),
            tuple(map(float, highs)),
            (int(bins),) * len(lows),
        )

    @property
    def n_states(self) -> int:
        """Number of table rows: the product of ``bins``."""
        return int(np.prod(self.bins))

    def to_dict(self) -> dict[str, list[float] | list[int]]:
        """A JSON-friendly description (for shipped agents)."""
        return {
            "lows": list(self.lows),
            "highs": list(self.highs),
            "bins": list(self.bins),
        }

    @classmethod
    def from_dict(cls, spec: dict) -> "Discretizer":
        """Inverse of :meth:`to_dict`."""
        return cls(
            tuple(float(v) for v in spec["lows"]),
            tuple(float(v) for v in spec["highs"]),
            tuple(int(v) for v in spec["bins"]),
        )


@add_to_class(Discretizer)
def buckets(self, obs: np.ndarray) -> np.ndarray:
    """Bucket number of each variable: ``(..., D)`` floats -> ``(..., D)``
    ints."""
    lows = np.asarray(self.lows)
    highs = np.asarray(self.highs)
    bins = np.asarray(self.bins)
    fraction = (np.clip(obs, lows, highs) - lows) / (highs - lows)
    # fraction == 1.0 (the top edge) would give bucket `bins`: clamp it
    # into the last one.
    return np.minimum((fraction * bins).astype(np.int64), bins - 1)


@add_to_class(Discretizer)
def index(self, obs: np.ndarray) -> np.ndarray:
    """Table row of each state: ``(..., D)`` -> ``(...)`` ints in
    ``[0, n_states)``."""
    strides = np.cumprod((1, *self.bins[:-1]))
    return self.buckets(obs) @ strides


@add_to_class(Discretizer)
def row(self, obs: np.ndarray) -> int:
    """Table row of one state ``(D,)``: :meth:`index` without NumPy's
    per-call overhead.

    Called once per environment step, so it works on plain Python floats.
    """
    row, stride = 0, 1
    for x, low, high, n in zip(
        obs.tolist(), self.lows, self.highs, self.bins, strict=True
    ):
        bucket = int((x - low) / (high - low) * n) if x > low else 0
        row += (bucket if bucket < n else n - 1) * stride
        stride *= n
    return row


def evaluate_policy(
    act: Callable[[np.ndarray], int],
    env_id: str,
    *,
    episodes: int,
    seed: int,
) -> EvalResult:
    """Run ``act`` greedily for ``episodes`` episodes, episode ``i`` from
    ``env.reset(seed=seed + i)`` (use seeds that training never used)."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    env = make_env(env_id)
    returns = np.zeros(episodes)
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            done = False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(act(obs))
                returns[episode] += float(reward)
                done = terminated or truncated
    finally:
        env.close()
    return EvalResult(env_id, seed, returns)


@dataclass(frozen=True)
class TabularPolicy:
    """Greedy action of a Q-table indexed by a :class:`Discretizer`."""

    discretizer: Discretizer
    q_table: np.ndarray  # (n_states, n_actions)

    def act(self, obs: np.ndarray) -> int:
        return int(np.argmax(self.q_table[self.discretizer.row(obs)]))

    def act_batch(self, obs: np.ndarray) -> np.ndarray:
        """Greedy actions of a batch ``(N, D) -> (N,)``."""
        rows = self.discretizer.index(obs)
        return np.argmax(self.q_table[rows], axis=1)


@register_kind("q-table")
def _build_q_table(
    spec: Mapping[str, Any], weights: Mapping[str, Any]
) -> TabularPolicy:
    discretizer = Discretizer.from_dict(dict(spec["discretizer"]))
    # Detached and on the CPU whatever device the weights were loaded
    # to: the table is read with NumPy.
    table = weights["q_table"].detach().cpu().numpy()
    if table.ndim != 2 or table.shape[0] != discretizer.n_states:
        raise ArtifactError(
            f"q_table has shape {tuple(table.shape)}, expected "
            f"({discretizer.n_states}, n_actions)"
        )
    return TabularPolicy(discretizer, table)
