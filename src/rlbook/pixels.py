"""CartPole from pixels: Gymnasium's frames, preprocessed, and a batched renderer.

Gymnasium draws CartPole with pygame, one 600x400 RGB frame at a time, at a
few hundred frames per second on a laptop core. :func:`preprocess` turns such a
frame into what the agent sees: grayscale, cropped to the band the cart and
pole move in, shrunk to ``FRAME_SIZE`` x ``FRAME_SIZE`` with ``INTER_AREA``.

:func:`render_batch` draws the same preprocessed frames for a whole batch of
states at once, without pygame: the same shapes at the same coordinates (the
cart, the pole, the axle and the track, vertices truncated to whole pixels as
pygame does), composed at full resolution only in a window around the cart,
then cropped and shrunk by the same area weights. It differs from
``preprocess(env.render())`` only where pygame antialiases an edge; the tests
bound that difference.

:func:`render_simple_batch` draws a different picture, after the one NPFL139
(Charles University's deep RL course) sets its pixel CartPole in: 80x80,
black, a gray 20-pixel cart and a white 4-pixel-wide pole drawn several times
longer than the real one, so that a lean of 0.1 rad moves its tip by about
5 pixels instead of Gymnasium's 1.7 (after the shrink). The course's bar of
450 is set on frames like these.

Introduced in the chapter *Deep Q-learning from CartPole's pixels*.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

SCREEN_WIDTH, SCREEN_HEIGHT = 600, 400
"""Gymnasium's CartPole canvas, in pixels."""
CROP_TOP, CROP_BOTTOM = 160, 320
"""Rows of the canvas kept: the pole's tip never rises above row 172, and the
cart's bottom edge lies on row 314 (the track on row 299)."""
FRAME_SIZE = 80
"""Side of a preprocessed frame."""

_SCALE = SCREEN_WIDTH / 4.8  # pixels per metre: the track is 2 x 2.4 m wide
_CART_Y = 100.0  # height of the track (and the cart's centre), pygame's y up
_AXLE_Y = _CART_Y + 30 / 4  # the pole's pivot
_POLE_LENGTH = _SCALE * 2 * 0.5  # twice the half-length of 0.5 m
_GRAY = {"cart": 0.0, "pole": 161.0, "axle": 139.0, "track": 0.0, "sky": 255.0}
"""cv2's RGB-to-gray of Gymnasium's colours: pole (202, 152, 101), axle
(129, 132, 203), cart and track black, background white."""
_WINDOW = 80
"""Columns drawn around the cart: the cart is 51 px wide and the pole's tip
stays within 36 px of the pivot while |angle| < 0.25 rad (episodes end past
0.21)."""
# The filled axle circle (radius 5) as pygame draws it: half-width per |dy|.
_AXLE_HALF_WIDTH = {0: 5, 1: 5, 2: 5, 3: 4, 4: 3, 5: 0}


def preprocess(rgb: np.ndarray) -> np.ndarray:
    """A Gymnasium CartPole frame ``(400, 600, 3)`` uint8 -> ``(80, 80)`` uint8.

    Grayscale (colour carries nothing here), the rows the cart and pole can
    reach, then ``INTER_AREA``: each output pixel averages the source pixels
    it covers, so a pole a little over one output pixel wide stays visible.
    """
    import cv2

    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[CROP_TOP:CROP_BOTTOM]
    return cv2.resize(gray, (FRAME_SIZE, FRAME_SIZE), interpolation=cv2.INTER_AREA)


def _area_weights(n_in: int, n_out: int) -> torch.Tensor:
    """``INTER_AREA`` shrinking ``n_in`` -> ``n_out`` as an ``(n_out, n_in)`` matrix."""
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
    [SCREEN_HEIGHT - 1 - r for r in range(CROP_TOP, CROP_BOTTOM)], dtype=torch.float32
)  # pygame's y of each kept row (pygame draws y up, then flips the frame)


def _background() -> torch.Tensor:
    """The preprocessed frame of an empty canvas: white, with the track."""
    canvas = torch.full((CROP_BOTTOM - CROP_TOP, SCREEN_WIDTH), _GRAY["sky"])
    canvas[_Y == _CART_Y] = _GRAY["track"]
    return _ROWS @ canvas @ _COLS.T


_BACKGROUND = _background()


