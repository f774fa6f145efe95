"""Pong in the book's setting (:data:`PONG_SETTINGS`), ``N`` games at once in
ALE's C++ thread pool (:class:`PongVector`), and Karpathy's preprocessing
(``pg-pong.py``, 2016). The Pong pages (:mod:`rlbook.chapters.pong`,
:mod:`rlbook.chapters.pong_ppo`) hold the agents and the single game.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from .envs import _register_atari
from .seeding import stream_seed

PONG_SETTINGS: dict[str, Any] = {
    "env_id": "ALE/Pong-v5",
    "frameskip": 4,
    "repeat_action_probability": 0.0,
    "full_action_space": False,
    "obs_type": "rgb",
    "max_num_frames_per_episode": 108_000,
}
"""How every agent of the Pong pages plays: ``ALE/Pong-v5``, a fixed skip of 4
frames, no sticky actions (so a game's randomness is the policy's); the env
id and every keyword argument of ``gym.make``, as manifests store it."""

ACTIONS_3 = (0, 2, 3)
"""ALE actions of the softmax policy: NOOP, UP, DOWN (ALE's RIGHT and LEFT:
Pong's controller is a dial) on our paddle, the right one."""
ACTIONS_2 = (2, 3)
"""Karpathy's sigmoid policy: UP (taken with probability ``p``), DOWN."""
FRAME_SHAPE = (210, 160, 3)  # an RGB frame of the Atari screen
CROP = (35, 195)  # the rows of the playing field, below the score
BACKGROUND = (144, 109)  # its red: in play, in a game's first frame
SIZE = 80  # side of a preprocessed frame
INPUTS = SIZE * SIZE  # the policy's inputs: a flattened difference frame


def check_settings(settings: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(env_id, kwargs)`` of a settings dict, or a ValueError naming what is wrong."""
    if "env_id" not in settings:
        raise ValueError(
            f"settings need an 'env_id' (like {PONG_SETTINGS['env_id']!r}), "
            f"got keys {sorted(settings)}"
        )
    env_id, kwargs = settings["env_id"], dict(settings)
    del kwargs["env_id"]
    from ale_py.env import AtariEnv

    known = set(inspect.signature(AtariEnv.__init__).parameters) - {"self", "game"}
    for key in kwargs:
        if key not in known or key == "render_mode":
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"unknown Atari setting {key!r}{hint} (known: {', '.join(sorted(known))};"
                " render_mode is an argument of make_pong, not a setting)"
            )
    return env_id, kwargs


_VECTOR_GAMES = {"ALE/Pong-v5": "pong"}
# What the C++ vector env must be told so that its frames are v5's frames:
# full size, colour, the last frame of the skip (v5 does not max-pool), no
# random no-ops or FIRE at reset, rewards as the game gives them.
_RAW_FRAMES = {
    "img_height": FRAME_SHAPE[0],
    "img_width": FRAME_SHAPE[1],
    "grayscale": False,
    "stack_num": 1,
    "maxpool": False,
    "noop_max": 0,
    "use_fire_reset": False,
    "episodic_life": False,
    "reward_clipping": False,
}


class PongVector:
    """``N`` games of Pong stepped together in ALE's C++ vector environment (a
    thread pool), set up to return the frames ``gym.make`` returns with the same
    settings (the tests check frame for frame), none of its own preprocessing.
    A game that ends restarts within the step: its lane shows the next game's
    first frame. Game ``i``'s first reset seed is ``base + i``, ``base`` drawn
    from ``seed``; ``num_threads=0`` is one ALE worker per core."""

    def __init__(
        self,
        envs: int,
        settings: Mapping[str, Any] = PONG_SETTINGS,
        *,
        seed: int = 0,
        num_threads: int = 0,
    ) -> None:
        if not isinstance(envs, int) or envs < 1:
            raise ValueError(f"envs must be a positive int, got {envs!r}")
        env_id, kwargs = check_settings(settings)
        if env_id not in _VECTOR_GAMES:
            raise ValueError(
                f"the vector environment plays {sorted(_VECTOR_GAMES)}, not {env_id!r}"
            )
        if kwargs.get("obs_type", "rgb") != "rgb":
            raise ValueError(f"obs_type must be 'rgb', got {kwargs['obs_type']!r}")
        if not isinstance(kwargs.get("frameskip", 4), int):
            raise ValueError(
                "the vector environment needs a fixed frameskip (an int), got "
                f"{kwargs['frameskip']!r}"
            )
        unsupported = set(kwargs) - {"obs_type", "frameskip", "full_action_space"}
        unsupported -= {"repeat_action_probability", "max_num_frames_per_episode"}

        if unsupported:
            raise ValueError(
                f"the vector environment cannot reproduce {sorted(unsupported)}"
            )
        from ale_py.vector_env import AtariVectorEnv
        from gymnasium.vector import AutoresetMode

        _register_atari()  # keeps ALE's banner off stderr
        self.num_envs = envs
        self.settings = dict(settings)
        base = stream_seed(seed, "env") % (2**31 - envs)  # ALE takes C ints
        self.seeds = base + np.arange(envs)
        """``(N,)`` first reset seeds, one per game"""
        self._env = AtariVectorEnv(
            _VECTOR_GAMES[env_id],
            envs,
            num_threads=num_threads,
            frameskip=kwargs.get("frameskip", 4),
            repeat_action_probability=kwargs.get("repeat_action_probability", 0.25),
            full_action_space=kwargs.get("full_action_space", False),
            max_num_frames_per_episode=kwargs.get(
                "max_num_frames_per_episode", 108_000
            ),
            autoreset_mode=AutoresetMode.SAME_STEP,
            **_RAW_FRAMES,
        )
        self.frames: np.ndarray | None = None
        """``(N, 210, 160, 3)`` uint8, the latest frames (``None`` before reset)"""
        self._seeded = False
        self._current = np.zeros((envs, SIZE, SIZE), np.uint8)
        self._previous = np.zeros((envs, SIZE, SIZE), np.uint8)
        self.scores = np.zeros(envs)
        """``(N,)`` the running game's score so far, per lane"""
        self.finished: list[float] = []
        """final scores of the games that ended, in the order they ended"""
        self.final_frames: np.ndarray | None = None
        """``(N, 210, 160, 3)`` uint8 after a step in which games ended: each
        ended game's last frame (the lane's row in :attr:`frames` is already
        the next game's first); ``None`` after a step in which none ended"""

    def reset(self) -> np.ndarray:
        """Start a game in every lane; their first frames ``(N, 210, 160, 3)``.
        Only the first reset seeds (:attr:`seeds`): seeding reloads the game
        (0.55 s for 10 lanes, against 0.02 s)."""
        if self._seeded:
            obs, _ = self._env.reset()
        else:
            obs, _ = self._env.reset(seed=self.seeds.copy())
            self._seeded = True
        self.frames = obs[:, 0]
        self._current[:] = prepro_batch(self.frames)
        # the first frame of a game has no predecessor: its difference is zero
        self._previous[:] = self._current
        self.scores[:] = 0.0
        return self.frames

    def observation(self) -> np.ndarray:
        """What the policy sees, ``(N, 6400)`` float32 in {-1, 0, 1}: the latest
        preprocessed frame minus the one before, zero at a game's first frame."""
        if self.frames is None:
            raise RuntimeError("call reset() before observation()")
        return frame_difference(self._current, self._previous, dtype=np.float32)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        """Act in every lane with ALE actions ``(N,)`` (of the minimal set):
        ``(frames, reward, terminated, truncated)``, frames as :meth:`reset`'s,
        ``(N,)`` float32 rewards and bools."""
        if self.frames is None:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions, dtype=np.int64)
        if actions.shape != (self.num_envs,):
            raise ValueError(
                f"actions must have shape ({self.num_envs},), got {actions.shape}"
            )
        obs, reward, terminated, truncated, info = self._env.step(actions)
        self.frames = obs[:, 0]
        done = terminated | truncated
        self.final_frames = info["final_obs"][:, 0] if done.any() else None
        self._previous[:] = self._current
        self._current[:] = prepro_batch(self.frames)
        # a new game's first frame: no difference, as pg-pong's prev_x = None
        self._previous[done] = self._current[done]
        self.scores += reward
        if done.any():
            self.finished.extend(self.scores[done].tolist())
            self.scores[done] = 0.0
        return self.frames, reward.astype(np.float32), terminated, truncated

    def close(self) -> None:
        """Stop ALE's worker threads."""
        self._env.close()


