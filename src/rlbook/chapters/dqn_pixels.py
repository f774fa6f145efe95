"""Generated from chapters/dqn_pixels.md by scripts/sync_notebooks.py: do not edit.

The page's code cells tagged ``export``, in page order. Edit them on the
page, then run scripts/sync_notebooks.py.
"""

import copy
import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlbook.chapters import add_to_class
from rlbook.checkpoint import (
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from rlbook.pixels import (
    FRAME_SIZE,
    RENDERERS,
    PixelCartPole,
    evaluate_pixels,
)
from rlbook.replay import FrameBatch, FrameReplayMemory
from rlbook.seeding import (
    VALIDATION_SEED,
    numpy_stream,
    stream_seed,
    torch_stream,
    train_seed,
)


class PixelQNetwork(nn.Module):
    """Action values from a stack of k uint8 frames (B, k, H, W)."""

    def __init__(
        self,
        stack: int,
        n_actions: int = 2,
        arch: str = "nature",
        *,
        frame_size: int = FRAME_SIZE,
        dueling: bool = False,
    ) -> None:
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(
                f"arch must be one of {ARCHITECTURES}, got {arch!r}"
            )
        self.spec = {
            "stack": int(stack),
            "n_actions": int(n_actions),
            "arch": arch,
            "frame_size": int(frame_size),
            "dueling": bool(dueling),
        }
        if arch == "nature":
            self.features = nn.Sequential(
                nn.Conv2d(stack, 32, 8, stride=4),
                nn.ReLU(),
                nn.Conv2d(32, 64, 4, stride=2),
                nn.ReLU(),
                nn.Conv2d(64, 64, 3),
                nn.ReLU(),
                nn.Flatten(),
            )
        else:
            layers: list[nn.Module] = [
                nn.Conv2d(stack, 128, 8, stride=4),
                nn.ReLU(),
                nn.Conv2d(128, 128, 4, stride=2),
                nn.ReLU(),
            ]
            for _ in range(3):
                layers += [
                    nn.Conv2d(128, 128, 3, padding=1),
                    nn.BatchNorm2d(128),
                    nn.ReLU(),
                ]
            self.features = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            probe = torch.zeros(1, stack, frame_size, frame_size)
            width = self.features(probe).shape[1]
        self.dueling = dueling
        self.hidden = nn.Sequential(nn.Linear(width, 512), nn.ReLU())
        self.head = nn.Linear(
            512, n_actions + 1 if dueling else n_actions
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dtype == torch.uint8:
            x = frames.float() / 255.0
        else:
            x = frames
        out = self.head(self.hidden(self.features(x)))
        if not self.dueling:
            return out
        # dueling: a state value plus each action's centred advantage
        value, advantage = out[:, :1], out[:, 1:]
        return value + advantage - advantage.mean(dim=1, keepdim=True)


ARCHITECTURES = ("nature", "lecture")


@dataclass(frozen=True)
class PixelDQNConfig:
    """DQN from CartPole's pixels. Steps count environment transitions."""

    total_steps: int = 200_000
    """environment transitions in the run, summed over the envs"""
    envs: int = 8
    """CartPoles stepped together"""
    stack: int = 3
    """frames per observation"""
    arch: str = "nature"
    """network: "nature" or "lecture" (see PixelQNetwork)"""
    buffer_size: int = 100_000
    """frames kept by the replay memory"""
    batch_size: int = 64
    """transitions per update"""
    learning_starts: int = 5_000
    """random transitions before the first update"""
    learning_rate: float = 1e-4
    """Adam's learning rate"""
    gamma: float = 0.99
    """discount factor"""
    n_step: int = 1
    """steps summed into each target (1: one-step TD)"""
    train_every: int = 2
    """transitions per update"""
    target_every: int = 1_000
    """updates between target-network syncs"""
    epsilon_end: float = 0.01
    """epsilon decays linearly from 1 to this"""
    epsilon_fraction: float = 0.1
    """share of the run over which epsilon decays"""
    max_grad_norm: float = 10.0
    """gradient-norm clipping"""
    huber: bool = True
    """Huber loss instead of squared error"""
    double: bool = True
    """Double DQN targets"""
    dueling: bool = False
    """dueling value/advantage head"""
    shift: int = 0
    """random-shift augmentation in pixels (0: none)"""
    frames: str = "simple"
    """what the agent learns from: "simple" frames or "batched"
    (Gymnasium's picture, redrawn); see rlbook.pixels"""
    validate_every: int = 10_000
    """transitions between greedy validations (best weights kept)"""
    validate_episodes: int = 16
    """episodes per validation, reset with VALIDATION_SEED, +1, ..."""

    def __post_init__(self) -> None:
        if self.frames not in RENDERERS:
            raise ValueError(
                f"frames must be one of {sorted(RENDERERS)}, "
                f"got {self.frames!r}"
            )
        if self.arch not in ARCHITECTURES:
            raise ValueError(
                f"arch must be one of {ARCHITECTURES}, got {self.arch!r}"
            )
        if not 0 < self.validate_every <= self.total_steps:
            raise ValueError(
                f"validate_every={self.validate_every} must lie in "
                f"(0, total_steps={self.total_steps}]: the best weights "
                "come from validations"
            )
        for name in (
            "envs",
            "stack",
            "batch_size",
            "n_step",
            "train_every",
        ):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"{name} must be >= 1, got {getattr(self, name)}"
                )

    def epsilon(self, step: int) -> float:
        """Linear decay from 1 to epsilon_end over epsilon_fraction."""
        decay = self.epsilon_fraction * self.total_steps
        return max(
            self.epsilon_end,
            1.0 - (1.0 - self.epsilon_end) * step / decay,
        )


def random_shift(
    frames: torch.Tensor, pad: int, generator: torch.Generator
) -> torch.Tensor:
    """Shift each stack by up to pad pixels; (B, k, H, W) float."""
    if pad == 0:
        return frames
    b, k, h, w = frames.shape
    padded = F.pad(frames, (pad, pad, pad, pad), mode="replicate")
    dev = frames.device
    dy, dx = torch.randint(
        0, 2 * pad + 1, (2, b), device=dev, generator=generator
    )
    rows = (dy[:, None] + torch.arange(h, device=dev))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, None, :]
    batch = torch.arange(b, device=dev)[:, None, None, None]
    channel = torch.arange(k, device=dev)[None, :, None, None]
    return padded[batch, channel, rows, cols]


