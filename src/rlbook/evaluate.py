"""Greedy evaluation of a policy over seeded episodes. Introduced in the chapter
*Tabular SARSA and Q-learning on CartPole*."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from .agents import ArtifactError, load_agent
from .checkpoint import one_line
from .envs import UnknownEnvironmentError, make_env


class EvaluationError(ValueError):
    """Evaluation options that do not fit the agent (``--frames``, ``--envs``)."""


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
        """A JSON-friendly record of the evaluation (:meth:`ReturnStats.summary`)."""
        stats = ReturnStats()
        stats.add(self.returns)
        return stats.summary(self.env_id, self.seed)


def batched_returns(
    act_batch: Callable[[np.ndarray], np.ndarray],
    env_id: str,
    *,
    episodes: int,
    seed: int,
    envs: int,
) -> Iterator[np.ndarray]:
    """Returns of ``episodes`` greedy episodes of a policy on a batch
    ``(N, *obs) -> (N,)``, episode ``i`` reset with ``seed + i``, one chunk of at
    most ``envs`` at a time, so that memory does not grow with ``episodes``."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if envs < 1:
        raise ValueError(f"envs must be >= 1, got {envs}")
    make_env(env_id).close()  # a clear error for an unknown id
    width = min(envs, episodes)
    vector = gym.make_vec(env_id, num_envs=width, vectorization_mode="sync")
    try:
        for start in range(0, episodes, width):
            size = min(width, episodes - start)
            if size < width:  # the last, shorter chunk
                vector.close()
                vector = gym.make_vec(env_id, num_envs=size, vectorization_mode="sync")
            yield _play_chunk(act_batch, vector, size, seed + start)
    finally:
        vector.close()


def _play_chunk(
    act_batch: Callable[[np.ndarray], np.ndarray], vector: Any, size: int, seed: int
) -> np.ndarray:
    """Returns of one episode per env of ``vector``, env ``i`` reset with ``seed + i``."""
    returns = np.zeros(size)
    running = np.ones(size, dtype=bool)
    obs, _ = vector.reset(seed=seed)
    while running.any():
        obs, reward, terminated, truncated, _ = vector.step(act_batch(obs))
        returns += np.where(running, reward, 0.0)
        # A finished env autoresets on its next step; its later rewards are ignored.
        running &= ~(terminated | truncated)
    return returns


class ReturnStats:
    """Count, mean, std, min and max of returns fed in chunks, in constant memory
    (Chan, Golub and LeVeque's pairwise update of the squared deviations)."""

    def __init__(self) -> None:
        self.count = 0
        self._sum = 0.0  # exact for whole-number returns below 2**53
        self._mean = 0.0  # the running mean the squared deviations are taken from
        self._squares = 0.0  # sum of squared deviations from ``_mean``
        self.min = math.inf
        self.max = -math.inf

    def add(self, returns: Iterable[float] | np.ndarray) -> None:
        chunk = np.asarray(returns, dtype=np.float64).ravel()
        if chunk.size == 0:
            return
        n, mean = chunk.size, float(chunk.mean())
        squares = float(((chunk - mean) ** 2).sum())
        total = self.count + n
        delta = mean - self._mean
        self._squares += squares + delta * delta * self.count * n / total
        self._mean += delta * n / total
        self._sum += float(chunk.sum())
        self.count = total
        self.min = min(self.min, float(chunk.min()))
        self.max = max(self.max, float(chunk.max()))

    @property
    def mean(self) -> float:
        return self._sum / self.count if self.count else math.nan

    @property
    def std(self) -> float:
        return math.sqrt(self._squares / self.count) if self.count else math.nan

    def summary(self, env_id: str, seed: int) -> dict[str, Any]:
        """A JSON-friendly record of the returns fed so far."""
        return {
            "env_id": env_id,
            "episodes": self.count,
            "seed": seed,
            "mean_return": round(self.mean, 3),
            "std_return": round(self.std, 3),
            "min_return": self.min,
            "max_return": self.max,
        }


