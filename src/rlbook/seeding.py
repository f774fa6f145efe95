"""The book's seeds: every seed constant, and independent random streams
derived from a run's seed (seeding every global generator at once,
``seed_everything``, is on the page *How to run this book*). No two purposes
share a seed: ``tests/test_seeding.py`` checks that the ranges below are
disjoint.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

# CartPole episodes: the environment's reset seeds, one per episode.
VALIDATION_SEED = 5_000
"""Validation episodes (choosing checkpoints) reset with 5000, 5001, ..."""
TEST_SEED = 10_000
"""Test episodes (every score a chapter reports) reset with 10000, 10001, ...:
never used in training or validation."""
HOLDOUT_SEED = 30_000
"""Reserved for ``tests/test_artifacts.py`` (30000, 30001, ...): no chapter
trains, validates, chooses or reports on these, so a shipped agent's score on
them is independent of everything that produced it."""
TRAIN_SEED_BASE = 1_000_000
"""Training episodes reset from here up (see :func:`train_seed`)."""

# Pong games: the seed of the action stream (the emulators are deterministic;
# the policy's sampled actions are the randomness).
PONG_TEST_SEED = 20_000
"""The exported agents' test games (the chapter's table); the chapter's live
games use ``PONG_TEST_SEED + 1`` and ``+ 2``. Runs train on seeds below 100 and
validate on a stream per update."""
PONG_HOLDOUT_SEED = 31_337
"""Reserved for ``tests/test_artifacts.py``'s games of a shipped Pong agent."""


def train_seed(run_seed: int, episode: int) -> int:
    """Reset seed of training episode ``episode`` of run ``run_seed``:
    ``1_000_000 * (run_seed + 1) + episode``, disjoint from the validation,
    test and hold-out episodes for runs of fewer than a million episodes."""

    if episode >= 1_000_000 or run_seed < 0:
        raise ValueError(
            f"train_seed needs 0 <= episode < 1e6 and run_seed >= 0, got {episode}"
        )
    return TRAIN_SEED_BASE * (run_seed + 1) + episode


def stream_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed for one ``purpose`` (``"init"``, ``"replay"``...) of run ``seed``:
    ``SeedSequence(seed, spawn_key=(crc32(purpose),))``, so purposes are
    independent and a new one changes none of the others."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if not purpose:
        raise ValueError("purpose must be a non-empty name, e.g. 'explore'")
    key = zlib.crc32(purpose.encode("utf-8"))
    state = np.random.SeedSequence(seed, spawn_key=(key,)).generate_state(1, np.uint64)
    return int(state[0] >> np.uint64(1))


def numpy_stream(seed: int, purpose: str) -> np.random.Generator:
    """A NumPy generator for one ``purpose`` of run ``seed`` (see :func:`stream_seed`)."""
    return np.random.default_rng(stream_seed(seed, purpose))


def torch_stream(
    seed: int, purpose: str, device: torch.device | str = "cpu"
) -> torch.Generator:
    """A torch generator on ``device`` for one ``purpose`` of run ``seed``."""
    return torch.Generator(device=device).manual_seed(stream_seed(seed, purpose))
