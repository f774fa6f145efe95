"""What the DQN chapters share: the Q-network (the loops, the TD loss, the
lecture's replay memory and the greedy policy of a shipped Q-network agent,
``QNetworkPolicy``, are on the pages). Introduced in *Deep Q-learning on
CartPole's state*.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class QNetwork(nn.Module):
    """An MLP from observations ``(B, obs_dim)`` to action values ``(B, n_actions)``;
    ``batch_norm`` after each hidden layer (the lecture's net); ``dueling``:
    ``Q = V + A - mean(A)`` (Wang et al., 2016)."""

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden: Sequence[int] = (128, 128),
        *,
        batch_norm: bool = False,
        dueling: bool = False,
    ) -> None:
        super().__init__()
        self.spec = {
            "obs_dim": int(obs_dim),
            "n_actions": int(n_actions),
            "hidden": [int(h) for h in hidden],
            "batch_norm": bool(batch_norm),
            "dueling": bool(dueling),
        }
        layers: list[nn.Module] = []
        width = obs_dim
        for size in hidden:
            layers.append(nn.Linear(width, size))
            if batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers.append(nn.ReLU())
            width = size
        self.body = nn.Sequential(*layers)
        self.dueling = dueling
        if dueling:
            self.value = nn.Linear(width, 1)
            self.advantage = nn.Linear(width, n_actions)
        else:
            self.head = nn.Linear(width, n_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        features = self.body(obs)
        if not self.dueling:
            return self.head(features)
        advantage = self.advantage(features)
        return self.value(features) + advantage - advantage.mean(dim=-1, keepdim=True)
