"""A variational autoencoder for MNIST: the model, its loss, one epoch of training.

:class:`VAE` is Kingma and Welling's (2014) model with the PyTorch examples'
changes (ReLU and Adam, ``pytorch/examples/vae``), one hidden layer deeper:
an encoder 784-512-256 with two heads for the mean and the log-variance of
``q(z | x)``, 20 latent dimensions, and a mirrored decoder 20-256-512-784
that ends in **logits**. The loss applies the sigmoid inside
``binary_cross_entropy_with_logits`` (the log-sum-exp form, which never
takes the log of a probability that rounded to 0 or 1); images come from
``torch.sigmoid(model.decode(z))``.

The inputs are MNIST's pixels divided by 255, in [0, 1] and *not* binarized,
as in the PyTorch examples' VAE, so its losses and this module's are in the
same units. With grey values as targets the cross-entropy cannot reach 0 (its
floor is the entropy of the pixels), so the loss is a comparison between
models, not a log-likelihood of binary images.

Losses are **per image**: summed over the 784 pixels and the latent
dimensions, then averaged over the images (the example sums over a batch and
divides the epoch's sum by the number of images: the same number).

Initial weights come from torch's global generator (seed it first, e.g.
``torch.manual_seed(stream_seed(seed, "init"))``); every other random number
(shuffling, the noise of the reparameterisation trick, samples) comes from a
``torch.Generator`` that the caller passes, on the device where the numbers
are used. With the same seeds a CPU run is reproducible to the bit.

Introduced in the chapter *A variational autoencoder on MNIST*.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import pairwise
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "IMAGE_SHAPE",
    "PIXELS",
    "VAE",
    "evaluate_loss",
    "export_program",
    "latent_grid",
    "latent_walk",
    "reconstruct",
    "sample",
    "to_input",
    "train_epoch",
    "vae_loss",
]

IMAGE_SHAPE = (1, 28, 28)  # one MNIST image: channel, height, width
PIXELS = 28 * 28  # the encoder's input and the decoder's output width


def _check_positive_int(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _check_images(images: object, name: str = "images") -> torch.Tensor:
    """Raise unless ``images`` is a uint8 ``(N, 1, 28, 28)`` tensor with N >= 1."""
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise ValueError(
            f"{name} must be uint8 pixels 0..255 (as load_mnist returns them), got "
            f"{images.dtype}; pass ImageSet.images, not images already scaled"
        )
    if images.dim() != 4 or tuple(images.shape[1:]) != IMAGE_SHAPE:
        raise ValueError(
            f"{name} must have shape (N, 1, 28, 28), got {tuple(images.shape)}"
        )
    if len(images) == 0:
        raise ValueError(f"{name} holds no images")
    return images


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _check_model_device(model: nn.Module, device: torch.device | str) -> torch.device:
    device = torch.device(device)
    if _model_device(model).type != device.type:
        raise ValueError(
            f"the model is on {_model_device(model)} but device is {device}: "
            "move it there with model.to(device) (before making its optimizer)"
        )
    return device


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode and no gradients inside; the model's mode is restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _check_generator(
    generator: object, device: torch.device, what: str
) -> torch.Generator:
    if not isinstance(generator, torch.Generator):
        raise ValueError(
            f"{what} needs a torch.Generator (e.g. rlbook.seeding.torch_stream(seed, "
            f"purpose, device)), got {type(generator).__name__}"
        )
    if generator.device.type != device.type:
        raise ValueError(
            f"the generator is on {generator.device} but {what} draws numbers on "
            f"{device}: create it there, torch_stream(seed, purpose, {str(device)!r})"
        )
    return generator


# ---------------------------------------------------------------- the model


class VAE(nn.Module):
    """Encoder ``784 - hidden - (mu, logvar)``, decoder ``latent - reversed(hidden) - 784``.

    Args:
        hidden: widths of the encoder's hidden layers, each followed by a
            ReLU; the decoder uses them in reverse order. ``()`` gives a
            linear encoder and decoder.
        latent: dimensions of the latent code ``z``.

    The model has no dropout or batch normalisation, so train and eval mode
    compute the same thing; the functions below switch modes anyway, as a
    model with such layers would need.

    Raises:
        ValueError: for a latent size below 1 or a hidden width below 1.
    """

    def __init__(self, hidden: Sequence[int] = (512, 256), latent: int = 20) -> None:
        super().__init__()
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
            raise ValueError(f"hidden must be a sequence of ints, got {hidden!r}")
        widths = [_check_positive_int(w, f"hidden[{i}]") for i, w in enumerate(hidden)]
        self.latent = _check_positive_int(latent, "latent")
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
        decoder.append(nn.Linear(back[-1], PIXELS))  # logits: no sigmoid here
        self.decoder = nn.Sequential(*decoder)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of ``q(z | x)``, each ``(B, latent)``.

        ``x``: float pixels in [0, 1], ``(B, 784)`` or ``(B, 1, 28, 28)``.
        """
        h = self.encoder(x.flatten(1))
        return self.to_mu(h), self.to_logvar(h)

    @staticmethod
    def reparameterize(
        mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """``z = mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)`` from ``generator``.

        The reparameterisation trick: the randomness is an input, so gradients
        reach ``mu`` and ``logvar``. ``mu`` and ``logvar`` are ``(B, latent)``;
        so is ``z``. ``generator`` must live on ``mu``'s device.
        """
        _check_generator(generator, mu.device, "reparameterize")
        eps = torch.randn(
            mu.shape, generator=generator, device=mu.device, dtype=mu.dtype
        )
        return mu + torch.exp(0.5 * logvar) * eps

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Pixel logits ``(B, 784)`` for codes ``z`` ``(B, latent)``; sigmoid gives images."""
        return self.decoder(z)

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(logits (B, 784), mu (B, latent), logvar (B, latent))`` for pixels ``x``.

        With a ``generator``, ``z`` is drawn from ``q(z | x)`` (training, and
        the sampled test loss). Without one, ``z = mu``: the deterministic
        reconstruction, which is what :func:`export_program` compiles.
        """
        mu, logvar = self.encode(x)
        z = mu if generator is None else self.reparameterize(mu, logvar, generator)
        return self.decode(z), mu, logvar


# ---------------------------------------------------------------- loss and data


def vae_loss(
    logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The negative ELBO per image: ``(total, bce, kl)``, three scalars.

    ``bce`` is the binary cross-entropy of the pixels ``x`` (in [0, 1],
    ``(B, 784)`` or ``(B, 1, 28, 28)``) under the decoder's ``logits``
    ``(B, 784)``; ``kl`` is the closed form of ``KL(N(mu, exp(logvar)) ||
    N(0, I))``, ``-1/2 sum(1 + logvar - mu^2 - exp(logvar))``. Each is summed
    over pixels or latent dimensions, then averaged over the ``B`` images;
    ``total = bce + kl``. Computed in float32 whatever the inputs' dtype (under
    autocast they may be bfloat16).
    """
    x = x.flatten(1)
    if logits.dim() != 2 or logits.shape != x.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} and pixels {tuple(x.shape)} must both be "
            "(B, 784)"
        )
    if mu.dim() != 2 or mu.shape != logvar.shape or len(mu) != len(x):
        raise ValueError(
            f"mu {tuple(mu.shape)} and logvar {tuple(logvar.shape)} must both be "
            f"(B, latent) with B = {len(x)}"
        )
    batch = len(x)
    mu, logvar = mu.float(), logvar.float()
    bce = (
        F.binary_cross_entropy_with_logits(logits.float(), x.float(), reduction="sum")
        / batch
    )
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / batch
    return bce + kl, bce, kl


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 images ``(N, 1, 28, 28)`` as float32 ``(N, 784)`` in [0, 1], on their device."""
    _check_images(images)
    return images.flatten(1).float().div_(255)


# ---------------------------------------------------------------- training


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
    """One pass over ``images`` in an order shuffled by ``generator``.

    Args:
        model: a :class:`VAE` already on ``device``.
        images: uint8 ``(N, 1, 28, 28)`` on any device (copied to ``device``
            once, as bytes).
        optimizer: steps ``model``'s parameters once a batch.
        generator: on ``device``; shuffles, then draws the noise of every
            batch's ``z``.
        device: where the model runs.
        batch_size: images a step; the last batch holds the rest.
        autocast_dtype: ``None`` for float32, or ``torch.bfloat16`` for mixed
            precision (float16 would need a gradient scaler, which this loop
            does not keep).

    Returns:
        ``loss``, ``bce`` and ``kl``: per image, averaged over the epoch with
        the weights each image had when its batch was seen (the example's
        "Average loss"); ``seconds``: wall time of the epoch; ``images``: N.

    Raises:
        ValueError: for bad images, batch size, generator, device or dtype.
    """
    _check_images(images)
    batch_size = _check_positive_int(batch_size, "batch_size")
    device = _check_model_device(model, device)
    _check_generator(generator, device, "train_epoch")
    if autocast_dtype not in (None, torch.bfloat16):
        raise ValueError(
            f"autocast_dtype must be None or torch.bfloat16, got {autocast_dtype}; "
            "float16 needs a gradient scaler"
        )
    start = time.perf_counter()
    model.train()
    pixels = images.to(device)
    n = len(pixels)
    order = torch.randperm(n, generator=generator, device=device)
    sums = torch.zeros(3, device=device)  # loss, bce, kl, summed over images
    for first in range(0, n, batch_size):
        x = to_input(pixels[order[first : first + batch_size]])
        with torch.autocast(
            device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None
        ):
            logits, mu, logvar = model(x, generator)
        total, bce, kl = vae_loss(logits, x, mu, logvar)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        # Stay on the device: one .item() a batch would wait for the GPU each step.
        sums += torch.stack([total, bce, kl]).detach() * len(x)
    loss, bce_mean, kl_mean = (sums / n).tolist()  # the epoch's one synchronisation
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
    """Loss per image over ``images`` (uint8 ``(N, 1, 28, 28)``), in eval mode.

    Returns:
        ``loss``, ``bce`` and ``kl`` with ``z`` drawn from ``q(z | x)`` with
        ``generator`` (the PyTorch example's "Test set loss", an unbiased
        estimate of the negative ELBO; a fixed generator makes it
        reproducible), and ``loss_at_mean`` and ``bce_at_mean`` with
        ``z = mu`` (no noise; not an ELBO, and usually lower only once the
        model has trained for a few epochs). ``kl`` is the same for both.

    The model's train/eval mode is restored afterwards. Named ``evaluate_loss``
    rather than ``test_loss`` so that pytest does not collect it as a test.
    """
    _check_images(images)
    batch_size = _check_positive_int(batch_size, "batch_size")
    device = _check_model_device(model, device)
    _check_generator(generator, device, "evaluate_loss")
    n = len(images)
    sums = torch.zeros(3, device=device)  # bce, kl, bce at mu, summed over images
    with _eval_mode(model):
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


# ---------------------------------------------------------------- pictures


def _images_from_codes(model: VAE, z: torch.Tensor) -> torch.Tensor:
    """Decoded images in [0, 1], ``(B, 1, 28, 28)``, on the CPU, in eval mode."""
    with _eval_mode(model):
        return torch.sigmoid(model.decode(z)).unflatten(1, IMAGE_SHAPE).cpu()


def reconstruct(
    model: VAE, images: torch.Tensor, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Reconstructions in [0, 1], float ``(N, 1, 28, 28)`` on the CPU.

    ``images``: uint8 ``(N, 1, 28, 28)``, encoded in one batch. Without a
    ``generator`` the code is ``z = mu``; with one (on the model's device) it
    is drawn from ``q(z | x)``.
    """
    x = to_input(_check_images(images).to(_model_device(model)))
    with _eval_mode(model):
        mu, logvar = model.encode(x)
        z = mu if generator is None else model.reparameterize(mu, logvar, generator)
    return _images_from_codes(model, z)


def sample(model: VAE, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` new images in [0, 1], ``(n, 1, 28, 28)`` on the CPU: ``z ~ N(0, I)``, decoded.

    ``generator`` lives on the model's device.
    """
    n = _check_positive_int(n, "n")
    device = _model_device(model)
    _check_generator(generator, device, "sample")
    z = torch.randn((n, model.latent), generator=generator, device=device)
    return _images_from_codes(model, z)


def _check_code(model: VAE, z: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(z, torch.Tensor) or tuple(z.shape) != (model.latent,):
        shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise ValueError(
            f"{name} must be one latent code of shape ({model.latent},), got {shape}"
        )
    return z.to(_model_device(model), torch.float32)


def latent_walk(
    model: VAE, z_start: torch.Tensor, z_end: torch.Tensor, steps: int
) -> torch.Tensor:
    """Images along the straight line from ``z_start`` to ``z_end`` (each ``(latent,)``).

    Returns ``(steps, 1, 28, 28)`` in [0, 1] on the CPU; the first image
    decodes ``z_start`` and the last ``z_end`` (``steps >= 2``).
    """
    steps = _check_positive_int(steps, "steps")
    if steps < 2:
        raise ValueError(f"steps must be at least 2 (both ends), got {steps}")
    start = _check_code(model, z_start, "z_start")
    end = _check_code(model, z_end, "z_end")
    t = torch.linspace(0, 1, steps, device=start.device)[:, None]
    return _images_from_codes(model, torch.lerp(start, end, t))  # exact at t=0, 1


def latent_grid(
    model: VAE,
    steps: int,
    *,
    dims: tuple[int, int] = (0, 1),
    limit: float = 2.0,
    center: torch.Tensor | None = None,
) -> torch.Tensor:
    """A 2-D slice of the latent space: ``(steps, steps, 1, 28, 28)`` images in [0, 1].

    Image ``[i, j]`` decodes ``center`` (default: the origin, ``(latent,)``)
    with coordinate ``dims[0]`` set to ``values[i]`` and ``dims[1]`` to
    ``values[j]``, where ``values = linspace(-limit, limit, steps)``; the
    prior puts about 95% of each coordinate within +-2.
    """
    steps = _check_positive_int(steps, "steps")
    if len(dims) != 2 or dims[0] == dims[1]:
        raise ValueError(f"dims must be two different latent dimensions, got {dims}")
    for d in dims:
        if not isinstance(d, int) or not 0 <= d < model.latent:
            raise ValueError(
                f"dims must be in 0..{model.latent - 1} (the latent size is "
                f"{model.latent}), got {dims}"
            )
    if not limit > 0:
        raise ValueError(f"limit must be positive, got {limit!r}")
    device = _model_device(model)
    if center is None:
        origin = torch.zeros(model.latent, device=device)
    else:
        origin = _check_code(model, center, "center")
    values = torch.linspace(-limit, limit, steps, device=device)
    z = origin.repeat(steps, steps, 1)
    z[:, :, dims[0]] = values[:, None]
    z[:, :, dims[1]] = values[None, :]
    return _images_from_codes(model, z.flatten(0, 1)).unflatten(0, (steps, steps))


# ---------------------------------------------------------------- deployment


class _DecodeImages(nn.Module):
    """Codes ``(B, latent)`` to images ``(B, 1, 28, 28)`` in [0, 1]."""

    def __init__(self, model: VAE) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model.decode(z)).unflatten(1, IMAGE_SHAPE)


class _ReconstructImages(nn.Module):
    """Pixels ``(B, 1, 28, 28)`` in [0, 1] to their reconstructions at ``z = mu``."""

    def __init__(self, model: VAE) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits, _, _ = self.model(x)
        return torch.sigmoid(logits).unflatten(1, IMAGE_SHAPE)


def export_program(
    model: VAE, part: Literal["decoder", "reconstruction"] = "decoder"
) -> torch.export.ExportedProgram:
    """``torch.export`` a part of ``model`` for any batch size (ahead-of-time graphs).

    ``"decoder"``: float32 codes ``(B, latent)`` to images ``(B, 1, 28, 28)``
    in [0, 1], the generator. ``"reconstruction"``: float32 pixels
    ``(B, 1, 28, 28)`` in [0, 1] to their reconstructions at ``z = mu`` (no
    noise). The batch dimension is dynamic; the program runs on the model's
    device and holds the weights the model had when it was exported.
    """
    device = _model_device(model)
    wrapper: nn.Module
    if part == "decoder":
        wrapper = _DecodeImages(model)
        example = torch.zeros(2, model.latent, device=device)
    elif part == "reconstruction":
        wrapper = _ReconstructImages(model)
        example = torch.zeros(2, *IMAGE_SHAPE, device=device)
    else:
        raise ValueError(f"part must be 'decoder' or 'reconstruction', got {part!r}")
    batch = torch.export.Dim("batch", min=1)
    with _eval_mode(model):
        return torch.export.export(
            wrapper, (example,), dynamic_shapes=({0: batch},), strict=False
        )