class PixelDQN:
    """One training run of DQN from pixels."""

    def __init__(
        self,
        config: PixelDQNConfig,
        seed: int,
        device: str | torch.device = "cpu",
    ):
        self.config, self.seed = config, int(seed)
        self.device = torch.device(device)
        torch.manual_seed(stream_seed(seed, "init"))
        self.q_net = PixelQNetwork(
            config.stack, 2, config.arch, dueling=config.dueling
        ).to(self.device)
        self.target_net = copy.deepcopy(self.q_net).eval()
        self.optimizer = torch.optim.Adam(
            self.q_net.parameters(), lr=config.learning_rate
        )
        self.memory = FrameReplayMemory(
            config.buffer_size,
            (FRAME_SIZE, FRAME_SIZE),
            config.stack,
            lanes=config.envs,
            device=self.device,
            generator=torch_stream(seed, "replay", self.device),
        )
        self.augment = torch_stream(seed, "augment", self.device)
        self.explore = numpy_stream(seed, "explore")
        self.env = PixelCartPole(
            config.envs,
            config.stack,
            episode_seed=functools.partial(train_seed, seed),
            renderer=config.frames,
        )
        self.memory.begin(self.env.reset())
        self.step, self.updates, self.seconds = 0, 0, 0.0
        self.history: dict[str, list[float]] = {
            "episode_end": [],
            "episode_return": [],
            "validation_step": [],
            "validation_return": [],
        }
        self.best_score, self.best_step = -np.inf, 0
        self.best_state: dict[str, torch.Tensor] = copy.deepcopy(
            self.q_net.state_dict()
        )


