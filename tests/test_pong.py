"""rlbook.pong (the chapter's Pong setting, Karpathy's preprocessing, the
emulator's games stepped side by side) and the page's make_pong and prepro."""

import subprocess
import sys

import numpy as np
import pytest

from rlbook.chapters.pong import make_pong, prepro
from rlbook.envs import UnknownEnvironmentError
from rlbook.pong import (
    ACTIONS_2,
    ACTIONS_3,
    PONG_SETTINGS,
    frame_difference,
    make_pong_vector,
    prepro_batch,
)

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
        "from rlbook.chapters.pong import make_pong\n"
        "from rlbook.pong import make_pong_vector\n"
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


# ---------------------------------------------------------------- games side by side


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
