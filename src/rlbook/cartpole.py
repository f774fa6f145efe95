"""Many CartPole-v1 episodes stepped at once in NumPy, identical to Gymnasium's.

One step of ``N`` episodes costs a dozen NumPy operations instead of ``N``
Python calls. Same physics constants (read from Gymnasium's class), same Euler
update in the same order of float operations, same float32 observations and
500-step limit, same start state for a reset seed: ``tests/test_cartpole.py``
checks it step for step. Introduced in *Deep Q-learning on CartPole's state*.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

_PHYSICS = CartPoleEnv()
GRAVITY = _PHYSICS.gravity
TOTAL_MASS = _PHYSICS.total_mass
MASSPOLE = _PHYSICS.masspole
LENGTH = _PHYSICS.length
POLEMASS_LENGTH = _PHYSICS.polemass_length
FORCE_MAG = _PHYSICS.force_mag
TAU = _PHYSICS.tau
X_THRESHOLD = _PHYSICS.x_threshold
THETA_THRESHOLD = _PHYSICS.theta_threshold_radians
if _PHYSICS.kinematics_integrator != "euler":  # pragma: no cover
    raise RuntimeError("rlbook.cartpole assumes Gymnasium's Euler integrator")
del _PHYSICS

_SPEC = gym.spec("CartPole-v1")
MAX_EPISODE_STEPS: int = int(_SPEC.max_episode_steps or 500)
"""CartPole-v1's time limit: an episode is truncated after this many steps."""
REWARD_THRESHOLD: float = float(_SPEC.reward_threshold or 475.0)
"""CartPole-v1's solve line: an average return of at least this."""


def start_state(seed: int) -> np.ndarray:
    """The float64 state ``gym.make("CartPole-v1").reset(seed=seed)`` starts from, ``(4,)``."""
    return np.random.default_rng(seed).uniform(-0.05, 0.05, size=4)


class CartPoleBatch:
    """``n`` CartPole-v1 episodes stepped together: ``state`` ``(n, 4)`` float64,
    the exact physical state, and ``elapsed`` ``(n,)`` steps of each episode."""

    def __init__(self, n: int) -> None:
        if int(n) < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        self.n = int(n)
        self.state = np.zeros((self.n, 4))
        self.elapsed = np.zeros(self.n, dtype=np.int64)

    def reset(self, seeds: Sequence[int] | np.ndarray) -> np.ndarray:
        """Start every episode anew, episode ``i`` from ``reset(seed=seeds[i])``;
        observations ``(n, 4)`` float32."""
        seeds = np.asarray(seeds, dtype=np.int64)
        if seeds.shape != (self.n,):
            raise ValueError(f"need {self.n} seeds, got shape {seeds.shape}")
        for i, seed in enumerate(seeds.tolist()):
            self.state[i] = start_state(seed)
        self.elapsed[:] = 0
        return self.state.astype(np.float32)

    def reset_one(self, i: int, seed: int) -> np.ndarray:
        """Start episode ``i`` anew from ``reset(seed=seed)``; its observation ``(4,)``."""
        self.state[i] = start_state(seed)
        self.elapsed[i] = 0
        return self.state[i].astype(np.float32)

    def step(
        self, action: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Apply ``action`` ``(n,)`` (0 left, 1 right); ``(next_obs, reward,
        terminated, truncated)``. An ended episode must be reset (:meth:`reset_one`)
        before its next step; its ``next_obs`` is the last state, as Gymnasium's."""
        action = np.asarray(action)
        if action.shape != (self.n,):
            raise ValueError(f"need {self.n} actions, got shape {action.shape}")
        if ((action != 0) & (action != 1)).any():
            raise ValueError(f"CartPole's actions are 0 and 1, got {np.unique(action)}")
        x, x_dot, theta, theta_dot = self.state.T
        force = np.where(action == 1, FORCE_MAG, -FORCE_MAG)
        costheta, sintheta = np.cos(theta), np.sin(theta)
        # The same operations, in the same order, as Gymnasium's CartPoleEnv.step.
        temp = (force + POLEMASS_LENGTH * np.square(theta_dot) * sintheta) / TOTAL_MASS
        thetaacc = (GRAVITY * sintheta - costheta * temp) / (
            LENGTH * (4.0 / 3.0 - MASSPOLE * np.square(costheta) / TOTAL_MASS)
        )
        xacc = temp - POLEMASS_LENGTH * thetaacc * costheta / TOTAL_MASS
        self.state = np.stack(
            (
                x + TAU * x_dot,
                x_dot + TAU * xacc,
                theta + TAU * theta_dot,
                theta_dot + TAU * thetaacc,
            ),
            axis=1,
        )
        x, theta = self.state[:, 0], self.state[:, 2]
        terminated = (
            (x < -X_THRESHOLD)
            | (x > X_THRESHOLD)
            | (theta < -THETA_THRESHOLD)
            | (theta > THETA_THRESHOLD)
        )
        self.elapsed += 1
        truncated = self.elapsed >= MAX_EPISODE_STEPS
        reward = np.ones(self.n)
        return self.state.astype(np.float32), reward, terminated, truncated


@dataclass(frozen=True)
class GreedyEvaluation:
    """``(runs, episodes)`` arrays of greedy episodes: ``returns``, ``discounted``
    returns (what a Q-value estimates) and ``start_values``, ``max_a Q(s_0, a)``."""

    seed: int
    gamma: float
    returns: np.ndarray
    discounted: np.ndarray
    start_values: np.ndarray


def evaluate_greedy(
    q_net: torch.nn.Module,
    *,
    episodes: int,
    seed: int,
    runs: int | None = None,
    gamma: float = 0.99,
) -> GreedyEvaluation:
    """Play ``episodes`` greedy CartPole-v1 episodes (reset seeds ``seed, seed + 1,
    ...``, as the state DQN page's ``evaluate_batched``) with every network of
    ``q_net`` at once: ``(N, 4) -> (N, 2)``, or ``(R, N, 4) -> (R, N, 2)`` for
    ``runs=R`` stacked networks. Eval mode for the call, restored after.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    stacked = runs is not None
    n_runs = int(runs) if stacked else 1
    if n_runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    device = next(q_net.parameters()).device
    env = CartPoleBatch(n_runs * episodes)
    obs = env.reset(np.tile(seed + np.arange(episodes), n_runs))
    returns = np.zeros(env.n)
    discounted = np.zeros(env.n)
    running = np.ones(env.n, dtype=bool)
    start_values = np.zeros(env.n)
    discount = 1.0
    was_training = q_net.training
    q_net.eval()
    try:
        with torch.inference_mode():
            for step in range(MAX_EPISODE_STEPS):
                x = torch.as_tensor(obs, device=device)
                q_values = q_net(x.view(n_runs, episodes, 4) if stacked else x)
                q_values = q_values.reshape(env.n, -1).cpu()
                if step == 0:
                    start_values = q_values.max(dim=1).values.double().numpy()
                obs, reward, terminated, truncated = env.step(
                    q_values.argmax(dim=1).numpy()
                )
                returns += np.where(running, reward, 0.0)
                discounted += np.where(running, discount * reward, 0.0)
                discount *= gamma
                running &= ~(terminated | truncated)
                if not running.any():
                    break
    finally:
        q_net.train(was_training)
    arrays = (a.reshape(n_runs, episodes) for a in (returns, discounted, start_values))
    return GreedyEvaluation(seed, gamma, *arrays)


TEST_EPISODES = 100
"""Greedy test episodes per run, on seeds ``TEST_SEED, TEST_SEED + 1, ...``."""
