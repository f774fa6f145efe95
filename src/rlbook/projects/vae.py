"""A variational autoencoder for MNIST: what surrounds the chapter's model.

The model (``VAE``), its loss (``vae_loss``), one epoch of training, the
evaluation and the run are written on the chapter's page,
``chapters/vae_mnist.md``, and generated into :mod:`rlbook.chapters.vae_mnist`.
This module holds the argument checks they share, :func:`to_input`, the
pictures (:func:`reconstruct`, :func:`sample`, :func:`latent_walk`,
:func:`latent_grid`) and :func:`export_program`.

``VAE`` is Kingma and Welling's (2014) model with the PyTorch examples'
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

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

if TYPE_CHECKING:  # the model is written on the chapter's page
    from ..chapters.vae_mnist import VAE

__all__ = [
    "IMAGE_SHAPE",
    "PIXELS",
    "check_generator",
    "check_images",
    "check_model_device",
    "check_positive_int",
    "eval_mode",
    "export_program",
    "latent_grid",
    "latent_walk",
    "reconstruct",
    "sample",
    "to_input",
]

IMAGE_SHAPE = (1, 28, 28)  # one MNIST image: channel, height, width
PIXELS = 28 * 28  # the encoder's input and the decoder's output width


def check_positive_int(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def check_images(images: object, name: str = "images") -> torch.Tensor:
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


def check_model_device(model: nn.Module, device: torch.device | str) -> torch.device:
    device = torch.device(device)
    if _model_device(model).type != device.type:
        raise ValueError(
            f"the model is on {_model_device(model)} but device is {device}: "
            "move it there with model.to(device) (before making its optimizer)"
        )
    return device


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode and no gradients inside; the model's mode is restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def check_generator(
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


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 images ``(N, 1, 28, 28)`` as float32 ``(N, 784)`` in [0, 1], on their device."""
    check_images(images)
    return images.flatten(1).float().div_(255)


# ---------------------------------------------------------------- pictures


def _images_from_codes(model: VAE, z: torch.Tensor) -> torch.Tensor:
    """Decoded images in [0, 1], ``(B, 1, 28, 28)``, on the CPU, in eval mode."""
    with eval_mode(model):
        return torch.sigmoid(model.decode(z)).unflatten(1, IMAGE_SHAPE).cpu()


def reconstruct(
    model: VAE, images: torch.Tensor, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Reconstructions in [0, 1], float ``(N, 1, 28, 28)`` on the CPU.

    ``images``: uint8 ``(N, 1, 28, 28)``, encoded in one batch. Without a
    ``generator`` the code is ``z = mu``; with one (on the model's device) it
    is drawn from ``q(z | x)``.
    """
    x = to_input(check_images(images).to(_model_device(model)))
    with eval_mode(model):
        mu, logvar = model.encode(x)
        z = mu if generator is None else model.reparameterize(mu, logvar, generator)
    return _images_from_codes(model, z)


def sample(model: VAE, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` new images in [0, 1], ``(n, 1, 28, 28)`` on the CPU: ``z ~ N(0, I)``, decoded.

    ``generator`` lives on the model's device.
    """
    n = check_positive_int(n, "n")
    device = _model_device(model)
    check_generator(generator, device, "sample")
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
    steps = check_positive_int(steps, "steps")
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
    steps = check_positive_int(steps, "steps")
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
    with eval_mode(model):
        return torch.export.export(
            wrapper, (example,), dynamic_shapes=({0: batch},), strict=False
        )
