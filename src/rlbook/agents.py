"""Shipped agents: a folder that ``python -m rlbook evaluate`` can load.

``agent.json`` (format, ``kind``: how to rebuild the greedy policy from ``spec``
and the weights, ``env_id``, SHA-256 of every file, checked on load; folders
written before it have none), ``weights.pt`` (``weights_only=True``) and
``weights.provenance.json``. Introduced in *Tabular SARSA and Q-learning on CartPole*.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from .checkpoint import CheckpointError, atomic_write, load_checkpoint, save_checkpoint
from .safeload import (
    check_listed_digests,
    file_sha256,
    load_failure,
    non_finite,
    write_files,
)

FORMAT = "rlbook-agent/1"
MANIFEST = "agent.json"
WEIGHTS = "weights.pt"
PROVENANCE = "weights.provenance.json"


class ArtifactError(ValueError):
    """An agent folder that is missing or malformed."""


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
    folder = Path(path)
    save_checkpoint(folder / WEIGHTS, weights, provenance)
    digests = {
        WEIGHTS: file_sha256(folder / WEIGHTS),
        PROVENANCE: file_sha256(folder / PROVENANCE),
        **write_files(folder, files),
    }
    # Written last, the manifest lists the set: a folder that an interrupted
    # export left with a mix of old and new files fails its check on load.
    manifest = {
        "format": FORMAT,
        "kind": kind,
        "env_id": env_id,
        "spec": dict(spec),
        "sha256": digests,
    }
    text = json.dumps(manifest, indent=2) + "\n"
    atomic_write(folder / MANIFEST, lambda handle: handle.write(text.encode()))
    return folder


def _read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of ``folder``, checked for the types :func:`load_agent` relies on."""
    from .safeload import read_manifest

    manifest_path = folder / MANIFEST
    manifest = read_manifest(folder, MANIFEST, FORMAT, "an agent folder", ArtifactError)
    missing = [key for key in ("kind", "env_id", "spec") if key not in manifest]
    if missing:
        raise ArtifactError(f"{str(manifest_path)!r} lacks {', '.join(missing)}")
    for key, kind in (("kind", str), ("env_id", str), ("spec", dict)):
        if not isinstance(manifest[key], kind):
            raise ArtifactError(
                f"{str(manifest_path)!r}: {key} must be a JSON "
                f"{'string' if kind is str else 'object'}, not {manifest[key]!r:.60}"
            )
    return manifest


def _check_tensors(weights: Mapping[str, Any], path: Path, prefix: str = "") -> None:
    """Every value of ``weights`` (nested dicts allowed) must be a tensor."""
    for key, value in weights.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _check_tensors(value, path, f"{name}.")
        elif not isinstance(value, torch.Tensor):
            raise ArtifactError(
                f"{str(path)!r} holds a {type(value).__name__} under {name!r}, not a "
                "tensor: it is not the weights of an agent; restore it from the "
                "repository or export the agent again"
            )


def one_line(error: BaseException) -> str:
    """``error``'s whole message on one line (torch's size mismatches span several)."""
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip())


def load_agent(path: str | Path) -> Agent:
    """Load an agent folder written by :func:`save_agent`; :class:`ArtifactError`
    says what is missing or malformed and how to fix it."""
    folder = Path(path)
    if not folder.is_dir():
        raise ArtifactError(
            f"no agent folder at {str(folder)!r}; shipped agents live under artifacts/ "
            "(for example artifacts/q-learning)"
        )
    manifest = _read_manifest(folder)
    manifest_path = folder / MANIFEST
    kind = manifest["kind"]
    builder = _builder(kind)
    if builder is None:
        raise ArtifactError(
            f"{str(manifest_path)!r} has unknown kind {kind!r}; known: {', '.join(known_kinds())}"
        )
    try:
        weights = load_checkpoint(folder / WEIGHTS)
    except CheckpointError as error:
        raise ArtifactError(
            load_failure(
                folder / WEIGHTS,
                error,
                "Restore the folder from the repository or export the agent again.",
            )
        ) from error
    _check_tensors(weights, folder / WEIGHTS)
    bad = non_finite(weights)
    if bad:
        raise ArtifactError(
            f"{str(folder / WEIGHTS)!r}: {bad!r} holds NaN or infinite values, which "
            "no trained agent has; restore the folder from the repository or export "
            "the agent again"
        )
    try:
        policy = builder(manifest["spec"], weights)
    except ArtifactError:
        raise
    except Exception as error:  # a spec or weights of another shape or type
        raise ArtifactError(
            f"{str(folder)!r}: spec and weights do not fit kind {kind!r} "
            f"({type(error).__name__}: {one_line(error)})"
        ) from error
    # Last, so that a damaged, foreign or misshapen file is named as such:
    # weights that load and fit, but are not those exported.
    problem = check_listed_digests(manifest_path, manifest.get("sha256"))
    if problem:
        raise ArtifactError(problem)
    return Agent(folder, kind, manifest["env_id"], policy, dict(manifest["spec"]))
