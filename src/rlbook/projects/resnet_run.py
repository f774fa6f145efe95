"""The image-classification project end to end: split, ResNet-18's run, its test.

What the chapter runs at its budget and what ``scripts/train_resnet.py``
runs at ``full`` to make the shipped model, so both do the same thing:

* :func:`split_images`: hold out a validation share of the *training*
  images (the test images are not looked at before the end).
* :func:`train_resnet`: ResNet-18's epochs through
  :func:`rlbook.projects.runs.fit_epochs` (resumable; the best epoch by
  validation accuracy, ties to the earlier), then the test accuracy and
  confusion matrix of both the best and the final weights, each rounded to
  the int8 weights that ship (:data:`SHIPPED_WEIGHTS`).

Random streams (:mod:`rlbook.seeding`), one per purpose: ``split``,
``init`` and ``data`` (batch order and augmentation).

Introduced in the chapter *Image classification: ResNet-18 on CIFAR-10*.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ..seeding import stream_seed, torch_stream
from .resnet import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    ResNet18,
    TrainConfig,
    evaluate,
    make_optimizer,
)
from .resnet import train_epoch as resnet_train_epoch
from .runs import fit_epochs
from .shipping import round_to_shipped

__all__ = [
    "FULL_CONFIG",
    "RESNET_CONFIGS",
    "SHIPPED_WEIGHTS",
    "ImageSplit",
    "ResNetConfig",
    "ResNetRun",
    "build_resnet",
    "resnet_config",
    "resnet_spec",
    "split_images",
    "train_resnet",
]


@dataclass(frozen=True)
class ResNetConfig:
    """Every setting of ResNet-18's run that differs between budgets.

    The rest of the recipe (Nesterov momentum 0.9, weight decay 5e-4 without
    decay on BatchNorm and biases, label smoothing 0.1, a one-cycle schedule
    stepped every batch) is :class:`~rlbook.projects.resnet.TrainConfig`'s.

    Attributes:
        validation_share: share of the training images held out to pick the epoch.
        train_images: use only the first this many of the remaining training
            images (None: all of them); for quick runs.
        width: channels of the first stage (64 is ResNet-18).
        epochs, batch_size, lr: the training; the schedule spans ``epochs``.
    """

    validation_share: float = 0.1
    train_images: int | None = None
    width: int = 64
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1

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


def build_resnet(config: ResNetConfig) -> ResNet18:
    """The network of ``config`` (its weights from torch's global generator)."""
    return ResNet18(**resnet_spec(config)["model"])


def resnet_spec(
    config: ResNetConfig, classes: tuple[str, ...] | list[str] | None = None
) -> dict[str, Any]:
    """The ``resnet18-cifar`` spec of a shipped model (see :mod:`~rlbook.projects.shipping`)."""
    spec: dict[str, Any] = {"model": {"num_classes": 10, "width": config.width}}
    spec["classes"] = list(classes) if classes is not None else None
    spec["mean"], spec["std"] = list(CIFAR10_MEAN), list(CIFAR10_STD)
    return spec


@dataclass
class ResNetRun:
    """ResNet-18's run: its curves, and both sets of weights with their test figures.

    ``best`` and ``final`` are models with their weights rounded to what
    ships (:data:`SHIPPED_WEIGHTS`); the accuracies and confusion matrices
    are theirs.
    """

    config: ResNetConfig
    history: list[dict[str, float]]
    best_epoch: int
    best: ResNet18
    final: ResNet18
    best_test_accuracy: float
    final_test_accuracy: float
    best_confusion: torch.Tensor
    final_confusion: torch.Tensor
    seconds: float
    resumed_from: int


def train_resnet(
    split: ImageSplit,
    config: ResNetConfig,
    seed: int,
    *,
    device: torch.device | str = "cpu",
    checkpoint: str | Path | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> ResNetRun:
    """Train ResNet-18 for ``config.epochs`` and test its best and final weights.

    Args:
        split: from :func:`split_images`.
        config: the run's settings.
        seed: the run's seed (streams ``init`` and ``data``).
        device: where to train.
        checkpoint: a file to resume from and write after each epoch.
        on_epoch: called with each epoch's record.
    """
    device = torch.device(device)
    recipe = config.train_config()
    torch.manual_seed(stream_seed(seed, "init"))
    model = build_resnet(config).to(device)
    steps = recipe.steps_per_epoch(int(split.train_labels.numel()))
    optimizer, scheduler = make_optimizer(model, recipe, steps)
    generator = torch_stream(seed, "data")

    def train_epoch() -> dict[str, float]:
        return resnet_train_epoch(
            model,
            split.train_images,
            split.train_labels,
            optimizer,
            scheduler,
            recipe,
            generator,
            device=device,
        )

    def validate() -> float:
        return evaluate(model, split.valid_images, split.valid_labels, device=device)[0]

    start = time.perf_counter()
    result = fit_epochs(
        model,
        optimizer,
        epochs=config.epochs,
        train_epoch=train_epoch,
        validate=validate,
        generator=generator,
        checkpoint=checkpoint,
        scheduler=scheduler,
        config={**asdict(config), "seed": seed},
        on_epoch=on_epoch,
    )
    seconds = time.perf_counter() - start

    def shipped(state: dict[str, torch.Tensor]) -> ResNet18:
        copy = build_resnet(config)
        copy.load_state_dict(state)
        return round_to_shipped(copy, SHIPPED_WEIGHTS).eval()

    best, final = shipped(result.best_state), shipped(result.final_state)
    best_accuracy, best_confusion = evaluate(
        best, split.test_images, split.test_labels, device="cpu"
    )
    final_accuracy, final_confusion = evaluate(
        final, split.test_images, split.test_labels, device="cpu"
    )
    return ResNetRun(
        config=config,
        history=result.history,
        best_epoch=result.best_epoch,
        best=best,
        final=final,
        best_test_accuracy=best_accuracy,
        final_test_accuracy=final_accuracy,
        best_confusion=best_confusion,
        final_confusion=final_confusion,
        seconds=seconds,
        resumed_from=result.resumed_from,
    )
