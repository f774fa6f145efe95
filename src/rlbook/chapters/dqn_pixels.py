"""Generated from chapters/dqn_pixels.md by scripts/sync_notebooks.py: do not edit.

The page's code cells tagged ``export``, in page order. Edit them on the
page, then run scripts/sync_notebooks.py.
"""

import copy
import functools
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlbook.agents import ArtifactError, register_kind, save_agent
from rlbook.cartpole import CartPoleBatch
from rlbook.chapters import add_to_class
from rlbook.checkpoint import (
    CheckpointError,
    atomic_write,
    git_commit,
    load_checkpoint,
    make_provenance,
    save_checkpoint,
)
from rlbook.envs import make_env
from rlbook.evaluate import (
    EvaluationError,
    ReturnStats,
    evaluate_artifact,
)
from rlbook.safeload import file_sha256
from rlbook.seeding import (
    TEST_SEED,
    VALIDATION_SEED,
    numpy_stream,
    stream_seed,
    torch_stream,
    train_seed,
)
from rlbook.stats import Interval, as_scores, percentile_bootstrap


def preprocess(rgb: np.ndarray) -> np.ndarray:
    """A Gymnasium CartPole frame ``(400, 600, 3)`` uint8 -> ``(80, 80)``
    uint8.

    Grayscale (colour carries nothing here), the rows the cart and pole
    can reach, then ``INTER_AREA``: each output pixel averages the source
    pixels it covers, so a pole a little over one output pixel wide stays
    visible.
    """
    import cv2

    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[CROP_TOP:CROP_BOTTOM]
    return cv2.resize(
        gray, (FRAME_SIZE, FRAME_SIZE), interpolation=cv2.INTER_AREA
    )


SCREEN_WIDTH, SCREEN_HEIGHT = 600, 400
"""Gymnasium's CartPole canvas, in pixels."""
CROP_TOP, CROP_BOTTOM = 160, 320
"""Rows of the canvas kept: the pole's tip never rises above row 172, and
the cart's bottom edge lies on row 314 (the track on row 299)."""
FRAME_SIZE = 80
"""Side of a preprocessed frame."""


_SCALE = (
    SCREEN_WIDTH / 4.8
)  # pixels per metre: the track is 2 x 2.4 m wide
_CART_Y = (
    100.0  # height of the track (and the cart's centre), pygame's y up
)
_AXLE_Y = _CART_Y + 30 / 4  # the pole's pivot
_POLE_LENGTH = _SCALE * 2 * 0.5  # twice the half-length of 0.5 m
_GRAY = {
    "cart": 0.0,
    "pole": 161.0,
    "axle": 139.0,
    "track": 0.0,
    "sky": 255.0,
}
"""cv2's RGB-to-gray of Gymnasium's colours: pole (202, 152, 101), axle
(129, 132, 203), cart and track black, background white."""
_WINDOW = 80
"""Columns drawn around the cart: the cart is 51 px wide and the pole's
tip stays within 36 px of the pivot while |angle| < 0.25 rad (episodes
end past 0.21)."""
# The filled axle circle (radius 5) as pygame draws it: half-width per
# |dy|.
_AXLE_HALF_WIDTH = {0: 5, 1: 5, 2: 5, 3: 4, 4: 3, 5: 0}


def _area_weights(n_in: int, n_out: int) -> torch.Tensor:
    """``INTER_AREA`` shrinking ``n_in`` -> ``n_out`` as an
    ``(n_out, n_in)`` matrix."""
    step = n_in / n_out
    weights = np.zeros((n_out, n_in))
    for j in range(n_out):
        lo, hi = j * step, (j + 1) * step
        for i in range(int(np.floor(lo)), int(np.ceil(hi))):
            weights[j, i] = max(0.0, min(hi, i + 1) - max(lo, i)) / step
    return torch.tensor(weights, dtype=torch.float32)


_ROWS = _area_weights(CROP_BOTTOM - CROP_TOP, FRAME_SIZE)  # (80, 160)
_COLS = _area_weights(SCREEN_WIDTH, FRAME_SIZE)  # (80, 600)
_Y = torch.tensor(
    [SCREEN_HEIGHT - 1 - r for r in range(CROP_TOP, CROP_BOTTOM)],
    dtype=torch.float32,
)  # pygame's y of each kept row (pygame draws y up, then flips the frame)


def _background() -> torch.Tensor:
    """The preprocessed frame of an empty canvas: white, with the
    track."""
    canvas = torch.full(
        (CROP_BOTTOM - CROP_TOP, SCREEN_WIDTH), _GRAY["sky"]
    )
    canvas[_Y == _CART_Y] = _GRAY["track"]
    return _ROWS @ canvas @ _COLS.T


_BACKGROUND = _background()


def _inside(px, py, vx, vy) -> torch.Tensor:
    """Points ``(px, py)`` inside or on the convex quadrilaterals
    ``(vx, vy)`` (``(B, 4)`` vertices in order, either winding)."""
    inside_pos = torch.ones_like(px + py, dtype=torch.bool)
    inside_neg = inside_pos.clone()
    for i in range(4):
        x0, y0 = vx[:, i, None, None], vy[:, i, None, None]
        x1, y1 = (
            vx[:, (i + 1) % 4, None, None],
            vy[:, (i + 1) % 4, None, None],
        )
        cross = (x1 - x0) * (py - y0) - (y1 - y0) * (px - x0)
        inside_pos &= cross >= 0
        inside_neg &= cross <= 0
    return inside_pos | inside_neg


@torch.no_grad()
def render_batch(states: np.ndarray | torch.Tensor) -> np.ndarray:
    """Preprocessed frames of CartPole states, ``(B, 4)`` ->
    ``(B, 80, 80)`` uint8.

    Draws what Gymnasium's ``render()`` draws for each state, then applies
    :func:`preprocess`'s crop and area shrink, all states at once.
    """
    s = torch.as_tensor(np.asarray(states), dtype=torch.float64)
    if s.ndim != 2 or s.shape[1] != 4:
        raise ValueError(
            f"states must have shape (B, 4), got {tuple(s.shape)}"
        )
    batch = s.shape[0]
    cart_x64 = (
        s[:, 0] * _SCALE + SCREEN_WIDTH / 2.0
    )  # as Gymnasium computes it
    cart_x, theta = cart_x64.float(), s[:, 2].float()
    # The window of columns drawn, clamped to the canvas.
    left = torch.clamp(
        torch.floor(cart_x64).long() - _WINDOW // 2,
        0,
        SCREEN_WIDTH - _WINDOW,
    )
    cols = (left[:, None] + torch.arange(_WINDOW)).to(
        torch.float32
    )  # (B, W)
    px = cols[:, None, :]  # (B, 1, W)
    py = _Y.to(torch.float32)[None, :, None]  # (1, R, 1)
    img = torch.full(
        (batch, _Y.numel(), _WINDOW), _GRAY["sky"], dtype=torch.float32
    )

    # Cart: a 50 x 30 rectangle, vertices truncated to whole pixels.
    x0 = torch.trunc(cart_x64 - 25).float()[:, None, None]
    x1 = torch.trunc(cart_x64 + 25).float()[:, None, None]
    cart = (
        (px >= x0)
        & (px <= x1)
        & (py >= _CART_Y - 15)
        & (py <= _CART_Y + 15)
    )
    img = torch.where(cart, _GRAY["cart"], img)

    # Pole: a 10 x 125 rectangle turned by the angle about the pivot.
    local = torch.tensor(
        [
            [-5.0, -5.0],
            [-5.0, _POLE_LENGTH - 5],
            [5.0, _POLE_LENGTH - 5],
            [5.0, -5.0],
        ],
        dtype=torch.float32,
    )
    cos, sin = torch.cos(-theta)[:, None], torch.sin(-theta)[:, None]
    vx = torch.trunc(
        local[:, 0] * cos - local[:, 1] * sin + cart_x[:, None]
    )
    vy = torch.trunc(local[:, 0] * sin + local[:, 1] * cos + _AXLE_Y)
    img = torch.where(_inside(px, py, vx, vy), _GRAY["pole"], img)

    # Axle: pygame's filled circle of radius 5 at the truncated pivot.
    dx = (px - torch.trunc(cart_x)[:, None, None]).abs()
    dy = (py - np.trunc(_AXLE_Y)).abs()
    half = torch.full_like(dy, -1.0)
    for d, w in _AXLE_HALF_WIDTH.items():
        half = torch.where(dy == d, float(w), half)
    img = torch.where(dx <= half, _GRAY["axle"], img)

    # Track: one black row across the whole canvas (drawn last).
    img = torch.where(py == _CART_Y, _GRAY["track"], img)

    # Crop and area-shrink: the empty canvas's frame, plus what the window
    # changed, shrunk by the same weights.
    col_weights = _COLS.T.to(torch.float32)[cols.long()]  # (B, W, 80)
    sky = torch.where(py == _CART_Y, _GRAY["track"], _GRAY["sky"])
    change = torch.bmm(img - sky, col_weights)  # (B, R, 80)
    frames = (
        _BACKGROUND.to(torch.float32) + _ROWS.to(torch.float32) @ change
    )
    return frames.round().clamp(0, 255).to(torch.uint8).numpy()


