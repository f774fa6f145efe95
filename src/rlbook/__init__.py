"""rlbook: the small helper package every chapter of the book imports.

Submodules are imported on first use, so ``import rlbook`` stays cheap:

========================  =====================================================
``rlbook.budget``         the run's budget (``RLBOOK_BUDGET``: smoke, ci, full)
``rlbook.device``         CUDA, then MPS, then CPU; a one-line banner
``rlbook.seeding``        seed Python, NumPy, torch and an environment at once
``rlbook.paths``          repository root, ``artifacts/``, data folder
``rlbook.envs``           environment factory with clear errors
``rlbook.plotting``       the book's plot theme, smoothing, embedded animations
``rlbook.checkpoint``     atomic, safe checkpoints with provenance
``rlbook.tabular``        discretizing continuous states for Q-tables
``rlbook.replay``         replay buffers: uniform ring buffer, prioritized sum tree
``rlbook.dqn``            Q-networks, the TD loss, the lecture's replay memory
``rlbook.agents``         shipped agent folders
``rlbook.evaluate``       seeded greedy evaluation
``rlbook.report``         the budget-and-device note, glue, progress bars
``rlbook.data``           CIFAR-10, MNIST and IMDb in their official formats
``rlbook.projects``       the PyTorch projects: models, training steps, deployment
``rlbook.pong``           Pong from pixels: preprocessing, returns, policies, rollouts
========================  =====================================================
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = {
    "agents",
    "budget",
    "checkpoint",
    "data",
    "device",
    "envs",
    "evaluate",
    "dqn",
    "paths",
    "plotting",
    "pong",
    "projects",
    "replay",
    "report",
    "seeding",
    "tabular",
}


def __getattr__(name: str) -> object:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBMODULES])
