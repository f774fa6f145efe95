"""Generated from chapters/pong.md by scripts/sync_notebooks.py: do not edit.

The page's code cells tagged ``export``, in page order. Edit them on the
page, then run scripts/sync_notebooks.py.
"""

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlbook.budget import validate_budget
from rlbook.chapters import add_to_class
from rlbook.pong import (
    INPUTS,
    PONG_SETTINGS,
    SIZE,
    PongVector,
    make_pong_vector,
    sample_actions,
)
from rlbook.pong_train import (
    DifferenceAgent,
    PongRun,
    StackAgent,
    check_kind,
    rng_state,
    set_rng_state,
    sparse_hidden,
    torch_threads,
)
from rlbook.seeding import numpy_stream, stream_seed


class TorchPolicy(nn.Module):
    """Two bias-free linear layers with a ReLU between: logits for
    actions >= 3 (a softmax); pg-pong's log-odds of UP for 2."""

    def __init__(
        self, inputs: int = INPUTS, hidden: int = 200, actions: int = 3
    ) -> None:
        super().__init__()
        if actions < 2:
            raise ValueError(f"actions must be >= 2, got {actions}")
        self.actions = actions
        # W1: (hidden, inputs); W2: (1 or actions, hidden)
        self.hidden = nn.Linear(inputs, hidden, bias=False)
        self.out = nn.Linear(
            hidden, 1 if actions == 2 else actions, bias=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, A), or (B,) (the log-odds of UP) for 2 actions."""
        logits = self.out(torch.relu(self.hidden(x)))
        return logits.squeeze(1) if self.actions == 2 else logits

    def probs(self, x: torch.Tensor) -> torch.Tensor:
        """Action probabilities (B, A)."""
        logits = self(x)
        if self.actions == 2:
            p = torch.sigmoid(logits)
            return torch.stack([p, 1 - p], dim=1)
        return torch.softmax(logits, dim=1)

    @classmethod
    def from_numpy(cls, model: dict[str, np.ndarray]) -> "TorchPolicy":
        """A policy holding copies of a NumPy model's W1 and W2."""
        hidden, inputs = model["W1"].shape
        actions = 2 if model["W2"].ndim == 1 else model["W2"].shape[0]
        if model["W2"].shape[-1] != hidden:
            raise ValueError(
                f"W2 {model['W2'].shape} does not fit W1 "
                f"{model['W1'].shape}"
            )
        dtype = torch.from_numpy(model["W1"]).dtype
        policy = cls(inputs, hidden, actions).to(dtype)
        with torch.no_grad():
            policy.hidden.weight.copy_(torch.from_numpy(model["W1"]))
            w2 = torch.from_numpy(model["W2"]).reshape(-1, hidden)
            policy.out.weight.copy_(w2)
        return policy

    def to_numpy(self) -> dict[str, np.ndarray]:
        """The weights as a NumPy model {"W1", "W2"} (copies)."""
        w2 = self.out.weight.detach().cpu().numpy().copy()
        return {
            "W1": self.hidden.weight.detach().cpu().numpy().copy(),
            "W2": w2[0] if self.actions == 2 else w2,
        }


def discount_rewards(
    rewards: np.ndarray, gamma: float = 0.99
) -> np.ndarray:
    """Discounted returns of one game, (T,), reset at each point."""
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.ndim != 1:
        raise ValueError(
            f"rewards must have shape (T,), got {rewards.shape}"
        )
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {gamma}")
    discounted = np.zeros_like(rewards)
    running_add = 0.0
    for t in reversed(range(rewards.size)):
        if rewards[t] != 0:
            # reset the sum: a game boundary (pong specific!)
            running_add = 0.0
        running_add = running_add * gamma + rewards[t]
        discounted[t] = running_add
    return discounted


def standardise(returns: np.ndarray) -> np.ndarray:
    """(returns - mean) / std, as pg-pong does to each game's returns."""
    returns = np.asarray(returns, dtype=np.float64)
    std = returns.std()
    if std == 0:
        raise ValueError(
            "returns have zero spread: nothing to standardise"
        )
    return (returns - returns.mean()) / std


