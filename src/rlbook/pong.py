"""Pong from pixels: Karpathy's ``pg-pong.py`` in pieces, and a fast batched rollout.

Andrej Karpathy's *Pong from Pixels* (``pg-pong.py``, 2016) trains a
two-layer network with REINFORCE in 130 lines of NumPy: the frame is cropped,
halved and turned into black and white (:func:`prepro`); the policy sees the
difference of two consecutive frames (:func:`frame_difference`); every rally
ends with a point of +1 or -1, and the return of a step is the discounted sum
of the rewards up to the end of its rally; the gradient is written by hand
(:func:`numpy_backward`) and applied with RMSProp. This module keeps the
NumPy pieces that the chapter times against autograd
(:func:`time_numpy_vs_torch`) and the tests check autograd against,
generalised to a batch. The PyTorch policy, the
returns (``discount_rewards``, ``standardise``) and the loss
(``policy_gradient_loss``) are written on the chapter's page and generated
into :mod:`rlbook.chapters.pong`.

The fast part: :func:`make_pong_vector` steps ``N`` games at once in ALE's own
C++ thread pool, returning the full RGB frames that :func:`prepro_batch` needs,
and :func:`rollout` evaluates the policy on all ``N`` difference frames in one
batch per step.

The environment setting (:data:`PONG_SETTINGS`), one for every agent of the
chapter: ``ALE/Pong-v5`` with a fixed ``frameskip=4`` and no sticky actions
(``repeat_action_probability=0.0``), the 6-action minimal action set, RGB
frames 210x160. The strong anchors report scores in this setting (CleanRL's
and the RL Zoo's PPO play ``PongNoFrameskip-v4`` through a 4-frame skip,
without sticky actions), so the chapter's improved agent compares with theirs.
Karpathy's ``Pong-v0`` (a random skip of 2 to 4 frames and sticky actions with
probability 0.25) and v5's default (sticky actions 0.25) are harder games, and
scores under them do not compare. Without sticky actions Pong is
deterministic: the same actions from a reset give the same frames whatever the
seed, and all the randomness of an episode comes from the policy.

Introduced in the chapter *Policy gradients on Pong from pixels*.
"""

from __future__ import annotations

import difflib
import inspect
import time
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
import torch

from .envs import _register_atari, make_env
from .seeding import stream_seed

PONG_SETTINGS: dict[str, Any] = {
    "env_id": "ALE/Pong-v5",
    "frameskip": 4,
    "repeat_action_probability": 0.0,
    "full_action_space": False,
    "obs_type": "rgb",
    "max_num_frames_per_episode": 108_000,
}
"""How the chapter's agents play Pong: the env id and every keyword argument of
``gym.make``. Shipped agents store it in their manifest; :func:`make_pong` and
:func:`make_pong_vector` build environments from it."""

ACTIONS_3 = (0, 2, 3)
"""ALE actions of the 3-action softmax policy: NOOP, UP, DOWN. ALE names 2 and 3
RIGHT and LEFT (Pong is played with a paddle controller, a dial); on screen they
move our paddle, the green one on the right, up and down."""
ACTIONS_2 = (2, 3)
"""ALE actions of Karpathy's 2-action sigmoid policy: UP (his action 2, taken
with probability ``p``), DOWN (3)."""
FRAME_SHAPE = (210, 160, 3)
"""An RGB frame of the Atari screen."""
CROP = (35, 195)
"""Rows :func:`prepro` keeps: the playing field between the score and the
bottom wall."""
BACKGROUND = (144, 109)
"""Red channel of the background: 144 in play, 109 in the first frame."""
SIZE = 80
"""Side of a preprocessed frame."""
INPUTS = SIZE * SIZE
"""Inputs of the policy: a flattened difference frame (6,400)."""


# ---------------------------------------------------------------- environment


