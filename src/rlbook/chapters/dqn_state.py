"""Generated from chapters/dqn_state.md by scripts/sync_notebooks.py: do not edit.

The page's code cells tagged ``export``, in page order. Edit them on the
page, then run scripts/sync_notebooks.py.
"""

import copy
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler

from rlbook.agents import register_kind
from rlbook.cartpole import (
    TEST_EPISODES,
    GreedyEvaluation,
    evaluate_greedy,
)
from rlbook.dqn import QNetwork
from rlbook.envs import make_env
from rlbook.evaluate import EvalResult, batched_returns
from rlbook.replay import ArrayLike, Batch, ReplayBuffer
from rlbook.seeding import (
    TEST_SEED,
    VALIDATION_SEED,
    numpy_stream,
    stream_seed,
    torch_stream,
    train_seed,
)


def td_loss(
    q_net: nn.Module,
    target_net: nn.Module,
    batch: Batch,
    *,
    gamma: float,
    double: bool = False,
    huber: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The DQN loss of a batch and its TD errors (for prioritized replay).

    target = reward + gamma * (1 - terminated) * Q_target(next_obs, a*),
    where a* = argmax_a Q_target(next_obs, a), or argmax_a Q(next_obs, a)
    with ``double`` (van Hasselt et al., 2016). Truncated transitions keep
    their bootstrap: only ``terminated`` zeroes it. Each item's loss is
    weighted by ``batch.weights`` (importance sampling; ones for uniform
    replay).

    Every field may carry leading dimensions (``(S, B)`` for ``S``
    stacked networks in a sweep); actions index the Q-values' last
    dimension.

    Returns:
        loss: scalar, the mean over every item; td_error: the shape of
        ``batch.action``, target minus prediction, detached.
    """
    q_taken = (
        q_net(batch.obs)
        .gather(-1, batch.action.unsqueeze(-1))
        .squeeze(-1)
    )
    with torch.no_grad():
        next_values = target_net(batch.next_obs)
        if double:
            best = q_net(batch.next_obs).argmax(dim=-1, keepdim=True)
            next_q = next_values.gather(-1, best).squeeze(-1)
        else:
            next_q = next_values.max(dim=-1).values
        target = batch.reward + gamma * (1.0 - batch.terminated) * next_q
    if huber:
        per_item = F.smooth_l1_loss(q_taken, target, reduction="none")
    else:
        per_item = F.mse_loss(q_taken, target, reduction="none")
    return (batch.weights * per_item).mean(), (target - q_taken).detach()


class LectureMemory(Dataset):
    """The lecture's replay memory: a ``deque`` of transitions, read as a
    ``Dataset``.

    Each item is built from Python objects when the ``DataLoader`` asks
    for it, and the loader's collate function stacks 32 of them into a
    batch: per-item Python work on every update. Kept to show and measure
    that cost.
    """

    def __init__(self, capacity: int) -> None:
        self.memory: deque[tuple[Any, ...]] = deque(maxlen=capacity)

    def push(
        self,
        obs: Any,
        action: int,
        reward: float,
        next_obs: Any,
        done: bool,
    ) -> None:
        self.memory.append((obs, action, reward, next_obs, done))

    def __len__(self) -> int:
        return len(self.memory)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        obs, action, reward, next_obs, done = self.memory[index]
        return (
            torch.tensor(obs, dtype=torch.float32),
            torch.tensor(action, dtype=torch.int64),
            torch.tensor(reward, dtype=torch.float32),
            torch.tensor(next_obs, dtype=torch.float32),
            torch.tensor(done, dtype=torch.float32),
        )


def lecture_batches(
    memory: LectureMemory, batch_size: int, updates: int
) -> Iterator[Batch]:
    """``updates`` batches drawn the lecture's way:
    ``RandomSampler(replacement=True)``."""
    sampler = RandomSampler(
        memory, replacement=True, num_samples=batch_size * updates
    )
    loader = DataLoader(memory, batch_size=batch_size, sampler=sampler)
    ones = torch.ones(batch_size)
    for obs, action, reward, next_obs, done in loader:
        yield Batch(
            obs,
            action,
            reward,
            next_obs,
            done,
            torch.empty(0, dtype=torch.int64),
            ones,
        )


@dataclass(frozen=True)
class QNetworkPolicy:
    """Greedy policy of a Q-network (evaluation mode, no gradients)."""

    q_net: QNetwork

    def act(self, obs: np.ndarray) -> int:
        return int(self.act_batch(obs[None])[0])

    def act_batch(self, obs: np.ndarray) -> np.ndarray:
        """Greedy actions of a batch ``(N, obs_dim) -> (N,)`` as a NumPy
        array, computed on the device of the network's parameters (CPU
        without any)."""
        weight = next(self.q_net.parameters(), None)
        device = (
            weight.device if weight is not None else torch.device("cpu")
        )
        with torch.inference_mode():
            values = self.q_net(
                torch.as_tensor(obs, dtype=torch.float32, device=device)
            )
        return values.argmax(dim=1).cpu().numpy()


@register_kind("q-network")
def _build_q_network(
    spec: Mapping[str, Any], weights: Mapping[str, Any]
) -> QNetworkPolicy:
    arch = dict(spec["network"])
    q_net = QNetwork(
        arch["obs_dim"],
        arch["n_actions"],
        arch["hidden"],
        batch_norm=arch["batch_norm"],
        dueling=arch["dueling"],
    )
    q_net.load_state_dict(weights["q_net"])
    q_net.eval()
    return QNetworkPolicy(q_net)


def evaluate_batched(
    act_batch: Callable[[np.ndarray], np.ndarray],
    env_id: str,
    *,
    episodes: int,
    seed: int,
) -> EvalResult:
    """Returns of ``episodes`` greedy episodes, episode ``i`` reset with
    ``seed + i`` (as the tabular page's ``evaluate_policy``, same start
    states, same returns) for a policy on a batch ``(N, *obs) -> (N,)``,
    every episode's environment at once."""
    chunks = batched_returns(
        act_batch, env_id, episodes=episodes, seed=seed, envs=episodes
    )
    return EvalResult(env_id, seed, np.concatenate(list(chunks)))


