"""rlbook: the small helper package every chapter of the book imports.

Submodules are imported on first use, so ``import rlbook`` stays cheap:

========================  =====================================================
``rlbook.budget``         the run's budget (``RLBOOK_BUDGET``: smoke, ci, full)
``rlbook.device``         CUDA, then MPS, then CPU; a one-line banner
``rlbook.seeding``        every seed constant; independent streams
``rlbook.paths``          repository root, ``artifacts/``, data folder
``rlbook.envs``           environment factory with clear errors
``rlbook.plotting``       the book's plot theme, smoothing, embedded animations
``rlbook.report``         the budget-and-device note, glue, progress bars
``rlbook.stats``          confidence intervals over seeds
``rlbook.checkpoint``     atomic, safe checkpoints; provenance and machine fingerprint
``rlbook.safeload``       shipped folders: one manifest format, one safe loader
``rlbook.agents``         shipped agent folders
``rlbook.evaluate``       seeded greedy evaluation, in chunks
``rlbook.cartpole``       many CartPole-v1 episodes at once in NumPy; greedy tests
``rlbook.replay``         uniform replay
``rlbook.dqn``            the Q-network (MLP, optional BatchNorm, dueling head)
``rlbook.pong``           Pong: the emulator in the book's setting, Karpathy's preprocessing
``rlbook.data``           what the dataset loaders share: download, checksums, errors
``rlbook.projects``       what the PyTorch projects share: epoch runs, shipped models, tables
``rlbook.chapters``       generated: each page's cells tagged ``export`` (not hand-written)
========================  =====================================================

Code that only scripts and benchmarks use lives in ``fullrun/`` and
``benchmarks/harness.py``.
"""

from __future__ import annotations

import importlib
import pkgutil

__version__ = "0.1.0"

# every module and package beside this file
_SUBMODULES = {module.name for module in pkgutil.iter_modules(__path__)} - {"__main__"}


def __getattr__(name: str) -> object:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBMODULES])