SIMPLE_SCALE = FRAME_SIZE / 6.0
"""Simple frames: pixels per metre (the 80 columns span 6 m; the track,
4.8)."""
SIMPLE_CART_ROW = 70
"""Simple frames: the cart fills rows 70-79; the pole's base is on row
70."""
SIMPLE_POLE = (4.2, 5.2)
"""Simple frames: the pole's drawn length in metres, across and up (the
real pole is 1 m long): the magnified lean is what makes the angle
visible."""
_SIMPLE_ROWS = torch.arange(FRAME_SIZE, dtype=torch.float32)[
    None, :, None
]
_SIMPLE_COLS = torch.arange(FRAME_SIZE, dtype=torch.float32)[
    None, None, :
]


@torch.no_grad()
def render_simple_batch(states: np.ndarray | torch.Tensor) -> np.ndarray:
    """Simple frames of CartPole states, ``(B, 4)`` -> ``(B, 80, 80)``
    uint8.

    Black background; the cart a gray (128) block 21 pixels wide on rows
    70-79, centred on column ``40 + x * SIMPLE_SCALE``; the pole a white
    (255) quadrilateral 5 pixels wide from the cart's centre on row 70 to
    its tip at ``(40 + (x + 4.2 sin(theta)) * SIMPLE_SCALE,
    70 - 5.2 cos(theta) * SIMPLE_SCALE)``, vertices rounded down to whole
    pixels.
    The geometry follows NPFL139's ``CartPolePixels`` renderer; this is
    our own drawing code, and its edge pixels may differ from the course's
    pygame fill.
    """
    s = torch.as_tensor(np.asarray(states), dtype=torch.float64)
    if s.ndim != 2 or s.shape[1] != 4:
        raise ValueError(
            f"states must have shape (B, 4), got {tuple(s.shape)}"
        )
    batch = s.shape[0]
    centre = FRAME_SIZE / 2
    x, theta = s[:, 0], s[:, 2]
    cart = torch.floor(centre + x * SIMPLE_SCALE).float()
    across, up = SIMPLE_POLE
    tip_col = torch.floor(
        centre + (x + across * torch.sin(theta)) * SIMPLE_SCALE
    )
    tip_row = torch.floor(
        SIMPLE_CART_ROW - up * torch.cos(theta) * SIMPLE_SCALE
    )
    tip_col, tip_row = tip_col.float(), tip_row.float()
    base_row = torch.full_like(tip_row, float(SIMPLE_CART_ROW))
    rows = _SIMPLE_ROWS.expand(batch, FRAME_SIZE, FRAME_SIZE)
    cols = _SIMPLE_COLS.expand(batch, FRAME_SIZE, FRAME_SIZE)
    # The pole: tip-left, base-left, base-right, tip-right, as (column,
    # row).
    vx = torch.stack(
        [tip_col - 2, cart - 2, cart + 2, tip_col + 2], dim=1
    )
    vy = torch.stack([tip_row, base_row, base_row, tip_row], dim=1)
    img = torch.where(_inside(cols, rows, vx, vy), 255.0, 0.0)
    body = (rows >= SIMPLE_CART_ROW) & (
        (cols - cart[:, None, None]).abs() <= 10
    )
    img = torch.where(body, 128.0, img)
    return img.to(torch.uint8).numpy()


RENDERERS = {"batched": render_batch, "simple": render_simple_batch}
"""The batched renderers: Gymnasium's picture redrawn, and the simple
frames."""
FRAMES = ("gymnasium", "batched", "simple")
"""What an agent can be evaluated on: Gymnasium's own ``render()``
preprocessed, or one of :data:`RENDERERS`."""


class PixelCartPole:
    """``envs`` CartPole-v1 episodes stepped together, seen as stacks of
    frames.

    The physics is :class:`rlbook.cartpole.CartPoleBatch` (Gymnasium's,
    over arrays) and every frame comes from :func:`render_batch`. Episode
    ``i`` of the run starts from ``reset(seed=episode_seed(i))``, in the
    order episodes start. A finished lane starts its next episode at once.

    Per step::

        frames = env.reset()            # (E, H, W) first frames
        obs = env.stacks()              # (E, k, H, W), oldest first
        next_frames, reward, terminated, truncated = env.step(actions)
        # next_frames are the frames after the actions: an ended
        # episode's last
        firsts = env.restart_done()     # first frames of new episodes

    Args:
        envs: episodes side by side.
        stack: frames per observation, ``k``; before an episode's ``k``-th
            frame, its first frame fills the stack.
        episode_seed: reset seed of the ``i``-th episode started.
        renderer: ``"batched"`` (:func:`render_batch`, Gymnasium's
        picture)
            or ``"simple"`` (:func:`render_simple_batch`).
    """

    def __init__(
        self,
        envs: int,
        stack: int,
        episode_seed,
        renderer: str = "batched",
    ) -> None:
        if stack < 1:
            raise ValueError(f"stack must be >= 1, got {stack}")
        if renderer not in RENDERERS:
            raise ValueError(
                f"renderer must be one of {sorted(RENDERERS)}, "
                f"got {renderer!r}"
            )
        self.renderer = renderer
        self._render = RENDERERS[renderer]
        self.envs, self.stack = int(envs), int(stack)
        self.episode_seed = episode_seed
        self.batch = CartPoleBatch(self.envs)
        self.started = 0
        """episodes started so far"""
        self.episode_index = np.zeros(self.envs, dtype=np.int64)
        self.returns = np.zeros(self.envs)
        self.finished: list[tuple[int, float]] = []
        """(episode index, return) of every finished episode, in
        finishing order"""
        self._history = np.zeros(
            (self.envs, self.stack, FRAME_SIZE, FRAME_SIZE), np.uint8
        )
        self._done = np.zeros(self.envs, dtype=bool)

    def reset(self) -> np.ndarray:
        """Start an episode in every lane; their first frames
        ``(E, H, W)``."""
        seeds = [
            self.episode_seed(self.started + i) for i in range(self.envs)
        ]
        self.episode_index[:] = self.started + np.arange(self.envs)
        self.started += self.envs
        self.batch.reset(np.asarray(seeds))
        self.returns[:] = 0.0
        self._done[:] = False
        frames = self._render(self.batch.state)
        self._history[:] = frames[:, None]
        return frames

    def stacks(self) -> np.ndarray:
        """The current observation of every lane, ``(E, k, H, W)``
        uint8."""
        return self._history.copy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        """Act in every lane;
        ``(next_frames, reward, terminated, truncated)``."""
        if self._done.any():
            raise RuntimeError(
                "call restart_done() after an episode ends"
            )
        _, reward, terminated, truncated = self.batch.step(
            np.asarray(actions)
        )
        frames = self._render(self.batch.state)
        self._history[:, :-1] = self._history[:, 1:]
        self._history[:, -1] = frames
        self.returns += reward
        self._done = terminated | truncated
        for i in np.flatnonzero(self._done):
            self.finished.append(
                (int(self.episode_index[i]), float(self.returns[i]))
            )
        return frames, reward, terminated, truncated

    def restart_done(self) -> np.ndarray:
        """Start the next episode in every lane whose episode just ended;
        their first frames ``(n_done, H, W)`` (in lane order)."""
        lanes = np.flatnonzero(self._done)
        for i in lanes:
            self.batch.reset_one(int(i), self.episode_seed(self.started))
            self.episode_index[i] = self.started
            self.started += 1
            self.returns[i] = 0.0
        frames = np.zeros((lanes.size, FRAME_SIZE, FRAME_SIZE), np.uint8)
        if lanes.size:
            frames = self._render(self.batch.state[lanes])
            self._history[lanes] = frames[:, None]
        self._done[:] = False
        return frames


