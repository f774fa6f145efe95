"""Generated from chapters/dqn_state.md by scripts/sync_notebooks.py: do not edit.

The page's code cells tagged ``export``, in page order. Edit them on the
page, then run scripts/sync_notebooks.py.
"""

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlbook.cartpole import TEST_EPISODES, evaluate_greedy, test_record
from rlbook.dqn import QNetwork
from rlbook.envs import make_env
from rlbook.replay import Batch, PrioritizedReplayBuffer, ReplayBuffer
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