@add_to_class(PixelDQN)
def loss(self, batch: FrameBatch) -> torch.Tensor:
    """The n-step Double DQN loss of a batch (Huber or squared error)."""
    config = self.config
    obs = random_shift(
        batch.obs.float() / 255.0, config.shift, self.augment
    )
    next_obs = random_shift(
        batch.next_obs.float() / 255.0, config.shift, self.augment
    )
    q_taken = self.q_net(obs).gather(1, batch.action[:, None]).squeeze(1)
    with torch.no_grad():
        next_values = self.target_net(next_obs)
        if config.double:
            best = self.q_net(next_obs).argmax(dim=1, keepdim=True)
            next_q = next_values.gather(1, best).squeeze(1)
        else:
            next_q = next_values.max(dim=1).values
        discount = config.gamma**batch.steps * (1.0 - batch.terminated)
        target = batch.reward + discount * next_q
    if config.huber:
        return F.smooth_l1_loss(q_taken, target)
    return F.mse_loss(q_taken, target)


@add_to_class(PixelDQN)
def greedy(self, stacks: np.ndarray) -> np.ndarray:
    """Greedy actions of the online network for (n, k, H, W) stacks."""
    self.q_net.eval()
    with torch.no_grad():
        values = self.q_net(torch.as_tensor(stacks, device=self.device))
    return values.argmax(dim=1).cpu().numpy()


@add_to_class(PixelDQN)
def _act(self) -> np.ndarray:
    config = self.config
    coins = self.explore.random(config.envs)
    random_actions = self.explore.integers(2, size=config.envs)
    if self.step < config.learning_starts:
        return random_actions
    explore = coins < config.epsilon(self.step)
    if explore.all():
        return random_actions
    greedy = self.greedy(self.env.stacks())
    return np.where(explore, random_actions, greedy)


@add_to_class(PixelDQN)
def _update(self) -> None:
    config = self.config
    batch = self.memory.sample(
        config.batch_size, config.n_step, config.gamma
    )
    self.q_net.train()
    loss = self.loss(batch)
    self.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(
        self.q_net.parameters(), config.max_grad_norm
    )
    self.optimizer.step()
    self.updates += 1
    if self.updates % config.target_every == 0:
        self.target_net.load_state_dict(self.q_net.state_dict())


@add_to_class(PixelDQN)
def validate(self) -> float:
    """Mean greedy return over the validation episodes."""
    returns = evaluate_pixels(
        self.greedy,
        episodes=self.config.validate_episodes,
        seed=VALIDATION_SEED,
        stack=self.config.stack,
        frames=self.config.frames,
        envs=16,
    )
    score = float(returns.mean())
    self.history["validation_step"].append(self.step)
    self.history["validation_return"].append(score)
    if score >= self.best_score:
        self.best_score, self.best_step = score, self.step
        self.best_state = copy.deepcopy(self.q_net.state_dict())
    return score


@add_to_class(PixelDQN)
def train(
    self,
    until: int | None = None,
    *,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 0,
    progress: Callable[[PixelDQN], None] | None = None,
) -> PixelDQN:
    """Train to step until (default: the end of the run)."""
    config = self.config
    if until is None:
        until = config.total_steps
    until = min(until, config.total_steps)
    last_saved = self.step
    start = time.perf_counter()
    while self.step < until:
        actions = self._act()
        frames, reward, terminated, truncated = self.env.step(actions)
        self.memory.step(actions, reward, terminated, frames)
        self.step += config.envs
        for _, value in self.env.finished:
            self.history["episode_end"].append(self.step)
            self.history["episode_return"].append(value)
        self.env.finished.clear()
        ended = terminated | truncated
        if ended.any():
            self.memory.begin(self.env.restart_done(), lanes=ended)
        if self.step >= config.learning_starts:
            since = self.step - config.learning_starts
            owed = since // config.train_every + 1
            while self.updates < owed:
                self._update()
        every = config.validate_every
        if self.step // every > (self.step - config.envs) // every:
            self.validate()
            self.seconds += time.perf_counter() - start
            start = time.perf_counter()
            if progress is not None:
                progress(self)
        if (
            checkpoint
            and checkpoint_every
            and self.step - last_saved >= checkpoint_every
        ):
            self.seconds += time.perf_counter() - start
            start = time.perf_counter()
            self.save(checkpoint)
            last_saved = self.step
    self.seconds += time.perf_counter() - start
    if checkpoint:
        self.save(checkpoint)
    return self