def evaluate_pixels(
    act,
    episodes: int,
    seed: int,
    stack: int,
    *,
    frames: str = "gymnasium",
    envs: int = 8,
) -> np.ndarray:
    """Returns of ``episodes`` CartPole-v1 episodes played from pixels.

    Episode ``i`` starts from ``reset(seed=seed + i)``. At most ``envs``
    environments are alive at once; each starts the next episode when its
    own ends, and ``act`` chooses the actions of all running episodes in
    one call.

    Args:
        act: ``(n, k, H, W)`` uint8 stacks -> ``(n,)`` actions.
        stack: frames per observation, ``k``.
        frames: ``"gymnasium"``: Gymnasium's environments and their own
            ``render()``, preprocessed; ``"batched"`` or ``"simple"``:
            :class:`PixelCartPole`, the same physics and start states over
            arrays, drawn by :func:`render_batch` or
            :func:`render_simple_batch`.
        envs: environments kept alive.

    Returns:
        ``(episodes,)`` float64 returns, in episode order.
        :func:`pixel_returns` gives them one at a time, in memory that
        does not grow with ``episodes``.
    """
    if frames not in FRAMES:
        raise ValueError(
            f"frames must be one of {FRAMES}, got {frames!r}"
        )
    if episodes < 1 or envs < 1:
        raise ValueError(
            f"need episodes >= 1 and envs >= 1, got {episodes}, {envs}"
        )
    returns = np.zeros(episodes)
    for index, value in pixel_returns(
        act, episodes, seed, stack, frames=frames, envs=envs
    ):
        returns[index] = value
    return returns


def pixel_returns(
    act,
    episodes: int,
    seed: int,
    stack: int,
    *,
    frames: str = "gymnasium",
    envs: int = 8,
) -> Iterator[tuple[int, float]]:
    """``(episode index, return)`` of the episodes of
    :func:`evaluate_pixels`, in the order they finish; memory does not
    grow with ``episodes``."""
    if frames not in FRAMES:
        raise ValueError(
            f"frames must be one of {FRAMES}, got {frames!r}"
        )
    if episodes < 1 or envs < 1:
        raise ValueError(
            f"need episodes >= 1 and envs >= 1, got {episodes}, {envs}"
        )
    lanes = min(envs, episodes)
    if frames in RENDERERS:
        batch = PixelCartPole(
            lanes, stack, episode_seed=lambda i: seed + i, renderer=frames
        )
        batch.reset()
        done = 0
        while done < episodes:
            batch.step(np.asarray(act(batch.stacks())))
            batch.restart_done()
            for index, value in batch.finished:
                if index < episodes:
                    done += 1
                    yield index, value
            batch.finished.clear()
        return

    gyms = [
        make_env("CartPole-v1", render_mode="rgb_array")
        for _ in range(lanes)
    ]

    def frame_of(lane: int) -> np.ndarray:
        return preprocess(gyms[lane].render())

    history = np.zeros((lanes, stack, FRAME_SIZE, FRAME_SIZE), np.uint8)
    episode_of = np.full(lanes, -1)
    returns = np.zeros(lanes)  # of each lane's running episode
    next_episode = 0

    def start(lane: int) -> None:
        nonlocal next_episode
        gyms[lane].reset(seed=seed + next_episode)
        episode_of[lane] = next_episode
        returns[lane] = 0.0
        next_episode += 1
        history[lane] = frame_of(lane)[None]

    try:
        for lane in range(lanes):
            start(lane)
        while (episode_of >= 0).any():
            running = np.flatnonzero(episode_of >= 0)
            actions = np.asarray(act(history[running]))
            for lane, action in zip(running, actions, strict=True):
                _, reward, terminated, truncated, _ = gyms[lane].step(
                    int(action)
                )
                returns[lane] += reward
                history[lane, :-1] = history[lane, 1:]
                history[lane, -1] = frame_of(lane)
                if terminated or truncated:
                    yield int(episode_of[lane]), float(returns[lane])
                    if next_episode < episodes:
                        start(lane)
                    else:
                        episode_of[lane] = -1
    finally:
        for env in gyms:
            env.close()


