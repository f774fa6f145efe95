"""rlbook.pixels: the batched renderer draws Gymnasium's preprocessed frames."""

import numpy as np
import pytest

from rlbook.envs import make_env
from rlbook.pixels import FRAME_SIZE, preprocess, render_batch


def gymnasium_frames(states: np.ndarray) -> np.ndarray:
    """``preprocess(env.render())`` of each state, one at a time."""
    env = make_env("CartPole-v1", render_mode="rgb_array")
    env.reset(seed=0)
    frames = []
    for state in states:
        env.unwrapped.state = np.array(state, dtype=np.float64)
        frames.append(preprocess(env.render()))
    env.close()
    return np.stack(frames)


def playing_states(n: int, seed: int) -> np.ndarray:
    """States an episode can show: cart on the track, pole within the limit."""
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [
            rng.uniform(-2.4, 2.4, n),
            rng.normal(0, 1, n),
            rng.uniform(-0.21, 0.21, n),
            rng.normal(0, 1, n),
        ]
    )


def test_batched_frames_match_gymnasium_but_for_antialiased_edges():
    states = playing_states(200, seed=1)
    diff = np.abs(
        render_batch(states).astype(int) - gymnasium_frames(states).astype(int)
    )
    # pygame antialiases the pole's and axle's edges; nothing else differs
    assert diff.mean() < 0.3, diff.mean()
    assert (diff > 10).mean() < 0.01
    assert (diff > 60).sum() == 0


def test_a_frame_shows_where_the_cart_is_and_how_the_pole_leans():
    centred, moved, leaning = [0.0, 0, 0, 0], [1.0, 0, 0, 0], [0.0, 0, 0.15, 0]
    frames = render_batch(np.array([centred, moved, leaning]))
    assert frames.shape == (3, FRAME_SIZE, FRAME_SIZE) and frames.dtype == np.uint8
    assert not np.array_equal(frames[0], frames[1])  # the cart moved
    assert not np.array_equal(frames[0], frames[2])  # the pole leans
    # velocities draw nothing: that is why a state is a stack of frames
    assert np.array_equal(frames[0], render_batch(np.array([[0.0, 3.0, 0, -2.0]]))[0])


def test_preprocess_keeps_the_band_the_cart_and_pole_move_in():
    # the pole upright and leaning to the limit, the cart at both ends
    states = np.array([[0.0, 0, 0, 0], [-2.0, 0, -0.21, 0], [2.0, 0, 0.21, 0]])
    frames = gymnasium_frames(states)
    assert frames.shape == (3, FRAME_SIZE, FRAME_SIZE)
    for frame in frames:  # the pole's tip near the top, the cart at the bottom
        assert frame[:12].min() < 200 and frame[-8:].min() < 60
    assert frames[0][:8].min() < 200  # an upright pole reaches the top rows


def test_bad_states_are_a_clear_error():
    with pytest.raises(ValueError, match=r"shape \(B, 4\)"):
        render_batch(np.zeros(4))
