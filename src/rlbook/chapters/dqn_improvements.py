"""Generated from chapters/dqn_improvements.md by scripts/sync_notebooks.py: do not edit.

The page's code cells tagged ``export``, in page order. Edit them on the
page, then run scripts/sync_notebooks.py.
"""

import copy
import math
import multiprocessing
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, fields
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import nn

from rlbook.cartpole import (
    TEST_EPISODES,
    THETA_THRESHOLD,
    X_THRESHOLD,
    CartPoleBatch,
    evaluate_greedy,
)
from rlbook.chapters.dqn_state import (
    DQNConfig,
    epsilon_at,
    make_buffer,
    test_record,
    update,
)
from rlbook.dqn import QNetwork
from rlbook.replay import Batch
from rlbook.seeding import (
    TEST_SEED,
    VALIDATION_SEED,
    numpy_stream,
    stream_seed,
    torch_stream,
    train_seed,
)
from rlbook.stats import (
    Interval,
    as_scores,
    percentile_bootstrap,
    regularized_beta,
    t_interval,
)


def config_from(fields_or_config: Mapping[str, Any] | Any) -> DQNConfig:
    """A :class:`DQNConfig` from a mapping or any dataclass with the same
    fields.

    A config made by the chapter's own cells is of the page's class, which
    worker processes cannot import; configs travel as plain fields.
    """
    values = (
        dict(fields_or_config)
        if isinstance(fields_or_config, Mapping)
        else asdict(fields_or_config)
    )
    known = {f.name for f in fields(DQNConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"unknown DQNConfig fields: {', '.join(unknown)}"
        )
    if "hidden" in values:
        values["hidden"] = tuple(values["hidden"])
    return DQNConfig(**values)


class StackedQNetwork(nn.Module):
    """``S`` :class:`~rlbook.dqn.QNetwork` s of one architecture,
    evaluated together.

    Each linear layer's weights are stacked into one ``(S, in, out)``
    tensor, so a forward pass over observations ``(S, B, obs_dim)`` is one
    batched matrix product per layer, and returns ``(S, B, n_actions)``:
    network ``s`` sees only ``obs[s]``.

    Args:
        networks: the ``S`` networks; their weights are copied.
    """

    def __init__(self, networks: Sequence[QNetwork]) -> None:
        super().__init__()
        if not networks:
            raise ValueError("need at least one network to stack")
        self.spec = dict(networks[0].spec)
        if any(net.spec != self.spec for net in networks):
            raise ValueError(
                "every stacked network must have the same spec"
            )
        if self.spec["batch_norm"]:
            raise ValueError("BatchNorm networks cannot be stacked")
        self.n = len(networks)
        self.layer_names = [
            name
            for name, m in networks[0].named_modules()
            if isinstance(m, nn.Linear)
        ]
        linears = [
            [m for m in net.modules() if isinstance(m, nn.Linear)]
            for net in networks
        ]
        self.weights = nn.ParameterList(
            nn.Parameter(
                torch.stack([net[k].weight.detach().T for net in linears])
            )
            for k in range(len(self.layer_names))
        )
        self.biases = nn.ParameterList(
            nn.Parameter(
                torch.stack(
                    [net[k].bias.detach()[None] for net in linears]
                )
            )
            for k in range(len(self.layer_names))
        )
        self.n_hidden = len(self.spec["hidden"])

    def _linear(self, k: int, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.biases[k], x, self.weights[k])

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values ``(S, B, n_actions)`` of observations
        ``(S, B, obs_dim)``."""
        x = obs
        for k in range(self.n_hidden):
            x = self._linear(k, x).relu_()
        if not self.spec["dueling"]:
            return self._linear(self.n_hidden, x)
        value = self._linear(self.n_hidden, x)
        advantage = self._linear(self.n_hidden + 1, x)
        return value + advantage - advantage.mean(dim=-1, keepdim=True)

    def state_of(self, run: int) -> dict[str, torch.Tensor]:
        """Network ``run``'s weights as a :class:`~rlbook.dqn.QNetwork`
        ``state_dict``."""
        state = {}
        for k, name in enumerate(self.layer_names):
            state[f"{name}.weight"] = (
                self.weights[k][run].detach().T.clone()
            )
            state[f"{name}.bias"] = (
                self.biases[k][run, 0].detach().clone()
            )
        return state

    def load_state_of(
        self, run: int, state: Mapping[str, torch.Tensor]
    ) -> None:
        """Overwrite network ``run`` with a :class:`~rlbook.dqn.QNetwork`
        ``state_dict``."""
        with torch.no_grad():
            for k, name in enumerate(self.layer_names):
                self.weights[k][run].copy_(state[f"{name}.weight"].T)
                self.biases[k][run, 0].copy_(state[f"{name}.bias"])


def clip_grad_norm_per_run_(
    parameters: Iterable[torch.Tensor], max_norm: float
) -> torch.Tensor:
    """:func:`torch.nn.utils.clip_grad_norm_` applied to each run ``s`` on
    its own.

    Every parameter has a leading run dimension; run ``s``'s gradient norm
    is taken over all its parameters, and only its gradients are scaled.
    Returns each run's norm before clipping, ``(S,)``.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    squares = torch.stack(
        [g.pow(2).flatten(1).sum(1) for g in grads]
    ).sum(0)
    scale = (max_norm / (squares.sqrt() + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *[1] * (g.dim() - 1)))
    return squares.sqrt()