class FrameBatch(NamedTuple):
    """``B`` sampled transitions on the memory's device: ``(B, k, H, W)``
    uint8 stacks (oldest frame first), and ``steps`` from ``obs`` to
    ``next_obs`` (1 unless ``n_step > 1``), by which the target discounts:
    ``gamma ** steps``."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    steps: torch.Tensor


class FrameReplayMemory:
    """Frames stored once per slot; stacks of ``stack`` frames rebuilt on
    sampling.

    ``lanes`` rings (one per environment) of ``capacity // lanes`` slots,
    a slot holding a frame and, once acted on, the action, reward and
    ``terminated``. An episode of ``T`` steps fills ``T + 1`` slots; a
    transition is sampled only while every frame its stacks need is in
    the ring. Per step of all lanes at once::

        memory.begin(first_frames)  # every lane starts an episode
        memory.step(actions, rewards, terminated, next_frames)
        memory.begin(reset_frames, lanes=done)  # lanes that ended

    ``generator`` (on ``device``) is a fresh unseeded one if omitted.
    """

    def __init__(
        self,
        capacity: int,
        frame_shape: tuple[int, int],
        stack: int,
        *,
        lanes: int = 1,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> None:
        if stack < 1:
            raise ValueError(f"stack must be >= 1, got {stack}")
        if lanes < 1:
            raise ValueError(f"lanes must be >= 1, got {lanes}")
        slots = capacity // lanes
        if slots < stack + 1:
            raise ValueError(
                f"capacity {capacity} gives {slots} slots per lane for "
                f"{lanes} lanes; need at least stack + 1 = {stack + 1}"
            )
        self.device = torch.device(device)
        self.stack, self.lanes, self.slots = stack, lanes, slots
        self.frame_shape = tuple(frame_shape)
        shape = (lanes, slots)

        def zeros(dtype: torch.dtype, *extra: int) -> torch.Tensor:
            return torch.zeros(
                shape + extra, dtype=dtype, device=self.device
            )

        self.frames = zeros(torch.uint8, *self.frame_shape)
        self.action = zeros(torch.int64)
        self.reward = zeros(torch.float32)
        self.terminated = zeros(torch.float32)
        # an action was taken from the slot's frame
        self.acted = zeros(torch.bool)
        # the slot's frame's step within its episode (0 = first frame)
        self.t = zeros(torch.int64)
        # frames the lane wrote before this one (-1: never written)
        self.serial = zeros(torch.int64) - 1
        self.written = torch.zeros(
            lanes, dtype=torch.int64, device=self.device
        )
        self.started = torch.zeros(
            lanes, dtype=torch.bool, device=self.device
        )
        self._lane_ids = torch.arange(lanes, device=self.device)
        self.generator = (
            generator
            if generator is not None
            else torch.Generator(self.device)
        )

    def _frames_tensor(self, frames: Any, n: int) -> torch.Tensor:
        x = torch.as_tensor(frames).to(self.device)
        if x.dtype != torch.uint8:
            raise TypeError(
                f"frames must be uint8 (0..255), got {x.dtype}"
            )
        if tuple(x.shape) != (n, *self.frame_shape):
            raise ValueError(
                f"expected frames of shape {(n, *self.frame_shape)}, "
                f"got {tuple(x.shape)}"
            )
        return x

    def _write(
        self, lanes: torch.Tensor, frames: torch.Tensor, t: torch.Tensor
    ) -> None:
        slot = self.written[lanes] % self.slots
        self.frames[lanes, slot] = frames
        self.t[lanes, slot] = t
        self.serial[lanes, slot] = self.written[lanes]
        self.acted[lanes, slot] = False
        self.written[lanes] += 1

    def begin(self, frames: Any, lanes: Any = None) -> None:
        """Start an episode in ``lanes`` (all lanes if omitted; or a
        boolean mask or index array) with its first frames,
        ``(len(lanes), H, W)`` uint8."""
        if lanes is None:
            index = self._lane_ids
        else:
            index = torch.as_tensor(lanes, device=self.device)
            if index.dtype == torch.bool:
                index = index.nonzero().flatten()
        if index.numel() == 0:
            return
        x = self._frames_tensor(frames, index.numel())
        self._write(index, x, torch.zeros_like(index))
        self.started[index] = True

    def step(
        self,
        actions: Any,
        rewards: Any,
        terminated: Any,
        next_frames: Any,
    ) -> None:
        """Record one step of every lane: the action taken from each
        lane's latest frame, its reward, whether it terminated, and the
        frame that followed."""
        if not bool(self.started.all()):
            raise RuntimeError(
                "call begin() with every lane's first frame before step()"
            )
        lanes, device = self._lane_ids, self.device
        head = (self.written - 1) % self.slots
        self.action[lanes, head] = torch.as_tensor(
            actions, device=device
        ).long()
        self.reward[lanes, head] = torch.as_tensor(
            rewards, device=device
        ).float()
        self.terminated[lanes, head] = torch.as_tensor(
            terminated, device=device
        ).float()
        self.acted[lanes, head] = True
        t_next = self.t[lanes, head] + 1
        frames = self._frames_tensor(next_frames, self.lanes)
        self._write(lanes, frames, t_next)

    def _sampleable(
        self, lane: torch.Tensor, slot: torch.Tensor
    ) -> torch.Tensor:
        """Transitions whose stacks' frames are all still in the ring."""
        serial, t = self.serial[lane, slot], self.t[lane, slot]
        oldest_needed = serial - torch.clamp(t, max=self.stack - 1)
        oldest_kept = self.written[lane] - self.slots
        return (
            self.acted[lane, slot]
            & (serial >= 0)
            & (oldest_needed >= oldest_kept)
        )

    def __len__(self) -> int:
        """Transitions that can be sampled now."""
        lane = self._lane_ids.repeat_interleave(self.slots)
        slot = torch.arange(self.slots, device=self.device)
        return int(self._sampleable(lane, slot.repeat(self.lanes)).sum())

    def stacks(
        self, lane: torch.Tensor, slot: torch.Tensor
    ) -> torch.Tensor:
        """``(B, k, H, W)`` stacks ending at the frames in
        ``(lane, slot)``."""
        back = torch.arange(self.stack - 1, -1, -1, device=self.device)
        t = self.t[lane, slot]
        # before an episode's k-th frame, its first frame repeats
        offset = torch.minimum(back.unsqueeze(0), t.unsqueeze(1))
        slots = (slot.unsqueeze(1) - offset) % self.slots
        return self.frames[lane.unsqueeze(1), slots]

    def sample(
        self, batch_size: int, n_step: int = 1, gamma: float = 1.0
    ) -> FrameBatch:
        """``batch_size`` transitions drawn uniformly from the sampleable
        ones.

        With ``n_step > 1`` each transition runs on for up to ``n_step``
        steps of its episode: ``reward`` is the discounted sum of their
        rewards, ``next_obs`` the stack after the last of them, and
        ``steps`` how many there were (fewer where the episode terminated,
        was cut off, or its later steps are not written yet).
        """
        if n_step < 1:
            raise ValueError(f"n_step must be >= 1, got {n_step}")
        if len(self) == 0:
            raise RuntimeError(
                "no transition to sample yet: step() at least once"
            )
        lanes, slots = [], []
        have = 0
        while have < batch_size:  # rejection: almost all are sampleable
            draw = (2 * (batch_size - have) + 8,)
            lane = torch.randint(
                self.lanes,
                draw,
                device=self.device,
                generator=self.generator,
            )
            slot = torch.randint(
                self.slots,
                draw,
                device=self.device,
                generator=self.generator,
            )
            keep = self._sampleable(lane, slot)
            lanes.append(lane[keep])
            slots.append(slot[keep])
            have += int(keep.sum())
        lane = torch.cat(lanes)[:batch_size]
        slot = torch.cat(slots)[:batch_size]
        reward = self.reward[lane, slot].clone()
        terminated = self.terminated[lane, slot].clone()
        steps = torch.ones_like(reward)
        going = torch.ones_like(terminated, dtype=torch.bool)
        for j in range(1, n_step):
            # An episode's last frame (terminal or cut off) and the newest
            # frame carry no action: the sum stops there.
            later = (slot + j) % self.slots
            going &= self.acted[lane, later]
            reward += going * gamma**j * self.reward[lane, later]
            steps += going
            terminated = torch.where(
                going, self.terminated[lane, later], terminated
            )
        return FrameBatch(
            obs=self.stacks(lane, slot),
            action=self.action[lane, slot],
            reward=reward,
            next_obs=self.stacks(
                lane, (slot + steps.long()) % self.slots
            ),
            terminated=terminated,
            steps=steps,
        )

    def bytes_per_slot(self) -> int:
        """Bytes one slot occupies: its frame and its fields."""
        fields = (
            self.action,
            self.reward,
            self.terminated,
            self.acted,
            self.t,
            self.serial,
        )
        sizes = sum(f.element_size() for f in fields)
        return int(self.frames[0, 0].nbytes + sizes)

    @staticmethod
    def naive_bytes_per_transition(
        frame_shape: tuple[int, int], stack: int
    ) -> int:
        """Bytes of the naive layout: ``obs`` and ``next_obs`` as float32
        stacks, plus an int64 action, float32 reward and float32
        terminated flag."""
        pixels = int(np.prod(frame_shape))
        return 2 * stack * pixels * 4 + 8 + 4 + 4


class PixelQNetwork(nn.Module):
    """Action values from a stack of k uint8 frames (B, k, H, W)."""

    def __init__(
        self,
        stack: int,
        n_actions: int = 2,
        arch: str = "nature",
        *,
        frame_size: int = FRAME_SIZE,
        dueling: bool = False,
    ) -> None:
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(
                f"arch must be one of {ARCHITECTURES}, got {arch!r}"
            )
        self.spec = {
            "stack": int(stack),
            "n_actions": int(n_actions),
            "arch": arch,
            "frame_size": int(frame_size),
            "dueling": bool(dueling),
        }
        if arch == "nature":
            self.features = nn.Sequential(
                nn.Conv2d(stack, 32, 8, stride=4),
                nn.ReLU(),
                nn.Conv2d(32, 64, 4, stride=2),
                nn.ReLU(),
                nn.Conv2d(64, 64, 3),
                nn.ReLU(),
                nn.Flatten(),
            )
        else:
            layers: list[nn.Module] = [
                nn.Conv2d(stack, 128, 8, stride=4),
                nn.ReLU(),
                nn.Conv2d(128, 128, 4, stride=2),
                nn.ReLU(),
            ]
            for _ in range(3):
                layers += [
                    nn.Conv2d(128, 128, 3, padding=1),
                    nn.BatchNorm2d(128),
                    nn.ReLU(),
                ]
            self.features = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            probe = torch.zeros(1, stack, frame_size, frame_size)
            width = self.features(probe).shape[1]
        self.dueling = dueling
        self.hidden = nn.Sequential(nn.Linear(width, 512), nn.ReLU())
        self.head = nn.Linear(
            512, n_actions + 1 if dueling else n_actions
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dtype == torch.uint8:
            x = frames.float() / 255.0
        else:
            x = frames
        out = self.head(self.hidden(self.features(x)))
        if not self.dueling:
            return out
        # dueling: a state value plus each action's centred advantage
        value, advantage = out[:, :1], out[:, 1:]
        return value + advantage - advantage.mean(dim=1, keepdim=True)


ARCHITECTURES = ("nature", "lecture")


@dataclass(frozen=True)
class PixelDQNConfig:
    """DQN from CartPole's pixels. Steps count environment transitions."""

    total_steps: int = 200_000
    """environment transitions in the run, summed over the envs"""
    envs: int = 8
    """CartPoles stepped together"""
    stack: int = 3
    """frames per observation"""
    arch: str = "nature"
    """network: "nature" or "lecture" (see PixelQNetwork)"""
    buffer_size: int = 100_000
    """frames kept by the replay memory"""
    batch_size: int = 64
    """transitions per update"""
    learning_starts: int = 5_000
    """random transitions before the first update"""
    learning_rate: float = 1e-4
    """Adam's learning rate"""
    gamma: float = 0.99
    """discount factor"""
    n_step: int = 1
    """steps summed into each target (1: one-step TD)"""
    train_every: int = 2
    """transitions per update"""
    target_every: int = 1_000
    """updates between target-network syncs"""
    epsilon_end: float = 0.01
    """epsilon decays linearly from 1 to this"""
    epsilon_fraction: float = 0.1
    """share of the run over which epsilon decays"""
    max_grad_norm: float = 10.0
    """gradient-norm clipping"""
    huber: bool = True
    """Huber loss instead of squared error"""
    double: bool = True
    """Double DQN targets"""
    dueling: bool = False
    """dueling value/advantage head"""
    shift: int = 0
    """random-shift augmentation in pixels (0: none)"""
    frames: str = "simple"
    """what the agent learns from: "simple" frames or "batched"
    (Gymnasium's picture, redrawn); see RENDERERS"""
    validate_every: int = 10_000
    """transitions between greedy validations (best weights kept)"""
    validate_episodes: int = 16
    """episodes per validation, reset with VALIDATION_SEED, +1, ..."""

    def __post_init__(self) -> None:
        if self.frames not in RENDERERS:
            raise ValueError(
                f"frames must be one of {sorted(RENDERERS)}, "
                f"got {self.frames!r}"
            )
        if self.arch not in ARCHITECTURES:
            raise ValueError(
                f"arch must be one of {ARCHITECTURES}, got {self.arch!r}"
            )
        if not 0 < self.validate_every <= self.total_steps:
            raise ValueError(
                f"validate_every={self.validate_every} must lie in "
                f"(0, total_steps={self.total_steps}]: the best weights "
                "come from validations"
            )
        for name in (
            "envs",
            "stack",
            "batch_size",
            "n_step",
            "train_every",
        ):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"{name} must be >= 1, got {getattr(self, name)}"
                )

    def epsilon(self, step: int) -> float:
        """Linear decay from 1 to epsilon_end over epsilon_fraction."""
        decay = self.epsilon_fraction * self.total_steps
        return max(
            self.epsilon_end,
            1.0 - (1.0 - self.epsilon_end) * step / decay,
        )


