"""Replay storage: a uniform ring buffer, a prioritized one (Schaul et al., 2016),
and a memory of uint8 frames that stores each frame once.

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
buffers) and *Deep Q-learning from CartPole's pixels* (the frame memory).
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
    for :meth:`PrioritizedReplayBuffer.update_priorities`), float32 ``reward``,
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


def _as_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


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


class SumTree:
    """A binary tree of non-negative leaf priorities, each node the sum of its
    children; setting or drawing a batch of leaves takes ``O(log n)`` NumPy ops.

    One flat float64 array :attr:`tree`: node 1 is the root, node ``k`` has
    children ``2k`` and ``2k + 1``. Leaves are padded to a power of two ``L``
    (leaf ``i`` is node ``L + i``); the padding stays zero, never returned.
    """

    def __init__(self, capacity: int) -> None:
        if int(capacity) < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = int(capacity)
        self._first_leaf = (
            1 << (self.capacity - 1).bit_length()
        )  # power of two >= capacity
        self._depth = self._first_leaf.bit_length() - 1  # edges from the root to a leaf
        self.tree = np.zeros(2 * self._first_leaf, dtype=np.float64)

    @property
    def total(self) -> float:
        """Sum of all priorities (the root)."""
        return float(self.tree[1])

    def _check_indices(self, indices: ArrayLike) -> np.ndarray:
        array = np.asarray(indices)
        if array.size and not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"leaf indices must be integers, got dtype {array.dtype}")
        array = array.astype(np.int64, copy=False)
        if array.size and (array.min() < 0 or array.max() >= self.capacity):
            raise ValueError(
                f"leaf indices must lie in [0, {self.capacity}), "
                f"got values from {array.min()} to {array.max()}"
            )
        return array

    def update(self, indices: ArrayLike, priorities: ArrayLike) -> None:
        """Set leaves ``indices`` (``(K,)``) to ``priorities`` (``(K,)``, >= 0).

        When an index appears more than once, its last priority wins.
        """
        indices = self._check_indices(indices).ravel()
        priorities = np.asarray(priorities, dtype=np.float64).ravel()
        if indices.shape != priorities.shape:
            raise ValueError(
                f"got {indices.size} indices but {priorities.size} priorities; "
                "they must pair up one to one"
            )
        if indices.size == 0:
            return
        if not np.all(np.isfinite(priorities)) or priorities.min() < 0:
            raise ValueError("priorities must be finite and non-negative")
        tree = self.tree
        if indices.size == 1:
            # One leaf (every `add`): a plain walk up is ~10x cheaper than array calls.
            node = int(indices[0]) + self._first_leaf
            tree[node] = priorities[0]
            node //= 2
            while node >= 1:
                tree[node] = tree[2 * node] + tree[2 * node + 1]
                node //= 2
            return
        # NumPy leaves the winner of duplicate fancy-index writes unspecified:
        # keep each index's last occurrence explicitly (first one in the reversed array).
        unique, first_in_reversed = np.unique(indices[::-1], return_index=True)
        nodes = unique + self._first_leaf
        tree[nodes] = priorities[::-1][first_in_reversed]
        for _ in range(self._depth):
            nodes = nodes // 2
            # Siblings share a parent; the repeated writes carry the same value.
            tree[nodes] = tree[2 * nodes] + tree[2 * nodes + 1]

    def priorities(self, indices: ArrayLike) -> np.ndarray:
        """Priorities of leaves ``indices``, same shape, float64."""
        return self.tree[self._check_indices(indices) + self._first_leaf]

    def __getitem__(self, indices: ArrayLike) -> np.ndarray:
        """``tree[i]`` is :meth:`priorities` of ``i``."""
        return self.priorities(indices)

    def find(self, values: ArrayLike) -> np.ndarray:
        """The leaf (int64, shaped like ``values``) whose interval
        ``[sum(p[:i]), sum(p[:i+1]))`` holds each value in ``[0, total]``. A
        zero-priority leaf is never returned, even for ``value == total`` or after
        rounding: that goes to the last leaf with a positive priority."""
        values = np.asarray(values, dtype=np.float64)
        total = self.total
        if total <= 0:
            raise ValueError("cannot search a sum tree whose priorities are all zero")
        if values.size and not (values.min() >= 0 and values.max() <= total):
            raise ValueError(f"values must lie in [0, total={total}]")
        tree = self.tree
        nodes = np.ones(values.shape, dtype=np.int64)
        for _ in range(self._depth):
            left = 2 * nodes
            left_sum = tree[left]
            # Go right when the value lies past the left subtree, unless the right
            # subtree is empty: only value == total or rounding can ask for that.
            go_right = (values >= left_sum) & (tree[left + 1] > 0)
            values = np.where(go_right, values - left_sum, values)
            nodes = left + go_right
        return nodes - self._first_leaf


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized replay (Schaul et al., 2016).

    The sum tree holds ``p_i^alpha``, ``p_i = |td_error_i| + eps``. A new
    transition gets ``max_priority`` (the largest ``p_i`` seen, never
    decreasing; 1.0 at first), so it is replayed at least once. ``alpha=0`` is
    uniform; ``beta`` is the importance-sampling correction, 0 (none) to 1.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        device: torch.device | str = "cpu",
        obs_dtype: torch.dtype = torch.float32,
        *,
        alpha: float = 0.6,
        beta: float = 0.4,
        eps: float = 1e-6,
        seed: int | None = None,
    ) -> None:
        super().__init__(capacity, obs_shape, device, obs_dtype)
        if alpha < 0:
            raise ValueError(f"alpha must be non-negative, got {alpha}")
        self._check_beta(beta)
        if eps <= 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.eps = float(eps)
        self.tree = SumTree(self.capacity)
        self.max_priority = 1.0
        self.rng = np.random.default_rng(seed)

    @staticmethod
    def _check_beta(beta: float) -> None:
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must lie in [0, 1], got {beta}")

    def add(
        self,
        obs: ArrayLike,
        action: SupportsInt,
        reward: SupportsFloat,
        next_obs: ArrayLike,
        terminated: object,
    ) -> None:
        """As :meth:`ReplayBuffer.add`; the new transition gets the maximum priority."""
        slot = self.pos
        super().add(obs, action, reward, next_obs, terminated)
        self.tree.update(np.array([slot]), np.array([self.max_priority**self.alpha]))

    def sample(self, batch_size: int, beta: float | None = None) -> Batch:
        """``batch_size`` transitions drawn in proportion to their priority.

        Stratified: ``[0, total)`` is cut into ``batch_size`` equal segments
        and one value is drawn uniformly in each.

        Args:
            batch_size: transitions to draw (with replacement).
            beta: overrides :attr:`beta` for this call.

        Returns:
            A :class:`Batch` whose ``weights`` are ``(N P(i))^(-beta)``
            divided by their maximum over the batch (``N = len(self)``).
        """
        self._check_sample(batch_size)
        beta = self.beta if beta is None else float(beta)
        self._check_beta(beta)
        total = self.tree.total
        segment = total / batch_size
        values = (np.arange(batch_size) + self.rng.random(batch_size)) * segment
        indices = self.tree.find(
            np.minimum(values, total)
        )  # rounding may overshoot total
        probabilities = self.tree.priorities(indices) / total
        weights = (len(self) * probabilities) ** -beta
        weights /= weights.max()
        return self._gather(
            torch.from_numpy(indices).to(self.device),
            torch.from_numpy(weights.astype(np.float32)).to(self.device),
        )

    def update_priorities(self, indices: ArrayLike, td_errors: ArrayLike) -> None:
        """Set the priority of slots ``indices`` ``(K,)`` from their new ``td_errors`` ``(K,)``.

        Priority ``(|td_error| + eps)^alpha``. Tensors may be on any device
        and may require grad. A repeated index keeps its last TD error.

        Raises:
            ValueError: for mismatched lengths, slots not yet filled, or
                non-finite TD errors (often a diverging loss).
        """
        index_array = _as_numpy(indices).ravel()
        td_array = _as_numpy(td_errors).astype(np.float64).ravel()
        if index_array.shape != td_array.shape:
            raise ValueError(
                f"got {index_array.size} indices but {td_array.size} TD errors; "
                "they must pair up one to one"
            )
        if index_array.size == 0:
            return
        if index_array.min() < 0 or index_array.max() >= len(self):
            raise ValueError(
                f"indices must be filled slots in [0, {len(self)}), "
                f"got values from {index_array.min()} to {index_array.max()}"
            )
        if not np.all(np.isfinite(td_array)):
            raise ValueError("TD errors must be finite; is the loss diverging?")
        raw = np.abs(td_array) + self.eps
        self.tree.update(index_array, raw**self.alpha)
        self.max_priority = max(self.max_priority, float(raw.max()))


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
