"""The image-classification project's settings and data split.

The network and the run (``train_resnet``: ResNet-18's epochs through
:func:`rlbook.projects.runs.fit_epochs`, then the test of the best and the
final weights, each rounded to :data:`SHIPPED_WEIGHTS`) are on the chapter's
page and in :mod:`rlbook.chapters.resnet_cifar`; the chapter runs them at its
budget and ``scripts/train_resnet.py`` at ``full``. Here:

* :class:`ResNetConfig` and the budgets' settings;
* :func:`split_images`: hold out a validation share of the *training*
  images (the test images are not looked at before the end);
* :func:`resnet_spec`: what a shipped model's manifest records.

Random streams (:mod:`rlbook.seeding`), one per purpose: ``split``,
``init`` and ``data`` (batch order and augmentation).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import torch

from ..seeding import torch_stream
from .resnet import CIFAR10_MEAN, CIFAR10_STD, TrainConfig

__all__ = [
    "FULL_CONFIG",
    "RESNET_CONFIGS",
    "SHIPPED_WEIGHTS",
    "ImageSplit",
    "ResNetConfig",
    "resnet_config",
    "resnet_spec",
    "split_images",
]


@dataclass(frozen=True)
class ResNetConfig:
    """Every setting of ResNet-18's run that differs between budgets.

    The rest of the recipe (Nesterov momentum 0.9, weight decay 5e-4 without
    decay on BatchNorm and biases, label smoothing 0.1, a one-cycle schedule
    stepped every batch) is :class:`~rlbook.projects.resnet.TrainConfig`'s.
    """

    validation_share: float = 0.1
    """share of the training images held out to pick the epoch"""
    train_images: int | None = None
    """use only the first this many remaining training images (None: all)"""
    width: int = 64
    """channels of the first stage (64 is ResNet-18)"""
    epochs: int = 30
    """passes over the training images; the schedule spans all of them"""
    batch_size: int = 128
    """images per SGD step"""
    lr: float = 0.1
    """peak learning rate of the one-cycle schedule"""

    def train_config(self) -> TrainConfig:
        """The recipe of :mod:`~rlbook.projects.resnet` with these settings."""
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr)


SHIPPED_WEIGHTS = "int8"
"""ResNet-18's weight format (see :mod:`~rlbook.projects.shipping`): 11 MB, not 22."""

FULL_CONFIG = ResNetConfig(epochs=20)
"""The shipped model's run (``scripts/train_resnet.py``)."""

RESNET_CONFIGS: dict[str, ResNetConfig] = {
    # Seconds: proves the code runs; its accuracy means nothing.
    "smoke": ResNetConfig(train_images=256, width=8, epochs=1, batch_size=64),
    # The full recipe with a two-epoch schedule: what the CI build trains live.
    "ci": replace(FULL_CONFIG, epochs=2),
    "full": FULL_CONFIG,
}


def resnet_config(budget: str) -> ResNetConfig:
    """ResNet-18's settings at ``budget`` (smoke, ci or full)."""
    from ..budget import validate_budget

    return RESNET_CONFIGS[validate_budget(budget)]


class ImageSplit(NamedTuple):
    """uint8 images and int64 labels of the three parts."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    valid_images: torch.Tensor
    valid_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


def split_images(
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    config: ResNetConfig,
    seed: int,
) -> ImageSplit:
    """Hold out a seeded random share of the training images for validation.

    The order comes from stream ``split``; with ``config.train_images`` set,
    only that many of the remaining images are kept for training.
    """
    n = int(train_labels.numel())
    if not 0.0 < config.validation_share < 1.0:
        raise ValueError(
            f"validation_share must be in (0, 1), got {config.validation_share!r}"
        )
    n_valid = max(1, round(n * config.validation_share))
    if n_valid >= n:
        raise ValueError(f"{n} training images are too few to hold {n_valid} out")
    order = torch.randperm(n, generator=torch_stream(seed, "split"))
    valid_idx, train_idx = order[:n_valid], order[n_valid:]
    if config.train_images is not None:
        train_idx = train_idx[: config.train_images]
    return ImageSplit(
        train_images=train_images[train_idx],
        train_labels=train_labels[train_idx],
        valid_images=train_images[valid_idx],
        valid_labels=train_labels[valid_idx],
        test_images=test_images,
        test_labels=test_labels,
    )


def resnet_spec(
    config: ResNetConfig, classes: tuple[str, ...] | list[str] | None = None
) -> dict[str, Any]:
    """The ``resnet18-cifar`` spec of a shipped model (see :mod:`~rlbook.projects.shipping`)."""
    spec: dict[str, Any] = {"model": {"num_classes": 10, "width": config.width}}
    spec["classes"] = list(classes) if classes is not None else None
    spec["mean"], spec["std"] = list(CIFAR10_MEAN), list(CIFAR10_STD)
    return spec
