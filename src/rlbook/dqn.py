"""What the DQN chapters share: the Q-network and a shipped Q-network agent's
policy (the loops, the TD loss and the lecture's replay memory are on the pages).
Introduced in *Deep Q-learning on CartPole's state*.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .agents import register_kind


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


@dataclass(frozen=True)
class QNetworkPolicy:
    """Greedy policy of a Q-network (evaluation mode, no gradients)."""

    q_net: QNetwork

    def act(self, obs: np.ndarray) -> int:
        return int(self.act_batch(obs[None])[0])

    def act_batch(self, obs: np.ndarray) -> np.ndarray:
        """Greedy actions of a batch ``(N, obs_dim) -> (N,)`` as a NumPy array,
        computed on the device of the network's parameters (CPU without any)."""
        weight = next(self.q_net.parameters(), None)
        device = weight.device if weight is not None else torch.device("cpu")
        with torch.inference_mode():
            values = self.q_net(
                torch.as_tensor(obs, dtype=torch.float32, device=device)
            )
        return values.argmax(dim=1).cpu().numpy()


@register_kind("q-network")
def _build_q_network(
    spec: Mapping[str, Any], weights: Mapping[str, Any]
) -> QNetworkPolicy:
    arch = dict(spec["network"])
    q_net = QNetwork(
        arch["obs_dim"],
        arch["n_actions"],
        arch["hidden"],
        batch_norm=arch["batch_norm"],
        dueling=arch["dueling"],
    )
    q_net.load_state_dict(weights["q_net"])
    q_net.eval()
    return QNetworkPolicy(q_net)
