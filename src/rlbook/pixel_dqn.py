"""Deep Q-learning from CartPole's pixels: the networks, the loop, resumable runs.

:class:`PixelDQN` is one training run: a convolutional Q-network acting on
stacks of preprocessed frames of ``envs`` CartPoles stepped together
(:class:`rlbook.pixels.PixelCartPole`), a :class:`rlbook.frames.FrameReplayMemory`,
Double DQN targets over ``n_step`` returns with a Huber loss, optional
random-shift augmentation, and greedy validation that keeps the best weights.
Its whole state (networks, optimizer, replay memory and its position, the
environments and every random stream) is one checkpoint: a run stopped at any
step and resumed from its checkpoint ends with the same weights as a run that
never stopped (a test checks this on the CPU).

Introduced in the chapter *Deep Q-learning from CartPole's pixels*.
"""

from __future__ import annotations

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

from .agents import register_kind
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .evaluate import TEST_SEED, VALIDATION_SEED, train_seed
from .frames import FrameBatch, FrameReplayMemory
from .pixels import (
    FRAME_SIZE,
    RENDERERS,
    PixelCartPole,
    evaluate_pixels,
    pipeline_for,
)
from .seeding import numpy_stream, stream_seed, torch_stream

ARCHITECTURES = ("nature", "lecture")


class PixelQNetwork(nn.Module):
    """Action values from a stack of ``k`` uint8 frames ``(B, k, H, W)``.

    ``"nature"``: Mnih et al. (2015), 32/64/64 channels (8x8 stride 4, 4x4
    stride 2, 3x3), then 512 units. ``"lecture"``: five 128-channel
    convolutions (8x8/4, 4x4/2, then three 3x3 with padding 1, each followed
    by BatchNorm), then 512 units. Frames are scaled to [0, 1] inside.
    """

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
            raise ValueError(f"arch must be one of {ARCHITECTURES}, got {arch!r}")
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
            width = self.features(torch.zeros(1, stack, frame_size, frame_size)).shape[
                1
            ]
        self.dueling = dueling
        self.hidden = nn.Sequential(nn.Linear(width, 512), nn.ReLU())
        self.head = nn.Linear(512, n_actions + 1 if dueling else n_actions)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames
        out = self.head(self.hidden(self.features(x)))
        if not self.dueling:
            return out
        value, advantage = out[:, :1], out[:, 1:]
        return value + advantage - advantage.mean(dim=1, keepdim=True)