def _inside(px, py, vx, vy) -> torch.Tensor:
    """Points ``(px, py)`` inside or on the convex quadrilaterals ``(vx, vy)``
    (``(B, 4)`` vertices in order, either winding)."""
    inside_pos = torch.ones_like(px + py, dtype=torch.bool)
    inside_neg = inside_pos.clone()
    for i in range(4):
        x0, y0 = vx[:, i, None, None], vy[:, i, None, None]
        x1, y1 = vx[:, (i + 1) % 4, None, None], vy[:, (i + 1) % 4, None, None]
        cross = (x1 - x0) * (py - y0) - (y1 - y0) * (px - x0)
        inside_pos &= cross >= 0
        inside_neg &= cross <= 0
    return inside_pos | inside_neg


@torch.no_grad()
def render_batch(states: np.ndarray | torch.Tensor) -> np.ndarray:
    """Preprocessed frames of CartPole states, ``(B, 4)`` -> ``(B, 80, 80)`` uint8.

    Draws what Gymnasium's ``render()`` draws for each state, then applies
    :func:`preprocess`'s crop and area shrink, all states at once.
    """
    s = torch.as_tensor(np.asarray(states), dtype=torch.float64)
    if s.ndim != 2 or s.shape[1] != 4:
        raise ValueError(f"states must have shape (B, 4), got {tuple(s.shape)}")
    batch = s.shape[0]
    cart_x64 = s[:, 0] * _SCALE + SCREEN_WIDTH / 2.0  # as Gymnasium computes it
    cart_x, theta = cart_x64.float(), s[:, 2].float()
    # The window of columns drawn, clamped to the canvas.
    left = torch.clamp(
        torch.floor(cart_x64).long() - _WINDOW // 2, 0, SCREEN_WIDTH - _WINDOW
    )
    cols = (left[:, None] + torch.arange(_WINDOW)).to(torch.float32)  # (B, W)
    px = cols[:, None, :]  # (B, 1, W)
    py = _Y.to(torch.float32)[None, :, None]  # (1, R, 1)
    img = torch.full((batch, _Y.numel(), _WINDOW), _GRAY["sky"], dtype=torch.float32)

    # Cart: a 50 x 30 rectangle, vertices truncated to whole pixels.
    x0 = torch.trunc(cart_x64 - 25).float()[:, None, None]
    x1 = torch.trunc(cart_x64 + 25).float()[:, None, None]
    cart = (px >= x0) & (px <= x1) & (py >= _CART_Y - 15) & (py <= _CART_Y + 15)
    img = torch.where(cart, _GRAY["cart"], img)

    # Pole: a 10 x 125 rectangle turned by the angle about the pivot.
    local = torch.tensor(
        [[-5.0, -5.0], [-5.0, _POLE_LENGTH - 5], [5.0, _POLE_LENGTH - 5], [5.0, -5.0]],
        dtype=torch.float32,
    )
    cos, sin = torch.cos(-theta)[:, None], torch.sin(-theta)[:, None]
    vx = torch.trunc(local[:, 0] * cos - local[:, 1] * sin + cart_x[:, None])
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
    frames = _BACKGROUND.to(torch.float32) + _ROWS.to(torch.float32) @ change
    return frames.round().clamp(0, 255).to(torch.uint8).numpy()


SIMPLE_SCALE = FRAME_SIZE / 6.0
"""Simple frames: pixels per metre (the 80 columns span 6 m; the track, 4.8)."""
SIMPLE_CART_ROW = 70
"""Simple frames: the cart fills rows 70-79; the pole's base is on row 70."""
SIMPLE_POLE = (4.2, 5.2)
"""Simple frames: the pole's drawn length in metres, across and up (the real
pole is 1 m long): the magnified lean is what makes the angle visible."""
_SIMPLE_ROWS = torch.arange(FRAME_SIZE, dtype=torch.float32)[None, :, None]
_SIMPLE_COLS = torch.arange(FRAME_SIZE, dtype=torch.float32)[None, None, :]


