"""The VAE project's settings and data split.

The run is on the chapter's page and in :mod:`rlbook.chapters.vae_mnist`;
the chapter runs it at its budget and ``scripts/train_vae.py`` at ``full``.

* :func:`split_digits`: hold out a validation share of the *training*
  images (the test images are not looked at before the end).
* ``train_vae`` (on the page): the VAE's epochs through
  :func:`rlbook.projects.runs.fit_epochs` (resumable; the best epoch is the
  one with the **lowest validation loss**, ties to the earlier), then the
  test loss of both the best and the final weights, each rounded to the
  float16 that ships.

Random streams (:mod:`rlbook.seeding`), one per purpose: ``split``,
``init``, ``data`` (order and the training codes' noise), ``valid noise``
and ``test noise`` (the same noise at every evaluation, so that two epochs'
losses differ only by their weights).

Introduced in the chapter *A variational autoencoder on MNIST*.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import torch

from ..seeding import torch_stream

__all__ = [
    "FULL_CONFIG",
    "VAE_CONFIGS",
    "DigitSplit",
    "VAEConfig",
    "split_digits",
    "vae_config",
    "vae_spec",
]


@dataclass(frozen=True)
class VAEConfig:
    """Every setting of the VAE's run (Adam's training as in the PyTorch example)."""

    validation_share: float = 0.1
    """share of the training images held out to pick the epoch"""
    hidden: tuple[int, ...] = (512, 256)
    """the encoder's hidden widths, mirrored by the decoder (784-512-256-20)"""
    latent: int = 20
    """dimensions of the latent code"""
    epochs: int = 50
    """passes over the training images"""
    batch_size: int = 128
    """images per Adam step"""
    lr: float = 1e-3
    """Adam's learning rate"""


FULL_CONFIG = VAEConfig(epochs=50)
"""The shipped model's run (``scripts/train_vae.py``)."""

VAE_CONFIGS: dict[str, VAEConfig] = {
    # Seconds: proves the code runs; its losses mean nothing.
    "smoke": VAEConfig(epochs=1),
    # The first 15 epochs of the full run's model: what the CI build trains.
    "ci": replace(FULL_CONFIG, epochs=15),
    "full": FULL_CONFIG,
}


def vae_config(budget: str) -> VAEConfig:
    """The VAE's settings at ``budget`` (smoke, ci or full)."""
    from ..budget import validate_budget

    return VAE_CONFIGS[validate_budget(budget)]


class DigitSplit(NamedTuple):
    """uint8 images ``(N, 1, 28, 28)`` of the three parts."""

    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor


def split_digits(
    train_images: torch.Tensor, test_images: torch.Tensor, config: VAEConfig, seed: int
) -> DigitSplit:
    """Hold out a seeded random share of the training images (stream ``split``)."""
    n = int(train_images.shape[0])
    if not 0.0 < config.validation_share < 1.0:
        raise ValueError(
            f"validation_share must be in (0, 1), got {config.validation_share!r}"
        )
    n_valid = max(1, round(n * config.validation_share))
    if n_valid >= n:
        raise ValueError(f"{n} training images are too few to hold {n_valid} out")
    order = torch.randperm(n, generator=torch_stream(seed, "split"))
    return DigitSplit(
        train=train_images[order[n_valid:]],
        valid=train_images[order[:n_valid]],
        test=test_images,
    )


def vae_spec(config: VAEConfig) -> dict[str, Any]:
    """The ``vae-mnist`` spec of a shipped model (see :mod:`~rlbook.projects.shipping`)."""
    return {"model": {"hidden": list(config.hidden), "latent": config.latent}}
