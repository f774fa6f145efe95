"""Greedy evaluation of a policy over seeded episodes.

Introduced in the chapter *Tabular SARSA and Q-learning on CartPole*.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .agents import load_agent
from .envs import make_env


@dataclass(frozen=True)
class EvalResult:
    """Returns of ``episodes`` episodes; episode ``i`` was reset with ``seed + i``."""

    env_id: str
    seed: int
    returns: np.ndarray  # (episodes,)

    @property
    def mean(self) -> float:
        return float(self.returns.mean())

    @property
    def std(self) -> float:
        return float(self.returns.std())

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly record of the evaluation."""
        return {
            "env_id": self.env_id,
            "episodes": int(self.returns.size),
            "seed": self.seed,
            "mean_return": round(self.mean, 3),
            "std_return": round(self.std, 3),
            "min_return": float(self.returns.min()),
            "max_return": float(self.returns.max()),
        }


def evaluate_policy(
    act: Callable[[np.ndarray], int], env_id: str, *, episodes: int, seed: int
) -> EvalResult:
    """Run ``act`` greedily for ``episodes`` episodes; deterministic for a given ``seed``.

    Episode ``i`` starts from ``env.reset(seed=seed + i)``, so two evaluations
    with the same seed see the same start states. Use evaluation seeds that
    training never used.
    """
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


def evaluate_artifact(path: str | Path, *, episodes: int, seed: int) -> dict[str, Any]:
    """Load a shipped agent folder and evaluate it: what ``python -m rlbook evaluate`` prints."""
    agent = load_agent(path)
    result = evaluate_policy(agent.policy.act, agent.env_id, episodes=episodes, seed=seed)
    return {"artifact": str(path), "kind": agent.kind, **result.summary()}