class StackedReplayBuffer:
    """``S`` replay buffers, one per run, filled in lockstep.

    Storage is ``(S, capacity, ...)``; every step adds one transition to
    each run at the same slot. Uniform buffers sample run ``s``'s indices
    with its own generator; prioritized ones keep one
    :class:`~rlbook.chapters.dqn_state.PrioritizedReplayBuffer` per run.
    """

    def __init__(
        self,
        config: DQNConfig,
        seeds: Sequence[int],
        device: torch.device | str = "cpu",
    ) -> None:
        self.n = len(seeds)
        self.device = torch.device(device)
        self.prioritized = config.prioritized
        if self.prioritized:
            self.buffers = [
                make_buffer(config, seed, device) for seed in seeds
            ]
            return
        self.generators = [torch_stream(seed, "replay") for seed in seeds]
        capacity = config.buffer_size
        # One row per transition, (obs 4, next_obs 4, action, reward,
        # terminated): a batch is one gather instead of five.
        self.storage = torch.zeros(
            self.n, capacity, 11, device=self.device
        )
        self.capacity, self.pos, self.size = capacity, 0, 0
        self.rows = torch.arange(self.n, device=self.device)[:, None]

    def add(self, obs, action, reward, next_obs, terminated) -> None:
        """One transition per run: ``obs`` ``(S, 4)``, ``action``
        ``(S,)``, ..."""
        if self.prioritized:
            for i, buffer in enumerate(self.buffers):
                buffer.add(
                    obs[i],
                    action[i],
                    reward[i],
                    next_obs[i],
                    terminated[i],
                )
            return
        row = np.concatenate(
            (
                obs,
                next_obs,
                action[:, None],
                reward[:, None],
                terminated[:, None],
            ),
            axis=1,
            dtype=np.float32,
        )
        self.storage[:, self.pos] = torch.from_numpy(row).to(self.device)
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    @property
    def beta(self) -> float:
        """Every run's importance-sampling exponent (prioritized replay
        only)."""
        if not self.prioritized:
            raise ValueError(
                "beta needs a prioritized StackedReplayBuffer"
            )
        return self.buffers[0].beta

    @beta.setter
    def beta(self, beta: float) -> None:
        if not self.prioritized:
            raise ValueError(
                "beta needs a prioritized StackedReplayBuffer"
            )
        for buffer in self.buffers:
            buffer.beta = beta

    def sample(self, batch_size: int) -> Batch:
        """A :class:`~rlbook.replay.Batch` whose fields are
        ``(S, batch_size, ...)``."""
        if self.prioritized:
            batches = [
                buffer.sample(batch_size) for buffer in self.buffers
            ]
            return Batch(
                *(
                    torch.stack(field)
                    for field in zip(*batches, strict=True)
                )
            )
        if self.size == 0:
            raise ValueError(
                "cannot sample from an empty replay buffer; "
                "add transitions first"
            )
        indices = torch.stack(
            [
                torch.randint(0, self.size, (batch_size,), generator=g)
                for g in self.generators
            ]
        ).to(self.device)
        rows = self.storage[self.rows, indices]
        return Batch(
            obs=rows[..., 0:4],
            action=rows[..., 8].long(),
            reward=rows[..., 9],
            next_obs=rows[..., 4:8],
            terminated=rows[..., 10],
            indices=indices,
            weights=torch.ones(self.n, batch_size, device=self.device),
        )

    def update_priorities(
        self, indices: torch.Tensor, td_error: torch.Tensor
    ) -> None:
        for i, buffer in enumerate(self.buffers):
            buffer.update_priorities(indices[i], td_error[i])