def policy_gradient_loss(
    logits: torch.Tensor,
    actions: torch.Tensor,
    advantages: torch.Tensor,
    reduction: str = "sum",
) -> torch.Tensor:
    """Return-weighted cross-entropy, -sum_t A_t log pi(a_t | x_t).

    logits (B, A), or (B,) for the sigmoid network (action 0 is UP);
    actions (B,) int64; advantages (B,). "sum" is pg-pong's: its
    gradient adds up over every step of the batch.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(
            f"reduction must be 'sum' or 'mean', got {reduction!r}"
        )
    if logits.ndim == 1:
        up = (actions == 0).to(logits.dtype)
        nll = F.binary_cross_entropy_with_logits(
            logits, up, reduction="none"
        )
    else:
        nll = F.cross_entropy(logits, actions, reduction="none")
    weighted = advantages.to(logits.dtype) * nll
    return weighted.sum() if reduction == "sum" else weighted.mean()


@dataclass(frozen=True)
class ReinforceConfig:
    """pg-pong.py's hyperparameters (three actions, as TensorLayer's)."""

    games_per_update: int = 10
    """batch_size: games per parameter update, played side by side"""
    learning_rate: float = 1e-4
    """RMSProp's step size"""
    decay: float = 0.99
    """RMSProp's decay of its running mean of squared gradients"""
    gamma: float = 0.99
    """discount of the returns, summed to the end of each rally"""
    hidden: int = 200
    """hidden ReLU units of the policy"""
    actions: int = 3
    """3: NOOP, UP, DOWN with a softmax; 2: pg-pong's UP/DOWN sigmoid"""
    updates: int = 2000
    """length of the run in updates (games_per_update games each)"""
    validate_every: int = 50
    """updates between validations; the best one ships beside the final"""
    validation_games: int = 10
    """games per validation"""
    chunk: int = 8192
    """steps per forward-backward chunk (memory, not results)"""
    settings: dict[str, Any] = field(
        default_factory=lambda: dict(PONG_SETTINGS)
    )
    """the emulator's settings (rlbook.pong.PONG_SETTINGS)"""


REINFORCE_BUDGETS = {
    "smoke": {"updates": 2, "validate_every": 1, "validation_games": 2},
    "ci": {"updates": 12, "validate_every": 6, "validation_games": 4},
    "full": {},
}


def reinforce_config(budget: str) -> ReinforceConfig:
    """The configuration of a budget: only the run's length changes."""
    return ReinforceConfig(**REINFORCE_BUDGETS[validate_budget(budget)])


class Reinforce(PongRun):
    """A REINFORCE run: pg-pong.py's algorithm on 10 games at a time."""

    KIND = "pong-reinforce"
    NET_KEY = "policy"

    def __init__(self, config: ReinforceConfig, seed: int = 0) -> None:
        self._start_record(config, seed)
        self.policy = TorchPolicy(INPUTS, config.hidden, config.actions)
        with torch.no_grad():  # pg-pong's "Xavier" initialisation
            rng = numpy_stream(seed, "init")
            for layer in (self.policy.hidden, self.policy.out):
                w = rng.standard_normal(
                    tuple(layer.weight.shape)
                ) / np.sqrt(layer.weight.shape[1])
                layer.weight.copy_(torch.from_numpy(w))
        self.optimizer = torch.optim.RMSprop(
            self.policy.parameters(),
            lr=config.learning_rate,
            alpha=config.decay,
            eps=1e-5,
        )
        self.rng = numpy_stream(seed, "actions")
        self.lengths: list[int] = []
        """steps of each game, in the order of scores"""

    def _network(self) -> TorchPolicy:
        return self.policy

    def _agent(self) -> DifferenceAgent:
        return DifferenceAgent(self.policy)


@add_to_class(Reinforce)
def play_batch(self, vec: PongVector) -> tuple[np.ndarray, ...]:
    """Play one game in each lane; every game's steps, lane by lane."""
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
    order = np.argsort(lane, kind="stable")  # each lane's steps in order
    return (
        np.concatenate(xs)[order],
        np.concatenate(actions)[order],
        np.concatenate(rewards)[order],
        lane[order],
    )