@torch.no_grad()
def render_simple_batch(states: np.ndarray | torch.Tensor) -> np.ndarray:
    """Simple frames of CartPole states, ``(B, 4)`` -> ``(B, 80, 80)`` uint8.

    Black background; the cart a gray (128) block 21 pixels wide on rows
    70-79, centred on column ``40 + x * SIMPLE_SCALE``; the pole a white (255)
    quadrilateral 5 pixels wide from the cart's centre on row 70 to its tip at
    ``(40 + (x + 4.2 sin(theta)) * SIMPLE_SCALE, 70 - 5.2 cos(theta) * SIMPLE_SCALE)``,
    vertices rounded down to whole pixels. The geometry follows NPFL139's
    ``CartPolePixels`` renderer; this is our own drawing code, and its edge
    pixels may differ from the course's pygame fill.
    """
    s = torch.as_tensor(np.asarray(states), dtype=torch.float64)
    if s.ndim != 2 or s.shape[1] != 4:
        raise ValueError(f"states must have shape (B, 4), got {tuple(s.shape)}")
    batch = s.shape[0]
    centre = FRAME_SIZE / 2
    x, theta = s[:, 0], s[:, 2]
    cart = torch.floor(centre + x * SIMPLE_SCALE).float()
    across, up = SIMPLE_POLE
    tip_col = torch.floor(centre + (x + across * torch.sin(theta)) * SIMPLE_SCALE)
    tip_row = torch.floor(SIMPLE_CART_ROW - up * torch.cos(theta) * SIMPLE_SCALE)
    tip_col, tip_row = tip_col.float(), tip_row.float()
    base_row = torch.full_like(tip_row, float(SIMPLE_CART_ROW))
    rows = _SIMPLE_ROWS.expand(batch, FRAME_SIZE, FRAME_SIZE)
    cols = _SIMPLE_COLS.expand(batch, FRAME_SIZE, FRAME_SIZE)
    # The pole: tip-left, base-left, base-right, tip-right, as (column, row).
    vx = torch.stack([tip_col - 2, cart - 2, cart + 2, tip_col + 2], dim=1)
    vy = torch.stack([tip_row, base_row, base_row, tip_row], dim=1)
    img = torch.where(_inside(cols, rows, vx, vy), 255.0, 0.0)
    body = (rows >= SIMPLE_CART_ROW) & ((cols - cart[:, None, None]).abs() <= 10)
    img = torch.where(body, 128.0, img)
    return img.to(torch.uint8).numpy()


RENDERERS = {"batched": render_batch, "simple": render_simple_batch}
"""The batched renderers: Gymnasium's picture redrawn, and the simple frames."""
FRAMES = ("gymnasium", "batched", "simple")
"""What an agent can be evaluated on: Gymnasium's own ``render()`` preprocessed,
or one of :data:`RENDERERS`."""


class PixelCartPole:
    """``envs`` CartPole-v1 episodes stepped together, seen as stacks of frames.

    The physics is :class:`rlbook.cartpole.CartPoleBatch` (Gymnasium's, over
    arrays) and every frame comes from :func:`render_batch`. Episode ``i``
    of the run starts from ``reset(seed=episode_seed(i))``, in the order
    episodes start. A finished lane starts its next episode at once.

    Per step::

        frames = env.reset()                      # (E, H, W) first frames
        obs = env.stacks()                        # (E, k, H, W), oldest first
        next_frames, reward, terminated, truncated = env.step(actions)
        # next_frames are the frames after the actions: an ended episode's last
        firsts = env.restart_done()               # first frames of new episodes

    Args:
        envs: episodes side by side.
        stack: frames per observation, ``k``; before an episode's ``k``-th
            frame, its first frame fills the stack.
        episode_seed: reset seed of the ``i``-th episode started.
        renderer: ``"batched"`` (:func:`render_batch`, Gymnasium's picture)
            or ``"simple"`` (:func:`render_simple_batch`).
    """

    def __init__(
        self, envs: int, stack: int, episode_seed, renderer: str = "batched"
    ) -> None:
        from .cartpole import CartPoleBatch

        if stack < 1:
            raise ValueError(f"stack must be >= 1, got {stack}")
        if renderer not in RENDERERS:
            raise ValueError(
                f"renderer must be one of {sorted(RENDERERS)}, got {renderer!r}"
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
        """(episode index, return) of every finished episode, in finishing order"""
        self._history = np.zeros(
            (self.envs, self.stack, FRAME_SIZE, FRAME_SIZE), np.uint8
        )
        self._done = np.zeros(self.envs, dtype=bool)

    def reset(self) -> np.ndarray:
        """Start an episode in every lane; their first frames ``(E, H, W)``."""
        seeds = [self.episode_seed(self.started + i) for i in range(self.envs)]
        self.episode_index[:] = self.started + np.arange(self.envs)
        self.started += self.envs
        self.batch.reset(np.asarray(seeds))
        self.returns[:] = 0.0
        self._done[:] = False
        frames = self._render(self.batch.state)
        self._history[:] = frames[:, None]
        return frames

    def stacks(self) -> np.ndarray:
        """The current observation of every lane, ``(E, k, H, W)`` uint8."""
        return self._history.copy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        """Act in every lane; ``(next_frames, reward, terminated, truncated)``."""
        if self._done.any():
            raise RuntimeError("call restart_done() after an episode ends")
        _, reward, terminated, truncated = self.batch.step(np.asarray(actions))
        frames = self._render(self.batch.state)
        self._history[:, :-1] = self._history[:, 1:]
        self._history[:, -1] = frames
        self.returns += reward
        self._done = terminated | truncated
        for i in np.flatnonzero(self._done):
            self.finished.append((int(self.episode_index[i]), float(self.returns[i])))
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
    "renderer": "rlbook.pixels.render_simple_batch",
    "size": [FRAME_SIZE, FRAME_SIZE],
    "pixels_per_metre": SIMPLE_SCALE,
    "cart_row": SIMPLE_CART_ROW,
    "pole_drawn_metres": list(SIMPLE_POLE),
    "stack_start": "first frame repeated",
}
"""The same record for simple frames (``frames`` ``"simple"``)."""