def train_dqn_batched(
    config: DQNConfig,
    seeds: Sequence[int],
    device: torch.device | str = "cpu",
    *,
    truncation_as_termination: bool = False,
    monitor: Any = None,
) -> list[dict]:
    """``[train_dqn(config, s) for s in seeds]``, computed together; one
    record per seed.

    Each record has the keys of :func:`train_dqn`; ``seconds`` is the wall
    time of the whole batch, and ``runs_in_batch`` says how many runs
    shared it.

    Args:
        truncation_as_termination: store ``terminated or truncated`` as
            the end of the bootstrap: the common bug, a measured variant.
        monitor: a :class:`TrainingMonitor` (or ``None``): told of every
            update and every validation point; it changes nothing.
    """
    seeds = [int(s) for s in seeds]
    n = len(seeds)
    networks = []
    for seed in seeds:
        torch.manual_seed(
            stream_seed(seed, "init")
        )  # seed s's train_dqn init
        networks.append(
            QNetwork(4, 2, config.hidden, dueling=config.dueling)
        )
    q_net = StackedQNetwork(networks).to(device)
    target_net = copy.deepcopy(q_net) if config.target_every else q_net
    optimizer = torch.optim.Adam(
        q_net.parameters(), lr=config.learning_rate
    )
    buffer = StackedReplayBuffer(config, seeds, device)
    explore = [numpy_stream(seed, "explore") for seed in seeds]
    env = CartPoleBatch(n)

    history: list[dict[str, list]] = [
        {
            "episode_end": [],
            "episode_return": [],
            "validation_step": [],
            "validation_return": [],
        }
        for _ in seeds
    ]
    best_score = np.full(n, -np.inf)
    best_step = np.zeros(n, dtype=np.int64)
    best_state: list[dict[str, torch.Tensor] | None] = [None] * n
    episode = np.zeros(n, dtype=np.int64)
    episode_return = np.zeros(n)
    updates = 0
    obs = env.reset([train_seed(seed, 0) for seed in seeds])
    action = np.zeros(n, dtype=np.int64)
    start = time.perf_counter()
    for step in range(config.total_steps):
        # Act: each run draws its coin and random action from its own
        # stream, in the same order as train_dqn; one forward pass serves
        # every run.
        epsilon = epsilon_at(config, step)
        random_action = [
            step < config.learning_starts or rng.random() < epsilon
            for rng in explore
        ]
        if not all(random_action):
            with torch.no_grad():
                x = torch.from_numpy(obs).to(device)[:, None]
                greedy = q_net(x).argmax(-1)[:, 0]
            action[:] = greedy.cpu().numpy()
        for i, rng in enumerate(explore):
            if random_action[i]:
                action[i] = rng.integers(2)
        next_obs, reward, terminated, truncated = env.step(action)
        done = (
            terminated | truncated
            if truncation_as_termination
            else terminated
        )
        buffer.add(obs, action, reward.astype(np.float32), next_obs, done)
        episode_return += reward
        for i in np.flatnonzero(terminated | truncated):
            history[i]["episode_end"].append(step + 1)
            history[i]["episode_return"].append(float(episode_return[i]))
            episode[i] += 1
            episode_return[i] = 0.0
            next_obs[i] = env.reset_one(
                i, train_seed(seeds[i], int(episode[i]))
            )
        obs = next_obs

        if (
            step >= config.learning_starts
            and step % config.train_every == 0
        ):
            # the chapter's step; td_loss averages over runs too, so
            # times n each run's gradient is that of its own mean loss, as
            # in train_dqn
            td_error, grad_norm = update(
                q_net,
                target_net,
                optimizer,
                buffer,
                config,
                step,
                clip=clip_grad_norm_per_run_,
                loss_scale=n,
            )
            if monitor is not None:
                monitor.after_update(td_error, grad_norm)
            updates += 1
            if config.target_every and updates % config.target_every == 0:
                target_net.load_state_dict(q_net.state_dict())

        if (step + 1) % config.validate_every == 0:
            validation = evaluate_greedy(
                q_net,
                runs=n,
                episodes=config.validate_episodes,
                seed=VALIDATION_SEED,
                gamma=config.gamma,
            )
            scores = validation.returns.mean(axis=1)
            for i, score in enumerate(scores):
                history[i]["validation_step"].append(step + 1)
                history[i]["validation_return"].append(float(score))
                if score >= best_score[i]:
                    best_score[i], best_step[i] = score, step + 1
                    best_state[i] = q_net.state_of(i)
            if monitor is not None:
                monitor.at_validation(step + 1, buffer, validation)

    seconds = time.perf_counter() - start
    final_state = [q_net.state_of(i) for i in range(n)]
    final_test = evaluate_greedy(
        q_net,
        runs=n,
        episodes=TEST_EPISODES,
        seed=TEST_SEED,
        gamma=config.gamma,
    )
    for i, state in enumerate(best_state):
        if state is not None:
            q_net.load_state_of(i, state)
    best_test = evaluate_greedy(
        q_net,
        runs=n,
        episodes=TEST_EPISODES,
        seed=TEST_SEED,
        gamma=config.gamma,
    )
    return [
        {
            "seed": seed,
            "seconds": seconds,
            "runs_in_batch": n,
            "updates": updates,
            "best_step": int(best_step[i]),
            "best_validation": float(best_score[i]),
            "test": test_record(best_test, i),
            "final_test": test_record(final_test, i),
            "network": dict(q_net.spec),
            "state": best_state[i],
            "final_state": final_state[i],
            **history[i],
        }
        for i, seed in enumerate(seeds)
    ]


