"""Generated from chapters/pong.md by scripts/sync_notebooks.py: do not edit.

The page's code cells tagged ``export``, in page order. Edit them on the
page, then run scripts/sync_notebooks.py.
"""

import json
import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from rlbook.agents import register_kind
from rlbook.budget import validate_budget
from rlbook.chapters import add_to_class
from rlbook.envs import make_env
from rlbook.paths import artifacts_dir
from rlbook.pong import (
    ACTIONS_2,
    ACTIONS_3,
    FRAME_SHAPE,
    INPUTS,
    PONG_SETTINGS,
    PongVector,
    check_settings,
    make_pong_vector,
    prepro_batch,
)
from rlbook.seeding import numpy_stream


def make_pong(
    settings: Mapping[str, Any] = PONG_SETTINGS,
    render_mode: str | None = None,
) -> gym.Env:
    """One game from settings (its "env_id" and the keyword arguments of
    gym.make): (210, 160, 3) uint8 RGB frames, the minimal action set. A
    ValueError names a missing or unknown env id or keyword."""
    env_id, kwargs = check_settings(settings)
    return make_env(env_id, render_mode=render_mode, **kwargs)


def prepro(frame: np.ndarray) -> np.ndarray:
    """One (210, 160, 3) uint8 frame -> (80, 80) uint8. Unlike pg-pong.py
    it leaves frame untouched and does not flatten."""
    if frame.shape != FRAME_SHAPE:
        raise ValueError(
            f"frame must have shape {FRAME_SHAPE}, got {frame.shape}"
        )
    return prepro_batch(frame[None])[0]


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


# pg-pong's NumPy network and hand-written backward pass, for both of its
# shapes (Karpathy's sigmoid, actions=2; the softmax above, actions >= 3)
# and a batch of frames: the tests check autograd against it, and the
# cell after this one times the two.
def init_numpy_policy(
    rng: np.random.Generator,
    hidden: int = 200,
    inputs: int = INPUTS,
    actions: int = 3,
    dtype: npt.DTypeLike = np.float64,
) -> dict[str, np.ndarray]:
    """Karpathy's bias-free two-layer policy, "Xavier" initialised.

    W1 then W2 from rng, standard_normal / sqrt(fan_in): W1 (hidden,
    inputs), W2 (hidden,) for actions=2 (pg-pong's P(UP)), else
    (actions, hidden).
    """
    if actions < 2 or hidden < 1 or inputs < 1:
        raise ValueError(
            "need actions >= 2, hidden >= 1, inputs >= 1, got "
            f"{actions}, {hidden}, {inputs}"
        )
    w2_shape = (hidden,) if actions == 2 else (actions, hidden)
    w1 = rng.standard_normal((hidden, inputs)) / np.sqrt(inputs)
    w2 = rng.standard_normal(w2_shape) / np.sqrt(hidden)
    return {"W1": w1.astype(dtype), "W2": w2.astype(dtype)}


