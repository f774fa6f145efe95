"""Generated from chapters/pong_ppo.md by scripts/sync_notebooks.py: do not edit.

The page's code cells tagged ``export``, in page order. Edit them on the
page, then run scripts/sync_notebooks.py.
"""

import json
import multiprocessing
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from rlbook.agents import register_kind
from rlbook.budget import validate_budget
from rlbook.chapters import add_to_class
from rlbook.chapters.pong import (
    PongPolicy,
    PongRun,
    action_set,
    build_pong,
    check_kind,
    rng_state,
    sample_actions,
    set_rng_state,
    torch_threads,
)
from rlbook.pong import (
    PONG_SETTINGS,
    SIZE,
    PongVector,
    make_pong_vector,
    prepro_batch,
)
from rlbook.seeding import numpy_stream, stream_seed


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
    bf16: bool = False
    """the learner's forward pass in bfloat16 (autocast), its loss in
    float32; collection stays in float32"""
    compile: bool = False
    """the learner's forward and loss compiled by torch.compile"""
    overlap: bool = False
    """collect in a second process, one update behind, while learning"""

    @property
    def batch(self) -> int:
        return self.envs * self.steps

    @property
    def updates(self) -> int:
        return max(1, self.total_steps // self.batch)


# A budget changes only the run's length; a recipe ("Pong in minutes")
# how an update runs, never the run's length: fast only its speed,
# minutes also what it learns from a step.
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


PPO_RECIPES: dict[str, dict[str, Any]] = {
    "shipped": {},
    "fast": {"bf16": True, "compile": True, "overlap": True},
    # fast, with the probe the rule picked, timed on 3 seeds (#26)
    "minutes": {
        "bf16": True,
        "compile": True,
        "overlap": True,
        "minibatches": 8,
        "learning_rate": 1e-3,
    },
    # a GPU learner: bf16, compile and the forked collector are CPU tricks
    "gpu": {"bf16": False, "compile": False, "overlap": False},
}


def ppo_config(budget: str, recipe: str = "shipped") -> PPOConfig:
    """The configuration of a budget: only the run's length changes."""
    if recipe not in PPO_RECIPES:
        raise ValueError(
            f"unknown recipe {recipe!r}: one of {', '.join(PPO_RECIPES)}"
        )
    return PPOConfig(
        **PPO_BUDGETS[validate_budget(budget)], **PPO_RECIPES[recipe]
    )


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


# How PPO's agent plays, lane by lane: the last `frames` preprocessed
# frames of each lane, and an action sampled from the network's policy.
class StackAgent:
    """Plays an actor-critic on the last `frames` frames (PPO)."""

    def __init__(self, net: nn.Module) -> None:
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
    def act(
        self, frames: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        assert self.stack is not None
        device = next(self.net.parameters()).device
        logits, _ = self.net(torch.from_numpy(self.stack).to(device))
        probs = torch.softmax(logits, dim=1).cpu().numpy()
        return sample_actions(probs, rng)


class PPO(PongRun):
    """A PPO run on Pong: envs games side by side."""

    KIND = "pong-ppo"
    NET_KEY = "net"

    def __init__(
        self, config: PPOConfig, seed: int = 0, device: str = "cpu"
    ) -> None:
        self._start_record(config, seed)
        # where the network learns (and acts); the games stay on the CPU
        self.device = torch.device(device)
        # leave torch's global random stream be
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stream_seed(seed, "init"))
            net = PongActorCritic(config.frames, config.actions)
        self.net = net.to(self.device)
        self.optimizer = torch.optim.Adam(
            self.net.parameters(), lr=config.learning_rate, eps=1e-5
        )
        self.rng = numpy_stream(seed, "actions")
        self.minibatch_rng = numpy_stream(seed, "minibatches")

    def _network(self) -> PongActorCritic:
        return self.net

    def tensor(self, x: np.ndarray) -> torch.Tensor:
        """An array as a tensor on the learner's device."""
        return torch.from_numpy(x).to(self.device)

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
        "truncated": np.zeros((t_len, n), np.float32),
    }
    ale = np.asarray(agent.action_set)
    self.net.eval()
    for t in range(t_len):
        assert agent.stack is not None
        buf["obs"][t] = agent.stack
        buf["start"][t] = self._start
        with torch.no_grad():
            logits, value = self.net(self.tensor(agent.stack))
            logp_all = torch.log_softmax(logits, dim=1).cpu().numpy()
        action = sample_actions(np.exp(logp_all), self.rng)
        buf["action"][t] = action
        buf["logp"][t] = logp_all[np.arange(n), action]
        buf["value"][t] = value.cpu().numpy()
        frames, reward, terminated, truncated = vec.step(ale[action])
        cut = truncated & ~terminated
        if cut.any():
            # the time limit is not the game's end: bootstrap through
            # it with the critic's value of the game's last observation
            last = np.roll(agent.stack[cut], -1, axis=1)
            last[:, -1] = prepro_batch(vec.final_frames[cut])
            with torch.no_grad():
                _, last_value = self.net(self.tensor(last))
            reward[cut] += c.gamma * last_value.cpu().numpy()
        buf["truncated"][t] = cut
        done = terminated | truncated
        agent.step_frames(frames)
        if done.any():
            agent.new_games(frames, done)
        buf["reward"][t] = reward
        self._start = done.astype(np.float32)
    return buf, frames


