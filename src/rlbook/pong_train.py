"""Training the chapter's two Pong agents, and playing whole games with either.

* :class:`Reinforce`: ``pg-pong.py``'s algorithm, unchanged (the 6400-200
  network, a batch of 10 games per update, returns reset at each point and
  standardised per game, RMSProp with lr 1e-4 and decay 0.99), made fast: the
  10 games of a batch are played side by side in ALE's vector environment,
  the policy evaluated for all of them in one batch per step, and the
  forward pass of a rollout step touches only the nonzero pixels of the
  difference frames (:func:`sparse_hidden`).
* :class:`PPO`: the improved agent, a small convolutional actor-critic on
  Karpathy's preprocessed frames (four stacked), trained with PPO's clipped
  objective, generalised advantage estimation and an entropy bonus.

Both keep their whole state in one checkpoint between updates
(:meth:`Reinforce.state_dict`, :meth:`PPO.state_dict`). A REINFORCE update
starts 10 new games, so resuming from a checkpoint gives exactly the run
that never stopped. PPO's games run on across updates; its checkpoint cannot
hold the emulators' states, so a resumed PPO run restarts the games in
progress (every lane starts a new game, frame stacks empty): the one
approximation, tested, and the same weights otherwise.

:func:`play_games` plays whole games with either agent in a bounded number
of emulators; it is what validation, the final test and
``python -m rlbook evaluate`` use.

Introduced in the chapter *Policy gradients on Pong from pixels*.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .pong import (
    ACTIONS_2,
    ACTIONS_3,
    INPUTS,
    PONG_SETTINGS,
    SIZE,
    PongVector,
    TorchPolicy,
    discount_rewards,
    make_pong_vector,
    policy_gradient_loss,
    prepro_batch,
    sample_actions,
    standardise,
)
from .seeding import numpy_stream, stream_seed

RUNNING_GAMES = 20
"""The running score of a training run is the mean final score of its last
``RUNNING_GAMES`` games, for both agents (fixed before any run)."""


def running_mean(scores: np.ndarray, window: int = RUNNING_GAMES) -> np.ndarray:
    """Mean of the last ``window`` scores at each game (fewer at the start)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"scores must have shape (G,), got {scores.shape}")
    cumulative = np.concatenate([[0.0], np.cumsum(scores)])
    index = np.arange(1, scores.size + 1)
    start = np.maximum(0, index - window)
    return (cumulative[index] - cumulative[start]) / (index - start)


def first_reaching(
    scores: np.ndarray, level: float, window: int = RUNNING_GAMES
) -> int | None:
    """Index of the first game at which the running mean of ``window`` full
    games reaches ``level``; ``None`` if it never does."""
    means = running_mean(scores, window)
    hit = np.flatnonzero(means[window - 1 :] >= level)
    return int(hit[0]) + window - 1 if hit.size else None


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block on ``n`` torch CPU threads.

    Playing runs the policy on a handful of frames per step, while ALE's own
    threads emulate the games: more torch threads only fight them for the
    cores (measured: two threads made a game ten times slower on a busy
    2-core machine).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _rng_state(rng: np.random.Generator) -> str:
    return json.dumps(rng.bit_generator.state)


def _set_rng_state(rng: np.random.Generator, state: str) -> None:
    rng.bit_generator.state = json.loads(state)


# ---------------------------------------------------------------- sparse policy


def sparse_hidden(w1_t: torch.Tensor, x: np.ndarray) -> torch.Tensor:
    """The hidden pre-activations ``x @ W1.T``, summing only the rows of ``W1.T``
    at the nonzero pixels of ``x``.

    A difference frame has a few dozen nonzero pixels of 6,400, so this does a
    few thousand additions where the dense product does 1.28 million
    multiply-adds per frame; the results agree to float rounding (tested).

    Args:
        w1_t: ``(inputs, hidden)``, ``W1`` transposed and contiguous.
        x: ``(B, inputs)`` difference frames (any numeric dtype).
    """
    rows, cols = np.nonzero(x)
    offsets = np.searchsorted(rows, np.arange(x.shape[0]))
    weights = torch.from_numpy(x[rows, cols].astype(np.float32))
    return F.embedding_bag(
        torch.from_numpy(cols),
        w1_t,
        torch.from_numpy(offsets),
        mode="sum",
        per_sample_weights=weights.to(w1_t.dtype),
    )


@torch.no_grad()
def policy_probs_sparse(
    policy: TorchPolicy, w1_t: torch.Tensor, x: np.ndarray
) -> np.ndarray:
    """``policy.probs`` of a batch of difference frames, through :func:`sparse_hidden`."""
    logits = policy.out(torch.relu(sparse_hidden(w1_t, x)))
    if policy.actions == 2:
        p = torch.sigmoid(logits[:, 0])
        return torch.stack([p, 1 - p], dim=1).numpy()
    return torch.softmax(logits, dim=1).numpy()


# ---------------------------------------------------------------- agents that play