def numpy_forward(
    model: dict[str, np.ndarray], x: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Action probabilities (B, A) of frames x (B, inputs), and the
    hidden layer (B, hidden). For the sigmoid network the columns are
    P(UP) and 1 - P(UP), in the order of ACTIONS_2."""
    if x.ndim != 2 or x.shape[1] != model["W1"].shape[1]:
        raise ValueError(
            f"x must have shape (B, {model['W1'].shape[1]}), "
            f"got {x.shape}"
        )
    h = x @ model["W1"].T
    h[h < 0] = 0  # ReLU nonlinearity
    logits = h @ model["W2"].T
    if model["W2"].ndim == 1:  # pg-pong's log-odds of UP
        # 1 / (1 + exp(-z)), written so that exp never overflows
        p = np.exp(-np.logaddexp(0.0, -logits))
        return np.stack([p, 1.0 - p], axis=1), h
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True), h


def numpy_logit_grad(
    probs: np.ndarray, actions: np.ndarray, advantages: np.ndarray
) -> np.ndarray:
    """d/d logits of -sum_t A_t log pi(a_t | x_t).

    Softmax: A_t (pi_t - onehot(a_t)), (B, A). Sigmoid (probs with two
    columns): A_t (p_t - y_t), (B,), y_t = 1 for UP (action 0).
    pg-pong's epdlogp is its negative: it climbs, we descend.
    """
    actions = np.asarray(actions)
    advantages = np.asarray(advantages, dtype=probs.dtype)
    batch = probs.shape[0]
    if actions.shape != (batch,) or advantages.shape != (batch,):
        raise ValueError(
            f"actions and advantages must have shape ({batch},), got "
            f"{actions.shape} and {advantages.shape}"
        )
    if probs.shape[1] == 2:
        return advantages * (probs[:, 0] - (actions == 0))
    dlogits = probs.copy()
    dlogits[np.arange(batch), actions] -= 1.0
    return dlogits * advantages[:, None]


def numpy_backward(
    model: dict[str, np.ndarray],
    x: np.ndarray,
    h: np.ndarray,
    dlogits: np.ndarray,
) -> dict[str, np.ndarray]:
    """pg-pong's policy_backward for a batch: the gradients of the
    loss summed over it, {"W1", "W2"}, from numpy_logit_grad's."""
    if model["W2"].ndim == 1:
        dW2 = h.T @ dlogits  # (hidden,)
        dh = np.outer(dlogits, model["W2"])  # (B, hidden)
    else:
        dW2 = dlogits.T @ h  # (A, hidden)
        dh = dlogits @ model["W2"]
    dh[h <= 0] = 0  # backprop through the ReLU
    dW1 = dh.T @ x
    return {"W1": dW1, "W2": dW2}


def time_numpy_vs_torch(
    batch: int = 1000,
    *,
    actions: int = 3,
    hidden: int = 200,
    dtype: npt.DTypeLike = np.float32,
    repeats: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Best of `repeats` forward and backward passes on `batch` sparse
    difference frames, by hand and by autograd, with the same weights;
    torch on its current threads. Times in ms and their ratio."""
    if batch < 1 or repeats < 1:
        raise ValueError(
            f"need batch >= 1 and repeats >= 1, got {batch}, {repeats}"
        )
    rng = np.random.default_rng(seed)
    model = init_numpy_policy(
        rng, hidden=hidden, actions=actions, dtype=dtype
    )
    # difference frames are sparse: a few dozen pixels of 6,400 are +-1
    shape = (batch, INPUTS)
    x = (rng.random(shape) < 0.01) * rng.choice([-1.0, 1.0], shape)
    x = x.astype(dtype)
    chosen = rng.integers(0, actions, batch)
    adv = rng.standard_normal(batch).astype(dtype)
    policy = TorchPolicy.from_numpy(model)
    xt, at = torch.from_numpy(x), torch.from_numpy(chosen)
    advt = torch.from_numpy(adv)

    def by_hand() -> None:
        probs, h = numpy_forward(model, x)
        dlogits = numpy_logit_grad(probs, chosen, adv)
        numpy_backward(model, x, h, dlogits)

    def by_autograd() -> None:
        policy.zero_grad(set_to_none=True)
        policy_gradient_loss(policy(xt), at, advt).backward()

    best = {"numpy": np.inf, "torch": np.inf}
    for _ in range(repeats):
        for name, run in (("numpy", by_hand), ("torch", by_autograd)):
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return {
        "numpy_ms": 1e3 * best["numpy"],
        "torch_ms": 1e3 * best["torch"],
        "ratio": best["numpy"] / best["torch"],
        "batch": batch,
        "actions": actions,
        "hidden": hidden,
        "dtype": np.dtype(dtype).name,
        "torch_threads": torch.get_num_threads(),
    }


# The forward pass over the moving pixels only, for playing and learning.
def sparse_hidden(w1_t: torch.Tensor, x: np.ndarray) -> torch.Tensor:
    """x @ W1.T, adding only the rows of W1.T (inputs, hidden) at the
    nonzero pixels of the difference frames x (B, inputs): a few
    thousand additions a frame against 1.28 million multiply-adds."""
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
    policy: nn.Module, w1_t: torch.Tensor, x: np.ndarray
) -> np.ndarray:
    """policy.probs of difference frames x, through sparse_hidden."""
    logits = policy.out(torch.relu(sparse_hidden(w1_t, x)))
    if policy.actions == 2:
        p = torch.sigmoid(logits[:, 0])
        return torch.stack([p, 1 - p], dim=1).numpy()
    return torch.softmax(logits, dim=1).numpy()


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


# How the agents play, lane by lane: the preprocessing state of each
# lane and an action from its policy. DifferenceAgent keeps the last
# two frames (REINFORCE); the PPO page's StackAgent, the last `frames`.
def sample_actions(
    probs: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """One action index per row of probs (N, A), one uniform each
    (for the sigmoid policy, pg-pong's `2 if uniform() < p else 3`)."""
    u = rng.random(probs.shape[0])
    index = (np.cumsum(probs, axis=1) < u[:, None]).sum(axis=1)
    # in case the sum rounds below u
    return np.minimum(index, probs.shape[1] - 1)


def action_set(actions: int) -> tuple[int, ...]:
    """ALE actions of a policy with `actions` outputs: Karpathy's
    UP/DOWN sigmoid for 2, NOOP/UP/DOWN for 3."""
    if actions not in (2, 3):
        raise ValueError(
            f"Pong policies have 2 or 3 actions, not {actions}"
        )
    return ACTIONS_2 if actions == 2 else ACTIONS_3


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block on n torch threads. Playing runs a tiny forward
    pass while ALE's threads emulate: more torch threads only fight
    them for the cores (two made a game ten times slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class PongAgent(Protocol):
    """What play_games needs of an agent, lane by lane."""

    action_set: tuple[int, ...]
    """the ALE action of each of the policy's outputs"""

    def start(self, frames: np.ndarray) -> None:
        """New games in every lane: (N, 210, 160, 3) first frames."""

    def act(
        self, frames: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """(N,) action indices for the latest frames."""

    def step_frames(self, frames: np.ndarray) -> None:
        """Every lane's frame after the step."""

    def new_games(self, frames: np.ndarray, mask: np.ndarray) -> None:
        """Lanes `mask` started a new game, whose first frame shows."""


class DifferenceAgent:
    """Plays a two-layer policy on difference frames (REINFORCE)."""

    def __init__(self, policy: nn.Module) -> None:
        self.policy = policy.float().eval()
        self.action_set = action_set(policy.actions)
        self._w1_t = self.policy.hidden.weight.detach().t().contiguous()
        self._current: np.ndarray | None = None
        self._previous: np.ndarray | None = None

    def start(self, frames: np.ndarray) -> None:
        """New games in every lane: (N, 210, 160, 3) first frames."""
        self._current = prepro_batch(frames)
        self._previous = self._current.copy()

    def difference(self) -> np.ndarray:
        """(N, 6400) int8: the latest frames minus the ones before."""
        assert self._current is not None and self._previous is not None
        diff = self._current.astype(np.int8) - self._previous.astype(
            np.int8
        )
        return diff.reshape(len(diff), INPUTS)

    def probs(self, x: np.ndarray) -> np.ndarray:
        """The policy's action probabilities for difference frames."""
        return policy_probs_sparse(self.policy, self._w1_t, x)

    def act(
        self, frames: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """(N,) action indices for the latest frames."""
        return sample_actions(self.probs(self.difference()), rng)

    def step_frames(self, frames: np.ndarray) -> None:
        assert self._current is not None, "start() first"
        self._previous = self._current
        self._current = prepro_batch(frames)

    def new_games(self, frames: np.ndarray, mask: np.ndarray) -> None:
        """Lanes `mask` started a new game, whose first frame shows."""
        assert self._current is not None and self._previous is not None
        self._previous[mask] = self._current[mask]


# Whole games in a bounded number of emulators and bounded memory: for
# validation, the final test and `python -m rlbook evaluate`.
class GameScores:
    """Count, mean, standard deviation, wins, lowest and highest of
    whole-number scores fed one at a time; the scores themselves only
    if asked, so that memory need not grow with the games.

    The sums are exact Python integers: the mean is NumPy's of the
    scores in any order; the std, rounded twice, can differ from
    NumPy's pairwise one in the last bit or two.
    """

    def __init__(self, games: int, *, keep_scores: bool = False) -> None:
        self.count = 0
        self.won = 0
        """games with a positive score"""
        self.lowest = math.inf
        self.highest = -math.inf
        self._sum = 0
        self._squares = 0
        self._kept = np.zeros(games) if keep_scores else None

    def add(self, game: int, score: float) -> None:
        """Game `game` (its index in play order) ended with `score`."""
        if not float(score).is_integer():
            raise ValueError(
                f"a Pong score is a whole number, not {score!r}"
            )
        whole = int(score)
        self.count += 1
        self.won += whole > 0
        self.lowest = min(self.lowest, float(score))
        self.highest = max(self.highest, float(score))
        self._sum += whole
        self._squares += whole * whole
        if self._kept is not None:
            self._kept[game] = score

    @property
    def mean(self) -> float:
        return self._sum / self.count if self.count else math.nan

    @property
    def std(self) -> float:
        """The population standard deviation (NumPy's, ddof=0)."""
        if not self.count:
            return math.nan
        n, total = self.count, self._sum
        return math.sqrt((n * self._squares - total * total) / (n * n))

    @property
    def scores(self) -> np.ndarray:
        """Every game's score in play order (game g at index g)."""
        if self._kept is None:
            raise ValueError(
                "the scores were not kept: play with keep_scores=True"
            )
        return self._kept


def play_games(
    agent: PongAgent,
    games: int,
    *,
    seed: int,
    purpose: str = "test",
    settings: Mapping[str, Any] = PONG_SETTINGS,
    lanes: int = 10,
    max_steps: int | None = None,
    keep_scores: bool = False,
) -> GameScores:
    """The final scores of `games` games, at most `lanes` emulators.

    Actions are sampled with numpy_stream(seed, purpose): Pong without
    sticky actions is deterministic, so the games differ only through
    the policy's randomness. Lane i plays games i, i + lanes, ...; a
    lane done with its share steps on idle. A game still running after
    `max_steps` steps (per lane) raises.
    """
    if games < 1 or lanes < 1:
        raise ValueError(
            f"need games >= 1 and lanes >= 1, got {games}, {lanes}"
        )
    lanes = min(lanes, games)
    share = np.array([len(range(i, games, lanes)) for i in range(lanes)])
    rng = numpy_stream(seed, purpose)
    played = np.zeros(lanes, dtype=np.int64)  # games each lane finished
    result = GameScores(games, keep_scores=keep_scores)
    with torch_threads(1):
        vec = make_pong_vector(lanes, settings, seed=seed)
        try:
            frames = vec.reset()
            agent.start(frames)
            steps = 0
            while (played < share).any():
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
                    if played[lane] < share[lane]:
                        game = lane + lanes * int(played[lane])
                        score = float(before[lane] + reward[lane])
                        result.add(game, score)
                        played[lane] += 1
                steps += 1
                if max_steps is not None and steps >= max_steps:
                    raise RuntimeError(
                        f"games still running after {max_steps} steps"
                    )
        finally:
            vec.close()
    return result


# A run's record, shared by REINFORCE and the PPO page's run: counters,
# curves, validations and the best weights, the update loop's timing
# and checkpoints, and the checkpoint's common part. A subclass sets
# KIND and NET_KEY and provides _network and _agent.
RUNNING_GAMES = 20
"""A run's running score: the mean of its last 20 games' final scores."""


def running_mean(
    scores: np.ndarray, window: int = RUNNING_GAMES
) -> np.ndarray:
    """Mean of the last `window` scores at each game (fewer at first)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(
            f"scores must have shape (G,), got {scores.shape}"
        )
    cumulative = np.concatenate([[0.0], np.cumsum(scores)])
    index = np.arange(1, scores.size + 1)
    start = np.maximum(0, index - window)
    return (cumulative[index] - cumulative[start]) / (index - start)


def rng_state(rng: np.random.Generator) -> str:
    return json.dumps(rng.bit_generator.state)


def set_rng_state(rng: np.random.Generator, state: str) -> None:
    rng.bit_generator.state = json.loads(state)


def check_kind(state: Mapping[str, Any], kind: str) -> None:
    if state.get("kind") != kind:
        raise ValueError(
            f"not a {kind} checkpoint: kind {state.get('kind')!r}"
        )


class PongRun:
    """The record both runs keep; see the comment above."""

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
        # CPU time of every thread (ALE's too): unlike the wall time,
        # other jobs and a paused process do not add to it
        self.cpu_seconds = 0.0
        self.scores: list[float] = []
        # per update: update, env_steps, wall_seconds, cpu_seconds,
        # games, and the run's own statistics
        self.log: list[dict[str, float]] = []
        self.validations: list[dict[str, Any]] = []
        # {"update", "mean", "state"} of the best validation so far
        self.best: dict[str, Any] | None = None

    def _network(self) -> nn.Module:
        raise NotImplementedError

    def _agent(self) -> PongAgent:
        raise NotImplementedError

    def _loop(
        self,
        until: int,
        one_update: Callable[[], dict[str, float]],
        checkpoint: Callable[[Any], None] | None,
        checkpoint_seconds: float,
        progress: Callable[[Any], None] | None,
    ) -> None:
        """Update until `until` updates are done, timing each,
        validating every validate_every updates and at the run's last,
        logging, and checkpointing every checkpoint_seconds and at the
        end."""
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
        """Score the weights on validation games; keep the best."""
        start, cpu = time.perf_counter(), time.process_time()
        scores = play_games(
            self._agent(),
            self.config.validation_games,
            seed=self.seed,
            purpose=f"validation-{self.update}",
            settings=self.config.settings,
            keep_scores=True,
        ).scores
        net = self._network().train()  # the agent set it to eval mode
        mean = float(scores.mean())
        self.validations.append(
            {
                "update": self.update,
                "mean": mean,
                "scores": scores.tolist(),
            }
        )
        if self.best is None or mean > self.best["mean"]:
            self.best = {
                "update": self.update,
                "mean": mean,
                "state": {
                    k: v.clone() for k, v in net.state_dict().items()
                },
            }
        self.wall_seconds += time.perf_counter() - start
        self.cpu_seconds += time.process_time() - cpu

    def state_dict(self) -> dict[str, Any]:
        """The whole run between two updates, for save_checkpoint."""
        return {
            "kind": self.KIND,
            "config": json.dumps(asdict(self.config)),
            "seed": self.seed,
            self.NET_KEY: self._network().state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": rng_state(self.rng),
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
        set_rng_state(self.rng, state["rng"])
        self.update = state["update"]
        self.env_steps = state["env_steps"]
        self.wall_seconds = state["wall_seconds"]
        self.cpu_seconds = state.get("cpu_seconds", 0.0)
        self.scores = list(state["scores"])
        self.log = json.loads(state["log"])
        self.validations = json.loads(state["validations"])
        self.best = state["best"]


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


# A full run's record in artifacts/: a finished run's metrics and
# provenance, or an unfinished one's curves so far (--snapshot). The
# PPO page reads both runs' with these.
def load_run(name: str) -> dict[str, Any] | None:
    """The shipped run in artifacts/NAME, or None if none ships."""
    folder = artifacts_dir() / name
    if not (folder / "agent.json").exists():
        return None
    return {
        "folder": folder,
        "metrics": json.loads((folder / "metrics.json").read_text()),
        "provenance": json.loads(
            (folder / "weights.provenance.json").read_text()
        ),
    }


def load_progress(name: str) -> dict[str, Any] | None:
    """An unfinished run's curves so far (``--snapshot``), if recorded."""
    path = artifacts_dir() / name / "in-progress.json"
    return json.loads(path.read_text()) if path.exists() else None


def run_curve(metrics: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Running mean per game; games, steps, wall and CPU hours at each
    game's end."""
    scores = np.asarray(metrics["scores"])
    log = metrics["log"]
    ended = np.searchsorted(
        [e["games"] for e in log], np.arange(1, scores.size + 1)
    )

    def at_ends(key: str) -> np.ndarray:
        return np.array([log[i].get(key, np.nan) for i in ended])

    return {
        "mean": running_mean(scores),
        "games": np.arange(1, scores.size + 1),
        "steps": at_ends("env_steps"),
        "wall hours": at_ends("wall_seconds") / 3600,
        "CPU hours": at_ends("cpu_seconds") / 3600,
    }


# A shipped agent rebuilt from its manifest (`rlbook.agents.load_agent`
# and `python -m rlbook evaluate` find it by its kind): the network with
# its weights, checked against the Pong setting, the preprocessing and
# the actions the manifest records. This page registers REINFORCE's
# kind, "pong-pg"; the PPO page registers "pong-actor-critic".
DIFFERENCE_OBSERVATION = {
    "preprocess": "rlbook.pong.prepro_batch",
    "input": "difference of the last two preprocessed frames, zero "
    "at a game's start",
}
"""What a REINFORCE agent sees, as its manifest records it."""


@dataclass(frozen=True)
class PongPolicy:
    """A shipped Pong agent; make_agent gives a fresh one per match."""

    kind: str
    net: nn.Module
    """TorchPolicy, or the PPO page's PongActorCritic"""
    agent: Callable[[nn.Module], PongAgent]
    """what plays net: DifferenceAgent, or the PPO page's StackAgent"""

    def make_agent(self) -> PongAgent:
        return self.agent(self.net)

    @staticmethod
    def misfit(spec: Mapping[str, Any]) -> str | None:
        """How a manifest's network, observation and actions disagree,
        or None (`python -m rlbook evaluate` checks before playing)."""
        network = spec.get("network")
        observation = spec.get("observation")
        actions = spec.get("action_set")
        if not (
            isinstance(network, dict) and isinstance(observation, dict)
        ):
            return "spec lacks its network or observation record"
        if network.get("frames") != observation.get("frames"):
            return (
                f"the network reads {network.get('frames')!r} frames but "
                f"the observation stacks {observation.get('frames')!r}"
            )
        count = network.get("actions")
        if not isinstance(actions, list) or count != len(actions):
            return (
                f"the network has {count!r} actions but action_set lists "
                f"{actions!r:.60}"
            )
        return None

    def evaluate(
        self,
        env_id: str,
        settings: Mapping[str, Any],
        *,
        games: int,
        seed: int,
        lanes: int,
        scores: bool = True,
    ) -> dict[str, Any]:
        """What `python -m rlbook evaluate` records of `games` whole
        games, at most `lanes` emulators alive; every game's score listed
        too if `scores`."""
        played = play_games(
            self.make_agent(),
            games,
            seed=seed,
            purpose="evaluate",
            settings=settings,
            lanes=lanes,
            keep_scores=scores,
        )
        record = {
            "env_id": env_id,
            "settings": settings,
            "play": "actions sampled from the policy",
            "seed": seed,
            "games": games,
            "mean_score": played.mean,
            "std_score": played.std,
            "games_won": played.won,
            "min_score": played.lowest,
            "max_score": played.highest,
        }
        if scores:
            record["scores"] = played.scores.tolist()
        return record

    def act_batch(self, obs: np.ndarray) -> np.ndarray:
        raise TypeError(
            "Pong agents play whole games: use "
            "rlbook.chapters.pong.play_games"
        )

    def act(self, obs: np.ndarray) -> int:
        raise TypeError(
            "Pong agents play whole games: use "
            "rlbook.chapters.pong.play_games"
        )


def load_network(
    net_class: Callable[..., nn.Module],
    network: Mapping[str, Any],
    weights: Mapping[str, torch.Tensor],
) -> nn.Module:
    """A shipped network, net_class(**network), holding weights, in
    float32."""
    net = net_class(**network)
    net.load_state_dict(weights)
    return net.float().eval()


def build_pong(
    kind: str,
    spec: Mapping[str, Any],
    weights: Mapping[str, Any],
    *,
    net_class: Callable[..., nn.Module],
    agent: Callable[[nn.Module], PongAgent],
    observation: Mapping[str, str],
) -> PongPolicy:
    """The agent of a manifest's spec and weights, checked against the
    Pong setting, the preprocessing (observation's) and the actions."""
    check_settings(spec["settings"])
    expected = observation["preprocess"]
    if spec["observation"]["preprocess"] != expected:
        raise ValueError(
            f"{kind} agents see frames through {expected}, not "
            f"{spec['observation']['preprocess']!r}"
        )
    net = load_network(net_class, spec["network"], weights["policy"])
    if tuple(spec["action_set"]) != action_set(net.actions):
        raise ValueError(
            f"action_set {spec['action_set']} is not the "
            f"{net.actions}-action policy's "
            f"{list(action_set(net.actions))}"
        )
    return PongPolicy(kind, net, agent)


@register_kind("pong-pg")
def _build_pong_pg(
    spec: Mapping[str, Any], weights: Mapping[str, Any]
) -> PongPolicy:
    return build_pong(
        "pong-pg",
        spec,
        weights,
        net_class=TorchPolicy,
        agent=DifferenceAgent,
        observation=DIFFERENCE_OBSERVATION,
    )
