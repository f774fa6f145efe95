"""Choosing where tensors live: CUDA, then Apple MPS, then the CPU. Introduced in
the chapter *How to run this book*."""

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


def select_device(default: str = "auto") -> torch.device:
    """Pick the training device: ``$RLBOOK_DEVICE`` if set and not empty,
    else ``default``, the device the chapter suits (``"auto"``, ``"cuda"``,
    ``"cuda:N"``, ``"mps"`` or ``"cpu"``; ``"auto"`` is CUDA, then Apple MPS,
    then the CPU). A :class:`DeviceError` for an unknown name or a device
    this machine lacks says where the name came from and how to fix it."""
    if not isinstance(default, str):
        raise DeviceError(
            f"default must be a device name such as 'cpu', got {default!r}"
        )
    from_env = os.environ.get(DEVICE_ENV_VAR, "").strip()
    if from_env:
        choice, source = from_env, f"${DEVICE_ENV_VAR}"
        fix = f"unset {DEVICE_ENV_VAR} or set it to auto or cpu"
    else:
        choice, source = default, "select_device's argument"
        fix = f"run with {DEVICE_ENV_VAR}=cpu (or auto)"
    choice = choice.strip().lower() or "auto"
    kind, _, index = choice.partition(":")
    if kind not in VALID_DEVICES or (index and (kind == "auto" or not index.isdigit())):
        raise DeviceError(
            f"unknown device {choice!r} from {source}: choose one of "
            f"{', '.join(VALID_DEVICES)} (or cuda:N)"
        )
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            build = (
                f" (torch {torch.__version__} is a CPU-only build)"
                if torch.version.cuda is None
                else ""
            )
            raise DeviceError(
                f"device {choice!r} asked for by {source}, but torch sees no CUDA "
                f"GPU here{build}; {fix}"
            )
        if index and int(index) >= torch.cuda.device_count():
            raise DeviceError(
                f"device {choice!r} asked for by {source}, but this machine has "
                f"{torch.cuda.device_count()} CUDA GPU(s), numbered from 0; {fix}"
            )
    if kind == "mps" and not _mps_available():
        raise DeviceError(
            f"device {choice!r} asked for by {source}, but Apple MPS is not "
            f"available here; {fix}"
        )
    return torch.device(choice)


def device_banner(device: torch.device) -> str:
    """One line naming the device, e.g. ``device: cuda (NVIDIA H100 80GB HBM3)``."""
    if device.type == "cuda":
        index = torch.cuda.current_device() if device.index is None else device.index

        detail = torch.cuda.get_device_name(index)
    elif device.type == "mps":
        detail = f"Apple GPU, {platform.machine()}"
    else:
        detail = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    return f"device: {device.type} ({detail}) | torch {torch.__version__}"


def synchronize(device: torch.device) -> None:
    """Wait for queued work on ``device`` so that wall-clock times measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