@dataclass(frozen=True)
class DQNConfig:
    """The book's DQN on CartPole's state."""

    total_steps: int = 50_000
    """environment steps per run (lecture: 200 episodes)"""
    learning_starts: int = 1_000
    """random steps that fill the buffer before the first update"""
    buffer_size: int = 50_000
    """replay capacity (lecture: 10,000)"""
    batch_size: int = 128
    """transitions per update (lecture: 32)"""
    hidden: tuple[int, ...] = (128, 128)
    """MLP widths, no BatchNorm (lecture: 128, 64 with BatchNorm)"""
    learning_rate: float = 1e-3
    """Adam learning rate (lecture: SGD, momentum 0.9, lr 1e-3)"""
    gamma: float = 0.99
    """discount factor"""
    train_every: int = 2
    """one update every this many steps (lecture: 1000 per episode)"""
    target_every: int = 100
    """updates between target syncs; 0: no target net (lecture: 5 ep.)"""
    epsilon_end: float = 0.02
    """epsilon decays linearly from 1.0 to this (lecture: 0.005)"""
    epsilon_fraction: float = 0.2
    """share of total_steps over which epsilon decays (lecture: 200)"""
    max_grad_norm: float = 10.0
    """gradient clipping (lecture: none)"""
    huber: bool = False
    """Huber loss instead of squared error"""
    double: bool = False
    """Double DQN targets"""
    dueling: bool = False
    """dueling value/advantage head"""
    prioritized: bool = False
    """prioritized experience replay"""
    per_alpha: float = 0.6
    """PER: how strongly priorities skew sampling (0 = uniform)"""
    per_beta_start: float = 0.4
    """PER: importance-sampling exponent, annealed to 1 over the run"""
    validate_every: int = 2_500
    """steps between greedy validations (the best checkpoint is kept)"""
    validate_episodes: int = 10
    """episodes per validation, on seeds 5000, 5001, ..."""

    def __post_init__(self) -> None:
        if not 0 < self.validate_every <= self.total_steps:
            raise ValueError(
                f"validate_every={self.validate_every} must lie in "
                f"(0, total_steps={self.total_steps}]: the best "
                "checkpoint comes from validations"
            )
        if not 0 < self.epsilon_fraction <= 1:
            raise ValueError(
                "epsilon_fraction must lie in (0, 1], got "
                f"{self.epsilon_fraction}"
            )