def _check_settings(settings: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
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


def make_pong(
    settings: Mapping[str, Any] = PONG_SETTINGS, render_mode: str | None = None
) -> gym.Env:
    """One Pong environment built from a settings dict such as :data:`PONG_SETTINGS`.

    Observations are ``(210, 160, 3)`` uint8 RGB frames; the actions are the
    minimal action set (see :data:`ACTIONS_3`). ALE's banner stays off stderr.

    Args:
        settings: ``"env_id"`` and the keyword arguments of ``gym.make``.
        render_mode: ``None`` or ``"rgb_array"``.

    Raises:
        ValueError: for settings without an env id or with an unknown keyword;
            :class:`rlbook.envs.UnknownEnvironmentError` (a ValueError) for an
            unknown env id.
    """
    env_id, kwargs = _check_settings(settings)
    return make_env(env_id, render_mode=render_mode, **kwargs)


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
    """``N`` games of Pong stepped together, as raw frames and as difference frames.

    The games run in ALE's C++ vector environment
    (``ale_py.vector_env.AtariVectorEnv``, a thread pool), set up to return
    the same full RGB frames as ``gym.make`` with the same settings (the tests
    check frame for frame): none of its own preprocessing (grayscale, resizing
    to 84, frame stacking, max-pooling, random no-ops), which is not
    Karpathy's. A game that ends restarts within the same step: the frame
    returned for it is the next game's first.

    Per step::

        frames = vec.reset()                     # (N, 210, 160, 3) uint8
        x = vec.observation()                    # (N, 6400) difference frames
        frames, reward, terminated, truncated = vec.step(ale_actions)

    Args:
        envs: games side by side, ``N``.
        settings: as :data:`PONG_SETTINGS`.
        seed: game ``i``'s first reset seed is ``base + i``, ``base`` drawn
            from ``seed`` for the purpose ``"env"``
            (:func:`rlbook.seeding.stream_seed`). Without sticky actions the
            seed changes nothing in Pong; it is kept so that a setting with
            sticky actions is seeded too.
        num_threads: ALE's worker threads; 0 is one per core (at most ``N``).
    """

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
        env_id, kwargs = _check_settings(settings)
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
        unsupported = set(kwargs) - {
            "obs_type",
            "frameskip",
            "repeat_action_probability",
            "full_action_space",
            "max_num_frames_per_episode",
        }
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

    def reset(self) -> np.ndarray:
        """Start a game in every lane; their first frames ``(N, 210, 160, 3)``.

        The first reset seeds every lane (:attr:`seeds`); later ones go on
        from there, as Gymnasium's ``reset()`` without a seed does. (Seeding
        makes ALE load the game again: 0.55 s for 10 lanes, against 0.02 s.)
        """
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
        """Act in every lane with ALE actions ``(N,)`` (indices of the minimal set).

        Returns:
            ``(frames, reward, terminated, truncated)``: ``(N, 210, 160, 3)``
            uint8 (a game that ended shows the next game's first frame),
            ``(N,)`` float32 rewards, ``(N,)`` bool.
        """
        if self.frames is None:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions, dtype=np.int64)
        if actions.shape != (self.num_envs,):
            raise ValueError(
                f"actions must have shape ({self.num_envs},), got {actions.shape}"
            )
        obs, reward, terminated, truncated, _ = self._env.step(actions)
        self.frames = obs[:, 0]
        done = terminated | truncated
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


# ---------------------------------------------------------------- preprocessing


def prepro(frame: np.ndarray) -> np.ndarray:
    """Karpathy's preprocessing: a ``(210, 160, 3)`` uint8 frame -> ``(80, 80)`` uint8.

    Crop to the playing field, keep every other row and column of the red
    channel, erase the background (red 144, or 109 in a game's first frame),
    and set everything else, the paddles and the ball, to 1. Unlike
    ``pg-pong.py`` it leaves ``frame`` untouched and does not flatten.
    """
    if frame.shape != FRAME_SHAPE:
        raise ValueError(f"frame must have shape {FRAME_SHAPE}, got {frame.shape}")
    return prepro_batch(frame[None])[0]