def random_shift(
    frames: torch.Tensor, pad: int, generator: torch.Generator
) -> torch.Tensor:
    """Shift each stack by up to ``pad`` pixels each way (edges replicated).

    The augmentation of DrQ (Kostrikov et al., 2020): the same shift for every
    frame of a stack, another for each stack. ``(B, k, H, W)`` float in and out.
    """
    if pad == 0:
        return frames
    b, k, h, w = frames.shape
    padded = F.pad(frames, (pad, pad, pad, pad), mode="replicate")
    dy, dx = torch.randint(
        0, 2 * pad + 1, (2, b), device=frames.device, generator=generator
    )
    rows = (dy[:, None] + torch.arange(h, device=frames.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=frames.device))[:, None, None, :]
    batch = torch.arange(b, device=frames.device)[:, None, None, None]
    channel = torch.arange(k, device=frames.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


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
    """what the agent learns from: ``"simple"`` frames or ``"batched"`` (Gymnasium's
    picture, redrawn); see :mod:`rlbook.pixels`"""
    validate_every: int = 10_000
    """transitions between greedy validations (the best weights are kept)"""
    validate_episodes: int = 16
    """episodes per validation, reset with VALIDATION_SEED, +1, ..."""

    def __post_init__(self) -> None:
        if self.frames not in RENDERERS:
            raise ValueError(
                f"frames must be one of {sorted(RENDERERS)}, got {self.frames!r}"
            )
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {ARCHITECTURES}, got {self.arch!r}")
        if not 0 < self.validate_every <= self.total_steps:
            raise ValueError(
                f"validate_every={self.validate_every} must lie in (0, total_steps="
                f"{self.total_steps}]: the best weights come from validations"
            )
        for name in ("envs", "stack", "batch_size", "n_step", "train_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def epsilon(self, step: int) -> float:
        """Linear decay from 1 to ``epsilon_end`` over ``epsilon_fraction``."""
        decay = self.epsilon_fraction * self.total_steps
        return max(self.epsilon_end, 1.0 - (1.0 - self.epsilon_end) * step / decay)


class PixelDQN:
    """One training run of DQN from pixels; see the module's docstring.

    Usage::

        run = PixelDQN(config, seed=0, device="cuda")
        run.train()                               # to config.total_steps
        run.train(until=50_000, checkpoint="run.pt", checkpoint_every=10_000)
        run = PixelDQN.resume("run.pt", device="cuda")
    """

    def __init__(
        self, config: PixelDQNConfig, seed: int, device: str | torch.device = "cpu"
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

    # -- acting and learning ---------------------------------------------------------

    def greedy(self, stacks: np.ndarray) -> np.ndarray:
        """Greedy actions of the online network for ``(n, k, H, W)`` uint8 stacks."""
        self.q_net.eval()
        with torch.no_grad():
            values = self.q_net(torch.as_tensor(stacks, device=self.device))
        return values.argmax(dim=1).cpu().numpy()

    def _act(self) -> np.ndarray:
        config = self.config
        # The same draws every step, whatever epsilon is: the stream stays aligned.
        coins = self.explore.random(config.envs)
        random_actions = self.explore.integers(2, size=config.envs)
        if self.step < config.learning_starts:
            return random_actions
        explore = coins < config.epsilon(self.step)
        if explore.all():
            return random_actions
        return np.where(explore, random_actions, self.greedy(self.env.stacks()))

    def loss(self, batch: FrameBatch) -> torch.Tensor:
        """The n-step Double DQN loss of a batch (Huber or squared error)."""
        config = self.config
        obs = random_shift(batch.obs.float() / 255.0, config.shift, self.augment)
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

    def _update(self) -> None:
        config = self.config
        batch = self.memory.sample(config.batch_size, config.n_step, config.gamma)
        self.q_net.train()
        loss = self.loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.q_net.parameters(), config.max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        if self.updates % config.target_every == 0:
            self.target_net.load_state_dict(self.q_net.state_dict())

    def validate(self) -> float:
        """Mean greedy return over the validation episodes; keeps the best weights."""
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
        if score >= self.best_score:  # ties go to the later, longer-trained net
            self.best_score, self.best_step = score, self.step
            self.best_state = copy.deepcopy(self.q_net.state_dict())
        return score

    def train(
        self,
        until: int | None = None,
        *,
        checkpoint: str | Path | None = None,
        checkpoint_every: int = 0,
        progress: Callable[[PixelDQN], None] | None = None,
    ) -> PixelDQN:
        """Train to step ``until`` (default: the end of the run).

        With ``checkpoint``, the run's whole state is written there every
        ``checkpoint_every`` transitions and when training stops.
        ``progress(self)`` is called after every validation.
        """
        config = self.config
        until = config.total_steps if until is None else min(until, config.total_steps)
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
            if (terminated | truncated).any():
                self.memory.begin(self.env.restart_done(), lanes=terminated | truncated)
            if self.step >= config.learning_starts:
                owed = (self.step - config.learning_starts) // config.train_every + 1
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

    # -- results ---------------------------------------------------------------------

    def test(
        self, state: Mapping[str, torch.Tensor], episodes: int = 100
    ) -> np.ndarray:
        """Greedy returns of weights ``state`` on test episodes (its own frames)."""
        net = PixelQNetwork(**self.q_net.spec).to(self.device)
        net.load_state_dict(state)
        return evaluate_pixels(
            PixelQPolicy(net.eval()).act_batch,
            episodes=episodes,
            seed=TEST_SEED,
            stack=self.config.stack,
            frames=self.config.frames,
            envs=16,
        )

    # -- checkpoints -----------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything the run needs to go on exactly where it stopped."""
        memory, env = self.memory, self.env
        return {
            "config": asdict(self.config),
            "seed": self.seed,
            "q_net": self.q_net.state_dict(),
            "target_net": self.target_net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "memory": {
                name: getattr(memory, name)
                for name in (
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
            },
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
        self.history = {key: list(value) for key, value in state["history"].items()}
        self.best_score, self.best_step = (
            float(state["best_score"]),
            int(state["best_step"]),
        )
        self.best_state = {k: v.to(self.device) for k, v in state["best_state"].items()}

    def save(self, path: str | Path) -> Path:
        """Write the run's whole state to ``path`` (atomically)."""
        return save_checkpoint(path, self.state_dict())

    @classmethod
    def resume(cls, path: str | Path, device: str | torch.device = "cpu") -> PixelDQN:
        """The run saved at ``path``, ready to go on training."""
        state = load_checkpoint(path, map_location=device)
        try:
            run = cls(PixelDQNConfig(**state["config"]), state["seed"], device)
        except (KeyError, TypeError) as error:
            raise CheckpointError(
                f"{path} is not a PixelDQN checkpoint ({error})"
            ) from error
        run.load_state_dict(state)
        return run


@dataclass(frozen=True)
class PixelQPolicy:
    """Greedy policy of a pixel Q-network: ``(N, k, H, W)`` uint8 stacks in."""

    q_net: PixelQNetwork

    def act_batch(self, stacks: np.ndarray) -> np.ndarray:
        weight = next(self.q_net.parameters())
        with torch.inference_mode():
            values = self.q_net(torch.as_tensor(stacks, device=weight.device))
        return values.argmax(dim=1).cpu().numpy()

    def act(self, stacks: np.ndarray) -> int:
        return int(self.act_batch(stacks[None])[0])


@register_kind("pixel-q-network")
def _build_pixel_q_network(
    spec: Mapping[str, Any], weights: Mapping[str, torch.Tensor]
) -> PixelQPolicy:
    q_net = PixelQNetwork(**spec["network"])
    q_net.load_state_dict(weights["q_net"])  # float16 weights are cast to float32
    q_net.eval()
    return PixelQPolicy(q_net)


# -- the chapter's full run: variants, the rule that picks the shipped agent, export --

FULL_RUN = PixelDQNConfig(
    total_steps=100_000,
    envs=8,
    batch_size=32,
    train_every=4,
    learning_rate=1e-4,
    buffer_size=100_000,
    learning_starts=5_000,
    target_every=1_000,
    epsilon_fraction=0.1,
    validate_every=5_000,
    validate_episodes=32,
    frames="simple",
)
"""The settings every variant of the full run shares. A first sweep with the same
learning settings on Gymnasium's picture (``frames="batched"``, 200,000 steps)
was stopped at 80,000 steps with its best run's validation return at 63; the
chapter measures the difference the frames make."""

SMOKE_RUN = PixelDQNConfig(
    total_steps=2_000,
    envs=8,
    batch_size=32,
    train_every=8,
    buffer_size=2_000,
    learning_starts=500,
    target_every=50,
    validate_every=1_000,
    validate_episodes=2,
)
"""A run of seconds that exercises every part (its numbers mean nothing)."""


def base_config(budget: str) -> PixelDQNConfig:
    """:data:`FULL_RUN` at ``full``; a seconds-long stand-in otherwise (tests, smoke)."""
    return FULL_RUN if budget == "full" else SMOKE_RUN


VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "n-step 3": {"n_step": 3},
    "n-step 3 + shift 4": {"n_step": 3, "shift": 4},
}
"""Each variant changes :data:`FULL_RUN` in the listed fields only."""


def variant_config(name: str, base: PixelDQNConfig = FULL_RUN) -> PixelDQNConfig:
    """The config of variant ``name`` of :data:`VARIANTS`."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    return PixelDQNConfig(**{**asdict(base), **VARIANTS[name]})


ABLATION_BASE = "n-step 3 + shift 4"
"""The recipe the ablations change: the shipped variant of :data:`VARIANTS`."""

ABLATIONS: dict[str, dict[str, Any]] = {
    "8 frames": {"stack": 8},
    "lecture network": {"arch": "lecture"},
}
"""The lecture's two choices this book did not take, each applied alone to
:data:`ABLATION_BASE`. They answer questions about the recipe, so they play no
part in :func:`choose_winner`."""

ABLATION_FRACTION = 0.5
"""Ablation runs stop at this share of the run's ``total_steps``. They keep the
full run's schedules (epsilon, replay size), so up to that step they are
compared validation for validation with the first part of the shipped
variant's own runs: an equal budget of environment steps."""


def ablation_config(name: str, base: PixelDQNConfig = FULL_RUN) -> PixelDQNConfig:
    """The config of ablation ``name``: :data:`ABLATION_BASE` with its change."""
    if name not in ABLATIONS:
        raise ValueError(f"unknown ablation {name!r}; known: {', '.join(ABLATIONS)}")
    return PixelDQNConfig(
        **{**asdict(variant_config(ABLATION_BASE, base)), **ABLATIONS[name]}
    )


def ablation_steps(config: PixelDQNConfig) -> int:
    """The step an ablation run of ``config`` stops at (whole validations)."""
    every = config.validate_every
    return max(every, int(config.total_steps * ABLATION_FRACTION) // every * every)


def early_validation(result: Mapping[str, Any], until: int) -> float:
    """Mean validation return over a run's validations up to step ``until``.

    The ablations' criterion, fixed before any ablation ran: the area under the
    validation curve over an equal budget, so it rewards learning early and
    staying good, and it is computed the same way for the shipped variant's
    runs (cut at ``until``) as for the ablations' own.
    """
    scores = [
        score
        for step, score in zip(
            result["validation_step"], result["validation_return"], strict=True
        )
        if step <= until
    ]
    if not scores:
        raise ValueError(f"no validation at or before step {until}")
    return float(np.mean(scores))


def first_step_at_least(
    result: Mapping[str, Any], level: float, until: int | None = None
) -> int | None:
    """The first validation step whose return is at least ``level``, looking
    only at validations up to step ``until`` when given (None: never)."""
    for step, score in zip(
        result["validation_step"], result["validation_return"], strict=True
    ):
        if until is not None and step > until:
            return None
        if score >= level:
            return int(step)
    return None


def compare_to_base(
    ablation: list[Mapping[str, Any]], base: list[Mapping[str, Any]], until: int
) -> str:
    """``"higher"``, ``"lower"`` or ``"overlap"``: whether every seed of the
    ablation scores above (below) every seed of the base by
    :func:`early_validation` up to ``until``. With three seeds each, anything
    short of complete separation is reported as not separated."""
    a = [early_validation(r, until) for r in ablation]
    b = [early_validation(r, until) for r in base]
    if not a or not b:
        raise ValueError("compare_to_base needs runs on both sides")
    if min(a) > max(b):
        return "higher"
    if max(a) < min(b):
        return "lower"
    return "overlap"


def late_validation(result: Mapping[str, Any]) -> float:
    """Mean validation return over the last quarter of a run's validations."""
    scores = list(result["validation_return"])
    return float(np.mean(scores[-max(1, len(scores) // 4) :]))


def choose_winner(results: list[Mapping[str, Any]]) -> tuple[str, Mapping[str, Any]]:
    """The rule that picks the shipped agent, fixed before any run finished.

    The winning variant has the highest mean over its seeds of
    :func:`late_validation` (how well and how steadily it plays at the end,
    on validation episodes only); ties go to the earlier variant in
    :data:`VARIANTS`. The shipped run is the winner's seed with the highest
    best validation score (ties: the lower seed); its best-validation
    weights ship, and its final weights ship beside them. Test episodes play
    no part.
    """
    by_variant: dict[str, list[Mapping[str, Any]]] = {}
    for result in results:
        by_variant.setdefault(result["variant"], []).append(result)
    order = [v for v in VARIANTS if v in by_variant]
    if not order:
        raise ValueError("no results of any known variant")
    score = {
        v: float(np.mean([late_validation(r) for r in by_variant[v]])) for v in order
    }
    winner = max(order, key=lambda v: (score[v], -order.index(v)))
    runs = sorted(by_variant[winner], key=lambda r: (-r["best_validation"], r["seed"]))
    return winner, runs[0]


def export_artifact(runs: str | Path, out: str | Path, *, command: str) -> Path:
    """Write the shipped agent and every run's curves from a finished full run."""
    import json

    from .agents import save_agent
    from .checkpoint import git_commit

    folder = Path(runs)
    results = [json.loads(p.read_text()) for p in sorted(folder.glob("*/result.json"))]
    winner, run = choose_winner(results)
    weights = load_checkpoint(
        folder / f"{run['variant']}-s{run['seed']}" / "weights.pt"
    )
    provenance = dict(run["provenance"])
    provenance.update(
        command=command,
        exported_at_commit=git_commit(),
        winner=winner,
        chosen_by=(
            "variant: highest mean over seeds of the last quarter's validation returns; "
            "run: its seed with the best validation score; weights: that best validation's"
        ),
        score={
            "test_best_mean": float(np.mean(run["test_best"])),
            "test_final_mean": float(np.mean(run["test_final"])),
            "episodes": len(run["test_best"]),
            "seed": TEST_SEED,
            "frames": run["config"]["frames"],
        },
    )
    spec = {
        "network": run["network"],
        "observation": {
            **pipeline_for(run["config"]["frames"]),
            "stack": run["network"]["stack"],
        },
        "variant": winner,
        "seed": run["seed"],
        "best_step": run["best_step"],
    }
    metrics = {
        "winner": winner,
        "shipped": {"variant": winner, "seed": run["seed"]},
        "runs": [{k: v for k, v in r.items() if k != "provenance"} for r in results],
    }
    text = json.dumps(metrics, separators=(",", ":")) + "\n"
    save_agent(
        out,
        kind="pixel-q-network",
        env_id="CartPole-v1",
        spec=spec,
        weights={"q_net": weights["best"], "final_q_net": weights["final"]},
        provenance=provenance,
        files={"metrics.json": text.encode()},  # listed in the manifest, written last
    )
    return Path(out)


ABLATIONS_FILE = "ablations.json"
"""Where :func:`export_ablations` writes, inside the shipped agent's folder."""


def export_ablations(runs: str | Path, out: str | Path, *, command: str) -> Path:
    """Write every finished ablation run's curves to ``out/ablations.json``.

    ``runs`` is the full run's folder; the ablations live in its ``ablations/``
    subfolder. Unfinished ablations are simply absent (the chapter says so).
    """
    import json

    from .checkpoint import atomic_write, git_commit

    folder = Path(runs) / "ablations"
    results = [json.loads(p.read_text()) for p in sorted(folder.glob("*/result.json"))]
    if not results:
        raise FileNotFoundError(
            f"no finished ablation runs under {folder}; run "
            "scripts/train_dqn_pixels.py --ablations first"
        )
    unknown = sorted({r["variant"] for r in results} - set(ABLATIONS))
    if unknown:
        raise ValueError(
            f"results of unknown ablations {unknown}; known: {list(ABLATIONS)}"
        )
    steps = sorted({int(r["step"]) for r in results})
    if len(steps) != 1:
        raise ValueError(
            f"ablation runs stopped at different steps {steps}; rerun them"
        )
    record = {
        "base": ABLATION_BASE,
        "until": steps[0],
        "command": command,
        "exported_at_commit": git_commit(),
        "runs": results,
    }
    path = Path(out) / ABLATIONS_FILE
    text = json.dumps(record, separators=(",", ":")) + "\n"
    atomic_write(path, lambda handle: handle.write(text.encode()))
    return path