class PongAgent(Protocol):
    """What :func:`play_games` needs: per-lane preprocessing state and a policy."""

    action_set: tuple[int, ...]

    def start(self, frames: np.ndarray) -> None:
        """New games in every lane: ``(N, 210, 160, 3)`` first frames."""

    def act(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``(N,)`` action indices for the latest frames."""

    def new_games(self, frames: np.ndarray, mask: np.ndarray) -> None:
        """Lanes ``mask`` started a new game, whose first frame ``frames`` shows."""


def action_set(actions: int) -> tuple[int, ...]:
    """ALE actions of a policy with ``actions`` outputs: Karpathy's UP/DOWN
    sigmoid for 2, NOOP/UP/DOWN for 3."""
    if actions not in (2, 3):
        raise ValueError(f"Pong policies have 2 or 3 actions, not {actions}")
    return ACTIONS_2 if actions == 2 else ACTIONS_3


class DifferenceAgent:
    """Plays with a two-layer policy on difference frames (the REINFORCE agent)."""

    def __init__(self, policy: TorchPolicy) -> None:
        self.policy = policy.float().eval()
        self.action_set = action_set(policy.actions)
        self._w1_t = self.policy.hidden.weight.detach().t().contiguous()
        self._current: np.ndarray | None = None
        self._previous: np.ndarray | None = None

    def start(self, frames: np.ndarray) -> None:
        self._current = prepro_batch(frames)
        self._previous = self._current.copy()

    def difference(self) -> np.ndarray:
        """``(N, 6400)`` int8: the latest preprocessed frames minus the ones before."""
        assert self._current is not None and self._previous is not None
        diff = self._current.astype(np.int8) - self._previous.astype(np.int8)
        return diff.reshape(len(diff), INPUTS)

    def probs(self, x: np.ndarray) -> np.ndarray:
        """The policy's action probabilities for difference frames ``x``."""
        return policy_probs_sparse(self.policy, self._w1_t, x)

    def act(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return sample_actions(self.probs(self.difference()), rng)

    def step_frames(self, frames: np.ndarray) -> None:
        assert self._current is not None, "start() first"
        self._previous = self._current
        self._current = prepro_batch(frames)

    def new_games(self, frames: np.ndarray, mask: np.ndarray) -> None:
        assert self._current is not None and self._previous is not None
        self._previous[mask] = self._current[mask]


class StackAgent:
    """Plays with an actor-critic on the last ``frames`` preprocessed frames (PPO)."""

    def __init__(self, net: PongActorCritic) -> None:
        self.net = net.float().eval()
        self.action_set = action_set(net.actions)
        self.stack: np.ndarray | None = None

    def start(self, frames: np.ndarray) -> None:
        first = prepro_batch(frames)
        self.stack = np.repeat(first[:, None], self.net.frames, axis=1)

    def step_frames(self, frames: np.ndarray) -> None:
        assert self.stack is not None, "start() first"
        self.stack = np.roll(self.stack, -1, axis=1)
        self.stack[:, -1] = prepro_batch(frames)

    def new_games(self, frames: np.ndarray, mask: np.ndarray) -> None:
        assert self.stack is not None
        self.stack[mask] = prepro_batch(frames[mask])[:, None]

    @torch.no_grad()
    def act(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        assert self.stack is not None
        logits, _ = self.net(torch.from_numpy(self.stack))
        return sample_actions(torch.softmax(logits, dim=1).numpy(), rng)


def play_games(
    agent: DifferenceAgent | StackAgent,
    games: int,
    *,
    seed: int,
    purpose: str = "test",
    settings: Mapping[str, Any] = PONG_SETTINGS,
    lanes: int = 10,
    max_steps: int | None = None,
) -> np.ndarray:
    """Final scores of ``games`` whole games, at most ``lanes`` emulators alive.

    Actions are sampled from the agent's policy with the stream
    ``numpy_stream(seed, purpose)``: without sticky actions Pong is
    deterministic, so a greedy policy would play the same game every time,
    and the games differ only through the policy's own randomness. Lane ``i``
    plays games ``i``, ``i + lanes``, ...; a lane that has played its share
    steps on idle. ``max_steps`` (per lane) guards against a game that never
    ends; unfinished games raise.
    """
    with torch_threads(1):
        return _play_games(agent, games, seed, purpose, settings, lanes, max_steps)


def _play_games(
    agent: DifferenceAgent | StackAgent,
    games: int,
    seed: int,
    purpose: str,
    settings: Mapping[str, Any],
    lanes: int,
    max_steps: int | None,
) -> np.ndarray:
    if games < 1 or lanes < 1:
        raise ValueError(f"need games >= 1 and lanes >= 1, got {games}, {lanes}")
    lanes = min(lanes, games)
    share = np.array([len(range(i, games, lanes)) for i in range(lanes)])
    rng = numpy_stream(seed, purpose)
    vec = make_pong_vector(lanes, settings, seed=seed)
    scores: list[list[float]] = [[] for _ in range(lanes)]
    try:
        frames = vec.reset()
        agent.start(frames)
        steps = 0
        while any(len(s) < k for s, k in zip(scores, share, strict=True)):
            actions = agent.act(frames, rng)
            before = vec.scores.copy()
            frames, reward, terminated, truncated = vec.step(
                np.asarray(agent.action_set)[actions]
            )
            done = terminated | truncated
            agent.step_frames(frames)
            if done.any():
                agent.new_games(frames, done)
                for lane in np.flatnonzero(done):
                    if len(scores[lane]) < share[lane]:
                        scores[lane].append(float(before[lane] + reward[lane]))
            steps += 1
            if max_steps is not None and steps >= max_steps:
                raise RuntimeError(f"games still running after {max_steps} steps")
    finally:
        vec.close()
    ordered = [scores[g % lanes][g // lanes] for g in range(games)]
    return np.array(ordered)


# ---------------------------------------------------------------- REINFORCE


@dataclass(frozen=True)
class ReinforceConfig:
    """``pg-pong.py``'s hyperparameters (three actions, as the TensorLayer port)."""

    games_per_update: int = 10
    """``batch_size``: games per parameter update, played side by side"""
    learning_rate: float = 1e-4
    decay: float = 0.99
    gamma: float = 0.99
    hidden: int = 200
    actions: int = 3
    updates: int = 2000
    """length of the run, in updates (games = ``updates * games_per_update``)"""
    validate_every: int = 50
    """updates between validations (10 games each); the best validation ships
    beside the final weights"""
    validation_games: int = 10
    chunk: int = 8192
    """steps per forward-backward chunk of an update (memory, not results)"""
    settings: dict[str, Any] = field(default_factory=lambda: dict(PONG_SETTINGS))


REINFORCE_BUDGETS = {
    "smoke": {"updates": 2, "validate_every": 1, "validation_games": 2},
    "ci": {"updates": 12, "validate_every": 6, "validation_games": 4},
    "full": {},
}


def reinforce_config(budget: str) -> ReinforceConfig:
    """The configuration of a budget: only the run's length changes."""
    from .budget import validate_budget

    return ReinforceConfig(**REINFORCE_BUDGETS[validate_budget(budget)])


class _PongRun:
    """What both runs share: counters, curves, validation, the update loop and
    the checkpoint's common part. A subclass sets :attr:`KIND` and
    :attr:`NET_KEY` and provides ``_network`` and ``_agent``."""

    KIND: str
    NET_KEY: str
    config: Any
    optimizer: torch.optim.Optimizer
    rng: np.random.Generator

    def _start_record(self, config: Any, seed: int) -> None:
        self.config = config
        self.seed = seed
        self.update = 0
        self.env_steps = 0
        self.wall_seconds = 0.0
        self.cpu_seconds = 0.0
        """CPU time of the process, every thread (ALE's too): unlike the wall
        time, neither other jobs on the machine nor a paused process add to it"""
        self.scores: list[float] = []
        self.log: list[dict[str, float]] = []
        """per update: update, env_steps, wall_seconds, cpu_seconds, games, and
        the run's own statistics"""
        self.validations: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        """``{"update", "mean", "state"}`` of the best validation so far"""

    def _network(self) -> nn.Module:
        raise NotImplementedError

    def _agent(self) -> DifferenceAgent | StackAgent:
        raise NotImplementedError

    def _loop(
        self,
        until: int,
        one_update: Callable[[], dict[str, float]],
        checkpoint: Callable[[Any], None] | None,
        checkpoint_seconds: float,
        progress: Callable[[Any], None] | None,
    ) -> None:
        """Call ``one_update`` until ``until`` updates are done, timing each,
        validating every ``validate_every`` updates and at the run's last,
        logging, and checkpointing every ``checkpoint_seconds`` and at the end."""
        last_save = time.perf_counter()
        while self.update < until:
            start, cpu = time.perf_counter(), time.process_time()
            stats = one_update()
            self.update += 1
            self.wall_seconds += time.perf_counter() - start
            self.cpu_seconds += time.process_time() - cpu
            if (
                self.update % self.config.validate_every == 0
                or self.update == self.config.updates
            ):
                self.validate()
            self.log.append(
                {
                    "update": self.update,
                    "env_steps": self.env_steps,
                    "wall_seconds": round(self.wall_seconds, 3),
                    "cpu_seconds": round(self.cpu_seconds, 3),
                    "games": len(self.scores),
                    **{k: round(v, 5) for k, v in stats.items()},
                }
            )
            if progress is not None:
                progress(self)
            if checkpoint is not None and (
                time.perf_counter() - last_save >= checkpoint_seconds
                or self.update == until
            ):
                checkpoint(self)
                last_save = time.perf_counter()

    def validate(self) -> None:
        """Score the current weights on validation games; keep the best weights."""
        start, cpu = time.perf_counter(), time.process_time()
        scores = play_games(
            self._agent(),
            self.config.validation_games,
            seed=self.seed,
            purpose=f"validation-{self.update}",
            settings=self.config.settings,
        )
        net = self._network().train()  # the agent switched it to eval mode
        mean = float(scores.mean())
        self.validations.append(
            {"update": self.update, "mean": mean, "scores": scores.tolist()}
        )
        if self.best is None or mean > self.best["mean"]:
            self.best = {
                "update": self.update,
                "mean": mean,
                "state": {k: v.clone() for k, v in net.state_dict().items()},
            }
        self.wall_seconds += time.perf_counter() - start
        self.cpu_seconds += time.process_time() - cpu

    def state_dict(self) -> dict[str, Any]:
        """The whole run between two updates, as :func:`save_checkpoint` takes it."""
        return {
            "kind": self.KIND,
            "config": json.dumps(asdict(self.config)),
            "seed": self.seed,
            self.NET_KEY: self._network().state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": _rng_state(self.rng),
            "update": self.update,
            "env_steps": self.env_steps,
            "wall_seconds": self.wall_seconds,
            "cpu_seconds": self.cpu_seconds,
            "scores": self.scores,
            "log": json.dumps(self.log),
            "validations": json.dumps(self.validations),
            "best": self.best,
        }

    def _load_record(self, state: Mapping[str, Any]) -> None:
        self._network().load_state_dict(state[self.NET_KEY])
        self.optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(self.rng, state["rng"])
        self.update = state["update"]
        self.env_steps = state["env_steps"]
        self.wall_seconds = state["wall_seconds"]
        self.cpu_seconds = state.get("cpu_seconds", 0.0)
        self.scores = list(state["scores"])
        self.log = json.loads(state["log"])
        self.validations = json.loads(state["validations"])
        self.best = state["best"]


def _check_kind(state: Mapping[str, Any], kind: str) -> None:
    if state.get("kind") != kind:
        raise ValueError(f"not a {kind} checkpoint: kind {state.get('kind')!r}")


class Reinforce(_PongRun):
    """A REINFORCE run: ``pg-pong.py``'s algorithm on 10 games at a time.

    Each update plays ``games_per_update`` new games side by side to their end
    (a lane whose game is over steps on, its steps discarded, so every game of
    a batch is played by the same weights, as in ``pg-pong.py``), computes
    each game's returns (reset at each point) and standardises them per
    game, and takes one RMSProp step on the summed return-weighted
    cross-entropy.
    """

    KIND = "pong-reinforce"
    NET_KEY = "policy"

    def __init__(self, config: ReinforceConfig, seed: int = 0) -> None:
        self._start_record(config, seed)
        self.policy = TorchPolicy(INPUTS, config.hidden, config.actions)
        with torch.no_grad():  # pg-pong's "Xavier" initialisation
            rng = numpy_stream(seed, "init")
            for layer in (self.policy.hidden, self.policy.out):
                w = rng.standard_normal(tuple(layer.weight.shape)) / np.sqrt(
                    layer.weight.shape[1]
                )
                layer.weight.copy_(torch.from_numpy(w))
        self.optimizer = torch.optim.RMSprop(
            self.policy.parameters(),
            lr=config.learning_rate,
            alpha=config.decay,
            eps=1e-5,
        )
        self.rng = numpy_stream(seed, "actions")
        self.lengths: list[int] = []
        """steps of each game, in the order of :attr:`scores`"""

    def _network(self) -> TorchPolicy:
        return self.policy

    def _agent(self) -> DifferenceAgent:
        return DifferenceAgent(self.policy)

    # one update
    def play_batch(self, vec: PongVector) -> tuple[np.ndarray, ...]:
        """Play one game in each lane; the steps of every game, lane by lane."""
        n = vec.num_envs
        agent = DifferenceAgent(self.policy)
        frames = vec.reset()
        agent.start(frames)
        alive = np.ones(n, bool)
        xs, actions, rewards, lanes = [], [], [], []
        ale = np.asarray(agent.action_set)
        while alive.any():
            x = agent.difference()
            a = sample_actions(agent.probs(x), self.rng)
            frames, reward, terminated, truncated = vec.step(ale[a])
            agent.step_frames(frames)
            xs.append(x[alive])
            actions.append(a[alive])
            rewards.append(reward[alive])
            lanes.append(np.flatnonzero(alive))
            alive &= ~(terminated | truncated)
        lane = np.concatenate(lanes)
        order = np.argsort(lane, kind="stable")  # each lane's steps, in time order
        return (
            np.concatenate(xs)[order],
            np.concatenate(actions)[order],
            np.concatenate(rewards)[order],
            lane[order],
        )

    def advantages(self, rewards: np.ndarray, lane: np.ndarray) -> np.ndarray:
        """Each game's discounted returns, reset at each point, standardised per game."""
        out = np.zeros(rewards.shape, np.float32)
        for g in np.unique(lane):
            sel = lane == g
            out[sel] = standardise(discount_rewards(rewards[sel], self.config.gamma))
        return out

    def learn(self, x: np.ndarray, actions: np.ndarray, adv: np.ndarray) -> None:
        """One RMSProp step on the loss summed over every step of the batch."""
        self.policy.train()
        self.optimizer.zero_grad(set_to_none=True)
        for start in range(0, len(x), self.config.chunk):
            end = start + self.config.chunk
            # x @ W1.T by the nonzero pixels only; autograd gives W1 its gradient
            hidden = sparse_hidden(self.policy.hidden.weight.t(), x[start:end])
            loss = policy_gradient_loss(
                self.policy.out(torch.relu(hidden)).squeeze(1)
                if self.config.actions == 2
                else self.policy.out(torch.relu(hidden)),
                torch.from_numpy(actions[start:end]),
                torch.from_numpy(adv[start:end]),
            )
            loss.backward()
        self.optimizer.step()

    def train(
        self,
        until: int | None = None,
        *,
        checkpoint: Callable[[Reinforce], None] | None = None,
        checkpoint_seconds: float = 300.0,
        progress: Callable[[Reinforce], None] | None = None,
    ) -> None:
        """Update until ``until`` updates are done (the config's ``updates``).

        ``checkpoint(self)`` is called every ``checkpoint_seconds`` and at the
        end, always between updates; ``progress(self)`` after every update.
        """
        until = self.config.updates if until is None else until
        vec = make_pong_vector(
            self.config.games_per_update, self.config.settings, seed=self.seed
        )

        def one_update() -> dict[str, float]:
            with torch_threads(1):
                x, actions, rewards, lane = self.play_batch(vec)
            self.learn(x, actions, self.advantages(rewards, lane))
            for g in range(vec.num_envs):
                sel = lane == g
                self.scores.append(float(rewards[sel].sum()))
                self.lengths.append(int(sel.sum()))
            self.env_steps += len(x)
            return {}

        try:
            self._loop(until, one_update, checkpoint, checkpoint_seconds, progress)
        finally:
            vec.close()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "lengths": self.lengths}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Reinforce:
        _check_kind(state, cls.KIND)
        run = cls(ReinforceConfig(**json.loads(state["config"])), state["seed"])
        run._load_record(state)
        run.lengths = list(state["lengths"])
        return run


# ---------------------------------------------------------------- PPO


class PongActorCritic(nn.Module):
    """A small convolutional actor-critic on ``frames`` stacked 80x80 Karpathy frames.

    ``(B, frames, 80, 80)`` uint8 in {0, 1} -> 16 filters 8x8 stride 4 (19x19)
    -> 32 filters 4x4 stride 2 (8x8) -> 256 units -> action logits and a
    state value. 2.6 million multiply-adds per frame, a third of the Nature
    DQN network's on 84x84 frames: Karpathy's frames are already small and
    black and white.
    """

    def __init__(self, frames: int = 4, actions: int = 3, hidden: int = 256) -> None:
        super().__init__()
        self.frames = frames
        self.actions = actions
        self.body = nn.Sequential(
            nn.Conv2d(frames, 16, 8, stride=4),
            nn.ReLU(),
            nn.Conv2d(16, 32, 4, stride=2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * 8 * 8, hidden),
            nn.ReLU(),
        )
        self.policy = nn.Linear(hidden, actions)
        self.value = nn.Linear(hidden, 1)
        for module in self.body:
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.orthogonal_(module.weight, np.sqrt(2))
                nn.init.zeros_(module.bias)
        nn.init.orthogonal_(self.policy.weight, 0.01)  # near-uniform first policy
        nn.init.zeros_(self.policy.bias)
        nn.init.orthogonal_(self.value.weight, 1.0)
        nn.init.zeros_(self.value.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, frames, 80, 80)`` -> logits ``(B, actions)``, values ``(B,)``."""
        if x.ndim != 4 or x.shape[1:] != (self.frames, SIZE, SIZE):
            raise ValueError(
                f"x must have shape (B, {self.frames}, {SIZE}, {SIZE}), got {tuple(x.shape)}"
            )
        h = self.body(x.float())
        return self.policy(h), self.value(h).squeeze(1)


@dataclass(frozen=True)
class PPOConfig:
    """PPO's usual Atari settings (as CleanRL's ``ppo_atari``), 16 games at a time."""

    envs: int = 16
    steps: int = 128
    """steps per lane per update: an update learns from ``envs * steps`` steps"""
    epochs: int = 4
    minibatches: int = 4
    learning_rate: float = 2.5e-4
    """annealed linearly to 0 over the run"""
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.1
    entropy: float = 0.01
    value_coef: float = 0.5
    max_grad_norm: float = 0.5
    frames: int = 4
    actions: int = 3
    total_steps: int = 2_500_000
    """environment steps of the run: 10 million frames at a frame skip of 4"""
    validate_every: int = 100
    validation_games: int = 10
    settings: dict[str, Any] = field(default_factory=lambda: dict(PONG_SETTINGS))

    @property
    def batch(self) -> int:
        return self.envs * self.steps

    @property
    def updates(self) -> int:
        return max(1, self.total_steps // self.batch)


PPO_BUDGETS = {
    "smoke": {"total_steps": 2 * 2048, "validate_every": 2, "validation_games": 2},
    "ci": {"total_steps": 30 * 2048, "validate_every": 30, "validation_games": 4},
    "full": {},
}


def ppo_config(budget: str) -> PPOConfig:
    """The configuration of a budget: only the run's length changes."""
    from .budget import validate_budget

    return PPOConfig(**PPO_BUDGETS[validate_budget(budget)])


def gae(
    rewards: np.ndarray,
    values: np.ndarray,
    starts: np.ndarray,
    next_value: np.ndarray,
    next_start: np.ndarray,
    gamma: float,
    lam: float,
) -> np.ndarray:
    """Generalised advantage estimates, ``(T, N)``, time first.

    ``starts[t]`` says step ``t`` is a new game's first (so nothing flows back
    into step ``t - 1`` from it); ``next_value``/``next_start`` are those of
    the step after the rollout.
    """
    steps = rewards.shape[0]
    advantages = np.zeros_like(values)
    running = np.zeros_like(next_value)
    for t in reversed(range(steps)):
        if t == steps - 1:
            following, go_on = next_value, 1.0 - next_start
        else:
            following, go_on = values[t + 1], 1.0 - starts[t + 1]
        delta = rewards[t] + gamma * following * go_on - values[t]
        running = delta + gamma * lam * go_on * running
        advantages[t] = running
    return advantages


class PPO(_PongRun):
    """A PPO run on Pong: ``envs`` games side by side, the clipped objective."""

    KIND = "pong-ppo"
    NET_KEY = "net"

    def __init__(self, config: PPOConfig, seed: int = 0) -> None:
        self._start_record(config, seed)
        with torch.random.fork_rng(devices=[]):  # leave torch's global stream be
            torch.manual_seed(stream_seed(seed, "init"))
            self.net = PongActorCritic(config.frames, config.actions)
        self.optimizer = torch.optim.Adam(
            self.net.parameters(), lr=config.learning_rate, eps=1e-5
        )
        self.rng = numpy_stream(seed, "actions")
        self.minibatch_rng = numpy_stream(seed, "minibatches")

    def _network(self) -> PongActorCritic:
        return self.net

    def _agent(self) -> StackAgent:
        return StackAgent(self.net)

    def learning_rate(self) -> float:
        """Linear annealing, from the configured rate at update 0 towards 0."""
        return self.config.learning_rate * (1.0 - self.update / self.config.updates)

    def collect(
        self, vec: PongVector, agent: StackAgent, frames: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        c = self.config
        n, t_len = c.envs, c.steps
        buf = {
            "obs": np.zeros((t_len, n, c.frames, SIZE, SIZE), np.uint8),
            "action": np.zeros((t_len, n), np.int64),
            "logp": np.zeros((t_len, n), np.float32),
            "value": np.zeros((t_len, n), np.float32),
            "reward": np.zeros((t_len, n), np.float32),
            "start": np.zeros((t_len, n), np.float32),
        }
        ale = np.asarray(agent.action_set)
        self.net.eval()
        for t in range(t_len):
            assert agent.stack is not None
            buf["obs"][t] = agent.stack
            buf["start"][t] = self._start
            with torch.no_grad():
                logits, value = self.net(torch.from_numpy(agent.stack))
                logp_all = torch.log_softmax(logits, dim=1).numpy()
            action = sample_actions(np.exp(logp_all), self.rng)
            buf["action"][t] = action
            buf["logp"][t] = logp_all[np.arange(n), action]
            buf["value"][t] = value.numpy()
            frames, reward, terminated, truncated = vec.step(ale[action])
            done = terminated | truncated
            agent.step_frames(frames)
            if done.any():
                agent.new_games(frames, done)
            buf["reward"][t] = reward
            self._start = done.astype(np.float32)
        return buf, frames

    def learn(self, buf: dict[str, np.ndarray], agent: StackAgent) -> dict[str, float]:
        c = self.config
        assert agent.stack is not None
        with torch.no_grad():
            _, next_value = self.net(torch.from_numpy(agent.stack))
        adv = gae(
            buf["reward"],
            buf["value"],
            buf["start"],
            next_value.numpy(),
            self._start,
            c.gamma,
            c.gae_lambda,
        )
        returns = adv + buf["value"]
        obs = torch.from_numpy(buf["obs"].reshape(c.batch, c.frames, SIZE, SIZE))
        actions = torch.from_numpy(buf["action"].reshape(-1))
        old_logp = torch.from_numpy(buf["logp"].reshape(-1))
        adv_t = torch.from_numpy(adv.reshape(-1))
        ret_t = torch.from_numpy(returns.reshape(-1))
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate()
        self.net.train()
        size = c.batch // c.minibatches
        stats: dict[str, float] = {}
        for _ in range(c.epochs):
            order = torch.from_numpy(self.minibatch_rng.permutation(c.batch))
            for k in range(c.minibatches):
                idx = order[k * size : (k + 1) * size]
                logits, value = self.net(obs[idx])
                logp_all = torch.log_softmax(logits, dim=1)
                logp = logp_all.gather(1, actions[idx, None]).squeeze(1)
                ratio = torch.exp(logp - old_logp[idx])
                a = adv_t[idx]
                a = (a - a.mean()) / (a.std() + 1e-8)
                policy_loss = torch.max(
                    -a * ratio, -a * ratio.clamp(1 - c.clip, 1 + c.clip)
                ).mean()
                value_loss = 0.5 * (value - ret_t[idx]).pow(2).mean()
                entropy = -(logp_all.exp() * logp_all).sum(1).mean()
                loss = policy_loss + c.value_coef * value_loss - c.entropy * entropy
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.net.parameters(), c.max_grad_norm)
                self.optimizer.step()
                with torch.no_grad():
                    stats = {
                        "policy_loss": policy_loss.item(),
                        "value_loss": value_loss.item(),
                        "entropy": entropy.item(),
                        "clip_fraction": ((ratio - 1).abs() > c.clip)
                        .float()
                        .mean()
                        .item(),
                    }
        return stats

    def train(
        self,
        until: int | None = None,
        *,
        checkpoint: Callable[[PPO], None] | None = None,
        checkpoint_seconds: float = 300.0,
        progress: Callable[[PPO], None] | None = None,
    ) -> None:
        """Update until ``until`` updates are done (the config's ``updates``).

        Every call starts new games in every lane: the games a previous call
        (or a run before a checkpoint) left unfinished are not continued.
        """
        c = self.config
        until = c.updates if until is None else until
        vec = make_pong_vector(c.envs, c.settings, seed=self.seed)
        agent = StackAgent(self.net)

        def one_update() -> dict[str, float]:
            nonlocal frames
            before = len(vec.finished)
            with torch_threads(1):
                buf, frames = self.collect(vec, agent, frames)
            stats = self.learn(buf, agent)
            self.scores.extend(vec.finished[before:])
            self.env_steps += c.batch
            return stats

        try:
            frames = vec.reset()
            agent.start(frames)
            self._start = np.ones(c.envs, np.float32)
            self._loop(until, one_update, checkpoint, checkpoint_seconds, progress)
        finally:
            vec.close()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "minibatch_rng": _rng_state(self.minibatch_rng)}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> PPO:
        _check_kind(state, cls.KIND)
        run = cls(PPOConfig(**json.loads(state["config"])), state["seed"])
        run._load_record(state)
        _set_rng_state(run.minibatch_rng, state["minibatch_rng"])
        return run


# ---------------------------------------------------------------- shipping

TEST_GAMES = 10
"""Games each shipped agent is tested on (the chapter's table)."""
TEST_SEED = 20_000
"""Seed of the test games' action stream, apart from training's (runs use seeds
below 100) and validation's (a purpose per update)."""
OBSERVATIONS = {
    "difference": {
        "preprocess": "rlbook.pong.prepro_batch",
        "input": "difference of the last two preprocessed frames, zero at a game's start",
    },
    "stack": {
        "preprocess": "rlbook.pong.prepro_batch",
        "input": "the last `frames` preprocessed frames, the first repeated at a game's start",
    },
}


@dataclass(frozen=True)
class PongPolicy:
    """A shipped Pong agent: builds a fresh :class:`PongAgent` for each set of games."""

    kind: str
    net: TorchPolicy | PongActorCritic

    def make_agent(self) -> DifferenceAgent | StackAgent:
        return _agent_for(self.net)

    def act_batch(self, obs: np.ndarray) -> np.ndarray:  # the Policy protocol
        raise TypeError(
            "Pong agents play whole games: use rlbook.pong_train.play_games"
        )

    def act(self, obs: np.ndarray) -> int:
        raise TypeError(
            "Pong agents play whole games: use rlbook.pong_train.play_games"
        )


def _spec_for(state: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    config = json.loads(state["config"])
    if state["kind"] == "pong-reinforce":
        network = {
            "inputs": INPUTS,
            "hidden": config["hidden"],
            "actions": config["actions"],
        }
        return "pong-pg", {
            "network": network,
            "observation": dict(OBSERVATIONS["difference"]),
        }
    network = {"frames": config["frames"], "actions": config["actions"]}
    observation = {**OBSERVATIONS["stack"], "frames": config["frames"]}
    return "pong-actor-critic", {"network": network, "observation": observation}


def _build_pong(
    kind: str, spec: Mapping[str, Any], weights: Mapping[str, Any]
) -> PongPolicy:
    from .pong import _check_settings

    _check_settings(spec["settings"])
    expected = OBSERVATIONS["difference" if kind == "pong-pg" else "stack"][
        "preprocess"
    ]
    if spec["observation"]["preprocess"] != expected:
        raise ValueError(
            f"{kind} agents see frames through {expected}, not "
            f"{spec['observation']['preprocess']!r}"
        )
    net = _net_for(kind, spec["network"], weights["policy"])
    if tuple(spec["action_set"]) != action_set(net.actions):
        raise ValueError(
            f"action_set {spec['action_set']} is not the {net.actions}-action "
            f"policy's {list(action_set(net.actions))}"
        )
    return PongPolicy(kind, net)


def _register() -> None:
    from .agents import register_kind

    for kind in ("pong-pg", "pong-actor-critic"):
        register_kind(kind)(
            lambda spec, weights, kind=kind: _build_pong(kind, spec, weights)
        )


_register()


def _net_for(
    kind: str, network: Mapping[str, Any], weights: Mapping[str, torch.Tensor]
) -> TorchPolicy | PongActorCritic:
    """The network of a shipped ``kind``, holding ``weights`` (cast to float32)."""
    net = (TorchPolicy if kind == "pong-pg" else PongActorCritic)(**network)
    net.load_state_dict(weights)
    return net.float().eval()


def _agent_for(net: TorchPolicy | PongActorCritic) -> DifferenceAgent | StackAgent:
    if isinstance(net, TorchPolicy):
        return DifferenceAgent(net)
    return StackAgent(net)


def test_weights(
    state: Mapping[str, Any],
    weights: Mapping[str, torch.Tensor],
    games: int = TEST_GAMES,
) -> np.ndarray:
    """Scores of ``games`` test games with ``weights`` of the run ``state``."""
    kind, spec = _spec_for(state)
    agent = _agent_for(_net_for(kind, spec["network"], weights))
    settings = json.loads(state["config"])["settings"]
    return play_games(agent, games, seed=TEST_SEED, settings=settings)


PROGRESS_FILE = "in-progress.json"


def snapshot_pong(state: Mapping[str, Any], out: str | Path, *, command: str) -> Path:
    """Record where an unfinished full run stands, without shipping an agent.

    Writes ``out/in-progress.json``: the run's curves so far (scores, log,
    validations), how far it has gone of its planned updates, and where it came
    from. No weights ship with it and nothing is tested: a chapter shows it as
    a run in progress, never as a result. :func:`export_pong` removes it once
    the finished run ships. ``scripts/train_pong.py --snapshot`` refuses a
    tree with uncommitted changes before it calls this.
    """
    from .checkpoint import atomic_write, make_provenance

    config = json.loads(state["config"])
    planned = (ReinforceConfig if state["kind"] == "pong-reinforce" else PPOConfig)(
        **config
    ).updates
    if state["update"] >= planned:
        raise ValueError(
            f"the run has finished ({state['update']} of {planned} updates): "
            "export it with --export instead"
        )
    record = {
        "kind": state["kind"],
        "update": int(state["update"]),
        "planned_updates": int(planned),
        "env_steps": int(state["env_steps"]),
        "wall_seconds": round(float(state["wall_seconds"]), 1),
        "cpu_seconds": round(float(state.get("cpu_seconds", 0.0)), 1),
        "scores": np.asarray(state["scores"]).tolist(),
        "log": json.loads(state["log"]),
        "validations": json.loads(state["validations"]),
        "provenance": make_provenance(
            command=command,
            config=config,
            budget=state.get("budget", "full"),
            device="cpu",
            wall_time_s=state["wall_seconds"],
            trained_at_commits=json.loads(state.get("commits", "[]")),
            resumed_at_updates=json.loads(state.get("resumed_at", "[]")),
            cpu_count=os.cpu_count(),
        ),
    }
    Path(out).mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, separators=(",", ":")) + "\n"
    target = Path(out) / PROGRESS_FILE
    atomic_write(target, lambda handle: handle.write(text.encode()))
    return target


def export_pong(state: Mapping[str, Any], out: str | Path, *, command: str) -> Path:
    """Ship a finished run: its best-validation weights as the agent, both tested.

    The rule, fixed before the runs: the shipped weights are those of the
    run's best validation (10 games every ``validate_every`` updates, the last
    at the final update; ties go to the earlier); the final weights ship
    beside them and both are tested on :data:`TEST_GAMES` games.
    ``scripts/train_pong.py --export`` refuses a tree with uncommitted changes
    before it calls this.
    """
    from .agents import save_agent
    from .checkpoint import atomic_write, git_commit, make_provenance

    config = json.loads(state["config"])
    run_class = Reinforce if state["kind"] == "pong-reinforce" else PPO
    updates = (ReinforceConfig if run_class is Reinforce else PPOConfig)(
        **config
    ).updates
    if state["update"] < updates:
        raise ValueError(
            f"the run is at update {state['update']} of {updates}: finish it before exporting"
        )

    def half(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}

    net_key = "policy" if state["kind"] == "pong-reinforce" else "net"
    best, final = half(state["best"]["state"]), half(state[net_key])
    tests = {"best": test_weights(state, best), "final": test_weights(state, final)}
    kind, spec = _spec_for(state)
    spec.update(
        settings=config["settings"],
        action_set=list(action_set(config["actions"])),
        play="actions sampled from the policy (greedy play repeats one game: Pong "
        "without sticky actions is deterministic)",
        best_update=state["best"]["update"],
    )
    log = json.loads(state["log"])
    scores = np.asarray(state["scores"])
    reached = first_reaching(scores, 18.0) if kind == "pong-actor-critic" else None
    reached_zero = first_reaching(scores, 0.0)
    game_update = np.searchsorted(
        [e["games"] for e in log], np.arange(1, scores.size + 1)
    )

    def at_game(g: int | None) -> dict[str, Any] | None:
        if g is None:
            return None
        entry = log[int(game_update[g])]
        return {
            "game": g + 1,
            "env_steps": entry["env_steps"],
            "wall_seconds": entry["wall_seconds"],
            "cpu_seconds": entry.get("cpu_seconds"),
        }

    score = {
        "test_best_mean": float(tests["best"].mean()),
        "test_final_mean": float(tests["final"].mean()),
        "test_best": tests["best"].tolist(),
        "test_final": tests["final"].tolist(),
        "games": TEST_GAMES,
        "seed": TEST_SEED,
    }
    provenance = make_provenance(
        command=command,
        config=config,
        budget=state.get("budget", "full"),
        device="cpu",
        wall_time_s=state["wall_seconds"],
        score=score,
        trained_at_commits=json.loads(state.get("commits", "[]")),
        resumed_at_updates=json.loads(state.get("resumed_at", "[]")),
        exported_at_commit=git_commit(),
        env_steps=state["env_steps"],
        cpu_count=os.cpu_count(),
        cpu_time_s=round(state.get("cpu_seconds", 0.0), 1),
        updates=state["update"],
        chosen_by="the weights of the best validation (10 games each); ties to the earlier",
        running_mean_games=RUNNING_GAMES,
        first_running_mean_at_least_18=at_game(reached),
        first_running_mean_at_least_0=at_game(reached_zero),
    )
    save_agent(
        out,
        kind=kind,
        env_id=config["settings"]["env_id"],
        spec=spec,
        weights={"policy": best, "final_policy": final},
        provenance=provenance,
    )
    metrics = {
        "kind": kind,
        "scores": scores.tolist(),
        "log": log,
        "validations": json.loads(state["validations"]),
        "test": {k: v.tolist() for k, v in tests.items()},
        "best_update": state["best"]["update"],
    }
    text = json.dumps(metrics, separators=(",", ":")) + "\n"
    atomic_write(Path(out) / "metrics.json", lambda handle: handle.write(text.encode()))
    # the finished run replaces any snapshot of it in progress
    (Path(out) / PROGRESS_FILE).unlink(missing_ok=True)
    return Path(out)