def random_shift(
    frames: torch.Tensor, pad: int, generator: torch.Generator
) -> torch.Tensor:
    """Shift each stack by up to pad pixels; (B, k, H, W) float."""
    if pad == 0:
        return frames
    b, k, h, w = frames.shape
    padded = F.pad(frames, (pad, pad, pad, pad), mode="replicate")
    dev = frames.device
    dy, dx = torch.randint(
        0, 2 * pad + 1, (2, b), device=dev, generator=generator
    )
    rows = (dy[:, None] + torch.arange(h, device=dev))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, None, :]
    batch = torch.arange(b, device=dev)[:, None, None, None]
    channel = torch.arange(k, device=dev)[None, :, None, None]
    return padded[batch, channel, rows, cols]


class PixelDQN:
    """One training run of DQN from pixels."""

    def __init__(
        self,
        config: PixelDQNConfig,
        seed: int,
        device: str | torch.device = "cpu",
    ):
        self.config, self.seed = config, int(seed)
        self.device = torch.device(device)
        torch.manual_seed(stream_seed(seed, "init"))
        self.q_net = PixelQNetwork(
            config.stack, 2, config.arch, dueling=config.dueling
        ).to(self.device)
        self.target_net = copy.deepcopy(self.q_net).eval()
        self.optimizer = torch.optim.Adam(
            self.q_net.parameters(), lr=config.learning_rate
        )
        self.memory = FrameReplayMemory(
            config.buffer_size,
            (FRAME_SIZE, FRAME_SIZE),
            config.stack,
            lanes=config.envs,
            device=self.device,
            generator=torch_stream(seed, "replay", self.device),
        )
        self.augment = torch_stream(seed, "augment", self.device)
        self.explore = numpy_stream(seed, "explore")
        self.env = PixelCartPole(
            config.envs,
            config.stack,
            episode_seed=functools.partial(train_seed, seed),
            renderer=config.frames,
        )
        self.memory.begin(self.env.reset())
        self.step, self.updates, self.seconds = 0, 0, 0.0
        self.history: dict[str, list[float]] = {
            "episode_end": [],
            "episode_return": [],
            "validation_step": [],
            "validation_return": [],
        }
        self.best_score, self.best_step = -np.inf, 0
        self.best_state: dict[str, torch.Tensor] = copy.deepcopy(
            self.q_net.state_dict()
        )


@add_to_class(PixelDQN)
def loss(self, batch: FrameBatch) -> torch.Tensor:
    """The n-step Double DQN loss of a batch (Huber or squared error)."""
    config = self.config
    obs = random_shift(
        batch.obs.float() / 255.0, config.shift, self.augment
    )
    next_obs = random_shift(
        batch.next_obs.float() / 255.0, config.shift, self.augment
    )
    q_taken = self.q_net(obs).gather(1, batch.action[:, None]).squeeze(1)
    with torch.no_grad():
        next_values = self.target_net(next_obs)
        if config.double:
            best = self.q_net(next_obs).argmax(dim=1, keepdim=True)
            next_q = next_values.gather(1, best).squeeze(1)
        else:
            next_q = next_values.max(dim=1).values
        discount = config.gamma**batch.steps * (1.0 - batch.terminated)
        target = batch.reward + discount * next_q
    if config.huber:
        return F.smooth_l1_loss(q_taken, target)
    return F.mse_loss(q_taken, target)


@add_to_class(PixelDQN)
def greedy(self, stacks: np.ndarray) -> np.ndarray:
    """Greedy actions of the online network for (n, k, H, W) stacks."""
    self.q_net.eval()
    with torch.no_grad():
        values = self.q_net(torch.as_tensor(stacks, device=self.device))
    return values.argmax(dim=1).cpu().numpy()


@add_to_class(PixelDQN)
def _act(self) -> np.ndarray:
    config = self.config
    coins = self.explore.random(config.envs)
    random_actions = self.explore.integers(2, size=config.envs)
    if self.step < config.learning_starts:
        return random_actions
    explore = coins < config.epsilon(self.step)
    if explore.all():
        return random_actions
    greedy = self.greedy(self.env.stacks())
    return np.where(explore, random_actions, greedy)


@add_to_class(PixelDQN)
def _update(self) -> None:
    config = self.config
    batch = self.memory.sample(
        config.batch_size, config.n_step, config.gamma
    )
    self.q_net.train()
    loss = self.loss(batch)
    self.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(
        self.q_net.parameters(), config.max_grad_norm
    )
    self.optimizer.step()
    self.updates += 1
    if self.updates % config.target_every == 0:
        self.target_net.load_state_dict(self.q_net.state_dict())


@add_to_class(PixelDQN)
def validate(self) -> float:
    """Mean greedy return over the validation episodes."""
    returns = evaluate_pixels(
        self.greedy,
        episodes=self.config.validate_episodes,
        seed=VALIDATION_SEED,
        stack=self.config.stack,
        frames=self.config.frames,
        envs=16,
    )
    score = float(returns.mean())
    self.history["validation_step"].append(self.step)
    self.history["validation_return"].append(score)
    if score >= self.best_score:
        self.best_score, self.best_step = score, self.step
        self.best_state = copy.deepcopy(self.q_net.state_dict())
    return score


@add_to_class(PixelDQN)
def train(
    self,
    until: int | None = None,
    *,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 0,
    progress: Callable[[PixelDQN], None] | None = None,
) -> PixelDQN:
    """Train to step until (default: the end of the run)."""
    config = self.config
    if until is None:
        until = config.total_steps
    until = min(until, config.total_steps)
    last_saved = self.step
    start = time.perf_counter()
    while self.step < until:
        actions = self._act()
        frames, reward, terminated, truncated = self.env.step(actions)
        self.memory.step(actions, reward, terminated, frames)
        self.step += config.envs
        for _, value in self.env.finished:
            self.history["episode_end"].append(self.step)
            self.history["episode_return"].append(value)
        self.env.finished.clear()
        ended = terminated | truncated
        if ended.any():
            self.memory.begin(self.env.restart_done(), lanes=ended)
        if self.step >= config.learning_starts:
            since = self.step - config.learning_starts
            owed = since // config.train_every + 1
            while self.updates < owed:
                self._update()
        every = config.validate_every
        if self.step // every > (self.step - config.envs) // every:
            self.validate()
            self.seconds += time.perf_counter() - start
            start = time.perf_counter()
            if progress is not None:
                progress(self)
        if (
            checkpoint
            and checkpoint_every
            and self.step - last_saved >= checkpoint_every
        ):
            self.seconds += time.perf_counter() - start
            start = time.perf_counter()
            self.save(checkpoint)
            last_saved = self.step
    self.seconds += time.perf_counter() - start
    if checkpoint:
        self.save(checkpoint)
    return self