def pipeline_for(frames: str) -> dict:
    """The observation record of agents trained on ``frames``, less ``stack``."""
    if frames not in FRAMES:
        raise ValueError(f"frames must be one of {FRAMES}, got {frames!r}")
    base = SIMPLE_PIPELINE if frames == "simple" else PIPELINE
    return {**base, "frames": frames}


def playable_frames(trained_on: str) -> tuple[str, ...]:
    """Frames an agent trained on ``trained_on`` can be evaluated on: the same
    picture, drawn by Gymnasium or by the batched renderer."""
    return ("simple",) if trained_on == "simple" else ("gymnasium", "batched")


def check_pipeline(observation: dict) -> None:
    """Raise ``ValueError`` unless ``observation`` (a manifest's record of how
    its agent sees) is a pipeline this module builds, naming what differs."""
    frames = observation.get("frames")
    if frames not in FRAMES:
        raise ValueError(
            f"unsupported observation pipeline: frames: {frames!r} (one of {FRAMES})"
        )
    expected = pipeline_for(frames)
    missing = [key for key in (*expected, "stack") if key not in observation]
    if missing:
        raise ValueError(f"the observation record lacks {', '.join(missing)}")
    differ = [
        f"{key}: {observation[key]!r} (rlbook builds {value!r})"
        for key, value in expected.items()
        if observation[key] != value
    ]
    if differ:
        raise ValueError("unsupported observation pipeline: " + "; ".join(differ))


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
    environments are alive at once; each starts the next episode when its own
    ends, and ``act`` chooses the actions of all running episodes in one call.

    Args:
        act: ``(n, k, H, W)`` uint8 stacks -> ``(n,)`` actions.
        stack: frames per observation, ``k``.
        frames: ``"gymnasium"``: Gymnasium's environments and their own
            ``render()``, preprocessed; ``"batched"`` or ``"simple"``:
            :class:`PixelCartPole`, the same physics and start states over
            arrays, drawn by :func:`render_batch` or :func:`render_simple_batch`.
        envs: environments kept alive.

    Returns:
        ``(episodes,)`` float64 returns, in episode order. :func:`pixel_returns`
        gives them one at a time, in memory that does not grow with ``episodes``.
    """
    if frames not in FRAMES:
        raise ValueError(f"frames must be one of {FRAMES}, got {frames!r}")
    if episodes < 1 or envs < 1:
        raise ValueError(f"need episodes >= 1 and envs >= 1, got {episodes}, {envs}")
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
    """``(episode index, return)`` of the episodes of :func:`evaluate_pixels`,
    in the order they finish; memory does not grow with ``episodes``."""
    if frames not in FRAMES:
        raise ValueError(f"frames must be one of {FRAMES}, got {frames!r}")
    if episodes < 1 or envs < 1:
        raise ValueError(f"need episodes >= 1 and envs >= 1, got {episodes}, {envs}")
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

    from .envs import make_env

    gyms = [make_env("CartPole-v1", render_mode="rgb_array") for _ in range(lanes)]

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
                _, reward, terminated, truncated, _ = gyms[lane].step(int(action))
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
