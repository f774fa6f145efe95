"""The projects part's CartPole DQN: an episode loop of the classic kind, on Gymnasium.

Tutorial DQNs for CartPole written for the old Gym API share one shape: for
each of a fixed number of episodes, reset, then act epsilon-greedily, store
``(obs, action, reward, next_obs, done)``, take one gradient step on a
minibatch, and stop at ``done``; decay epsilon once per episode and copy the
network into the target network every few episodes. :func:`train_port` is
that loop on Gymnasium's API:

* ``reset`` returns ``(obs, info)`` and takes the episode's seed;
* ``step`` returns five values, ``(obs, reward, terminated, truncated,
  info)``. The old API's single ``done`` was ``terminated or truncated``.

The old loop's bug is what it did with that ``done``: it stored it and
zeroed the bootstrap ``gamma * max Q(next_obs)`` wherever it was true. On
CartPole-v1 an episode is *truncated* at 500 steps by a time limit, which is
not a property of the state: the pole is still up and the future still holds
reward. Treating the time-out as the end of the world teaches the network
that some upright states are worth nothing. The port stores ``terminated``
(the pole fell or the cart left the track) and bootstraps through a
truncation; ``bootstrap_through_timeouts=False`` reproduces the old behaviour
for comparison.

The network, replay memory and loss are the book's own
(:class:`rlbook.dqn.QNetwork`, :class:`rlbook.replay.ReplayBuffer`,
:func:`rlbook.dqn.td_loss`), explained in the chapter *Deep Q-learning on
CartPole's state*.

Introduced in the chapter *A CartPole DQN, ported to Gymnasium*.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..dqn import QNetwork, td_loss
from ..envs import make_env
from ..evaluate import train_seed
from ..replay import ReplayBuffer
from ..seeding import numpy_stream, stream_seed, torch_stream

__all__ = ["PortConfig", "PortRun", "train_port"]


@dataclass(frozen=True)
class PortConfig:
    """The classic loop's settings (one gradient step per environment step)."""

    episodes: int = 500
    hidden: tuple[int, ...] = (128, 128)
    learning_rate: float = 1e-3
    gamma: float = 0.99
    buffer_size: int = 10_000
    batch_size: int = 64
    epsilon_start: float = 1.0
    epsilon_end: float = 0.01
    epsilon_decay: float = 0.98
    """epsilon is multiplied by this after every episode"""
    target_every: int = 10
    """episodes between copies of the network into the target network"""
    bootstrap_through_timeouts: bool = True
    """False: store ``terminated or truncated``, the old loop's bug"""
    max_episode_steps: int | None = None
    """None: CartPole-v1's own time limit (500)"""

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        if not 0 < self.epsilon_decay <= 1:
            raise ValueError(
                f"epsilon_decay must be in (0, 1], got {self.epsilon_decay}"
            )
        if self.target_every < 1:
            raise ValueError(f"target_every must be >= 1, got {self.target_every}")


@dataclass
class PortRun:
    """What :func:`train_port` returns.

    Attributes:
        returns: each episode's return (CartPole: its length).
        steps: environment steps (and gradient steps, one each after the
            buffer holds a batch) over all episodes.
        seconds: wall time of the whole loop.
        timeouts: episodes that ended by the time limit with the pole up.
        stored_terminal: transitions stored with ``terminated`` true, the
            ones whose target drops the bootstrap.
        q_net: the final network.
    """

    returns: list[float]
    steps: int
    seconds: float
    timeouts: int
    stored_terminal: int
    q_net: nn.Module


def train_port(
    config: PortConfig,
    seed: int,
    *,
    device: torch.device | str = "cpu",
    on_episode: Callable[[int, float], Any] | None = None,
    compile_network: bool = False,
    autocast_dtype: torch.dtype | None = None,
) -> PortRun:
    """Train for ``config.episodes`` episodes; reproducible for a seed on the CPU.

    Random streams: ``init`` (weights), ``explore`` (epsilon coins and random
    actions), ``replay`` (minibatches); episode ``i`` resets with
    :func:`rlbook.evaluate.train_seed` ``(seed, i)``.

    ``compile_network`` runs the Q-network through ``torch.compile`` (for
    acting and learning) and ``autocast_dtype`` (e.g. ``torch.bfloat16``)
    runs both under ``torch.autocast``: execution modes, measured by
    ``benchmarks/dqn_port_modes.py``; the algorithm is the same.
    """
    device = torch.device(device)
    if autocast_dtype not in (None, torch.bfloat16):
        raise ValueError(
            f"autocast_dtype must be None or torch.bfloat16, got {autocast_dtype} "
            "(float16 would need a gradient scaler, which this loop does not keep)"
        )
    kwargs = {}
    if config.max_episode_steps is not None:
        kwargs["max_episode_steps"] = config.max_episode_steps
    env = make_env("CartPole-v1", **kwargs)
    torch.manual_seed(stream_seed(seed, "init"))
    q_net = QNetwork(4, 2, config.hidden).to(device)
    target_net = copy.deepcopy(q_net)
    forward = torch.compile(q_net) if compile_network else q_net

    def autocast() -> contextlib.AbstractContextManager[Any]:
        if autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=autocast_dtype)

    optimizer = torch.optim.Adam(q_net.parameters(), lr=config.learning_rate)
    buffer = ReplayBuffer(
        config.buffer_size, (4,), device, generator=torch_stream(seed, "replay")
    )
    coins = numpy_stream(seed, "explore")
    epsilon = config.epsilon_start
    returns: list[float] = []
    steps = timeouts = stored_terminal = 0
    start = time.perf_counter()
    for episode in range(config.episodes):
        obs, _ = env.reset(seed=train_seed(seed, episode))
        total = 0.0
        while True:
            if coins.random() < epsilon:
                action = int(coins.integers(2))
            else:
                with torch.no_grad(), autocast():
                    x = torch.as_tensor(obs, dtype=torch.float32, device=device)
                    action = int(forward(x).argmax())
            next_obs, reward, terminated, truncated, _ = env.step(action)
            if config.bootstrap_through_timeouts:
                end_of_world = terminated
            else:  # the old API's `done`
                end_of_world = terminated or truncated
            buffer.add(obs, action, reward, next_obs, end_of_world)
            stored_terminal += bool(end_of_world)
            obs, total, steps = next_obs, total + float(reward), steps + 1
            if len(buffer) >= config.batch_size:
                batch = buffer.sample(config.batch_size)
                with autocast():
                    loss, _ = td_loss(forward, target_net, batch, gamma=config.gamma)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            if terminated or truncated:
                timeouts += bool(truncated and not terminated)
                break
        returns.append(total)
        epsilon = max(config.epsilon_end, epsilon * config.epsilon_decay)
        if (episode + 1) % config.target_every == 0:
            target_net.load_state_dict(q_net.state_dict())
        if on_episode is not None:
            on_episode(episode, total)
    env.close()
    return PortRun(
        returns=returns,
        steps=steps,
        seconds=time.perf_counter() - start,
        timeouts=timeouts,
        stored_terminal=stored_terminal,
        q_net=q_net,
    )
