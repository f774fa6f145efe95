"""A replay memory for learning from pixels: each frame stored once, as uint8.

A stack of the last ``k`` frames is the agent's state, and consecutive states
share ``k - 1`` frames. Storing every transition's ``obs`` and ``next_obs`` as
float32 stacks keeps each frame ``2k`` times over at four bytes a pixel. This
memory keeps each frame once, at one byte a pixel, and rebuilds stacks by
index when it samples.

Layout: ``lanes`` rings (one per environment of a vector environment) of
``capacity // lanes`` slots. A slot holds one frame and, once the agent acted
on it, the action, the reward and whether the episode terminated. An episode of
``T`` steps fills ``T + 1`` slots: its last frame keeps no action, so that a
transition cut off by a time limit still finds its next state (the target
bootstraps from it), and no stack ever mixes two episodes. Frames from before
an episode's first are replaced by its first frame.

A transition is sampled only while every frame its two stacks need is still in
the ring (the oldest ones are overwritten first).

Introduced in the chapter *Deep Q-learning from CartPole's pixels*.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class FrameBatch(NamedTuple):
    """``B`` sampled transitions, on the memory's device.

    Attributes:
        obs: ``(B, k, H, W)`` uint8 frame stacks, oldest frame first.
        action: ``(B,)`` int64.
        reward: ``(B,)`` float32.
        next_obs: ``(B, k, H, W)`` uint8.
        terminated: ``(B,)`` float32, 1.0 where the episode reached a terminal
            state (not where it was truncated).
        steps: ``(B,)`` float32, the steps from ``obs`` to ``next_obs`` (1 unless
            sampled with ``n_step > 1``): the target discounts by
            ``gamma ** steps``.
    """

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

    Args:
        capacity: slots in all, split evenly between the lanes.
        frame_shape: ``(H, W)`` of one preprocessed frame.
        stack: frames per state, ``k``.
        lanes: environments written side by side (a vector environment's size).
        device: where the frames live and batches are built.
        generator: the torch generator sampling draws from (its device must
            be ``device``); a fresh unseeded one if omitted.
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
