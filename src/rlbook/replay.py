"""Replay storage: a uniform ring buffer, and a memory of uint8 frames that
stores each frame once. Prioritized replay, which only the state DQN pages use,
is on the first of them (``rlbook.chapters.dqn_state``), a subclass of
:class:`ReplayBuffer`.

``terminated`` is 1.0 only where the episode reached a terminal state; a
truncated one (time limit) stores 0.0, so its target still bootstraps.

:class:`FrameReplayMemory` keeps each frame once, as uint8, instead of ``2k``
float32 copies in the ``obs`` and ``next_obs`` stacks, and rebuilds stacks by
index. It has ``lanes`` rings (one per environment) of ``capacity // lanes``
slots, a slot holding a frame and, once acted on, the action, reward and
``terminated``. An episode of ``T`` steps fills ``T + 1`` slots (the last frame
keeps no action, so a truncated transition still finds its next state, and no
stack mixes two episodes); frames before an episode's first repeat its first.
A transition is sampled only while every frame its stacks need is in the ring.

Introduced in the chapters *Deep Q-learning on CartPole's state* (the ring
buffer) and *Deep Q-learning from CartPole's pixels* (the frame memory).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, SupportsFloat, SupportsInt, TypeAlias

import numpy as np
import torch

ArrayLike: TypeAlias = torch.Tensor | np.ndarray | Sequence[float] | float | int | bool
"""Anything :func:`torch.as_tensor` understands: tensors, arrays, lists, scalars."""


class Batch(NamedTuple):
    """A batch of ``B`` transitions on the buffer's device: ``obs``/``next_obs``
    in the buffer's ``obs_dtype``, int64 ``action`` and ``indices`` (the slots,
    for prioritized replay's ``update_priorities``), float32 ``reward``,
    ``terminated`` and importance-sampling ``weights`` (ones for uniform replay)."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    indices: torch.Tensor
    weights: torch.Tensor


def _as_tensor(x: ArrayLike, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(device=device, dtype=dtype)
    return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)


