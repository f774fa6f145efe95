"""Uniform replay: a ring buffer of transitions on a device (prioritized replay
subclasses it in ``rlbook.chapters.dqn_state``). ``terminated`` is 1.0 only where
the episode reached a terminal state; a truncated one (time limit) stores 0.0, so
its target still bootstraps. Introduced in *Deep Q-learning on CartPole's state*."""

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
        self.terminated = torch.zeros_like(self.reward)
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
        """``batch_size`` transitions drawn uniformly, with replacement, from those
        stored; ValueError if the buffer is empty or ``batch_size < 1``."""
        self._check_sample(batch_size)
        draw_device = self.device if self.generator is None else self.generator.device

        indices = torch.randint(
            0, self._size, (batch_size,), generator=self.generator, device=draw_device
        ).to(self.device)
        weights = torch.ones(batch_size, dtype=torch.float32, device=self.device)
        return self._gather(indices, weights)
