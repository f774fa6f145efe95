"""Generated from chapters/vae_mnist.md by scripts/sync_notebooks.py: do not edit.

The page's code cells tagged ``export``, in page order. Edit them on the
page, then run scripts/sync_notebooks.py.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from rlbook.projects.runs import fit_epochs
from rlbook.projects.shipping import round_to_shipped
from rlbook.projects.vae import (
    PIXELS,
    check_generator,
    check_images,
    check_model_device,
    check_positive_int,
    eval_mode,
    to_input,
)
from rlbook.projects.vae_run import DigitSplit, VAEConfig
from rlbook.seeding import stream_seed, torch_stream


class VAE(nn.Module):
    """Encoder 784-hidden-(mu, logvar); decoder latent-hidden-784."""

    def __init__(
        self, hidden: Sequence[int] = (512, 256), latent: int = 20
    ) -> None:
        super().__init__()
        if isinstance(hidden, (str, bytes)) or not isinstance(
            hidden, Sequence
        ):
            raise ValueError(
                f"hidden must be a sequence of ints, got {hidden!r}"
            )
        widths = [
            check_positive_int(w, f"hidden[{i}]")
            for i, w in enumerate(hidden)
        ]
        self.latent = check_positive_int(latent, "latent")
        self.hidden = tuple(widths)
        self.spec = {"hidden": list(self.hidden), "latent": self.latent}

        encoder: list[nn.Module] = []
        for n_in, n_out in pairwise([PIXELS, *widths]):
            encoder += [nn.Linear(n_in, n_out), nn.ReLU()]
        self.encoder = nn.Sequential(*encoder)
        features = widths[-1] if widths else PIXELS
        self.to_mu = nn.Linear(features, latent)
        self.to_logvar = nn.Linear(features, latent)

        back = [latent, *reversed(widths)]
        decoder: list[nn.Module] = []
        for n_in, n_out in pairwise(back):
            decoder += [nn.Linear(n_in, n_out), nn.ReLU()]
        # logits: the loss applies the sigmoid
        decoder.append(nn.Linear(back[-1], PIXELS))
        self.decoder = nn.Sequential(*decoder)

    def encode(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z | x), each (B, latent)."""
        h = self.encoder(x.flatten(1))
        return self.to_mu(h), self.to_logvar(h)

    @staticmethod
    def reparameterize(
        mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """z = mu + exp(logvar / 2) * eps, eps ~ N(0, I)."""
        check_generator(generator, mu.device, "reparameterize")
        eps = torch.randn(
            mu.shape,
            generator=generator,
            device=mu.device,
            dtype=mu.dtype,
        )
        return mu + torch.exp(0.5 * logvar) * eps

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Pixel logits (B, 784); their sigmoid is the image."""
        return self.decoder(z)

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits, mu, logvar); z drawn with generator, else z = mu."""
        mu, logvar = self.encode(x)
        if generator is None:
            z = mu
        else:
            z = self.reparameterize(mu, logvar, generator)
        return self.decode(z), mu, logvar


def vae_loss(
    logits: torch.Tensor,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The negative ELBO per image: (total, bce, kl), in float32."""
    x = x.flatten(1)
    if logits.dim() != 2 or logits.shape != x.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} and pixels {tuple(x.shape)} "
            "must both be (B, 784)"
        )
    if mu.dim() != 2 or mu.shape != logvar.shape or len(mu) != len(x):
        raise ValueError(
            f"mu {tuple(mu.shape)} and logvar {tuple(logvar.shape)} must "
            f"both be (B, latent) with B = {len(x)}"
        )
    batch = len(x)
    mu, logvar = mu.float(), logvar.float()
    # summed over pixels and latent dimensions, averaged over images
    bce = (
        F.binary_cross_entropy_with_logits(
            logits.float(), x.float(), reduction="sum"
        )
        / batch
    )
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / batch
    return bce + kl, bce, kl


def train_epoch(
    model: VAE,
    images: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    generator: torch.Generator,
    device: torch.device | str,
    batch_size: int = 128,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """One pass over uint8 images (N, 1, 28, 28), shuffled."""
    check_images(images)
    batch_size = check_positive_int(batch_size, "batch_size")
    device = check_model_device(model, device)
    check_generator(generator, device, "train_epoch")
    if autocast_dtype not in (None, torch.bfloat16):
        raise ValueError(
            "autocast_dtype must be None or torch.bfloat16, got "
            f"{autocast_dtype}; float16 needs a gradient scaler"
        )
    start = time.perf_counter()
    model.train()
    pixels = images.to(device)
    n = len(pixels)
    order = torch.randperm(n, generator=generator, device=device)
    sums = torch.zeros(3, device=device)  # loss, bce, kl over images
    for first in range(0, n, batch_size):
        x = to_input(pixels[order[first : first + batch_size]])
        with torch.autocast(
            device.type,
            dtype=autocast_dtype,
            enabled=autocast_dtype is not None,
        ):
            logits, mu, logvar = model(x, generator)
        total, bce, kl = vae_loss(logits, x, mu, logvar)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        sums += torch.stack([total, bce, kl]).detach() * len(x)
    loss, bce_mean, kl_mean = (sums / n).tolist()  # the one wait
    return {
        "loss": loss,
        "bce": bce_mean,
        "kl": kl_mean,
        "seconds": time.perf_counter() - start,
        "images": float(n),
    }


def evaluate_loss(
    model: VAE,
    images: torch.Tensor,
    *,
    generator: torch.Generator,
    device: torch.device | str,
    batch_size: int = 1000,
) -> dict[str, float]:
    """Loss per image over uint8 images, in eval mode."""
    check_images(images)
    batch_size = check_positive_int(batch_size, "batch_size")
    device = check_model_device(model, device)
    check_generator(generator, device, "evaluate_loss")
    n = len(images)
    sums = torch.zeros(3, device=device)  # bce, kl, bce at mu
    with eval_mode(model):
        for first in range(0, n, batch_size):
            x = to_input(images[first : first + batch_size].to(device))
            mu, logvar = model.encode(x)
            z = model.reparameterize(mu, logvar, generator)
            _, bce, kl = vae_loss(model.decode(z), x, mu, logvar)
            _, bce_at_mean, _ = vae_loss(model.decode(mu), x, mu, logvar)
            sums += torch.stack([bce, kl, bce_at_mean]) * len(x)
    bce_mean, kl_mean, bce_mu = (sums / n).tolist()
    return {
        "loss": bce_mean + kl_mean,
        "bce": bce_mean,
        "kl": kl_mean,
        "loss_at_mean": bce_mu + kl_mean,
        "bce_at_mean": bce_mu,
    }


def build_vae(config: VAEConfig) -> VAE:
    """The VAE of config (its weights from torch's global stream)."""
    return VAE(hidden=config.hidden, latent=config.latent)


def test_losses(
    model: VAE,
    images: torch.Tensor,
    seed: int,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """evaluate_loss with the run's "test noise" stream."""
    device = torch.device(device)
    noise = torch_stream(seed, "test noise", device)
    return evaluate_loss(model, images, generator=noise, device=device)


test_losses.__test__ = False  # not a pytest test


@dataclass
class VAERun:
    """A run's curves, and both sets of weights (rounded to float16, as
    they ship) with their test losses per image, in nats."""

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
    """Train config.epochs epochs; test the best and final weights."""
    device = torch.device(device)
    torch.manual_seed(stream_seed(seed, "init"))
    model = build_vae(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch_stream(seed, "data", device)  # order and noise
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

    def validate() -> float:  # fit_epochs keeps the highest: -loss
        noise = torch_stream(seed, "valid noise", device)
        last_valid.update(
            evaluate_loss(
                model, split.valid, generator=noise, device=device
            )
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
        config={
            **asdict(config),
            "hidden": list(config.hidden),
            "seed": seed,
        },
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
