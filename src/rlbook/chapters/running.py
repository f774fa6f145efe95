"""Generated from chapters/running.md by scripts/sync_notebooks.py: do not edit.

The page's code cells tagged ``export``, in page order. Edit them on the
page, then run scripts/sync_notebooks.py.
"""

import os
import random
from typing import Any

import numpy as np
import torch


def seed_everything(
    seed: int,
    env: Any | None = None,
    *,
    deterministic: bool = False,
    benchmark: bool = False,
) -> None:
    """Seed every random number generator a chapter touches.

    Args:
        seed: a non-negative integer.
        env: optional Gymnasium environment (single or vector); its
            action space is seeded, and the next ``env.reset()`` without
            a seed will still be random, so pass ``seed`` to the first
            ``reset`` yourself.
        deterministic: also make torch choose deterministic kernels
            (slower on GPU; on CPU it changes little). A seeded CPU run
            is reproducible either way.
        benchmark: let cuDNN time several kernels and keep the fastest
            (``torch.backends.cudnn.benchmark``). Faster on GPU, but the
            choice can differ between runs, and with it the numbers, so
            it is off unless asked for. Cannot be combined with
            ``deterministic``.

    Raises:
        ValueError: for a bad seed, or ``deterministic`` with
            ``benchmark``.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    set_deterministic(deterministic, benchmark=benchmark)
    random.seed(seed)
    # the legacy global generator, for old code
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)  # every device's generator, CUDA included
    if env is not None:
        env.action_space.seed(seed)


def set_deterministic(enabled: bool, *, benchmark: bool = False) -> None:
    """Turn torch's deterministic algorithms on or off, and cuDNN's kernel
    timing (``benchmark``, which picks by speed and so cannot be combined
    with them)."""
    if enabled and benchmark:
        raise ValueError(
            "deterministic=True and benchmark=True contradict each "
            "other: cuDNN's benchmark picks kernels by timing, which "
            "can differ between runs; choose one"
        )
    if enabled:
        # cuBLAS needs this to be deterministic; harmless elsewhere.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=False)
    torch.backends.cudnn.benchmark = benchmark
    torch.backends.cudnn.deterministic = enabled