def _pair_up(indices: np.ndarray, values: np.ndarray, what: str) -> None:
    if indices.shape != values.shape:
        raise ValueError(
            f"got {indices.size} indices but {values.size} {what}; "
            "they must pair up one to one"
        )


class SumTree:
    """A binary tree of non-negative leaf priorities, each node the sum of
    its children; setting or drawing a batch of leaves takes ``O(log n)``
    NumPy ops.

    One flat float64 array :attr:`tree`: node 1 is the root, node ``k``
    has children ``2k`` and ``2k + 1``. Leaves are padded to a power of
    two ``L`` (leaf ``i`` is node ``L + i``); the padding stays zero,
    never returned.
    """

    def __init__(self, capacity: int) -> None:
        if int(capacity) < 1:
            raise ValueError(
                f"capacity must be at least 1, got {capacity}"
            )
        self.capacity = int(capacity)
        # a power of two >= capacity
        self._first_leaf = 1 << (self.capacity - 1).bit_length()
        # edges from the root to a leaf
        self._depth = self._first_leaf.bit_length() - 1
        self.tree = np.zeros(2 * self._first_leaf, dtype=np.float64)

    @property
    def total(self) -> float:
        """Sum of all priorities (the root)."""
        return float(self.tree[1])

    def _check_indices(self, indices: ArrayLike) -> np.ndarray:
        array = np.asarray(indices)
        if array.size and not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                f"leaf indices must be integers, got dtype {array.dtype}"
            )
        array = array.astype(np.int64, copy=False)
        if array.size and (
            array.min() < 0 or array.max() >= self.capacity
        ):
            raise ValueError(
                f"leaf indices must lie in [0, {self.capacity}), "
                f"got values from {array.min()} to {array.max()}"
            )
        return array

    def update(self, indices: ArrayLike, priorities: ArrayLike) -> None:
        """Set leaves ``indices`` (``(K,)``) to ``priorities`` (``(K,)``,
        >= 0).

        When an index appears more than once, its last priority wins.
        """
        indices = self._check_indices(indices).ravel()
        priorities = np.asarray(priorities, dtype=np.float64).ravel()
        _pair_up(indices, priorities, "priorities")
        if indices.size == 0:
            return
        if not np.all(np.isfinite(priorities)) or priorities.min() < 0:
            raise ValueError("priorities must be finite and non-negative")
        tree = self.tree
        if indices.size == 1:
            # One leaf (every `add`): a plain walk up is ~10x cheaper
            # than array calls.
            node = int(indices[0]) + self._first_leaf
            tree[node] = priorities[0]
            node //= 2
            while node >= 1:
                tree[node] = tree[2 * node] + tree[2 * node + 1]
                node //= 2
            return
        # NumPy leaves the winner of duplicate fancy-index writes
        # unspecified: keep each index's last occurrence explicitly (the
        # first one in the reversed array).
        unique, first_in_reversed = np.unique(
            indices[::-1], return_index=True
        )
        nodes = unique + self._first_leaf
        tree[nodes] = priorities[::-1][first_in_reversed]
        for _ in range(self._depth):
            nodes = nodes // 2
            # Siblings share a parent; the repeated writes carry the same
            # value.
            tree[nodes] = tree[2 * nodes] + tree[2 * nodes + 1]

    def priorities(self, indices: ArrayLike) -> np.ndarray:
        """Priorities of leaves ``indices``, same shape, float64."""
        return self.tree[self._check_indices(indices) + self._first_leaf]

    def __getitem__(self, indices: ArrayLike) -> np.ndarray:
        """``tree[i]`` is :meth:`priorities` of ``i``."""
        return self.priorities(indices)

    def find(self, values: ArrayLike) -> np.ndarray:
        """The leaf (int64, shaped like ``values``) whose interval
        ``[sum(p[:i]), sum(p[:i+1]))`` holds each value in ``[0, total]``.
        A zero-priority leaf is never returned, even for ``value ==
        total`` or after rounding: that goes to the last leaf with a
        positive priority."""
        values = np.asarray(values, dtype=np.float64)
        total = self.total
        if total <= 0:
            raise ValueError(
                "cannot search a sum tree whose priorities are all zero"
            )
        if values.size and not (
            values.min() >= 0 and values.max() <= total
        ):
            raise ValueError(f"values must lie in [0, total={total}]")
        tree = self.tree
        nodes = np.ones(values.shape, dtype=np.int64)
        for _ in range(self._depth):
            left = 2 * nodes
            left_sum = tree[left]
            # Go right when the value lies past the left subtree, unless
            # the right subtree is empty: only value == total or rounding
            # can ask for that.
            go_right = (values >= left_sum) & (tree[left + 1] > 0)
            values = np.where(go_right, values - left_sum, values)
            nodes = left + go_right
        return nodes - self._first_leaf


