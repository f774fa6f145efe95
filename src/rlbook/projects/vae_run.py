"""The VAE project end to end: split, the run, its test.

What the chapter runs at its budget and what ``scripts/train_vae.py`` runs
at ``full`` to make the shipped model, so both do the same thing:

* :func:`split_digits`: hold out a validation share of the *training*
  images (the test images are not looked at before the end).
* :func:`train_vae`: the VAE's epochs through
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

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ..seeding import stream_seed, torch_stream
from .runs import fit_epochs
from .shipping import round_to_shipped
from .vae import VAE, evaluate_loss, train_epoch

__all__ = [
    "FULL_CONFIG",
    "VAE_CONFIGS",
    "DigitSplit",
    "VAEConfig",
    "VAERun",
    "build_vae",
    "split_digits",
    "test_losses",
    "train_vae",
    "vae_config",
    "vae_spec",
]


@dataclass(frozen=True)
class VAEConfig:
    """Every setting of the VAE's run.

    Attributes:
        validation_share: share of the training images held out to pick the epoch.
        hidden, latent: the model (784-512-256-20 by default).
        epochs, batch_size, lr: Adam's training, as in the PyTorch example.
    """

    validation_share: float = 0.1
    hidden: tuple[int, ...] = (512, 256)
    latent: int = 20
    epochs: int = 50
    batch_size: int = 128
    lr: float = 1e-3


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


def build_vae(config: VAEConfig) -> VAE:
    """The VAE of ``config`` (its weights from torch's global generator)."""
    return VAE(hidden=config.hidden, latent=config.latent)


def vae_spec(config: VAEConfig) -> dict[str, Any]:
    """The ``vae-mnist`` spec of a shipped model (see :mod:`~rlbook.projects.shipping`)."""
    return {"model": {"hidden": list(config.hidden), "latent": config.latent}}


def test_losses(
    model: VAE, images: torch.Tensor, seed: int, device: torch.device | str = "cpu"
) -> dict[str, float]:
    """:func:`~rlbook.projects.vae.evaluate_loss` with the run's ``test noise`` stream."""
    device = torch.device(device)
    return evaluate_loss(
        model, images, generator=torch_stream(seed, "test noise", device), device=device
    )


test_losses.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


@dataclass
class VAERun:
    """The VAE's run: its curves, and both sets of weights with their test losses.

    ``best`` and ``final`` are CPU models with float16-rounded weights (what
    ships); the losses (per image, in nats) are theirs.
    """

    config: VAEConfig
    history: list[dict[str, float]]
    best_epoch: int
    best: VAE
    final: VAE
    best_test: dict[str, float]
    final_test: dict[str, float]
    seconds: float
    resumed_from: int


def train_vae(
    split: DigitSplit,
    config: VAEConfig,
    seed: int,
    *,
    device: torch.device | str = "cpu",
    checkpoint: str | Path | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> VAERun:
    """Train the VAE for ``config.epochs`` and test its best and final weights.

    Each epoch's record holds the training figures, ``valid`` (the negative
    validation loss, so that higher is better for
    :func:`~rlbook.projects.runs.fit_epochs`) and ``valid_loss``.
    """
    device = torch.device(device)
    torch.manual_seed(stream_seed(seed, "init"))
    model = build_vae(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch_stream(seed, "data", device)
    last_valid: dict[str, float] = {}

    def one_epoch() -> dict[str, float]:
        return train_epoch(
            model,
            split.train,
            optimizer,
            generator=generator,
            device=device,
            batch_size=config.batch_size,
        )

    def validate() -> float:
        noise = torch_stream(seed, "valid noise", device)
        last_valid.update(
            evaluate_loss(model, split.valid, generator=noise, device=device)
        )
        return -last_valid["loss"]

    def record(entry: dict[str, float]) -> None:
        entry["valid_loss"] = -entry["valid"]
        if on_epoch is not None:
            on_epoch(entry)

    start = time.perf_counter()
    result = fit_epochs(
        model,
        optimizer,
        epochs=config.epochs,
        train_epoch=one_epoch,
        validate=validate,
        generator=generator,
        checkpoint=checkpoint,
        config={**asdict(config), "hidden": list(config.hidden), "seed": seed},
        on_epoch=record,
    )
    seconds = time.perf_counter() - start
    for entry in result.history:
        entry.setdefault("valid_loss", -entry["valid"])

    def shipped(state: dict[str, torch.Tensor]) -> VAE:
        copy = build_vae(config)
        copy.load_state_dict({k: v.cpu() for k, v in state.items()})
        return round_to_shipped(copy).eval()

    best, final = shipped(result.best_state), shipped(result.final_state)
    return VAERun(
        config=config,
        history=result.history,
        best_epoch=result.best_epoch,
        best=best,
        final=final,
        best_test=test_losses(best, split.test, seed),
        final_test=test_losses(final, split.test, seed),
        seconds=seconds,
        resumed_from=result.resumed_from,
    )