def explained_variance(values: np.ndarray, targets: np.ndarray) -> float:
    """1 - Var(targets - values) / Var(targets), any equal shapes.

    1 is a perfect critic, 0 one no better than the targets' mean, and
    below 0 a worse one; nan when the targets do not vary.
    """
    spread = float(np.var(targets))
    if spread == 0.0:
        return float("nan")
    return 1.0 - float(np.var(targets - values)) / spread


@add_to_class(PPO)
def minibatch_loss(
    self,
    obs: torch.Tensor,
    actions: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    ret: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """PPO's loss on one minibatch, and the terms the log keeps."""
    c = self.config
    with torch.autocast(obs.device.type, torch.bfloat16, enabled=c.bf16):
        logits, value = self.net(obs)
    logits, value = logits.float(), value.float()
    logp_all = torch.log_softmax(logits, dim=1)
    logp = logp_all.gather(1, actions[:, None]).squeeze(1)
    # old_logp: the policy that collected (a step behind with overlap)
    ratio = torch.exp(logp - old_logp)
    a = (adv - adv.mean()) / (adv.std() + 1e-8)
    policy_loss = torch.max(
        -a * ratio, -a * ratio.clamp(1 - c.clip, 1 + c.clip)
    ).mean()
    value_loss = 0.5 * (value - ret).pow(2).mean()
    entropy = -(logp_all.exp() * logp_all).sum(1).mean()
    loss = policy_loss + c.value_coef * value_loss - c.entropy * entropy
    return {
        "loss": loss,
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": entropy,
        "ratio": ratio,
        "log_ratio": logp - old_logp,
    }


@add_to_class(PPO)
def learn(
    self, buf: dict[str, np.ndarray], agent: StackAgent | None
) -> dict[str, float]:
    c = self.config
    if "next_value" in buf:  # collected by the overlap's worker
        next_value, next_start = buf["next_value"], buf["next_start"]
    else:
        assert agent is not None and agent.stack is not None
        with torch.no_grad():
            _, value = self.net(self.tensor(agent.stack))
        next_value, next_start = value.cpu().numpy(), self._start
    adv = gae(
        buf["reward"],
        buf["value"],
        buf["start"],
        next_value,
        next_start,
        c.gamma,
        c.gae_lambda,
    )
    returns = adv + buf["value"]
    obs = self.tensor(buf["obs"].reshape(c.batch, c.frames, SIZE, SIZE))
    actions, old_logp, adv_t, ret_t = (
        self.tensor(x.reshape(-1))
        for x in (buf["action"], buf["logp"], adv, returns)
    )
    for group in self.optimizer.param_groups:
        group["lr"] = self.learning_rate()
    self.net.train()
    if c.compile and getattr(self, "compiled_loss", None) is None:
        self.compiled_loss = torch.compile(self.minibatch_loss)
    loss_of = self.compiled_loss if c.compile else self.minibatch_loss
    size = c.batch // c.minibatches
    stats: dict[str, float] = {}
    for _ in range(c.epochs):
        order = self.tensor(self.minibatch_rng.permutation(c.batch))
        for k in range(c.minibatches):
            idx = order[k * size : (k + 1) * size]
            terms = loss_of(
                obs[idx],
                actions[idx],
                old_logp[idx],
                adv_t[idx],
                ret_t[idx],
            )
            self.optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            nn.utils.clip_grad_norm_(
                self.net.parameters(), c.max_grad_norm
            )
            self.optimizer.step()
            with torch.no_grad():
                ratio, log_ratio = terms["ratio"], terms["log_ratio"]
                clipped = (ratio - 1).abs() > c.clip
                stats = {
                    "policy_loss": terms["policy_loss"].item(),
                    "value_loss": terms["value_loss"].item(),
                    "entropy": terms["entropy"].item(),
                    "clip_fraction": clipped.float().mean().item(),
                    # KL(old || new) from the samples: (r - 1) - log r
                    "approx_kl": (ratio - 1 - log_ratio).mean().item(),
                }
    stats["explained_variance"] = explained_variance(
        buf["value"], returns
    )
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
    if c.overlap:  # see "Pong in minutes"
        self.train_overlapped(
            until, checkpoint, checkpoint_seconds, progress
        )
        return
    vec = make_pong_vector(c.envs, c.settings, seed=self.seed)
    agent = StackAgent(self.net)

    def one_update() -> dict[str, float]:
        nonlocal frames
        before = len(vec.finished)
        with torch_threads(1):
            buf, frames = self.collect(vec, agent, frames)
        stats = self.learn(buf, agent)
        stats["truncated_games"] = int(buf["truncated"].sum())
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


# The overlap of "Pong in minutes": collection in a forked process,
# one update behind, while the learner learns.
def collector(run: PPO, conn: Any, learners_end: Any) -> None:
    """The overlap's second process: a fork of `run` that collects a
    rollout with every set of weights it receives, until None."""
    learners_end.close()  # so that a learner's death ends the pipe
    torch.set_num_threads(1)
    c = run.config
    vec = make_pong_vector(c.envs, c.settings, seed=run.seed)
    agent = StackAgent(run.net)
    frames = vec.reset()
    agent.start(frames)
    run._start = np.ones(c.envs, np.float32)
    try:
        while (weights := conn.recv()) is not None:
            run.net.load_state_dict(
                {k: torch.from_numpy(v) for k, v in weights.items()}
            )
            before = len(vec.finished)
            buf, frames = run.collect(vec, agent, frames)
            assert agent.stack is not None
            with torch.no_grad():  # GAE's bootstrap, by the same critic
                _, value = run.net(torch.from_numpy(agent.stack))
            buf["next_value"] = value.numpy()
            buf["next_start"] = run._start.copy()
            games = vec.finished[before:]
            conn.send(
                (buf, games, rng_state(run.rng), time.process_time())
            )
    finally:
        vec.close()


@add_to_class(PPO)
def train_overlapped(
    self,
    until: int,
    checkpoint: Callable[[PPO], None] | None,
    checkpoint_seconds: float,
    progress: Callable[[PPO], None] | None,
) -> None:
    """train() with the collector in a second process; the log's CPU
    seconds add the collector's."""
    if self.device.type != "cpu":
        raise ValueError(
            "the overlap forks a CPU collector from the learner: a "
            f"learner on {self.device} needs overlap=False (the 'gpu' "
            "recipe)"
        )
    c = self.config
    fork = multiprocessing.get_context("fork")
    conn, theirs = fork.Pipe()
    worker = fork.Process(target=collector, args=(self, theirs, conn))
    worker.daemon = True
    worker.start()
    theirs.close()  # a collector's death ends the pipe
    self.collector_cpu_seconds = 0.0

    def weights() -> dict[str, np.ndarray]:
        return {
            k: v.numpy().copy() for k, v in self.net.state_dict().items()
        }

    def one_update() -> dict[str, float]:
        buf, games, rng, cpu = conn.recv()
        # the next rollout, collected while this one is learned
        conn.send(weights())
        stats = self.learn(buf, None)
        stats["truncated_games"] = int(buf["truncated"].sum())
        set_rng_state(self.rng, rng)  # where the actions' stream stands
        self.cpu_seconds += cpu - self.collector_cpu_seconds
        self.collector_cpu_seconds = cpu
        self.scores.extend(games)
        self.env_steps += c.batch
        return stats

    try:
        conn.send(weights())
        self._loop(
            until, one_update, checkpoint, checkpoint_seconds, progress
        )
    finally:
        worker.terminate()  # it is collecting a rollout nobody will use
        worker.join()


# A shipped PPO agent rebuilt from its manifest (`rlbook.agents`
# imports this module for its kind, "pong-actor-critic"): the network
# and its weights, checked by the previous page's build_pong.
STACK_OBSERVATION = {
    "preprocess": "rlbook.pong.prepro_batch",
    "input": "the last `frames` preprocessed frames, the first "
    "repeated at a game's start",
}
"""What a PPO agent sees, as its manifest records it."""


@register_kind("pong-actor-critic")
def _build_pong_actor_critic(
    spec: Mapping[str, Any], weights: Mapping[str, Any]
) -> PongPolicy:
    return build_pong(
        "pong-actor-critic",
        spec,
        weights,
        net_class=PongActorCritic,
        agent=StackAgent,
        observation=STACK_OBSERVATION,
    )