def _sweep_job(
    fields_: dict[str, Any], seeds: list[int], threads: int, device: str
) -> list[dict]:
    torch.set_num_threads(threads)
    return train_dqn_batched(config_from(fields_), seeds, device)


def run_sweep(
    variants: Mapping[str, Any],
    seeds: Sequence[int],
    *,
    workers: int = 1,
    threads: int = 1,
    device: torch.device | str = "cpu",
) -> dict[str, list[dict]]:
    """Train every variant on every seed: one :func:`train_dqn_batched`
    per variant.

    Args:
        variants: name -> config (a :class:`DQNConfig`, the chapter's copy
            of it, or a mapping of its fields).
        seeds: the seeds every variant trains on (a paired design: seed
            ``s`` starts every variant from the same weights and start
            states).
        workers: worker processes; with 1, everything runs in this
            process.
        threads: torch threads per worker.
        device: where every worker trains (weights come back on it).

    Returns:
        name -> one record per seed, in ``variants``' order.
    """
    jobs = {
        name: asdict(config_from(cfg)) for name, cfg in variants.items()
    }
    seeds = [int(s) for s in seeds]
    where = str(device)
    if workers <= 1:
        caller_threads = torch.get_num_threads()
        try:
            return {
                name: _sweep_job(job, seeds, threads, where)
                for name, job in jobs.items()
            }
        finally:
            torch.set_num_threads(
                caller_threads
            )  # leave the caller as it was
    # "spawn": a fresh interpreter per worker, safe with torch's thread
    # pools. A worker cannot import what a notebook's cells define: it
    # runs these cells as the module generated from them.
    from rlbook.chapters.dqn_improvements import _sweep_job as work

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = {
            name: pool.submit(work, job, seeds, threads, where)
            for name, job in jobs.items()
        }
        return {name: future.result() for name, future in futures.items()}