# Checkpoints: everything the run needs to go on exactly where it
# stopped (networks, optimizer, memory, CartPoles, every random stream).
MEMORY_FIELDS = (
    "frames",
    "action",
    "reward",
    "terminated",
    "acted",
    "t",
    "serial",
    "written",
    "started",
)


@add_to_class(PixelDQN)
def state_dict(self) -> dict[str, Any]:
    memory, env = self.memory, self.env
    return {
        "config": asdict(self.config),
        "seed": self.seed,
        "q_net": self.q_net.state_dict(),
        "target_net": self.target_net.state_dict(),
        "optimizer": self.optimizer.state_dict(),
        "memory": {name: getattr(memory, name) for name in MEMORY_FIELDS},
        "replay_rng": memory.generator.get_state(),
        "augment_rng": self.augment.get_state(),
        "explore_rng": self.explore.bit_generator.state,
        "env": {
            "state": torch.from_numpy(env.batch.state.copy()),
            "elapsed": torch.from_numpy(env.batch.elapsed.copy()),
            "started": env.started,
            "episode_index": torch.from_numpy(env.episode_index.copy()),
            "returns": torch.from_numpy(env.returns.copy()),
            "history": torch.from_numpy(env._history.copy()),
        },
        "step": self.step,
        "updates": self.updates,
        "seconds": self.seconds,
        "history": self.history,
        "best_score": self.best_score,
        "best_step": self.best_step,
        "best_state": self.best_state,
    }


@add_to_class(PixelDQN)
def load_state_dict(self, state: Mapping[str, Any]) -> None:
    saved = PixelDQNConfig(**state["config"])
    if saved != self.config or state["seed"] != self.seed:
        raise CheckpointError("checkpoint is of another config or seed")
    self.q_net.load_state_dict(state["q_net"])
    self.target_net.load_state_dict(state["target_net"])
    self.optimizer.load_state_dict(state["optimizer"])
    for name, value in state["memory"].items():
        getattr(self.memory, name).copy_(value)
    self.memory.generator.set_state(state["replay_rng"])
    self.augment.set_state(state["augment_rng"])
    self.explore.bit_generator.state = state["explore_rng"]
    env = state["env"]
    self.env.batch.state[:] = env["state"].numpy()
    self.env.batch.elapsed[:] = env["elapsed"].numpy()
    self.env.started = int(env["started"])
    self.env.episode_index[:] = env["episode_index"].numpy()
    self.env.returns[:] = env["returns"].numpy()
    self.env._history[:] = env["history"].numpy()
    self.step, self.updates = int(state["step"]), int(state["updates"])
    self.seconds = float(state["seconds"])
    self.history = {k: list(v) for k, v in state["history"].items()}
    self.best_score = float(state["best_score"])
    self.best_step = int(state["best_step"])
    self.best_state = {
        k: v.to(self.device) for k, v in state["best_state"].items()
    }


@add_to_class(PixelDQN)
def save(self, path: str | Path) -> Path:
    """Write the run's whole state to path (atomically)."""
    return save_checkpoint(path, self.state_dict())


@add_to_class(PixelDQN)
@classmethod
def resume(
    cls, path: str | Path, device: str | torch.device = "cpu"
) -> PixelDQN:
    """The run saved at path, ready to go on training."""
    state = load_checkpoint(path, map_location=device)
    try:
        config = PixelDQNConfig(**state["config"])
        run = cls(config, state["seed"], device)
    except (KeyError, TypeError) as error:
        raise CheckpointError(
            f"{path} is not a PixelDQN checkpoint ({error})"
        ) from error
    run.load_state_dict(state)
    return run


FULL_RUN = PixelDQNConfig(
    total_steps=100_000,
    envs=8,
    batch_size=32,
    train_every=4,
    learning_rate=1e-4,
    buffer_size=100_000,
    learning_starts=5_000,
    target_every=1_000,
    epsilon_fraction=0.1,
    validate_every=5_000,
    validate_episodes=32,
    frames="simple",
)
"""The settings every variant of the full run shares (learning from
simple frames: the section *Which frames* says why, and what a first sweep
on Gymnasium's picture reached)."""


SMOKE_RUN = PixelDQNConfig(
    total_steps=2_000,
    envs=8,
    batch_size=32,
    train_every=8,
    buffer_size=2_000,
    learning_starts=500,
    target_every=50,
    validate_every=1_000,
    validate_episodes=2,
)
"""A run of seconds that exercises every part (its numbers mean
nothing)."""


def base_config(budget: str) -> PixelDQNConfig:
    """:data:`FULL_RUN` at ``full``; a seconds-long stand-in otherwise
    (tests, smoke)."""
    return FULL_RUN if budget == "full" else SMOKE_RUN


@dataclass(frozen=True)
class PixelQPolicy:
    """Greedy policy of a pixel Q-network: ``(N, k, H, W)`` uint8 stacks
    in."""

    q_net: PixelQNetwork

    def act_batch(self, stacks: np.ndarray) -> np.ndarray:
        weight = next(self.q_net.parameters())
        with torch.inference_mode():
            values = self.q_net(
                torch.as_tensor(stacks, device=weight.device)
            )
        return values.argmax(dim=1).cpu().numpy()

    def act(self, stacks: np.ndarray) -> int:
        return int(self.act_batch(stacks[None])[0])

    @staticmethod
    def misfit(spec: Mapping[str, Any]) -> str | None:
        """How a manifest's network and observation disagree, or None
        (`python -m rlbook evaluate` checks before playing)."""
        observation, network = (
            spec.get("observation"),
            spec.get("network"),
        )
        if not (
            isinstance(observation, dict) and isinstance(network, dict)
        ):
            return "spec's observation and network must be JSON objects"
        if network.get("stack") != observation.get("stack"):
            return (
                f"the network reads stacks of {network.get('stack')!r} "
                f"frames but the observation stacks "
                f"{observation.get('stack')!r}"
            )
        size = observation.get("size")
        if size is not None and [network.get("frame_size")] * 2 != size:
            return (
                f"the network reads {network.get('frame_size')!r}-pixel "
                f"frames but the observation's are {size!r}"
            )
        return None

    def evaluate(
        self,
        path: str | Path,
        observation: Mapping[str, Any],
        *,
        episodes: int,
        seed: int,
        frames: str | None,
        envs: int,
        returns: bool = False,
    ) -> dict[str, Any]:
        """What ``python -m rlbook evaluate`` records of ``episodes``
        greedy episodes on ``frames`` (default: those the agent learned
        from), at most ``envs`` alive; every return listed if
        ``returns``."""
        try:
            check_pipeline(observation)
        except ValueError as error:
            raise ArtifactError(f"{str(path)!r}: {error}") from error
        frames = frames or observation["frames"]
        playable = playable_frames(observation["frames"])
        if frames not in playable:
            raise EvaluationError(
                f"this agent learned from {observation['frames']!r} "
                f"frames; --frames must be one of {', '.join(playable)}, "
                f"not {frames!r}"
            )
        stats = ReturnStats()
        listed = np.zeros(episodes) if returns else None
        for index, value in pixel_returns(
            self.act_batch,
            episodes=episodes,
            seed=seed,
            stack=int(observation["stack"]),
            frames=frames,
            envs=envs,
        ):
            stats.add([value])
            if listed is not None:  # they finish out of order
                listed[index] = value
        record = {
            "frames": frames,
            **stats.summary(observation["env_id"], seed),
        }
        if listed is not None:
            record["returns"] = listed.tolist()
        return record