def prepro_batch(frames: np.ndarray) -> np.ndarray:
    """:func:`prepro` of every frame, ``(N, 210, 160, 3)`` -> ``(N, 80, 80)`` uint8."""
    if frames.ndim != 4 or frames.shape[1:] != FRAME_SHAPE:
        raise ValueError(
            f"frames must have shape (N, {', '.join(map(str, FRAME_SHAPE))}), "
            f"got {frames.shape}"
        )
    red = frames[:, CROP[0] : CROP[1] : 2, ::2, 0]  # crop, downsample by 2
    # erase background (two types), everything else (paddles, ball) is 1
    return ((red != BACKGROUND[0]) & (red != BACKGROUND[1])).astype(np.uint8)


def frame_difference(
    current: np.ndarray, previous: np.ndarray | None, dtype: npt.DTypeLike = np.float64
) -> np.ndarray:
    """The policy's input: ``current - previous``, flattened, values in {-1, 0, 1}.

    Args:
        current: ``(..., 80, 80)`` preprocessed frames.
        previous: the frames one step before, the same shape, or ``None`` at
            a game's first frame, which gives zeros (``pg-pong.py``'s
            ``prev_x = None``).
        dtype: ``np.float64`` as in ``pg-pong.py``.

    Returns:
        ``(..., 6400)``: motion shows as +1 where something arrived, -1 where it left.
    """
    flat = current.reshape(*current.shape[:-2], -1).astype(dtype)
    if previous is None:
        return np.zeros_like(flat)
    if previous.shape != current.shape:
        raise ValueError(f"shapes differ: {current.shape} and {previous.shape}")
    return flat - previous.reshape(flat.shape).astype(dtype)


# ---------------------------------------------------------------- NumPy policy


def init_numpy_policy(
    rng: np.random.Generator,
    hidden: int = 200,
    inputs: int = INPUTS,
    actions: int = 3,
    dtype: npt.DTypeLike = np.float64,
) -> dict[str, np.ndarray]:
    """Karpathy's two-layer policy without biases, with his "Xavier" initialisation.

    Args:
        rng: draws ``W1`` then ``W2`` from ``standard_normal / sqrt(fan_in)``.
        actions: 2 is ``pg-pong.py``'s network, one sigmoid output, P(UP) (see
            :data:`ACTIONS_2`); 3 or more, a softmax over that many actions.

    Returns:
        ``{"W1": (hidden, inputs), "W2": (hidden,)}`` for ``actions=2``,
        ``{"W1": (hidden, inputs), "W2": (actions, hidden)}`` otherwise.
    """
    if actions < 2 or hidden < 1 or inputs < 1:
        raise ValueError(
            f"need actions >= 2, hidden >= 1, inputs >= 1, got {actions}, {hidden}, {inputs}"
        )
    w2_shape = (hidden,) if actions == 2 else (actions, hidden)
    return {
        "W1": (rng.standard_normal((hidden, inputs)) / np.sqrt(inputs)).astype(dtype),
        "W2": (rng.standard_normal(w2_shape) / np.sqrt(hidden)).astype(dtype),
    }


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Karpathy's ``1 / (1 + exp(-z))``, written so that ``exp`` never overflows."""
    return np.exp(-np.logaddexp(0.0, -z))