@add_to_class(Reinforce)
def advantages(self, rewards: np.ndarray, lane: np.ndarray) -> np.ndarray:
    """Each game's returns, reset at each point, standardised per game."""
    out = np.zeros(rewards.shape, np.float32)
    for g in np.unique(lane):
        sel = lane == g
        returns = discount_rewards(rewards[sel], self.config.gamma)
        out[sel] = standardise(returns)
    return out


@add_to_class(Reinforce)
def learn(
    self, x: np.ndarray, actions: np.ndarray, adv: np.ndarray
) -> None:
    """One RMSProp step on the loss summed over the batch's steps."""
    self.policy.train()
    self.optimizer.zero_grad(set_to_none=True)
    for start in range(0, len(x), self.config.chunk):
        end = start + self.config.chunk
        # x @ W1.T from the nonzero pixels only
        hidden = sparse_hidden(
            self.policy.hidden.weight.t(), x[start:end]
        )
        logits = self.policy.out(torch.relu(hidden))
        if self.config.actions == 2:
            logits = logits.squeeze(1)  # pg-pong's log-odds of UP
        loss = policy_gradient_loss(
            logits,
            torch.from_numpy(actions[start:end]),
            torch.from_numpy(adv[start:end]),
        )
        loss.backward()
    self.optimizer.step()


@add_to_class(Reinforce)
def train(
    self,
    until: int | None = None,
    *,
    checkpoint: Callable[[Reinforce], None] | None = None,
    checkpoint_seconds: float = 300.0,
    progress: Callable[[Reinforce], None] | None = None,
) -> None:
    """Update until `until` updates are done (the config's `updates`)."""
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
        self._loop(
            until, one_update, checkpoint, checkpoint_seconds, progress
        )
    finally:
        vec.close()


# A run's whole state between two updates, for checkpoints: PongRun's
# record plus the game lengths.
@add_to_class(Reinforce)
def state_dict(self) -> dict[str, Any]:
    return {**PongRun.state_dict(self), "lengths": self.lengths}


@add_to_class(Reinforce)
@classmethod
def from_state(cls, state: Mapping[str, Any]) -> Reinforce:
    check_kind(state, cls.KIND)
    config = ReinforceConfig(**json.loads(state["config"]))
    run = cls(config, state["seed"])
    run._load_record(state)
    run.lengths = list(state["lengths"])
    return run