def seed_differences(
    values: ArrayLike, baseline: ArrayLike
) -> np.ndarray:
    """``values - baseline`` seed by seed (same seed order), checked."""
    a = np.asarray(values, dtype=np.float64).ravel()
    b = np.asarray(baseline, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(
            "paired scores need one value per seed on both sides, "
            f"got {a.size} and {b.size}"
        )
    return as_scores(a - b)  # at least one, all finite


def paired_t(
    values: ArrayLike, baseline: ArrayLike, *, level: float = 0.95
) -> Interval:
    """The mean of ``values - baseline`` with its t interval."""
    return t_interval(seed_differences(values, baseline), level=level)


def paired_t_pvalue(values: ArrayLike, baseline: ArrayLike) -> float:
    """The two-sided p-value of the paired t-test of a mean difference
    of 0. One seed gives 1; equal differences 0 (1 when all are 0)."""
    differences = seed_differences(values, baseline)
    n, mean = differences.size, float(differences.mean())
    if n == 1:
        return 1.0
    spread = float(differences.std(ddof=1))
    if spread == 0.0:
        return 1.0 if mean == 0.0 else 0.0
    t, df = mean / (spread / math.sqrt(n)), n - 1
    # P(|T| >= |t|) for Student's t, a regularized incomplete beta
    return regularized_beta(df / (df + t * t), df / 2.0, 0.5)


def holm(
    p_values: Sequence[float] | Mapping[str, float],
) -> np.ndarray | dict[str, float]:
    """Holm's (1979) step-down adjusted p-values, in the form and order
    given: a sequence, or a mapping name -> p-value."""
    if isinstance(p_values, Mapping):
        names = list(p_values)
        adjusted = holm([p_values[name] for name in names])
        return dict(zip(names, map(float, adjusted), strict=True))
    raw = np.asarray(p_values, dtype=np.float64).ravel()
    if not np.all((raw >= 0.0) & (raw <= 1.0)):
        raise ValueError(
            f"p-values must lie in [0, 1], got {raw.tolist()}"
        )
    m = raw.size
    order = np.argsort(raw, kind="stable")  # smallest first
    stepped = np.minimum(1.0, (m - np.arange(m)) * raw[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(stepped)  # never below
    return adjusted


def paired_sign_flip_pvalue(
    values: ArrayLike, baseline: ArrayLike
) -> float:
    """The exact two-sided p-value of the paired sign-flip test (at most
    16 seeds): the share of the 2^n sign patterns whose |sum| reaches the
    observed one. Assumes no normality; its smallest value is 2 / 2^n."""
    differences = seed_differences(values, baseline)
    n = differences.size
    if n > 16:
        raise ValueError(
            "the exact test enumerates 2^n sign patterns: "
            f"n <= 16, got {n}"
        )
    signs = 1.0 - 2.0 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
    sums = np.abs(signs @ differences)
    tolerance = 1e-9 * float(np.abs(differences).sum())
    return float(np.mean(sums >= abs(differences.sum()) - tolerance))


def iqm(rows: np.ndarray) -> np.ndarray:
    """The interquartile mean of each row, rliable's: drop floor(n / 4)
    scores from each end (scipy.stats.trim_mean(rows, 0.25))."""
    n = rows.shape[-1]
    cut = int(0.25 * n)
    return np.sort(rows, axis=-1)[..., cut : n - cut].mean(axis=-1)


def probability_of_improvement(
    values: ArrayLike, other: ArrayLike
) -> float:
    """P(X > Y) + P(X = Y) / 2 for a run X of ``values`` and a run Y of
    ``other``, over all pairs of runs (not seed by seed)."""
    x, y = as_scores(values)[:, None], as_scores(other)[None, :]
    return float(np.mean((x > y) + 0.5 * (x == y)))


def performance_profile(
    values: ArrayLike, thresholds: ArrayLike
) -> np.ndarray:
    """The share of runs scoring above each threshold (score > tau)."""
    scores = as_scores(values)
    taus = np.asarray(thresholds, dtype=np.float64).ravel()
    return (scores[None, :] > taus[:, None]).mean(axis=1)


def bootstrap_iqm(
    values: ArrayLike,
    *,
    level: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> Interval:
    """The IQM of ``values`` (in the ``mean`` field) with a
    percentile-bootstrap interval over runs."""
    scores = as_scores(values)
    low, high = percentile_bootstrap(scores, iqm, level, resamples, seed)
    return Interval(float(iqm(scores)), low, high, level, scores.size)


NEAR_FAILURE = 0.75
"""A stored state is *near failure* when its cart position or its pole
angle is past this share of CartPole's termination limit (2.4 m, 12
degrees): |x| > 1.8 m or |theta| > 9 degrees."""


class TrainingMonitor:
    """What a batched run logs at each validation point, run by run.

    Between two points it collects every update's mean |TD error| and
    gradient norm before clipping; at a point it adds the validation:
    the mean predicted max Q at the validation start states (a fixed set)
    and the discounted return the greedy policy collected from them; and
    the replay buffer's shares of near-failure and terminal states. It
    only reads what training computed anyway and draws no random
    numbers, so the run's numbers do not change.
    """

    def __init__(self, runs: int) -> None:
        self.log = [
            {key: [] for key in MONITOR_KEYS} for _ in range(runs)
        ]
        self._td: list[torch.Tensor] = []
        self._norm: list[torch.Tensor] = []

    def after_update(
        self, td_error: torch.Tensor, grad_norm: torch.Tensor
    ) -> None:
        """One update: TD errors ``(S, B)``, norms before clipping
        ``(S,)``."""
        self._td.append(td_error.abs().mean(-1))
        self._norm.append(grad_norm.detach())

    def at_validation(
        self, step: int, buffer: StackedReplayBuffer, validation
    ) -> None:
        """One validation point: ``validation`` is the
        :class:`~rlbook.cartpole.GreedyEvaluation` just played."""
        if buffer.prioritized:
            raise ValueError("the monitor reads uniform replay only")
        stored = buffer.storage[:, : buffer.size]  # (S, size, 11)
        near = (stored[..., 0].abs() > NEAR_FAILURE * X_THRESHOLD) | (
            stored[..., 2].abs() > NEAR_FAILURE * THETA_THRESHOLD
        )
        terminal = stored[..., 10]  # the stored `terminated` flag
        updated = bool(self._td)
        if updated:
            td = torch.stack(self._td).mean(0)
            norms = torch.stack(self._norm)
        for s, log in enumerate(self.log):
            values = {
                "step": step,
                "validation_return": validation.returns[s].mean(),
                "start_value": validation.start_values[s].mean(),
                "discounted": validation.discounted[s].mean(),
                "td_error": td[s] if updated else None,
                "grad_norm": norms[:, s].mean() if updated else None,
                "grad_norm_max": norms[:, s].max() if updated else None,
                "near_failure": near[s].float().mean(),
                "terminal": terminal[s].mean(),
            }
            for key, value in values.items():
                log[key].append(None if value is None else float(value))
        self._td.clear()
        self._norm.clear()


MONITOR_KEYS = (
    "step",
    "validation_return",
    "start_value",
    "discounted",
    "td_error",
    "grad_norm",
    "grad_norm_max",
    "near_failure",
    "terminal",
)
