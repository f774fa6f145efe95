"""Shipped agents: a folder that ``python -m rlbook evaluate`` can load.

A shipped folder (:mod:`rlbook.safeload`) whose manifest, ``agent.json``, also
names the environment (``env_id``); its ``kind`` says how to rebuild the greedy
policy from ``spec`` and the weights. Introduced in *Tabular SARSA and
Q-learning on CartPole*.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from .safeload import Layout, load_folder, save_folder


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
_BUILDERS: dict[str, Builder] = {}
# Kinds whose builder lives in a heavier module, imported only when needed.
_LAZY_KINDS = {
    "q-table": "rlbook.chapters.tabular_cartpole",
    "q-network": "rlbook.chapters.dqn_state",
    "pixel-q-network": "rlbook.chapters.dqn_pixels",
    "pong-pg": "rlbook.chapters.pong",
    "pong-actor-critic": "rlbook.chapters.pong_ppo",
}


def _builder(kind: str) -> Builder | None:
    if kind not in _BUILDERS and kind in _LAZY_KINDS:
        importlib.import_module(_LAZY_KINDS[kind])
    return _BUILDERS.get(kind)


def known_kinds() -> list[str]:
    """Every agent kind that :func:`load_agent` can rebuild."""
    return sorted({*_BUILDERS, *_LAZY_KINDS})


def register_kind(kind: str) -> Callable[[Builder], Builder]:
    """Register how to rebuild a policy of ``kind`` from ``(spec, weights)``."""

    def decorator(builder: Builder) -> Builder:
        _BUILDERS[kind] = builder
        return builder

    return decorator


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
    if _builder(kind) is None:
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
        find=_builder,
        known=known_kinds,
        build=lambda builder, manifest, weights: builder(manifest["spec"], weights),
    )
    spec = dict(manifest["spec"])
    return Agent(Path(path), manifest["kind"], manifest["env_id"], policy, spec)
