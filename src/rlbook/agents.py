"""Shipped agents: a :mod:`rlbook.safeload` folder, which ``python -m rlbook
evaluate`` can load, whose ``agent.json`` also names the environment (``env_id``).
Introduced in *Tabular SARSA and Q-learning on CartPole*."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from .safeload import Kinds, Layout, load_folder, save_folder


class ArtifactError(ValueError):
    """An agent folder that is missing or malformed."""


AGENT = Layout(
    "rlbook-agent/1", "agent.json", "agent", "q-learning", ArtifactError, ("env_id",)
)
MANIFEST = AGENT.manifest


class Policy(Protocol):
    """A greedy policy: an observation in, an action out (or a batch of each)."""

    def act(self, obs: np.ndarray) -> int: ...

    def act_batch(self, obs: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Agent:
    """A loaded agent folder."""

    path: Path
    kind: str
    env_id: str
    policy: Policy
    spec: dict[str, Any]


Builder = Callable[[Mapping[str, Any], Mapping[str, torch.Tensor]], Policy]
# Each kind's builder lives on the page that trains it; register_kind(kind)
# decorates it there.
KINDS = Kinds(
    {
        "q-table": "rlbook.chapters.tabular_cartpole",
        "q-network": "rlbook.chapters.dqn_state",
        "pixel-q-network": "rlbook.chapters.dqn_pixels",
        "pong-pg": "rlbook.chapters.pong",
        "pong-actor-critic": "rlbook.chapters.pong_ppo",
    }
)
register_kind, known_kinds = KINDS.register, KINDS.known


def save_agent(
    path: str | Path,
    *,
    kind: str,
    env_id: str,
    spec: Mapping[str, Any],
    weights: Mapping[str, torch.Tensor],
    provenance: Mapping[str, Any],
    files: Mapping[str, bytes] | None = None,
) -> Path:
    """Write an agent folder that :func:`load_agent` (and the CLI) can read;
    ``files`` (name -> bytes) go in before the manifest, which lists their SHA-256."""
    if KINDS.find(kind) is None:
        raise ArtifactError(
            f"unknown agent kind {kind!r}; known: {', '.join(known_kinds())}"
        )
    return save_folder(
        path,
        AGENT,
        kind=kind,
        spec=spec,
        weights=weights,
        provenance=provenance,
        files=files,
        env_id=env_id,
    )


def load_agent(path: str | Path) -> Agent:
    """Load an agent folder written by :func:`save_agent`; :class:`ArtifactError`
    says what is missing or malformed and how to fix it."""
    manifest, policy = load_folder(
        path,
        AGENT,
        kinds=KINDS,
        build=lambda builder, manifest, weights: builder(manifest["spec"], weights),
    )
    spec = dict(manifest["spec"])
    return Agent(Path(path), manifest["kind"], manifest["env_id"], policy, spec)
