"""Environment factories with clear errors for a wrong id.

Introduced in the chapter *Tabular SARSA and Q-learning on CartPole*.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np


class UnknownEnvironmentError(ValueError):
    """An environment id Gymnasium does not know."""


def _register_atari() -> None:
    """Make the ``ALE/...`` ids known and keep ALE's banner off stderr."""
    import ale_py

    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    gym.register_envs(ale_py)


def make_env(env_id: str, *, render_mode: str | None = None, **kwargs: Any) -> gym.Env:
    """``gym.make`` with a headless renderer; an unknown id is an
    :class:`UnknownEnvironmentError` naming the closest registered ids."""
    # pygame (CartPole's renderer) must never try to open a window, nor a sound
    # card: with none (Colab, CI), SDL's ALSA probe writes errors to stderr.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    if env_id.startswith("ALE/"):
        _register_atari()
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownEnvironmentError(
            f"unknown environment id {env_id!r}{hint} "
            "(ids are case-sensitive and carry a version, like 'CartPole-v1')"
        )
    return gym.make(env_id, render_mode=render_mode, **kwargs)


def record_episode(
    env_id: str, act: Callable[[np.ndarray], int], *, seed: int
) -> tuple[list[np.ndarray], float]:
    """Play one episode of ``act(obs) -> action`` from ``reset(seed=seed)``; its
    RGB frames (start state, then one per step) for :func:`rlbook.plotting.animate`,
    and its return."""
    env = make_env(env_id, render_mode="rgb_array")
    try:
        obs, _ = env.reset(seed=seed)
        frames, episode_return, done = [env.render()], 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            frames.append(env.render())
            episode_return += float(reward)
            done = terminated or truncated
    finally:
        env.close()
    return frames, episode_return