def _as_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized replay (Schaul et al., 2016).

    The sum tree holds ``p_i^alpha``, ``p_i = |td_error_i| + eps``. A new
    transition gets ``max_priority`` (the largest ``p_i`` seen, never
    decreasing; 1.0 at first), so it is replayed at least once.
    ``alpha=0`` is uniform; ``beta`` is the importance-sampling
    correction, 0 (none) to 1.
    """

    def __init__(
        self,
        *args: Any,  # ReplayBuffer's: capacity, obs_shape, device, ...
        alpha: float = 0.6,
        beta: float = 0.4,
        eps: float = 1e-6,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if alpha < 0:
            raise ValueError(f"alpha must be non-negative, got {alpha}")
        self._check_beta(beta)
        if eps <= 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.eps = float(eps)
        self.tree = SumTree(self.capacity)
        self.max_priority = 1.0
        self.rng = np.random.default_rng(seed)

    @staticmethod
    def _check_beta(beta: float) -> None:
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must lie in [0, 1], got {beta}")

    def add(self, *args, **kwargs) -> None:
        """As :meth:`ReplayBuffer.add`; the new transition gets the
        maximum priority."""
        slot = self.pos
        super().add(*args, **kwargs)
        self.tree.update(
            np.array([slot]), np.array([self.max_priority**self.alpha])
        )

    def sample(self, batch_size: int, beta: float | None = None) -> Batch:
        """``batch_size`` transitions drawn in proportion to their
        priority.

        Stratified: ``[0, total)`` is cut into ``batch_size`` equal
        segments and one value is drawn uniformly in each.

        Args:
            batch_size: transitions to draw (with replacement).
            beta: overrides :attr:`beta` for this call.

        Returns:
            A :class:`Batch` whose ``weights`` are ``(N P(i))^(-beta)``
            divided by their maximum over the batch (``N = len(self)``).
        """
        self._check_sample(batch_size)
        beta = self.beta if beta is None else float(beta)
        self._check_beta(beta)
        total = self.tree.total
        segment = total / batch_size
        values = (
            np.arange(batch_size) + self.rng.random(batch_size)
        ) * segment
        # rounding may overshoot total
        indices = self.tree.find(np.minimum(values, total))
        probabilities = self.tree.priorities(indices) / total
        weights = (len(self) * probabilities) ** -beta
        weights /= weights.max()
        return self._gather(
            torch.from_numpy(indices).to(self.device),
            torch.from_numpy(weights.astype(np.float32)).to(self.device),
        )

    def update_priorities(
        self, indices: ArrayLike, td_errors: ArrayLike
    ) -> None:
        """Set the priority of slots ``indices`` ``(K,)`` from their new
        ``td_errors`` ``(K,)``.

        Priority ``(|td_error| + eps)^alpha``. Tensors may be on any
        device and may require grad. A repeated index keeps its last TD
        error.

        Raises:
            ValueError: for mismatched lengths, slots not yet filled, or
                non-finite TD errors (often a diverging loss).
        """
        index_array = _as_numpy(indices).ravel()
        td_array = _as_numpy(td_errors).astype(np.float64).ravel()
        _pair_up(index_array, td_array, "TD errors")
        if index_array.size == 0:
            return
        if index_array.min() < 0 or index_array.max() >= len(self):
            raise ValueError(
                f"indices must be filled slots in [0, {len(self)}), got "
                f"values from {index_array.min()} to {index_array.max()}"
            )
        if not np.all(np.isfinite(td_array)):
            raise ValueError(
                "TD errors must be finite; is the loss diverging?"
            )
        raw = np.abs(td_array) + self.eps
        self.tree.update(index_array, raw**self.alpha)
        self.max_priority = max(self.max_priority, float(raw.max()))


def epsilon_at(config: DQNConfig, step: int) -> float:
    """Linear decay from 1.0 to epsilon_end over the epsilon_fraction."""
    decay_steps = config.epsilon_fraction * config.total_steps
    return max(
        config.epsilon_end,
        1.0 - (1.0 - config.epsilon_end) * step / decay_steps,
    )


def make_buffer(
    config: DQNConfig, seed: int, device="cpu"
) -> ReplayBuffer:
    """Uniform replay, or prioritized replay if the config asks for it."""
    if config.prioritized:
        return PrioritizedReplayBuffer(
            config.buffer_size,
            (4,),
            device,
            alpha=config.per_alpha,
            beta=config.per_beta_start,
            seed=stream_seed(seed, "replay"),
        )
    return ReplayBuffer(
        config.buffer_size,
        (4,),
        device,
        generator=torch_stream(seed, "replay"),
    )


def update(
    q_net,
    target_net,
    optimizer,
    buffer,
    config: DQNConfig,
    step: int,
    clip=None,
    loss_scale: float = 1.0,
):
    """One minibatch gradient step on the TD loss (eq-dqn-loss).

    The seed sweep trains many stacked networks with this same step: it
    clips each network's gradient apart (``clip``) and scales the loss by
    their number, so each gets the gradient of its own mean loss.

    Returns the batch's TD errors and what ``clip`` returns (the gradient
    norm before clipping), which the next chapter's diagnostics
    log; training ignores them.
    """
    if config.prioritized:  # anneal beta to 1 by the end of the run
        remaining = 1.0 - config.per_beta_start
        buffer.beta = (
            config.per_beta_start + remaining * step / config.total_steps
        )
    batch = buffer.sample(config.batch_size)
    loss, td_error = td_loss(
        q_net,
        target_net,
        batch,
        gamma=config.gamma,
        double=config.double,
        huber=config.huber,
    )
    optimizer.zero_grad(set_to_none=True)
    if loss_scale != 1.0:
        loss = loss * loss_scale
    loss.backward()
    clip = clip or nn.utils.clip_grad_norm_
    grad_norm = clip(q_net.parameters(), config.max_grad_norm)
    optimizer.step()
    if config.prioritized:  # the new TD errors become the new priorities
        buffer.update_priorities(batch.indices, td_error)
    return td_error, grad_norm


def test_record(
    evaluation: GreedyEvaluation, run: int = 0
) -> dict[str, Any]:
    """A JSON-friendly summary of one run's greedy test episodes."""
    returns = evaluation.returns[run]
    return {
        "mean": float(returns.mean()),
        "std": float(returns.std()),
        "returns": returns.tolist(),
        "discounted": float(evaluation.discounted[run].mean()),
        "start_value": float(evaluation.start_values[run].mean()),
    }