# Checkpoints: everything the run needs to go on exactly where it
# stopped (networks, optimizer, memory, CartPoles, every random stream).
MEMORY_FIELDS = (
    "frames",
    "action",
    "reward",
    "terminated",
    "acted",
    "t",
    "serial",
    "written",
    "started",
)


@add_to_class(PixelDQN)
def state_dict(self) -> dict[str, Any]:
    memory, env = self.memory, self.env
    return {
        "config": asdict(self.config),
        "seed": self.seed,
        "q_net": self.q_net.state_dict(),
        "target_net": self.target_net.state_dict(),
        "optimizer": self.optimizer.state_dict(),
        "memory": {name: getattr(memory, name) for name in MEMORY_FIELDS},
        "replay_rng": memory.generator.get_state(),
        "augment_rng": self.augment.get_state(),
        "explore_rng": self.explore.bit_generator.state,
        "env": {
            "state": torch.from_numpy(env.batch.state.copy()),
            "elapsed": torch.from_numpy(env.batch.elapsed.copy()),
            "started": env.started,
            "episode_index": torch.from_numpy(env.episode_index.copy()),
            "returns": torch.from_numpy(env.returns.copy()),
            "history": torch.from_numpy(env._history.copy()),
        },
        "step": self.step,
        "updates": self.updates,
        "seconds": self.seconds,
        "history": self.history,
        "best_score": self.best_score,
        "best_step": self.best_step,
        "best_state": self.best_state,
    }


@add_to_class(PixelDQN)
def load_state_dict(self, state: Mapping[str, Any]) -> None:
    saved = PixelDQNConfig(**state["config"])
    if saved != self.config or state["seed"] != self.seed:
        raise CheckpointError("checkpoint is of another config or seed")
    self.q_net.load_state_dict(state["q_net"])
    self.target_net.load_state_dict(state["target_net"])
    self.optimizer.load_state_dict(state["optimizer"])
    for name, value in state["memory"].items():
        getattr(self.memory, name).copy_(value)
    self.memory.generator.set_state(state["replay_rng"])
    self.augment.set_state(state["augment_rng"])
    self.explore.bit_generator.state = state["explore_rng"]
    env = state["env"]
    self.env.batch.state[:] = env["state"].numpy()
    self.env.batch.elapsed[:] = env["elapsed"].numpy()
    self.env.started = int(env["started"])
    self.env.episode_index[:] = env["episode_index"].numpy()
    self.env.returns[:] = env["returns"].numpy()
    self.env._history[:] = env["history"].numpy()
    self.step, self.updates = int(state["step"]), int(state["updates"])
    self.seconds = float(state["seconds"])
    self.history = {k: list(v) for k, v in state["history"].items()}
    self.best_score = float(state["best_score"])
    self.best_step = int(state["best_step"])
    self.best_state = {
        k: v.to(self.device) for k, v in state["best_state"].items()
    }


@add_to_class(PixelDQN)
def save(self, path: str | Path) -> Path:
    """Write the run's whole state to path (atomically)."""
    return save_checkpoint(path, self.state_dict())


@add_to_class(PixelDQN)
@classmethod
def resume(
    cls, path: str | Path, device: str | torch.device = "cpu"
) -> PixelDQN:
    """The run saved at path, ready to go on training."""
    state = load_checkpoint(path, map_location=device)
    try:
        config = PixelDQNConfig(**state["config"])
        run = cls(config, state["seed"], device)
    except (KeyError, TypeError) as error:
        raise CheckpointError(
            f"{path} is not a PixelDQN checkpoint ({error})"
        ) from error
    run.load_state_dict(state)
    return run