class PongActorCritic(nn.Module):
    """A small convolutional actor-critic on stacked 80x80 frames.

    (B, frames, 80, 80) uint8 in {0, 1} -> 16 filters 8x8 stride 4
    (19x19) -> 32 filters 4x4 stride 2 (8x8) -> 256 units -> action
    logits and a state value.
    """

    def __init__(
        self, frames: int = 4, actions: int = 3, hidden: int = 256
    ) -> None:
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
        # a near-uniform first policy
        nn.init.orthogonal_(self.policy.weight, 0.01)
        nn.init.zeros_(self.policy.bias)
        nn.init.orthogonal_(self.value.weight, 1.0)
        nn.init.zeros_(self.value.bias)

    def forward(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, frames, 80, 80) -> logits (B, actions), values (B,)."""
        if x.ndim != 4 or x.shape[1:] != (self.frames, SIZE, SIZE):
            raise ValueError(
                f"x must have shape (B, {self.frames}, {SIZE}, {SIZE}),"
                f" got {tuple(x.shape)}"
            )
        h = self.body(x.float())
        return self.policy(h), self.value(h).squeeze(1)


@dataclass(frozen=True)
class PPOConfig:
    """PPO's settings: CleanRL's ppo_atari's but where the page says."""

    envs: int = 16
    """games played side by side"""
    steps: int = 128
    """steps per lane per update: an update learns from envs * steps"""
    epochs: int = 4
    """passes over each update's steps"""
    minibatches: int = 4
    """minibatches per pass"""
    learning_rate: float = 2.5e-4
    """Adam's step size, annealed linearly to 0 over the run"""
    gamma: float = 0.99
    """discount"""
    gae_lambda: float = 0.95
    """GAE's lambda: 0 is one-step TD, 1 the Monte Carlo return"""
    clip: float = 0.1
    """the clip range epsilon of the probability ratio"""
    entropy: float = 0.01
    """weight c_H of the entropy bonus"""
    value_coef: float = 0.5
    """weight c_V of the value loss"""
    max_grad_norm: float = 0.5
    """gradients are clipped to this norm"""
    frames: int = 4
    """frames stacked per observation"""
    actions: int = 3
    """NOOP, UP, DOWN"""
    total_steps: int = 2_500_000
    """agent steps, all lanes together: 10M frames at a skip of 4"""
    validate_every: int = 100
    """updates between validations; the best one ships beside the final"""
    validation_games: int = 10
    """games per validation"""
    settings: dict[str, Any] = field(
        default_factory=lambda: dict(PONG_SETTINGS)
    )
    """the emulator's settings (rlbook.pong.PONG_SETTINGS)"""

    @property
    def batch(self) -> int:
        return self.envs * self.steps

    @property
    def updates(self) -> int:
        return max(1, self.total_steps // self.batch)


PPO_BUDGETS = {
    "smoke": {
        "total_steps": 2 * 2048,
        "validate_every": 2,
        "validation_games": 2,
    },
    "ci": {
        "total_steps": 30 * 2048,
        "validate_every": 30,
        "validation_games": 4,
    },
    "full": {},
}


def ppo_config(budget: str) -> PPOConfig:
    """The configuration of a budget: only the run's length changes."""
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
    """Generalised advantage estimates, (T, N), time first.

    next_value and next_start are those of the step after the rollout.
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


class PPO(PongRun):
    """A PPO run on Pong: envs games side by side."""

    KIND = "pong-ppo"
    NET_KEY = "net"

    def __init__(self, config: PPOConfig, seed: int = 0) -> None:
        self._start_record(config, seed)
        # leave torch's global random stream be
        with torch.random.fork_rng(devices=[]):
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
        """Linear annealing, from the configured rate towards 0."""
        c = self.config
        return c.learning_rate * (1.0 - self.update / c.updates)


@add_to_class(PPO)
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


@add_to_class(PPO)
def learn(
    self, buf: dict[str, np.ndarray], agent: StackAgent
) -> dict[str, float]:
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
    obs = torch.from_numpy(
        buf["obs"].reshape(c.batch, c.frames, SIZE, SIZE)
    )
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
            loss = (
                policy_loss
                + c.value_coef * value_loss
                - c.entropy * entropy
            )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(
                self.net.parameters(), c.max_grad_norm
            )
            self.optimizer.step()
            with torch.no_grad():
                clipped = (ratio - 1).abs() > c.clip
                stats = {
                    "policy_loss": policy_loss.item(),
                    "value_loss": value_loss.item(),
                    "entropy": entropy.item(),
                    "clip_fraction": clipped.float().mean().item(),
                }
    return stats


@add_to_class(PPO)
def train(
    self,
    until: int | None = None,
    *,
    checkpoint: Callable[[PPO], None] | None = None,
    checkpoint_seconds: float = 300.0,
    progress: Callable[[PPO], None] | None = None,
) -> None:
    """Update until `until` updates are done (the config's `updates`).

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
        self._loop(
            until, one_update, checkpoint, checkpoint_seconds, progress
        )
    finally:
        vec.close()


# A run's whole state between two updates, for checkpoints: PongRun's
# record plus the minibatch stream.
@add_to_class(PPO)
def state_dict(self) -> dict[str, Any]:
    return {
        **PongRun.state_dict(self),
        "minibatch_rng": rng_state(self.minibatch_rng),
    }


@add_to_class(PPO)
@classmethod
def from_state(cls, state: Mapping[str, Any]) -> PPO:
    check_kind(state, cls.KIND)
    run = cls(PPOConfig(**json.loads(state["config"])), state["seed"])
    run._load_record(state)
    set_rng_state(run.minibatch_rng, state["minibatch_rng"])
    return run