def make_pong_vector(
    n: int,
    settings: Mapping[str, Any] = PONG_SETTINGS,
    seed: int = 0,
    *,
    num_threads: int = 0,
) -> PongVector:
    """``n`` games of Pong stepped together; see :class:`PongVector`."""
    return PongVector(n, settings, seed=seed, num_threads=num_threads)


def prepro_batch(frames: np.ndarray) -> np.ndarray:
    """Karpathy's preprocessing, ``(N, 210, 160, 3)`` -> ``(N, 80, 80)`` uint8:
    crop to the playing field, every other row and column of the red channel,
    the background (red 144, or 109 in a game's first frame) erased to 0,
    everything else, the paddles and the ball, 1."""
    if frames.ndim != 4 or frames.shape[1:] != FRAME_SHAPE:
        raise ValueError(
            f"frames must have shape (N, {', '.join(map(str, FRAME_SHAPE))}), "
            f"got {frames.shape}"
        )
    red = frames[:, CROP[0] : CROP[1] : 2, ::2, 0]  # crop, downsample by 2
    return ((red != BACKGROUND[0]) & (red != BACKGROUND[1])).astype(np.uint8)


def frame_difference(
    current: np.ndarray, previous: np.ndarray | None, dtype: npt.DTypeLike = np.float64
) -> np.ndarray:
    """The policy's input from ``(..., 80, 80)`` preprocessed frames:
    ``current - previous`` flattened to ``(..., 6400)``, +1 where something
    arrived, -1 where it left; zeros when ``previous`` is None, at a game's
    first frame (``pg-pong.py``'s ``prev_x = None``, and its float64)."""
    flat = current.reshape(*current.shape[:-2], -1).astype(dtype)
    if previous is None:
        return np.zeros_like(flat)
    if previous.shape != current.shape:
        raise ValueError(f"shapes differ: {current.shape} and {previous.shape}")
    return flat - previous.reshape(flat.shape).astype(dtype)
