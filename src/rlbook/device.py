"""Choosing where tensors live: CUDA, then Apple MPS, then the CPU.

Introduced in the chapter *How to run this book*.
"""

from __future__ import annotations

import os
import platform

import torch

DEVICE_ENV_VAR = "RLBOOK_DEVICE"
VALID_DEVICES: tuple[str, ...] = ("auto", "cuda", "mps", "cpu")


class DeviceError(ValueError):
    """An unknown or unavailable device was asked for."""


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def select_device(override: str | None = None) -> torch.device:
    """Pick the training device.

    Args:
        override: ``"auto"`` (default), ``"cuda"``, ``"cuda:1"``, ``"mps"`` or
            ``"cpu"``. When ``None``, ``$RLBOOK_DEVICE`` is used if set.

    Raises:
        DeviceError: for an unknown name, or a device this machine lacks.
    """
    choice = (
        override if override is not None else os.environ.get(DEVICE_ENV_VAR, "auto")
    )
    choice = choice.strip().lower() or "auto"
    kind = choice.split(":", 1)[0]
    if kind not in VALID_DEVICES:
        raise DeviceError(
            f"unknown device {choice!r}: choose one of {', '.join(VALID_DEVICES)} "
            f"(or cuda:N), through the argument or ${DEVICE_ENV_VAR}"
        )
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"device {choice!r} asked for, but torch sees no CUDA GPU here"
        )
    if kind == "mps" and not _mps_available():
        raise DeviceError(
            f"device {choice!r} asked for, but Apple MPS is not available here"
        )
    return torch.device(choice)


def device_banner(device: torch.device) -> str:
    """One line naming the device, e.g. ``device: cuda (NVIDIA H100 80GB HBM3)``."""
    if device.type == "cuda":
        index = (
            device.index if device.index is not None else torch.cuda.current_device()
        )
        detail = torch.cuda.get_device_name(index)
    elif device.type == "mps":
        detail = f"Apple GPU, {platform.machine()}"
    else:
        detail = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    return f"device: {device.type} ({detail}) | torch {torch.__version__}"