def numpy_forward(
    model: dict[str, np.ndarray], x: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The policy's action probabilities for a batch of difference frames.

    Args:
        model: from :func:`init_numpy_policy`.
        x: ``(B, inputs)``.

    Returns:
        ``(probs, h)``: ``(B, A)`` probabilities (for the sigmoid network, the
        columns are P(UP) and 1 - P(UP), in the order of :data:`ACTIONS_2`) and
        the hidden layer ``(B, hidden)``, which :func:`numpy_backward` needs.
    """
    if x.ndim != 2 or x.shape[1] != model["W1"].shape[1]:
        raise ValueError(
            f"x must have shape (B, {model['W1'].shape[1]}), got {x.shape}"
        )
    h = x @ model["W1"].T
    h[h < 0] = 0  # ReLU nonlinearity
    logits = h @ model["W2"].T
    if model["W2"].ndim == 1:  # pg-pong's single output, the log-odds of UP
        p = _sigmoid(logits)
        return np.stack([p, 1.0 - p], axis=1), h
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True), h


def numpy_logit_grad(
    probs: np.ndarray, actions: np.ndarray, advantages: np.ndarray
) -> np.ndarray:
    """Gradient of the loss ``-sum_t A_t log pi(a_t | x_t)`` w.r.t. the logits.

    Softmax: ``A_t * (pi_t - onehot(a_t))``, ``(B, A)``. Sigmoid (``probs`` with
    two columns): ``A_t * (p_t - y_t)``, ``(B,)``, with ``y_t = 1`` for UP
    (action index 0) and the single logit. ``pg-pong.py``'s ``epdlogp`` is
    the negative of this: it climbs the return-weighted log-likelihood, we
    descend the loss, as PyTorch does.

    Args:
        probs: ``(B, A)`` from :func:`numpy_forward`.
        actions: ``(B,)`` indices into the policy's actions.
        advantages: ``(B,)``, such as standardised discounted returns.
    """
    actions = np.asarray(actions)
    advantages = np.asarray(advantages, dtype=probs.dtype)
    batch = probs.shape[0]
    if actions.shape != (batch,) or advantages.shape != (batch,):
        raise ValueError(
            f"actions and advantages must have shape ({batch},), got "
            f"{actions.shape} and {advantages.shape}"
        )
    if probs.shape[1] == 2:
        return advantages * (probs[:, 0] - (actions == 0))
    dlogits = probs.copy()
    dlogits[np.arange(batch), actions] -= 1.0
    return dlogits * advantages[:, None]


def numpy_backward(
    model: dict[str, np.ndarray], x: np.ndarray, h: np.ndarray, dlogits: np.ndarray
) -> dict[str, np.ndarray]:
    """The backward pass by hand, ``pg-pong.py``'s ``policy_backward`` for a batch.

    Args:
        x: ``(B, inputs)``; ``h``: ``(B, hidden)`` from :func:`numpy_forward`.
        dlogits: ``(B, A)``, or ``(B,)`` for the sigmoid network
            (:func:`numpy_logit_grad`).

    Returns:
        ``{"W1": ..., "W2": ...}``, the gradients, shaped as the weights, of
        the loss summed over the batch.
    """
    if model["W2"].ndim == 1:
        dW2 = h.T @ dlogits  # (hidden,)
        dh = np.outer(dlogits, model["W2"])  # (B, hidden)
    else:
        dW2 = dlogits.T @ h  # (A, hidden)
        dh = dlogits @ model["W2"]
    dh[h <= 0] = 0  # backprop through the ReLU: no gradient where it was off
    dW1 = dh.T @ x
    return {"W1": dW1, "W2": dW2}


# ---------------------------------------------------------------- PyTorch policy


def time_numpy_vs_torch(
    batch: int = 1000,
    *,
    actions: int = 3,
    hidden: int = 200,
    dtype: npt.DTypeLike = np.float32,
    repeats: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Time a forward and backward pass on ``batch`` frames, by hand and by autograd.

    Both get the same weights and a batch of sparse difference frames; the
    best of ``repeats`` is kept. Torch uses its current thread count.

    Returns:
        ``{"numpy_ms", "torch_ms", "ratio"}`` (NumPy's time over torch's) and
        the setting: ``batch``, ``actions``, ``hidden``, ``dtype``, ``torch_threads``.
    """
    if batch < 1 or repeats < 1:
        raise ValueError(f"need batch >= 1 and repeats >= 1, got {batch}, {repeats}")
    rng = np.random.default_rng(seed)
    model = init_numpy_policy(rng, hidden=hidden, actions=actions, dtype=dtype)
    # difference frames are sparse: a few dozen pixels of 6,400 are +-1
    x = (rng.random((batch, INPUTS)) < 0.01) * rng.choice([-1.0, 1.0], (batch, INPUTS))
    x = x.astype(dtype)
    chosen = rng.integers(0, actions, batch)
    adv = rng.standard_normal(batch).astype(dtype)
    from .chapters.pong import TorchPolicy, policy_gradient_loss

    policy = TorchPolicy.from_numpy(model)
    xt, at, advt = torch.from_numpy(x), torch.from_numpy(chosen), torch.from_numpy(adv)

    def by_hand() -> None:
        probs, h = numpy_forward(model, x)
        numpy_backward(model, x, h, numpy_logit_grad(probs, chosen, adv))

    def by_autograd() -> None:
        policy.zero_grad(set_to_none=True)
        policy_gradient_loss(policy(xt), at, advt).backward()

    best = {"numpy": np.inf, "torch": np.inf}
    for _ in range(repeats):
        for name, run in (("numpy", by_hand), ("torch", by_autograd)):
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return {
        "numpy_ms": 1e3 * best["numpy"],
        "torch_ms": 1e3 * best["torch"],
        "ratio": best["numpy"] / best["torch"],
        "batch": batch,
        "actions": actions,
        "hidden": hidden,
        "dtype": np.dtype(dtype).name,
        "torch_threads": torch.get_num_threads(),
    }


# ---------------------------------------------------------------- rollout


def sample_actions(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One action index per row of ``probs`` ``(N, A)``, drawn with one uniform each.

    For the sigmoid policy this is ``pg-pong.py``'s ``2 if uniform() < p else 3``.
    """
    u = rng.random(probs.shape[0])
    index = (np.cumsum(probs, axis=1) < u[:, None]).sum(axis=1)
    return np.minimum(index, probs.shape[1] - 1)  # in case the sum rounds below u


def rollout(
    policy_fn: Callable[[np.ndarray], np.ndarray],
    vec_env: PongVector,
    steps: int,
    rng: np.random.Generator,
    action_set: tuple[int, ...] = ACTIONS_3,
) -> dict[str, np.ndarray]:
    """Play ``steps`` steps in every lane of ``vec_env``, the policy in one batch a step.

    Continues where the last call stopped (resetting ``vec_env`` first if it
    never was). Give ``rng`` its own stream, apart from the environment's
    seeds: ``numpy_stream(seed, "actions")``.

    Args:
        policy_fn: ``(N, 6400)`` float32 difference frames -> ``(N, A)``
            probabilities, e.g. ``lambda x: numpy_forward(model, x)[0]``.
        steps: steps per lane, ``T``.
        action_set: the ALE action of each of the policy's ``A`` actions.

    Returns:
        ``x``: ``(T, N, 6400)`` int8, the difference frames acted on (exact,
        at an eighth of float64's memory); ``action``: ``(T, N)`` int64 indices
        into ``action_set``; ``reward``: ``(T, N)`` float32; ``terminated``,
        ``truncated``: ``(T, N)`` bool (the game ended at that step and the
        next step is a new game's first); ``episode_returns``: the final
        scores of the games that ended, in the order they ended.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if vec_env.frames is None:
        vec_env.reset()
    n = vec_env.num_envs
    ale_actions = np.asarray(action_set, dtype=np.int64)
    x = np.zeros((steps, n, INPUTS), np.int8)
    action = np.zeros((steps, n), np.int64)
    reward = np.zeros((steps, n), np.float32)
    terminated = np.zeros((steps, n), bool)
    truncated = np.zeros((steps, n), bool)
    already_finished = len(vec_env.finished)
    for t in range(steps):
        obs = vec_env.observation()
        probs = np.asarray(policy_fn(obs))
        if probs.shape != (n, len(action_set)):
            raise ValueError(
                f"policy_fn returned shape {probs.shape}, expected ({n}, {len(action_set)})"
            )
        x[t] = obs
        action[t] = sample_actions(probs, rng)
        _, reward[t], terminated[t], truncated[t] = vec_env.step(ale_actions[action[t]])
    return {
        "x": x,
        "action": action,
        "reward": reward,
        "terminated": terminated,
        "truncated": truncated,
        "episode_returns": np.array(vec_env.finished[already_finished:]),
    }
