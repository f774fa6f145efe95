"""CartPoleBatch is Gymnasium's CartPole-v1, and evaluate_greedy scores like evaluate_batched."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from rlbook.cartpole import (
    MAX_EPISODE_STEPS,
    REWARD_THRESHOLD,
    CartPoleBatch,
    evaluate_greedy,
    start_state,
)
from rlbook.chapters.dqn_improvements import StackedQNetwork
from rlbook.chapters.dqn_state import QNetworkPolicy, evaluate_batched
from rlbook.dqn import QNetwork

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def balancing_net() -> QNetwork:
    """A linear Q-network that pushes towards where the pole is falling: scores ~480.

    Q(s, right) - Q(s, left) = 2 * (theta + theta_dot).
    """
    net = QNetwork(4, 2, hidden=())
    with torch.no_grad():
        net.head.weight.copy_(
            torch.tensor([[0.0, 0.0, -1.0, -1.0], [0.0, 0.0, 1.0, 1.0]])
        )
        net.head.bias.zero_()
    return net


def random_net(seed: int, hidden: tuple[int, ...] = ()) -> QNetwork:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return QNetwork(4, 2, hidden)


# --- the environment -----------------------------------------------------------


def test_start_state_is_gymnasiums_reset_state():
    env = gym.make("CartPole-v1")
    for seed in (0, 1, 12345, 2**31 + 7):
        obs, _ = env.reset(seed=seed)
        state = start_state(seed)
        assert state.dtype == np.float64
        np.testing.assert_array_equal(state, env.unwrapped.state)
        np.testing.assert_array_equal(state.astype(np.float32), obs)


def test_steps_equal_gymnasiums_step_for_step_through_resets_and_truncations():
    """Every state, obs, reward, terminated and truncated, over ~90 episodes of 16 envs.

    The policy balances the pole (theta + 0.5 theta_dot), with a share of
    random actions that differs per env: steady envs reach the 500-step limit,
    shaky ones let the pole fall or the cart leave the track.
    """
    n = 16
    rng = np.random.default_rng(0)
    noise = np.linspace(0.0, 0.5, n)
    envs = [gym.make("CartPole-v1") for _ in range(n)]
    batch = CartPoleBatch(n)
    seeds = 1000 + 7 * np.arange(n)
    obs = batch.reset(seeds)
    expected = np.stack(
        [env.reset(seed=int(s))[0] for env, s in zip(envs, seeds, strict=True)]
    )
    assert obs.dtype == np.float32 and obs.shape == (n, 4)
    np.testing.assert_array_equal(obs, expected)

    next_seed = 50_000
    terminations = truncations = 0
    for step in range(3_000):
        action = (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int64)
        shaky = rng.random(n) < noise
        action[shaky] = rng.integers(0, 2, size=int(shaky.sum()))
        next_obs, reward, terminated, truncated = batch.step(action)
        assert next_obs.dtype == np.float32
        for i, env in enumerate(envs):
            gym_obs, gym_reward, gym_terminated, gym_truncated, _ = env.step(
                int(action[i])
            )
            where = f"step {step}, env {i}, episode step {batch.elapsed[i]}"
            assert np.array_equal(next_obs[i], gym_obs), where
            # The float64 state too: float32 observations would hide a last-bit
            # difference from a changed order of operations for many steps.
            assert np.array_equal(batch.state[i], env.unwrapped.state), where
            assert (reward[i], terminated[i], truncated[i]) == (
                gym_reward,
                gym_terminated,
                gym_truncated,
            ), where
            if gym_terminated or gym_truncated:
                terminations += gym_terminated
                truncations += gym_truncated
                next_obs[i] = batch.reset_one(i, next_seed)
                assert batch.elapsed[i] == 0
                np.testing.assert_array_equal(
                    next_obs[i], env.reset(seed=next_seed)[0], err_msg=where
                )
                next_seed += 1
        obs = next_obs
    # Both ways of ending must have been compared, many times.
    assert terminations >= 10 and truncations >= 10, (terminations, truncations)


def test_time_limit_and_solve_line_are_cartpole_v1s():
    spec = gym.spec("CartPole-v1")
    assert MAX_EPISODE_STEPS == spec.max_episode_steps == 500
    assert REWARD_THRESHOLD == spec.reward_threshold == 475


def test_batch_rejects_bad_sizes_with_clear_messages():
    with pytest.raises(ValueError, match="n must be at least 1, got 0"):
        CartPoleBatch(0)
    batch = CartPoleBatch(3)
    with pytest.raises(ValueError, match=r"need 3 seeds, got shape \(2,\)"):
        batch.reset([0, 1])
    with pytest.raises(ValueError, match="need 3 seeds"):
        batch.reset([[0, 1, 2]])
    batch.reset([0, 1, 2])
    with pytest.raises(ValueError, match=r"need 3 actions, got shape \(4,\)"):
        batch.step(np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match=r"need 3 actions, got shape \(\)"):
        batch.step(np.int64(1))


# --- greedy evaluation ---------------------------------------------------------

EPISODES, SEED = 20, 10_000


@pytest.mark.parametrize(
    "net", [balancing_net(), random_net(3, (16,))], ids=["balancing", "random"]
)
def test_evaluate_greedy_returns_equal_evaluate_batched(net):
    ours = evaluate_greedy(net, episodes=EPISODES, seed=SEED)
    gyms = evaluate_batched(
        QNetworkPolicy(net).act_batch, "CartPole-v1", episodes=EPISODES, seed=SEED
    )
    assert ours.returns.shape == (1, EPISODES)
    np.testing.assert_array_equal(ours.returns[0], gyms.returns)


def test_balancing_net_scores_near_the_solve_line():
    """The fixture the other tests rely on: long episodes, some truncated, some not."""
    returns = evaluate_greedy(balancing_net(), episodes=EPISODES, seed=SEED).returns
    assert returns.mean() > 400
    assert (returns == MAX_EPISODE_STEPS).any() and (returns < MAX_EPISODE_STEPS).any()


def deep_balancing_net() -> QNetwork:
    """:func:`balancing_net` with two hidden layers of 8, to stack with random nets.

    h1 = relu([s, -s]), h2 = h1, Q = [W, -W] h2 = W s.
    """
    net = QNetwork(4, 2, (8, 8))
    w = balancing_net().head.weight.detach()
    with torch.no_grad():
        net.body[0].weight.copy_(torch.cat((torch.eye(4), -torch.eye(4))))
        net.body[2].weight.copy_(torch.eye(8))
        net.head.weight.copy_(torch.cat((w, -w), dim=1))
        for layer in (net.body[0], net.body[2], net.head):
            layer.bias.zero_()
    return net


def test_stacked_runs_score_as_each_network_alone():
    nets = [deep_balancing_net(), random_net(1, (8, 8)), random_net(2, (8, 8))]
    stacked = StackedQNetwork(nets)
    together = evaluate_greedy(stacked, runs=3, episodes=EPISODES, seed=SEED)
    assert together.returns.shape == (3, EPISODES)
    assert together.returns[0].mean() > 400  # long episodes, compared step for step
    for r, net in enumerate(nets):
        alone = evaluate_greedy(net, episodes=EPISODES, seed=SEED)
        np.testing.assert_array_equal(together.returns[r], alone.returns[0])
        np.testing.assert_allclose(together.discounted[r], alone.discounted[0])
        np.testing.assert_allclose(
            together.start_values[r], alone.start_values[0], rtol=1e-5, atol=1e-6
        )


def test_discounted_return_and_start_values():
    net = balancing_net()
    gamma = 0.97
    result = evaluate_greedy(net, episodes=EPISODES, seed=SEED, gamma=gamma)
    assert (result.seed, result.gamma) == (SEED, gamma)
    lengths = result.returns[0].astype(int)  # every reward is 1
    assert len(set(lengths.tolist())) > 1
    expected = [sum(gamma**t for t in range(length)) for length in lengths]
    np.testing.assert_allclose(result.discounted[0], expected, rtol=1e-12)
    starts = np.stack([start_state(SEED + j) for j in range(EPISODES)])
    with torch.no_grad():
        q = net(torch.from_numpy(starts.astype(np.float32)))
    np.testing.assert_array_equal(
        result.start_values[0], q.max(dim=1).values.double().numpy()
    )


class ModeRecorder(nn.Module):
    """A Q-network that records the training flag it is called in."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.net = balancing_net()
        self.fail = fail
        self.seen: list[bool] = []

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        self.seen.append(self.training)
        if self.fail:
            raise RuntimeError("boom")
        return self.net(obs)


@pytest.mark.parametrize("training", [True, False])
def test_evaluation_runs_in_eval_mode_and_restores_the_mode(training):
    net = ModeRecorder()
    net.train(training)
    evaluate_greedy(net, episodes=2, seed=SEED)
    assert net.seen and not any(net.seen)
    assert net.training is training and net.net.training is training

    failing = ModeRecorder(fail=True)
    failing.train(training)
    with pytest.raises(RuntimeError, match="boom"):
        evaluate_greedy(failing, episodes=2, seed=SEED)
    assert failing.training is training


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"episodes": 0, "seed": 0}, "episodes must be >= 1, got 0"),
        ({"episodes": 1, "seed": -1}, "seed must be >= 0, got -1"),
        ({"episodes": 1, "seed": 0, "runs": 0}, "runs must be >= 1, got 0"),
    ],
)
def test_evaluate_greedy_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        evaluate_greedy(balancing_net(), **kwargs)


def test_actions_other_than_0_and_1_are_rejected():
    batch = CartPoleBatch(2)
    batch.reset([0, 1])
    with pytest.raises(ValueError, match="actions are 0 and 1"):
        batch.step(np.array([0, 2]))
