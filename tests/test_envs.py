import os

import pytest

from rlbook.envs import UnknownEnvironmentError, make_env


def test_makes_cartpole():
    env = make_env("CartPole-v1")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4,)
    assert env.spec.max_episode_steps == 500


def test_unknown_id_suggests_close_matches():
    with pytest.raises(
        UnknownEnvironmentError, match=r"'CartPole-v2'.*did you mean.*CartPole-v1"
    ):
        make_env("CartPole-v2")


def test_unknown_id_without_close_match():
    with pytest.raises(UnknownEnvironmentError, match="unknown environment id 'zzz'"):
        make_env("zzz")


def test_rendering_is_headless():
    env = make_env("CartPole-v1", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (400, 600, 3)
    assert os.environ["SDL_VIDEODRIVER"] == "dummy"
    assert os.environ["SDL_AUDIODRIVER"] == "dummy"


def test_atari_ids_are_registered(capfd):
    env = make_env("ALE/Pong-v5")
    obs, _ = env.reset(seed=0)
    env.close()
    assert obs.shape == (210, 160, 3)
    assert "A.L.E" not in capfd.readouterr().err  # ALE's banner stays off stderr


def test_record_episode_frames_and_return():
    from rlbook.envs import record_episode

    frames, episode_return = record_episode("CartPole-v1", lambda obs: 0, seed=0)
    assert len(frames) == episode_return + 1  # the start state plus one frame a step
    assert frames[0].shape == (400, 600, 3)
    again, _ = record_episode("CartPole-v1", lambda obs: 0, seed=0)
    assert all((a == b).all() for a, b in zip(frames, again, strict=True))