test_record.__test__ = False  # not a pytest test


def train_dqn(config: DQNConfig, seed: int, device="cpu") -> dict:
    """Train one agent; return its history, best and final weights."""
    torch.manual_seed(stream_seed(seed, "init"))  # one stream per purpose
    q_net = QNetwork(4, 2, config.hidden, dueling=config.dueling).to(
        device
    )
    # Without a target network, targets come from the trained network.
    target_net = copy.deepcopy(q_net) if config.target_every else q_net
    optimizer = torch.optim.Adam(
        q_net.parameters(), lr=config.learning_rate
    )
    buffer = make_buffer(config, seed, device)
    explore = numpy_stream(seed, "explore")
    env = make_env("CartPole-v1")

    history = {
        "episode_end": [],
        "episode_return": [],
        "validation_step": [],
        "validation_return": [],
    }
    best_score, best_state, best_step = -np.inf, None, 0
    episode, episode_return, updates = 0, 0.0, 0
    obs, _ = env.reset(seed=train_seed(seed, episode))
    start = time.perf_counter()
    for step in range(config.total_steps):
        # Act: epsilon-greedy, epsilon decaying linearly.
        epsilon = epsilon_at(config, step)
        if step < config.learning_starts or explore.random() < epsilon:
            action = int(explore.integers(2))
        else:
            with torch.no_grad():
                action = int(
                    q_net(
                        torch.as_tensor(obs, device=device)[None]
                    ).argmax()
                )
        next_obs, reward, terminated, truncated, _ = env.step(action)
        # Store `terminated` only: truncated steps keep their bootstrap.
        buffer.add(obs, action, reward, next_obs, terminated)
        obs = next_obs  # the line that is easy to forget
        episode_return += reward
        if terminated or truncated:  # stop at truncation, too
            history["episode_end"].append(step + 1)
            history["episode_return"].append(episode_return)
            episode, episode_return = episode + 1, 0.0
            obs, _ = env.reset(seed=train_seed(seed, episode))

        # Learn: one minibatch update every `train_every` steps.
        if (
            step >= config.learning_starts
            and step % config.train_every == 0
        ):
            update(q_net, target_net, optimizer, buffer, config, step)
            updates += 1
            if config.target_every and updates % config.target_every == 0:
                target_net.load_state_dict(q_net.state_dict())

        # Validate the greedy policy; keep the best weights.
        if (step + 1) % config.validate_every == 0:
            score = evaluate_greedy(
                q_net,
                episodes=config.validate_episodes,
                seed=VALIDATION_SEED,
            ).returns.mean()
            history["validation_step"].append(step + 1)
            history["validation_return"].append(float(score))
            if (
                score >= best_score
            ):  # ties go to the later, longer-trained net
                best_score, best_step = float(score), step + 1
                best_state = copy.deepcopy(q_net.state_dict())

    seconds = time.perf_counter() - start
    final_state = copy.deepcopy(q_net.state_dict())
    final_test = evaluate_greedy(
        q_net, episodes=TEST_EPISODES, seed=TEST_SEED, gamma=config.gamma
    )
    q_net.load_state_dict(best_state)
    best_test = evaluate_greedy(
        q_net, episodes=TEST_EPISODES, seed=TEST_SEED, gamma=config.gamma
    )
    return {
        "seed": seed,
        "seconds": seconds,
        "updates": updates,
        "best_step": best_step,
        "best_validation": best_score,
        "test": test_record(best_test),
        "final_test": test_record(final_test),
        "network": q_net.spec,
        "state": best_state,
        "final_state": final_state,
        **history,
    }
