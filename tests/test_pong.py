"""rlbook.pong: Karpathy's pieces, his hand-written gradients against autograd,
the chapter's Pong setting, and the batched rollout."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rlbook.chapters.pong import (
    TorchPolicy,
    discount_rewards,
    policy_gradient_loss,
    standardise,
)
from rlbook.envs import UnknownEnvironmentError
from rlbook.pong import (
    ACTIONS_2,
    ACTIONS_3,
    PONG_SETTINGS,
    frame_difference,
    init_numpy_policy,
    make_pong,
    make_pong_vector,
    numpy_backward,
    numpy_forward,
    numpy_logit_grad,
    prepro,
    prepro_batch,
    rollout,
    sample_actions,
    time_numpy_vs_torch,
)
from rlbook.seeding import numpy_stream

ROOT = Path(__file__).resolve().parents[1]
OPPONENT, OURS, BALL = (213, 130, 74), (92, 186, 92), (236, 236, 236)


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """Frames 0..40 of a game from a seeded reset, UP and DOWN at random."""
    env = make_pong()
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    out = [obs]
    for _ in range(40):
        out.append(env.step(int(rng.choice([2, 3])))[0])
    env.close()
    return np.stack(out)


def uniform(actions: int = 3):
    """A policy that picks each of its actions with equal probability."""
    return lambda x: np.full((len(x), actions), 1.0 / actions)


# ---------------------------------------------------------------- the setting


def test_make_pong_builds_the_recorded_setting():
    env = make_pong()
    ale = env.unwrapped.ale
    assert env.spec.id == PONG_SETTINGS["env_id"] == "ALE/Pong-v5"
    assert env.unwrapped._frameskip == 4
    assert ale.getFloat("repeat_action_probability") == 0.0
    assert env.action_space.n == 6  # the minimal action set
    obs, info = env.reset(seed=0)
    assert obs.shape == (210, 160, 3) and obs.dtype == np.uint8
    for t in range(1, 4):  # a step is 4 emulator frames
        info = env.step(0)[-1]
        assert info["episode_frame_number"] == 4 * t
    env.close()


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="did you mean 'frameskip'"):
        make_pong({**PONG_SETTINGS, "frame_skip": 4})
    with pytest.raises(UnknownEnvironmentError, match="did you mean"):
        make_pong({**PONG_SETTINGS, "env_id": "ALE/Pong-v4"})
    with pytest.raises(ValueError, match="need an 'env_id'"):
        make_pong({"frameskip": 4})
    with pytest.raises(ValueError, match="fixed frameskip"):
        make_pong_vector(2, {**PONG_SETTINGS, "frameskip": (2, 5)})


def test_no_sticky_actions_same_actions_give_the_same_frames_whatever_the_seed():
    actions = np.random.default_rng(1).choice(ACTIONS_3, 150)
    games = []
    for seed in (1, 2):
        env = make_pong()
        obs, _ = env.reset(seed=seed)
        games.append([obs] + [env.step(int(a))[0] for a in actions])
        env.close()
    # with sticky actions (v5's default 0.25) the two games part within steps
    np.testing.assert_array_equal(np.stack(games[0]), np.stack(games[1]))


def test_actions_mean_noop_up_down():
    env = make_pong()
    meanings = env.unwrapped.get_action_meanings()
    # Pong's paddle controller turns: ALE calls up RIGHT and down LEFT
    assert [meanings[a] for a in ACTIONS_3] == ["NOOP", "RIGHT", "LEFT"]
    assert ACTIONS_2 == ACTIONS_3[1:]
    rows = {}
    for action in ACTIONS_2:
        env.reset(seed=0)
        for _ in range(10):
            obs = env.step(action)[0]
        ours = (obs[35:195] == OURS).all(axis=-1)
        rows[action] = np.flatnonzero(ours.any(axis=1)).mean()
    env.close()
    assert rows[2] < 40 < 120 < rows[3]  # UP took our paddle up, DOWN down


def test_creating_environments_writes_nothing_to_stderr():
    def stderr_of(code: str) -> str:
        run = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        return run.stderr

    # the check can fail: plain gym.make prints ALE's banner
    plain = (
        "import gymnasium as g, ale_py; g.register_envs(ale_py); g.make('ALE/Pong-v5')"
    )
    assert "A.L.E" in stderr_of(plain)
    quiet = (
        "from rlbook.pong import make_pong, make_pong_vector\n"
        "make_pong().reset(seed=0)\n"
        "v = make_pong_vector(2)\nv.reset()\nv.close()"
    )
    assert stderr_of(quiet) == ""


# ---------------------------------------------------------------- preprocessing


def test_prepro_keeps_exactly_the_paddles_and_the_ball(frames):
    frame = frames[30]  # in play: both paddles and the ball are on the field
    before = frame.copy()
    x = prepro(frame)
    assert x.shape == (80, 80) and x.dtype == np.uint8
    assert set(np.unique(x)) == {0, 1}
    small = frame[35:195:2, ::2]
    colours = {"opponent": OPPONENT, "ours": OURS, "ball": BALL}
    objects = {name: (small == c).all(-1) for name, c in colours.items()}
    assert all(mask.any() for mask in objects.values())
    np.testing.assert_array_equal(x, np.logical_or.reduce(list(objects.values())))
    assert objects["opponent"][:, 8:10].any() and objects["ours"][:, 70:72].any()
    np.testing.assert_array_equal(frame, before)  # pg-pong's prepro writes into it


def test_prepro_erases_the_first_frames_background():
    first = make_pong().reset(seed=0)[0]  # background red 109, not 144
    assert (first[35:195:2, ::2, 0] == 109).mean() > 0.9
    assert prepro(first).sum() < 30


def test_prepro_batch_equals_prepro_frame_by_frame(frames):
    batch = prepro_batch(frames)
    assert batch.shape == (len(frames), 80, 80)
    for frame, x in zip(frames, batch, strict=True):
        np.testing.assert_array_equal(x, prepro(frame))
    with pytest.raises(ValueError, match="shape"):
        prepro(frames[0][:, :, 0])


def test_frame_difference_is_zero_first_then_shows_motion(frames):
    a, b = prepro(frames[30]), prepro(frames[31])
    first = frame_difference(a, None)
    assert first.shape == (6400,) and first.dtype == np.float64 and not first.any()
    x = frame_difference(b, a)
    assert set(np.unique(x)) == {-1.0, 0.0, 1.0}  # the ball moved
    np.testing.assert_array_equal(x, b.ravel().astype(float) - a.ravel())


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


# ---------------------------------------------------------------- rollout


def test_sample_actions_follows_the_probabilities():
    rng = np.random.default_rng(0)
    probs = np.tile([0.2, 0.5, 0.3], (20000, 1))
    counts = np.bincount(sample_actions(probs, rng), minlength=3) / 20000
    np.testing.assert_allclose(counts, [0.2, 0.5, 0.3], atol=0.015)
    assert (sample_actions(np.tile([1.0, 0.0], (50, 1)), rng) == 0).all()


def test_vector_lanes_play_exactly_like_the_single_environment():
    actions = np.random.default_rng(2).choice(ACTIONS_3, (200, 2))
    vec = make_pong_vector(2, seed=0)
    env = make_pong()
    obs, _ = env.reset(seed=5)
    frames = vec.reset()
    assert frames.shape == (2, 210, 160, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[0], obs)
    previous = prepro(obs)
    for t, pair in enumerate(actions):
        frames, reward, _, _ = vec.step(pair)
        obs, r, *_ = env.step(int(pair[0]))
        np.testing.assert_array_equal(frames[0], obs, err_msg=f"step {t}")
        assert reward[0] == r
        x = frame_difference(prepro(obs), previous)
        np.testing.assert_array_equal(vec.observation()[0], x)
        previous = prepro(obs)
    vec.close()
    env.close()


def test_a_finished_game_restarts_in_the_same_step_with_a_zero_difference():
    vec = make_pong_vector(2, seed=0)
    first = vec.reset()[0].copy()
    noop = lambda x: np.tile([1.0, 0.0, 0.0], (len(x), 1))  # noqa: E731
    out = rollout(noop, vec, 800, np.random.default_rng(0))  # a game lasts ~764
    done = out["terminated"] | out["truncated"]
    t = np.flatnonzero(done[:, 0])
    assert len(t) == 1 and done[t[0]].all()  # same actions, same game
    np.testing.assert_array_equal(out["episode_returns"], [-21.0, -21.0])
    assert out["reward"][: t[0] + 1].sum(axis=0).tolist() == [-21.0, -21.0]
    assert not out["x"][t[0] + 1].any()  # pg-pong's prev_x = None
    assert out["x"][t[0]].any()
    # each rollout reports only the games that ended during it
    assert rollout(noop, vec, 5, np.random.default_rng(0))["episode_returns"].size == 0
    vec.reset()
    np.testing.assert_array_equal(vec.frames[0], first)
    vec.close()


def test_rollout_is_reproducible_and_lanes_get_their_own_seeds():
    def play(seed: int, actions_seed: int) -> dict:
        vec = make_pong_vector(3, seed=seed)
        out = rollout(uniform(), vec, 60, numpy_stream(actions_seed, "actions"))
        out["seeds"] = vec.seeds
        vec.close()
        return out

    a, b, c = play(0, 0), play(0, 0), play(1, 1)
    assert a["x"].shape == (60, 3, 6400) and a["x"].dtype == np.int8
    assert a["action"].shape == a["reward"].shape == a["terminated"].shape == (60, 3)
    for k in ("x", "action", "reward", "terminated", "seeds"):
        np.testing.assert_array_equal(a[k], b[k])
    assert len(set(a["seeds"].tolist())) == 3  # each lane its own seed
    assert not np.array_equal(a["seeds"], c["seeds"])
    assert not np.array_equal(a["action"], c["action"])
    assert not np.array_equal(a["action"][:, 0], a["action"][:, 1])


def test_rollout_checks_the_policys_output():
    vec = make_pong_vector(2, seed=0)
    with pytest.raises(ValueError, match=r"expected \(2, 3\)"):
        rollout(uniform(2), vec, 5, np.random.default_rng(0))
    out = rollout(uniform(2), vec, 5, np.random.default_rng(0), ACTIONS_2)
    assert out["action"].max() <= 1
    vec.close()


def test_benchmark_script_prints_one_json_line():
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "pong_rollout.py"),
            *("--steps", "40", "--envs", "2", "4", "--repeats", "1"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 1 and run.stderr == ""
    result = json.loads(lines[0])
    for key in ("steps_per_s_single", "steps_per_s_vector", "ratio", "envs", "cpus"):
        assert key in result
    assert result["envs"] in (2, 4) and set(result["steps_per_s_by_envs"]) == {"2", "4"}
    assert result["ratio"] == pytest.approx(
        result["steps_per_s_vector"] / result["steps_per_s_single"], rel=0.05
    )