class ReplayBuffer:
    """A fixed-size ring of transitions on ``device``, sampled uniformly with
    replacement; the oldest is overwritten first. ``obs_dtype=torch.uint8`` keeps
    frames four times smaller (scale them in the network); ``generator`` (for
    reproducible batches) may live on the CPU even when ``device`` is CUDA."""

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        device: torch.device | str = "cpu",
        obs_dtype: torch.dtype = torch.float32,
        generator: torch.Generator | None = None,
    ) -> None:
        if int(capacity) < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        obs_shape = tuple(int(n) for n in obs_shape)
        if any(n < 0 for n in obs_shape):
            raise ValueError(f"obs_shape must hold non-negative sizes, got {obs_shape}")
        self.capacity = int(capacity)
        self.obs_shape = obs_shape
        self.device = torch.device(device)
        self.obs_dtype = obs_dtype
        self.generator = generator
        self.obs = torch.zeros(
            (self.capacity, *obs_shape), dtype=obs_dtype, device=self.device
        )
        self.next_obs = torch.zeros_like(self.obs)
        self.action = torch.zeros(self.capacity, dtype=torch.int64, device=self.device)
        self.reward = torch.zeros(
            self.capacity, dtype=torch.float32, device=self.device
        )
        self.terminated = torch.zeros(
            self.capacity, dtype=torch.float32, device=self.device
        )
        self.pos = 0
        self._size = 0

    def __len__(self) -> int:
        """Transitions stored so far, at most :attr:`capacity`."""
        return self._size

    def _obs_tensor(self, obs: ArrayLike, name: str) -> torch.Tensor:
        tensor = _as_tensor(obs, self.obs_dtype, self.device)
        if tuple(tensor.shape) != self.obs_shape:
            raise ValueError(
                f"{name} has shape {tuple(tensor.shape)}, expected {self.obs_shape}"
            )
        return tensor

    def add(
        self,
        obs: ArrayLike,
        action: SupportsInt,
        reward: SupportsFloat,
        next_obs: ArrayLike,
        terminated: object,
    ) -> None:
        """Store one transition in slot :attr:`pos`, then advance it (mod capacity);
        ``terminated`` is false for a truncated episode."""
        obs_t = self._obs_tensor(obs, "obs")
        next_obs_t = self._obs_tensor(next_obs, "next_obs")
        pos = self.pos
        self.obs[pos] = obs_t
        self.next_obs[pos] = next_obs_t
        self.action[pos] = int(action)
        self.reward[pos] = float(reward)
        self.terminated[pos] = float(bool(terminated))
        self.pos = (pos + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)

    def _check_sample(self, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if self._size == 0:
            raise ValueError(
                "cannot sample from an empty replay buffer; add transitions first"
            )

    def _gather(self, indices: torch.Tensor, weights: torch.Tensor) -> Batch:
        """Gather one batch: ``indices`` ``(B,)`` int64 on :attr:`device`."""
        return Batch(
            obs=self.obs[indices],
            action=self.action[indices],
            reward=self.reward[indices],
            next_obs=self.next_obs[indices],
            terminated=self.terminated[indices],
            indices=indices,
            weights=weights,
        )

    def sample(self, batch_size: int) -> Batch:
        """``batch_size`` transitions drawn uniformly, with replacement, from those stored.

        Raises:
            ValueError: if the buffer is empty or ``batch_size < 1``.
        """
        self._check_sample(batch_size)
        draw_device = (
            self.generator.device if self.generator is not None else self.device
        )
        indices = torch.randint(
            0, self._size, (batch_size,), generator=self.generator, device=draw_device
        ).to(self.device)
        weights = torch.ones(batch_size, dtype=torch.float32, device=self.device)
        return self._gather(indices, weights)


# -- replay for learning from pixels: each frame stored once, as uint8 --------


class FrameBatch(NamedTuple):
    """``B`` sampled transitions on the memory's device: ``(B, k, H, W)`` uint8
    stacks (oldest frame first), and ``steps`` from ``obs`` to ``next_obs`` (1
    unless ``n_step > 1``), by which the target discounts: ``gamma ** steps``."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    steps: torch.Tensor


class FrameReplayMemory:
    """Frames stored once per slot; stacks of ``stack`` frames rebuilt on sampling.

    Per step of all lanes at once::

        memory.begin(first_frames)                 # every lane starts an episode
        memory.step(actions, rewards, terminated, next_frames)
        memory.begin(reset_frames, lanes=done)     # lanes whose episode ended

    ``capacity`` slots are split evenly between the ``lanes``; ``generator``
    (on ``device``) is a fresh unseeded one if omitted.
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
                f"capacity {capacity} gives {slots} slots per lane for {lanes} lanes; "
                f"need at least stack + 1 = {stack + 1}"
            )
        self.device = torch.device(device)
        self.stack, self.lanes, self.slots = stack, lanes, slots
        self.frame_shape = tuple(frame_shape)
        shape = (lanes, slots)
        self.frames = torch.zeros(shape + self.frame_shape, dtype=torch.uint8, device=self.device)
        self.action = torch.zeros(shape, dtype=torch.int64, device=self.device)
        self.reward = torch.zeros(shape, dtype=torch.float32, device=self.device)
        self.terminated = torch.zeros(shape, dtype=torch.float32, device=self.device)
        self.acted = torch.zeros(shape, dtype=torch.bool, device=self.device)
        """slot holds a transition: an action was taken from its frame"""
        self.t = torch.zeros(shape, dtype=torch.int64, device=self.device)
        """the slot's frame's step within its episode (0 = first frame)"""
        self.serial = torch.full(shape, -1, dtype=torch.int64, device=self.device)
        """how many frames the lane had written before this one (-1: never written)"""
        self.written = torch.zeros(lanes, dtype=torch.int64, device=self.device)
        self.started = torch.zeros(lanes, dtype=torch.bool, device=self.device)
        self._lane_ids = torch.arange(lanes, device=self.device)
        self.generator = generator if generator is not None else torch.Generator(self.device)

    # -- writing -----------------------------------------------------------------

    def _frames_tensor(self, frames: np.ndarray | torch.Tensor, n: int) -> torch.Tensor:
        x = torch.as_tensor(frames).to(self.device)
        if x.dtype != torch.uint8:
            raise TypeError(f"frames must be uint8 (0..255), got {x.dtype}")
        if tuple(x.shape) != (n, *self.frame_shape):
            raise ValueError(
                f"expected frames of shape {(n, *self.frame_shape)}, got {tuple(x.shape)}"
            )
        return x

    def _write(self, lanes: torch.Tensor, frames: torch.Tensor, t: torch.Tensor) -> None:
        slot = self.written[lanes] % self.slots
        self.frames[lanes, slot] = frames
        self.t[lanes, slot] = t
        self.serial[lanes, slot] = self.written[lanes]
        self.acted[lanes, slot] = False
        self.written[lanes] += 1

    def begin(
        self, frames: np.ndarray | torch.Tensor, lanes: np.ndarray | torch.Tensor | None = None
    ) -> None:
        """Start an episode in ``lanes`` (all lanes if omitted; or a boolean mask
        or index array) with its first frames, ``(len(lanes), H, W)`` uint8."""
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
        actions: np.ndarray | torch.Tensor,
        rewards: np.ndarray | torch.Tensor,
        terminated: np.ndarray | torch.Tensor,
        next_frames: np.ndarray | torch.Tensor,
    ) -> None:
        """Record one step of every lane: the action taken from each lane's latest
        frame, its reward, whether it terminated, and the frame that followed."""
        if not bool(self.started.all()):
            raise RuntimeError("call begin() with every lane's first frame before step()")
        lanes = self._lane_ids
        head = (self.written - 1) % self.slots
        self.action[lanes, head] = torch.as_tensor(actions, device=self.device).long()
        self.reward[lanes, head] = torch.as_tensor(rewards, device=self.device).float()
        self.terminated[lanes, head] = torch.as_tensor(terminated, device=self.device).float()
        self.acted[lanes, head] = True
        t_next = self.t[lanes, head] + 1
        self._write(lanes, self._frames_tensor(next_frames, self.lanes), t_next)

    # -- reading -----------------------------------------------------------------

    def _sampleable(self, lane: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
        """Transitions whose stacks' frames are all still in the ring."""
        serial, t = self.serial[lane, slot], self.t[lane, slot]
        oldest_needed = serial - torch.clamp(t, max=self.stack - 1)
        oldest_kept = self.written[lane] - self.slots
        return self.acted[lane, slot] & (serial >= 0) & (oldest_needed >= oldest_kept)

    def __len__(self) -> int:
        """Transitions that can be sampled now."""
        lane = self._lane_ids.repeat_interleave(self.slots)
        slot = torch.arange(self.slots, device=self.device).repeat(self.lanes)
        return int(self._sampleable(lane, slot).sum())

    def stacks(self, lane: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
        """``(B, k, H, W)`` stacks ending at the frames in ``(lane, slot)``."""
        back = torch.arange(self.stack - 1, -1, -1, device=self.device)  # k-1 .. 0
        t = self.t[lane, slot]
        offset = torch.minimum(back.unsqueeze(0), t.unsqueeze(1))  # repeat first frame
        slots = (slot.unsqueeze(1) - offset) % self.slots
        return self.frames[lane.unsqueeze(1), slots]

    def sample(self, batch_size: int, n_step: int = 1, gamma: float = 1.0) -> FrameBatch:
        """``batch_size`` transitions drawn uniformly from the sampleable ones.

        With ``n_step > 1`` each transition runs on for up to ``n_step`` steps
        of its episode: ``reward`` is the discounted sum of their rewards,
        ``next_obs`` the stack after the last of them, and ``steps`` how many
        there were (fewer where the episode terminated, was cut off, or its
        later steps are not written yet).
        """
        if n_step < 1:
            raise ValueError(f"n_step must be >= 1, got {n_step}")
        if len(self) == 0:
            raise RuntimeError("no transition to sample yet: step() at least once")
        lanes, slots = [], []
        have = 0
        while have < batch_size:  # rejection: almost every slot is sampleable
            draw = 2 * (batch_size - have) + 8
            lane = torch.randint(
                self.lanes, (draw,), device=self.device, generator=self.generator
            )
            slot = torch.randint(
                self.slots, (draw,), device=self.device, generator=self.generator
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
            # An episode's last frame (terminal or cut off) and the newest frame
            # carry no action: the sum stops there.
            later = (slot + j) % self.slots
            going &= self.acted[lane, later]
            reward += going * gamma**j * self.reward[lane, later]
            steps += going
            terminated = torch.where(going, self.terminated[lane, later], terminated)
        return FrameBatch(
            obs=self.stacks(lane, slot),
            action=self.action[lane, slot],
            reward=reward,
            next_obs=self.stacks(lane, (slot + steps.long()) % self.slots),
            terminated=terminated,
            steps=steps,
        )

    # -- size --------------------------------------------------------------------

    def bytes_per_slot(self) -> int:
        """Bytes one slot occupies: its frame and its fields."""
        fields = (self.action, self.reward, self.terminated, self.acted, self.t, self.serial)
        return int(self.frames[0, 0].nbytes + sum(f.element_size() for f in fields))

    @staticmethod
    def naive_bytes_per_transition(frame_shape: tuple[int, int], stack: int) -> int:
        """Bytes of the naive layout: ``obs`` and ``next_obs`` as float32 stacks,
        plus an int64 action, float32 reward and float32 terminated flag."""
        pixels = int(np.prod(frame_shape))
        return 2 * stack * pixels * 4 + 8 + 4 + 4
