"""One call to seed Python, NumPy, torch and an environment.

Introduced in the chapter *How to run this book*.
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch


def seed_everything(
    seed: int, env: Any | None = None, *, deterministic: bool = False
) -> None:
    """Seed every random number generator a chapter touches.

    Args:
        seed: a non-negative integer.
        env: optional Gymnasium environment (single or vector); its action
            space is seeded, and the next ``env.reset()`` without a seed will
            still be random, so pass ``seed`` to the first ``reset`` yourself.
        deterministic: also make torch choose deterministic kernels (slower on
            GPU; on CPU it changes little). A seeded CPU run is reproducible
            either way.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the legacy global generator, for old code)
    torch.manual_seed(seed)
    if env is not None:
        env.action_space.seed(seed)
    set_deterministic(deterministic)


def set_deterministic(enabled: bool) -> None:
    """Switch torch's deterministic algorithms on or off."""
    if enabled:
        # cuBLAS needs this to be deterministic; harmless elsewhere.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=False)
    torch.backends.cudnn.benchmark = not enabled
    torch.backends.cudnn.deterministic = enabled