@register_kind("pixel-q-network")
def _build_pixel_q_network(
    spec: Mapping[str, Any], weights: Mapping[str, torch.Tensor]
) -> PixelQPolicy:
    q_net = PixelQNetwork(**spec["network"])
    q_net.load_state_dict(
        weights["q_net"]
    )  # float16 weights are cast to float32
    q_net.eval()
    return PixelQPolicy(q_net)


def test_weights(
    run: PixelDQN, state: Mapping[str, torch.Tensor], episodes: int = 100
) -> np.ndarray:
    """Greedy returns of weights ``state`` of ``run``'s network on the
    test episodes (reset with ``TEST_SEED``, +1, ...), on the run's own
    frames."""
    net = PixelQNetwork(**run.q_net.spec).to(run.device)
    net.load_state_dict(state)
    return evaluate_pixels(
        PixelQPolicy(net.eval()).act_batch,
        episodes=episodes,
        seed=TEST_SEED,
        stack=run.config.stack,
        frames=run.config.frames,
        envs=16,
    )


VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "n-step 3": {"n_step": 3},
    "n-step 3 + shift 4": {"n_step": 3, "shift": 4},
}
"""Each variant changes :data:`FULL_RUN` in the listed fields only."""


def variant_config(
    name: str, base: PixelDQNConfig = FULL_RUN
) -> PixelDQNConfig:
    """The config of variant ``name`` of :data:`VARIANTS`."""
    if name not in VARIANTS:
        raise ValueError(
            f"unknown variant {name!r}; known: {', '.join(VARIANTS)}"
        )
    return PixelDQNConfig(**{**asdict(base), **VARIANTS[name]})


