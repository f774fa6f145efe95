"""rlbook.chapters.pong, the first Pong page's export cells: pg-pong's pieces and
its hand-written gradients against autograd, REINFORCE, resuming, and playing
whole games in bounded emulators (PPO's are in test_chapters_pong_ppo.py)."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from rlbook.chapters.pong import (
    DifferenceAgent,
    Reinforce,
    TorchPolicy,
    discount_rewards,
    init_numpy_policy,
    numpy_backward,
    numpy_forward,
    numpy_logit_grad,
    play_games,
    policy_gradient_loss,
    policy_probs_sparse,
    reinforce_config,
    running_mean,
    sample_actions,
    sparse_hidden,
    standardise,
    time_numpy_vs_torch,
)
from rlbook.pong import ACTIONS_2, ACTIONS_3, INPUTS, make_pong_vector

from .conftest import tiny_pong_configs

TINY_PG, _ = tiny_pong_configs()


# ---------------------------------------------------------------- returns


def test_discount_rewards_resets_the_sum_at_every_point():
    r = np.array([0, 0, 1, 0, 0, -1.0])
    # without the reset, step 2 would be 1 + 0.5 * (-0.25) = 0.875
    expected = [0.25, 0.5, 1.0, -0.25, -0.5, -1.0]
    np.testing.assert_allclose(discount_rewards(r, gamma=0.5), expected)
    np.testing.assert_allclose(discount_rewards(r, gamma=1.0), [1, 1, 1, -1, -1, -1])
    np.testing.assert_allclose(discount_rewards(r, gamma=0.0), r)


def test_standardise_gives_zero_mean_unit_std():
    z = standardise(np.array([1.0, 2.0, 3.0, 10.0]))
    assert abs(z.mean()) < 1e-12 and abs(z.std() - 1) < 1e-12
    with pytest.raises(ValueError, match="zero spread"):
        standardise(np.ones(3))


# ---------------------------------------------------------------- gradients


def batch_of(rng, size: int, inputs: int, actions: int, dtype):
    """Difference-frame-like inputs (sparse +-1), actions and advantages."""
    x = (rng.random((size, inputs)) < 0.02) * rng.choice([-1.0, 1.0], (size, inputs))
    return x.astype(dtype), rng.integers(0, actions, size), rng.standard_normal(size)


@pytest.mark.parametrize(("dtype", "rtol"), [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("actions", [2, 3])
def test_hand_written_gradients_equal_autograd(actions, dtype, rtol):
    rng = np.random.default_rng(actions)
    model = init_numpy_policy(rng, actions=actions, dtype=dtype)
    x, chosen, adv = batch_of(rng, 256, 6400, actions, dtype)
    adv = adv.astype(dtype)
    probs, h = numpy_forward(model, x)
    grads = numpy_backward(model, x, h, numpy_logit_grad(probs, chosen, adv))

    policy = TorchPolicy.from_numpy(model)
    xt = torch.from_numpy(x)
    loss = policy_gradient_loss(
        policy(xt), torch.from_numpy(chosen), torch.from_numpy(adv)
    )
    loss.backward()
    np.testing.assert_allclose(policy.probs(xt).detach().numpy(), probs, rtol=rtol)
    auto = {"W1": policy.hidden.weight.grad, "W2": policy.out.weight.grad}
    for k in ("W1", "W2"):
        got, want = grads[k], auto[k].numpy().reshape(grads[k].shape)
        assert got.dtype == dtype
        scale = np.abs(want).max()
        np.testing.assert_allclose(got, want, rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("actions", [2, 3])
def test_hand_written_gradients_match_finite_differences(actions):
    rng = np.random.default_rng(10 + actions)
    model = init_numpy_policy(rng, hidden=5, inputs=7, actions=actions)
    x, chosen, adv = batch_of(rng, 12, 7, actions, np.float64)
    x = rng.standard_normal(x.shape)  # dense, so that every weight matters

    def loss() -> float:
        probs, _ = numpy_forward(model, x)
        return float(-(adv * np.log(probs[np.arange(len(x)), chosen])).sum())

    probs, h = numpy_forward(model, x)
    grads = numpy_backward(model, x, h, numpy_logit_grad(probs, chosen, adv))
    eps = 1e-6
    for k, w in model.items():
        numeric = np.zeros_like(w)
        for i in np.ndindex(w.shape):
            saved = w[i]
            w[i] = saved + eps
            up = loss()
            w[i] = saved - eps
            down = loss()
            w[i] = saved
            numeric[i] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grads[k], numeric, atol=1e-7)


def test_mean_reduction_is_the_sum_over_the_batch_size():
    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.standard_normal((8, 3)))
    a, adv = torch.from_numpy(rng.integers(0, 3, 8)), torch.from_numpy(rng.random(8))
    total = policy_gradient_loss(logits, a, adv, reduction="sum")
    assert torch.isclose(policy_gradient_loss(logits, a, adv, "mean"), total / 8)


def test_numpy_and_torch_weights_round_trip():
    rng = np.random.default_rng(0)
    for actions, w2_shape in ((2, (200,)), (3, (3, 200))):
        model = init_numpy_policy(rng, actions=actions)
        assert model["W1"].shape == (200, 6400) and model["W2"].shape == w2_shape
        back = TorchPolicy.from_numpy(model).to_numpy()
        for k in model:
            np.testing.assert_array_equal(back[k], model[k])


def test_init_is_karpathys_randn_over_sqrt_fan_in():
    model = init_numpy_policy(np.random.default_rng(0), actions=2)
    assert abs(model["W1"].std() * np.sqrt(6400) - 1) < 0.01
    assert abs(model["W2"].std() * np.sqrt(200) - 1) < 0.15
    again = init_numpy_policy(np.random.default_rng(0), actions=2)
    np.testing.assert_array_equal(model["W1"], again["W1"])


def test_time_numpy_vs_torch_reports_both():
    result = time_numpy_vs_torch(batch=32, repeats=1)
    assert result["numpy_ms"] > 0 and result["torch_ms"] > 0
    assert result["batch"] == 32 and result["dtype"] == "float32"


# ---------------------------------------------------------------- playing


def test_sample_actions_follows_the_probabilities():
    rng = np.random.default_rng(0)
    probs = np.tile([0.2, 0.5, 0.3], (20000, 1))
    counts = np.bincount(sample_actions(probs, rng), minlength=3) / 20000
    np.testing.assert_allclose(counts, [0.2, 0.5, 0.3], atol=0.015)
    assert (sample_actions(np.tile([1.0, 0.0], (50, 1)), rng) == 0).all()


def difference_frames(batch: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = (rng.random((batch, INPUTS)) < 0.01) * rng.choice([-1, 1], (batch, INPUTS))
    x[0] = 0  # a game's first frame: no difference at all
    return x.astype(np.int8)


def test_sparse_forward_equals_the_dense_one():
    policy = TorchPolicy()
    x = difference_frames(7)
    w1_t = policy.hidden.weight.detach().t().contiguous()
    dense = torch.from_numpy(x.astype(np.float32)) @ policy.hidden.weight.detach().t()
    torch.testing.assert_close(sparse_hidden(w1_t, x), dense, atol=1e-6, rtol=1e-5)
    with torch.no_grad():
        expected = policy.probs(torch.from_numpy(x.astype(np.float32))).numpy()
    np.testing.assert_allclose(
        policy_probs_sparse(policy, w1_t, x), expected, atol=1e-6
    )


def test_a_reinforce_update_is_pg_pongs_rmsprop_step_on_the_summed_gradient():
    run = Reinforce(TINY_PG)
    model = {k: v.astype(np.float64) for k, v in run.policy.to_numpy().items()}
    x = difference_frames(300, seed=1)
    actions = np.random.default_rng(2).integers(0, 3, 300)
    rewards = np.zeros(300, np.float32)
    rewards[[40, 99, 180, 299]] = [1, -1, -1, 1]
    lane = np.repeat([0, 1], 150)
    rewards[149] = -1  # each game ends with a point
    adv = run.advantages(rewards, lane)
    for g in (0, 1):  # standardised per game, returns reset at each point
        sel = lane == g
        expected = discount_rewards(rewards[sel])
        expected = (expected - expected.mean()) / expected.std()
        np.testing.assert_allclose(adv[sel], expected, atol=1e-5)

    run.learn(x, actions, adv)
    probs, h = numpy_forward(model, x.astype(np.float64))
    grads = numpy_backward(
        model, x.astype(np.float64), h, numpy_logit_grad(probs, actions, adv)
    )
    for k, g in grads.items():  # pg-pong.py's RMSProp step, from an empty cache
        cache = 0.99 * np.zeros_like(g) + (1 - 0.99) * g**2
        model[k] -= 1e-4 * g / (np.sqrt(cache) + 1e-5)
    after = run.policy.to_numpy()
    for k in model:
        np.testing.assert_allclose(after[k], model[k], atol=2e-6, rtol=1e-4)


def test_reinforce_resumed_from_a_checkpoint_is_the_run_that_never_stopped(
    tiny_reinforce,
):
    straight, halfway = tiny_reinforce
    resumed = Reinforce.from_state(halfway)
    resumed.train()
    assert resumed.scores == straight.scores and resumed.env_steps == straight.env_steps
    for k, v in straight.policy.state_dict().items():
        assert torch.equal(v, resumed.policy.state_dict()[k]), k
    assert resumed.best is not None and resumed.best["update"] == 2
    assert [v["update"] for v in resumed.validations] == [2]
    assert all(-21 <= s <= 21 for s in straight.scores) and len(straight.scores) == 4


def test_a_batch_is_one_whole_game_per_lane_all_by_the_same_weights():
    run = Reinforce(TINY_PG)
    vec = make_pong_vector(2)
    try:
        x, _, rewards, lane = run.play_batch(vec)
    finally:
        vec.close()
    for g in (0, 1):
        r = rewards[lane == g]
        assert max((r == 1).sum(), (r == -1).sum()) == 21  # a whole game to 21
        assert not x[lane == g][0].any()  # its first step sees no difference
    assert np.all(np.diff(lane) >= 0)


def test_play_games_keeps_a_bounded_number_of_emulators_and_is_reproducible(
    monkeypatch,
):
    import rlbook.chapters.pong as pt

    opened = []
    real = pt.make_pong_vector
    monkeypatch.setattr(
        pt, "make_pong_vector", lambda n, *a, **k: opened.append(n) or real(n, *a, **k)
    )
    torch.manual_seed(0)
    net = TorchPolicy()
    a = play_games(DifferenceAgent(net), 3, seed=9, lanes=2, keep_scores=True).scores
    b = play_games(DifferenceAgent(net), 3, seed=9, lanes=2, keep_scores=True).scores
    assert opened == [2, 2] and a.shape == (3,)
    np.testing.assert_array_equal(a, b)
    # a game ends when one side reaches 21: our score minus theirs
    assert np.all((np.abs(a) >= 1) & (np.abs(a) <= 21))
    with pytest.raises(ValueError, match="games >= 1"):
        play_games(DifferenceAgent(net), 0, seed=0)


class InstantPong:
    """A stand-in for the emulators: lane ``i``'s games last ``i + 1`` steps
    (``length`` steps if given), and its ``k``-th game ends ``100 i + k``, so a
    score says which game it was."""

    def __init__(self, lanes: int, length: int | None = None) -> None:
        self.lanes = lanes
        self.length = np.full(lanes, length) if length else np.arange(1, lanes + 1)
        self.steps = np.zeros(lanes, dtype=np.int64)
        self.games = np.zeros(lanes, dtype=np.int64)
        self.scores = np.zeros(lanes)  # the score so far: 0 until the last step

    def reset(self) -> np.ndarray:
        return np.zeros((self.lanes, 1))

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        self.steps += 1
        done = self.steps >= self.length
        reward = np.where(done, 100.0 * np.arange(self.lanes) + self.games, 0.0)
        self.games += done
        self.steps[done] = 0
        return self.reset(), reward, done, np.zeros(self.lanes, dtype=bool)

    def close(self) -> None:
        pass


class IdleAgent:
    action_set = (0,)

    def start(self, frames: np.ndarray) -> None:
        pass

    def act(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.zeros(len(frames), dtype=np.int64)

    def step_frames(self, frames: np.ndarray) -> None:
        pass

    def new_games(self, frames: np.ndarray, mask: np.ndarray) -> None:
        pass


def test_play_games_statistics_are_numpys_of_the_scores_in_play_order(monkeypatch):
    import rlbook.chapters.pong as pt

    monkeypatch.setattr(pt, "make_pong_vector", lambda n, *a, **k: InstantPong(n))
    played = play_games(IdleAgent(), 23, seed=0, lanes=4, keep_scores=True)
    # game g is lane g % 4's (g // 4)-th, though the lanes end games at
    # different paces
    order = np.array([100.0 * (g % 4) + g // 4 for g in range(23)])
    np.testing.assert_array_equal(played.scores, order)
    assert played.count == 23 and played.won == 22  # game 0 scores 0
    assert played.mean == float(order.mean())  # bit for bit
    assert played.std == pytest.approx(float(order.std()), rel=1e-15, abs=0)
    assert (played.lowest, played.highest) == (order.min(), order.max())
    plain = play_games(IdleAgent(), 23, seed=0, lanes=4)
    assert (plain.mean, plain.std, plain.won) == (
        played.mean,
        played.std,
        played.won,
    )
    with pytest.raises(ValueError, match="keep_scores=True"):
        _ = plain.scores


def test_play_games_memory_does_not_grow_with_the_games(monkeypatch):
    """#28: 50,000 games once kept 50,000 scores (over a megabyte in
    Python floats and lists); the statistics alone take a few numbers."""
    import tracemalloc

    import rlbook.chapters.pong as pt

    monkeypatch.setattr(pt, "make_pong_vector", lambda n, *a, **k: InstantPong(n, 1))
    tracemalloc.start()
    try:
        played = play_games(IdleAgent(), 50_000, seed=0, lanes=10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert played.count == 50_000
    assert peak < 256 * 1024, f"peak {peak / 1024:.0f} KiB"


def test_running_mean_averages_the_last_window_games():
    scores = np.array([-21.0, -1.0, 19.0, 21.0, 21.0])
    np.testing.assert_allclose(running_mean(scores, 2), [-21, -11, 9, 20, 21])


def test_budgets_only_change_the_length_and_unknown_ones_are_refused():
    full, ci = reinforce_config("full"), reinforce_config("ci")
    assert (
        replace(
            ci,
            updates=full.updates,
            validate_every=full.validate_every,
            validation_games=full.validation_games,
        )
        == full
    )
    with pytest.raises(ValueError, match="budget"):
        reinforce_config("huge")


def test_difference_agent_sees_zero_at_a_new_game():
    agent = DifferenceAgent(TorchPolicy())
    frames = np.zeros((2, 210, 160, 3), np.uint8)
    frames[..., 0] = 144
    agent.start(frames)
    moved = frames.copy()
    moved[:, 100:104, 50:52, 0] = 236
    agent.step_frames(moved)
    assert agent.difference().any(axis=1).all()
    agent.new_games(moved, np.array([True, False]))
    diff = agent.difference()
    assert not diff[0].any() and diff[1].any()


def test_agents_play_the_actions_their_network_has():
    # Karpathy's sigmoid network moves UP or DOWN; the softmax one may also stay
    assert DifferenceAgent(TorchPolicy(actions=2)).action_set == ACTIONS_2
    assert DifferenceAgent(TorchPolicy(actions=3)).action_set == ACTIONS_3
    with pytest.raises(ValueError, match="2 or 3 actions"):
        DifferenceAgent(TorchPolicy(actions=6))
