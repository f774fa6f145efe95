"""Generated from chapters/dqn_port.md by scripts/sync_notebooks.py: do not edit.

The page's code cells tagged ``export``, in page order. Edit them on the
page, then run scripts/sync_notebooks.py.
"""

import contextlib
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rlbook.chapters.dqn_state import td_loss
from rlbook.dqn import QNetwork
from rlbook.envs import make_env
from rlbook.replay import ReplayBuffer
from rlbook.seeding import (
    numpy_stream,
    stream_seed,
    torch_stream,
    train_seed,
)


@dataclass(frozen=True)
class PortConfig:
    """The classic loop's settings (one gradient step per env step)."""

    episodes: int = 500
    """episodes to train"""
    hidden: tuple[int, ...] = (128, 128)
    """hidden layers of the Q-network"""
    learning_rate: float = 1e-3
    """Adam's step size"""
    gamma: float = 0.99
    """discount"""
    buffer_size: int = 10_000
    """transitions the replay memory keeps"""
    batch_size: int = 64
    """transitions per gradient step"""
    epsilon_start: float = 1.0
    """exploration rate of the first episode"""
    epsilon_end: float = 0.01
    """the floor of the exploration rate"""
    epsilon_decay: float = 0.98
    """epsilon is multiplied by this after every episode"""
    target_every: int = 10
    """episodes between copies of the network into the target network"""
    bootstrap_through_timeouts: bool = True
    """False: store terminated or truncated, the old loop's bug"""
    max_episode_steps: int | None = None
    """None: CartPole-v1's own time limit (500)"""

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ValueError(
                f"episodes must be >= 1, got {self.episodes}"
            )
        if not 0 < self.epsilon_decay <= 1:
            raise ValueError(
                "epsilon_decay must be in (0, 1], got "
                f"{self.epsilon_decay}"
            )
        if self.target_every < 1:
            raise ValueError(
                f"target_every must be >= 1, got {self.target_every}"
            )


@dataclass
class PortRun:
    """What train_port returns."""

    returns: list[float]
    """each episode's return (CartPole: its length)"""
    steps: int
    """environment steps (and gradient steps) over all episodes"""
    seconds: float
    """wall time of the whole loop"""
    timeouts: int
    """episodes that ended by the time limit with the pole up"""
    stored_terminal: int
    """transitions stored as terminal: their target drops the bootstrap"""
    q_net: nn.Module
    """the final network"""


def train_port(
    config: PortConfig,
    seed: int,
    *,
    device: torch.device | str = "cpu",
    on_episode: Callable[[int, float], Any] | None = None,
    compile_network: bool = False,
    autocast_dtype: torch.dtype | None = None,
) -> PortRun:
    """Train config.episodes episodes; reproducible on the CPU."""
    device = torch.device(device)
    if autocast_dtype not in (None, torch.bfloat16):
        raise ValueError(
            "autocast_dtype must be None or torch.bfloat16, got "
            f"{autocast_dtype} (float16 would need a gradient scaler, "
            "which this loop does not keep)"
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

    optimizer = torch.optim.Adam(
        q_net.parameters(), lr=config.learning_rate
    )
    buffer = ReplayBuffer(
        config.buffer_size,
        (4,),
        device,
        generator=torch_stream(seed, "replay"),
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
                    x = torch.as_tensor(
                        obs, dtype=torch.float32, device=device
                    )
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
                    loss, _ = td_loss(
                        forward, target_net, batch, gamma=config.gamma
                    )
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