def late_validation(result: Mapping[str, Any]) -> float:
    """Mean validation return over the last quarter of a run's
    validations."""
    scores = list(result["validation_return"])
    return float(np.mean(scores[-max(1, len(scores) // 4) :]))


def choose_winner(
    results: list[Mapping[str, Any]],
) -> tuple[str, Mapping[str, Any]]:
    """The rule that picks the shipped agent, fixed before any run
    finished.

    The winning variant has the highest mean over its seeds of
    :func:`late_validation` (how well and how steadily it plays at the
    end, on validation episodes only); ties go to the earlier variant in
    :data:`VARIANTS`. The shipped run is the winner's seed with the
    highest best validation score (ties: the lower seed); its
    best-validation weights ship, and its final weights ship beside them.
    Test episodes play no part.
    """
    by_variant: dict[str, list[Mapping[str, Any]]] = {}
    for result in results:
        by_variant.setdefault(result["variant"], []).append(result)
    order = [v for v in VARIANTS if v in by_variant]
    if not order:
        raise ValueError("no results of any known variant")
    score = {
        v: float(np.mean([late_validation(r) for r in by_variant[v]]))
        for v in order
    }
    winner = max(order, key=lambda v: (score[v], -order.index(v)))
    runs = sorted(
        by_variant[winner],
        key=lambda r: (-r["best_validation"], r["seed"]),
    )
    return winner, runs[0]


PIPELINE = {
    "env_id": "CartPole-v1",
    "render_mode": "rgb_array",
    "grayscale": "cv2.COLOR_RGB2GRAY",
    "crop_rows": [CROP_TOP, CROP_BOTTOM],
    "size": [FRAME_SIZE, FRAME_SIZE],
    "interpolation": "cv2.INTER_AREA",
    "stack_start": "first frame repeated",
}
"""How this module turns Gymnasium's picture into observations (``frames``
``"gymnasium"`` or ``"batched"``): what an agent's manifest records, with
``stack`` and the ``frames`` it was trained on."""

SIMPLE_PIPELINE = {
    "env_id": "CartPole-v1",
    "renderer": "rlbook.chapters.dqn_pixels.render_simple_batch",
    "size": [FRAME_SIZE, FRAME_SIZE],
    "pixels_per_metre": SIMPLE_SCALE,
    "cart_row": SIMPLE_CART_ROW,
    "pole_drawn_metres": list(SIMPLE_POLE),
    "stack_start": "first frame repeated",
}
"""The same record for simple frames (``frames`` ``"simple"``)."""

RENAMED = {
    "rlbook.pixels.render_simple_batch": (
        "rlbook.chapters.dqn_pixels.render_simple_batch"
    ),
}
"""Names that older manifests record for code that has moved since, each
with its name now: agents shipped before a move keep loading."""


def current_name(value: Any) -> Any:
    """``value``, or its name now if it is one of :data:`RENAMED`."""
    return RENAMED.get(value, value) if isinstance(value, str) else value


def pipeline_for(frames: str) -> dict:
    """The observation record of agents trained on ``frames``, less
    ``stack``."""
    if frames not in FRAMES:
        raise ValueError(
            f"frames must be one of {FRAMES}, got {frames!r}"
        )
    base = SIMPLE_PIPELINE if frames == "simple" else PIPELINE
    return {**base, "frames": frames}


def playable_frames(trained_on: str) -> tuple[str, ...]:
    """Frames an agent trained on ``trained_on`` can be evaluated on: the
    same picture, drawn by Gymnasium or by the batched renderer."""
    return (
        ("simple",)
        if trained_on == "simple"
        else ("gymnasium", "batched")
    )


def check_pipeline(observation: dict) -> None:
    """Raise ``ValueError`` unless ``observation`` (a manifest's record of
    how its agent sees) is a pipeline this module builds, naming what
    differs."""
    frames = observation.get("frames")
    if frames not in FRAMES:
        raise ValueError(
            "unsupported observation pipeline: "
            f"frames: {frames!r} (one of {FRAMES})"
        )
    expected = pipeline_for(frames)
    missing = [
        key for key in (*expected, "stack") if key not in observation
    ]
    if missing:
        raise ValueError(
            f"the observation record lacks {', '.join(missing)}"
        )
    differ = [
        f"{key}: {observation[key]!r} (rlbook builds {value!r})"
        for key, value in expected.items()
        if current_name(observation[key]) != value
    ]
    if differ:
        raise ValueError(
            "unsupported observation pipeline: " + "; ".join(differ)
        )


def export_artifact(
    runs: str | Path, out: str | Path, *, command: str
) -> Path:
    """Write the shipped agent and every run's curves from a finished full
    run."""
    folder = Path(runs)
    results = [
        json.loads(p.read_text())
        for p in sorted(folder.glob("*/result.json"))
    ]
    winner, run = choose_winner(results)
    weights = load_checkpoint(
        folder / f"{run['variant']}-s{run['seed']}" / "weights.pt"
    )
    provenance = dict(run["provenance"])
    provenance.update(
        command=command,
        exported_at_commit=git_commit(),
        winner=winner,
        chosen_by=(
            "variant: highest mean over seeds of the last quarter's "
            "validation returns; "
            "run: its seed with the best validation score; "
            "weights: that best validation's"
        ),
        score={
            "test_best_mean": float(np.mean(run["test_best"])),
            "test_final_mean": float(np.mean(run["test_final"])),
            "episodes": len(run["test_best"]),
            "seed": TEST_SEED,
            "frames": run["config"]["frames"],
        },
    )
    spec = {
        "network": run["network"],
        "observation": {
            **pipeline_for(run["config"]["frames"]),
            "stack": run["network"]["stack"],
        },
        "variant": winner,
        "seed": run["seed"],
        "best_step": run["best_step"],
    }
    metrics = {
        "winner": winner,
        "shipped": {"variant": winner, "seed": run["seed"]},
        "runs": [
            {k: v for k, v in r.items() if k != "provenance"}
            for r in results
        ],
    }
    text = json.dumps(metrics, separators=(",", ":")) + "\n"
    save_agent(
        out,
        kind="pixel-q-network",
        env_id="CartPole-v1",
        spec=spec,
        weights={
            "q_net": weights["best"],
            "final_q_net": weights["final"],
        },
        provenance=provenance,
        files={
            "metrics.json": text.encode()
        },  # listed in the manifest, written last
    )
    return Path(out)


def bootstrap_mean(
    values: np.ndarray | list[float],
    *,
    level: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> Interval:
    """The mean of ``values`` (one per seed) with a percentile-bootstrap
    interval (too narrow with few seeds; one seed gives a point)."""
    array = as_scores(values)
    low, high = percentile_bootstrap(
        array, lambda rows: rows.mean(axis=1), level, resamples, seed
    )
    return Interval(float(array.mean()), low, high, level, array.size)


COURSE_EPISODES = 100
"""Episodes per evaluation seed in NPFL139's protocol."""
COURSE_SEEDS = tuple(TEST_SEED + COURSE_EPISODES * k for k in range(3))
"""The course's three evaluation seeds, as this book seeds episodes: seed
``s`` plays the test episodes reset with ``s``, ``s + 1``, ..., so the
three are consecutive blocks of the test episodes."""
COURSE_RECORD = "course_eval.json"
"""The course evaluation's record, in the agent's folder."""


def course_evaluation(
    folder: str | Path,
    *,
    seeds: tuple[int, ...] = COURSE_SEEDS,
    episodes: int = COURSE_EPISODES,
    envs: int = 8,
) -> dict[str, Any]:
    """The agent in ``folder`` by the course's protocol: ``episodes``
    greedy episodes on each of ``seeds``, played by
    :func:`rlbook.evaluate.evaluate_artifact` (what ``python -m rlbook
    evaluate`` runs). Each seed's record lists its returns, in episode
    order, and the CPU and wall seconds it took; the SHA-256 of the
    weights that played is recorded (and checked unchanged after)."""
    weights = Path(folder) / "weights.pt"
    digest = file_sha256(weights)
    per_seed = []
    for seed in seeds:
        cpu, wall = time.process_time(), time.perf_counter()
        played = evaluate_artifact(
            folder, episodes=episodes, seed=seed, envs=envs, returns=True
        )
        per_seed.append(
            {
                "seed": seed,
                "n": played["episodes"],
                "mean": played["mean_return"],
                "std": played["std_return"],
                "min": played["min_return"],
                "max": played["max_return"],
                "returns": played["returns"],
                "cpu_seconds": round(time.process_time() - cpu, 2),
                "wall_seconds": round(time.perf_counter() - wall, 2),
            }
        )
    if file_sha256(weights) != digest:
        raise RuntimeError(f"{weights} changed while it was evaluated")
    return {
        "protocol": (
            "NPFL139 cart_pole_pixels: one agent, each evaluation "
            "seed plays episodes greedily; seed s resets episode i "
            "with s + i; std is the population's (ddof 0)"
        ),
        "frames": played["frames"],
        "episodes_per_seed": episodes,
        "weights_sha256": digest,
        "seeds": per_seed,
        "cpu_seconds": round(sum(s["cpu_seconds"] for s in per_seed), 2),
        "wall_seconds": round(
            sum(s["wall_seconds"] for s in per_seed), 2
        ),
    }


def export_course_evaluation(
    folder: str | Path,
    out: str | Path,
    *,
    command: str,
    budget: str = "full",
    root: str | Path | None = None,
) -> Path:
    """Write :func:`course_evaluation` of the agent in ``folder`` to
    ``out`` (atomically), with its provenance: the command, the commit
    of ``root``, the CPU, the packages. ``budget`` ``"full"`` plays the
    course's episodes; any other, 2 per seed (to check the command)."""
    episodes = COURSE_EPISODES if budget == "full" else 2
    record = course_evaluation(folder, episodes=episodes)
    record["provenance"] = make_provenance(
        command=command,
        config={
            "agent": Path(folder).name,
            "seeds": list(COURSE_SEEDS),
            "episodes": episodes,
        },
        budget=budget,
        device="cpu",
        wall_time_s=record["wall_seconds"],
        root=root,
        cpu_time_s=record["cpu_seconds"],
    )
    path = Path(out)
    text = json.dumps(record, indent=1) + "\n"
    atomic_write(path, lambda handle: handle.write(text.encode()))
    return path


ABLATION_BASE = "n-step 3 + shift 4"
"""The recipe the ablations change: the shipped variant of
:data:`VARIANTS`."""

ABLATIONS: dict[str, dict[str, Any]] = {
    "8 frames": {"stack": 8},
    "lecture network": {"arch": "lecture"},
}
"""The lecture's two choices this book did not take, each applied alone
to :data:`ABLATION_BASE`. They answer questions about the recipe, so they
play no part in :func:`choose_winner`."""

ABLATION_FRACTION = 0.5
"""Ablation runs stop at this share of the run's ``total_steps``. They
keep the full run's schedules (epsilon, replay size), so up to that step
they are compared validation for validation with the first part of the
shipped variant's own runs: an equal budget of environment steps."""


def ablation_config(
    name: str, base: PixelDQNConfig = FULL_RUN
) -> PixelDQNConfig:
    """The config of ablation ``name``: :data:`ABLATION_BASE` with its
    change."""
    if name not in ABLATIONS:
        raise ValueError(
            f"unknown ablation {name!r}; known: {', '.join(ABLATIONS)}"
        )
    return PixelDQNConfig(
        **{
            **asdict(variant_config(ABLATION_BASE, base)),
            **ABLATIONS[name],
        }
    )


def ablation_steps(config: PixelDQNConfig) -> int:
    """The step an ablation run of ``config`` stops at (whole
    validations)."""
    every = config.validate_every
    return max(
        every,
        int(config.total_steps * ABLATION_FRACTION) // every * every,
    )


def early_validation(result: Mapping[str, Any], until: int) -> float:
    """Mean validation return over a run's validations up to step
    ``until``.

    The ablations' criterion, fixed before any ablation ran: the area
    under the validation curve over an equal budget, so it rewards
    learning early and staying good, and it is computed the same way for
    the shipped variant's runs (cut at ``until``) as for the ablations'
    own.
    """
    scores = [
        score
        for step, score in zip(
            result["validation_step"],
            result["validation_return"],
            strict=True,
        )
        if step <= until
    ]
    if not scores:
        raise ValueError(f"no validation at or before step {until}")
    return float(np.mean(scores))


def compare_to_base(
    ablation: list[Mapping[str, Any]],
    base: list[Mapping[str, Any]],
    until: int,
) -> str:
    """``"higher"``, ``"lower"`` or ``"overlap"``: whether every seed of
    the ablation scores above (below) every seed of the base by
    :func:`early_validation` up to ``until``. With three seeds each,
    anything short of complete separation is reported as not separated."""
    a = [early_validation(r, until) for r in ablation]
    b = [early_validation(r, until) for r in base]
    if not a or not b:
        raise ValueError("compare_to_base needs runs on both sides")
    if min(a) > max(b):
        return "higher"
    if max(a) < min(b):
        return "lower"
    return "overlap"


def first_step_at_least(
    result: Mapping[str, Any], level: float, until: int | None = None
) -> int | None:
    """The first validation step whose return is at least ``level``,
    looking only at validations up to step ``until`` when given (None:
    never)."""
    for step, score in zip(
        result["validation_step"],
        result["validation_return"],
        strict=True,
    ):
        if until is not None and step > until:
            return None
        if score >= level:
            return int(step)
    return None


ABLATIONS_FILE = "ablations.json"
"""Where :func:`export_ablations` writes, inside the shipped agent's
folder."""


def export_ablations(
    runs: str | Path, out: str | Path, *, command: str
) -> Path:
    """Write every finished ablation run's curves to
    ``out/ablations.json``.

    ``runs`` is the full run's folder; the ablations live in its
    ``ablations/`` subfolder. Unfinished ablations are simply absent (the
    chapter says so).
    """
    folder = Path(runs) / "ablations"
    results = [
        json.loads(p.read_text())
        for p in sorted(folder.glob("*/result.json"))
    ]
    if not results:
        raise FileNotFoundError(
            f"no finished ablation runs under {folder}; run "
            "scripts/train_dqn_pixels.py --ablations first"
        )
    unknown = sorted({r["variant"] for r in results} - set(ABLATIONS))
    if unknown:
        raise ValueError(
            f"results of unknown ablations {unknown}; "
            f"known: {list(ABLATIONS)}"
        )
    steps = sorted({int(r["step"]) for r in results})
    if len(steps) != 1:
        raise ValueError(
            f"ablation runs stopped at different steps {steps}; "
            "rerun them"
        )
    record = {
        "base": ABLATION_BASE,
        "until": steps[0],
        "command": command,
        "exported_at_commit": git_commit(),
        "runs": results,
    }
    path = Path(out) / ABLATIONS_FILE
    text = json.dumps(record, separators=(",", ":")) + "\n"
    atomic_write(path, lambda handle: handle.write(text.encode()))
    return path