def evaluate_artifact(
    path: str | Path,
    *,
    episodes: int,
    seed: int,
    frames: str | None = None,
    envs: int = 8,
    scores: bool = True,
    returns: bool = False,
) -> dict[str, Any]:
    """Load a shipped agent folder and evaluate it: what ``python -m rlbook evaluate`` prints.

    Pixel agents play through the pipeline their manifest records, on
    ``frames`` (default: those they trained on). Episodes run in chunks of
    ``envs``, statistics kept as they come, so memory does not grow with
    ``episodes`` unless a record lists every Pong game's score (``scores``) or
    every CartPole return (``returns``).
    """
    if episodes < 1:
        raise EvaluationError(f"episodes must be >= 1, got {episodes}")
    if seed < 0:
        raise EvaluationError(f"seed must be >= 0, got {seed}")
    if envs < 1:
        raise EvaluationError(f"--envs must be >= 1, got {envs}")
    agent = load_agent(path)
    problem = _misfit(agent)
    if problem:
        raise ArtifactError(
            f"{str(path)!r}: {problem}; its manifest does not describe its agent: "
            "restore the folder from the repository or export it again"
        )
    try:
        return _evaluate_agent(
            agent, path, episodes, seed, frames, envs, scores, returns
        )
    except (ArtifactError, EvaluationError, UnknownEnvironmentError):
        raise
    except (ValueError, TypeError, IndexError, RuntimeError, AssertionError) as error:
        # A manifest that load_agent let through but the environment does not fit.
        raise ArtifactError(
            f"{str(path)!r}: the agent cannot play {agent.env_id!r} "
            f"({type(error).__name__}: {one_line(error)}); its manifest, weights and "
            "environment do not fit together: restore or re-export the folder"
        ) from error


def _misfit(agent: Any) -> str | None:
    """How the agent's manifest, network and environment disagree, or None:
    mismatches that would otherwise fail deep inside NumPy, torch or Gymnasium,
    or not at all."""
    spec, env_id = agent.spec, agent.env_id
    own = getattr(agent.policy, "misfit", None)  # the Pong and pixel pages' checks
    problem = own(spec) if own is not None else None
    if problem or agent.kind in ("pong-pg", "pong-actor-critic"):
        return problem
    observation, network = spec.get("observation"), spec.get("network")
    if isinstance(observation, dict) and observation.get("env_id", env_id) != env_id:
        return (
            f"env_id is {env_id!r} but the observation record says "
            f"{observation.get('env_id')!r}"
        )
    env = make_env(env_id)
    try:
        space, obs_space = env.action_space, env.observation_space
    finally:
        env.close()
    n_env = int(getattr(space, "n", -1))
    policy = agent.policy
    if hasattr(policy, "q_table"):
        n_actions, reads = int(policy.q_table.shape[1]), len(policy.discretizer.lows)
    elif isinstance(network, dict):
        n_actions, reads = network.get("n_actions"), network.get("obs_dim")
    else:
        return None
    if n_actions != n_env:
        return f"the agent chooses among {n_actions!r} actions but {env_id} has {n_env}"
    shape = getattr(obs_space, "shape", None)
    if observation is None and reads is not None and shape not in (None, (reads,)):
        return (
            f"the agent reads observations of size {reads!r} but {env_id}'s are {shape}"
        )
    return None


def _evaluate_agent(
    agent: Any,
    path: str | Path,
    episodes: int,
    seed: int,
    frames: str | None,
    envs: int,
    scores: bool,
    returns: bool,
) -> dict[str, Any]:
    """:func:`evaluate_artifact` for a loaded agent."""

    record: dict[str, Any] = {"artifact": str(path), "kind": agent.kind}
    if agent.kind in ("pong-pg", "pong-actor-critic"):
        if frames is not None:
            raise EvaluationError(
                "--frames applies to CartPole's pixel agents, not to Pong"
            )
        # whole games, played as the Pong page plays them (rlbook.chapters.pong)
        return {
            **record,
            **agent.policy.evaluate(
                agent.env_id,
                agent.spec["settings"],
                games=episodes,
                seed=seed,
                lanes=envs,
                scores=scores,
            ),
        }
    observation = agent.spec.get("observation")
    if observation is None:
        if frames is not None:
            raise EvaluationError(
                f"--frames applies to agents that play from pixels, not {agent.kind}"
            )
        stats, listed = ReturnStats(), []
        for chunk in batched_returns(
            agent.policy.act_batch,
            agent.env_id,
            episodes=episodes,
            seed=seed,
            envs=envs,
        ):
            stats.add(chunk)
            if returns:
                listed.extend(chunk.tolist())
        record.update(stats.summary(agent.env_id, seed))
        return {**record, "returns": listed} if returns else record
    # from pixels: played as the pixel DQN page plays (rlbook.chapters.dqn_pixels)
    if not hasattr(agent.policy, "evaluate"):
        raise ArtifactError(
            f"{str(path)!r}: its manifest records how the agent sees pixels, but "
            f"a {agent.kind} agent does not play from pixels"
        )
    return {
        **record,
        **agent.policy.evaluate(
            path,
            observation,
            episodes=episodes,
            seed=seed,
            frames=frames,
            envs=envs,
            returns=returns,
        ),
    }
