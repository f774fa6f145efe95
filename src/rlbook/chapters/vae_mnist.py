"""Generated from chapters/vae_mnist.md by scripts/sync_notebooks.py: do not edit.

The page's code cells tagged ``export``, in page order. Edit them on the
page, then run scripts/sync_notebooks.py.
"""

import gzip
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlbook.budget import validate_budget
from rlbook.data import (
    ChecksumError,
    DataError,
    ImageSet,
    Source,
    check_listed_checksums,
    check_split,
    fetch_source,
    missing,
    resolve_root,
)
from rlbook.projects.runs import check_positive_int, fit_epochs, hold_out
from rlbook.projects.shipping import register_kind, round_to_shipped
from rlbook.seeding import stream_seed, torch_stream


def load_mnist(
    split: str = "train",
    root: Path | str | None = None,
    *,
    download: bool = True,
) -> ImageSet:
    """MNIST's ``split`` from its IDX files: uint8 ``(N, 1, 28, 28)`` and
    labels."""
    check_split(split)
    root = resolve_root(root)
    folder = root / MNIST_FOLDER
    prefix = MNIST_PREFIX[split]
    found = [
        mnist_file(folder, f"{prefix}-{kind}-ubyte.gz", download)
        for kind in ("images-idx3", "labels-idx1")
    ]
    for path, error in found:
        if not path.is_file():
            raise missing(
                f"MNIST's {split} file {path.name}",
                root,
                f"{MNIST_FOLDER}/{path.name} (from {MNIST_MIRRORS[0]})",
                error,
            )
    (images_path, _), (labels_path, _) = found
    check_listed_checksums(root, [images_path, labels_path])
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if images.shape[1:] != (28, 28):
        raise DataError(
            f"{images_path} holds {images.shape[1:]} images; MNIST's are "
            "28x28"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images):,} images but "
            f"{labels_path} "
            f"{len(labels):,} labels: the two files do not belong "
            "together"
        )
    if len(labels) == 0:
        raise DataError(
            f"{labels_path} and {images_path} hold no images: put "
            f"MNIST's {split} "
            "files (or a non-empty subset of them) there"
        )
    if labels.max() > 9:
        raise DataError(
            f"{labels_path} is corrupt: it holds label {labels.max()}"
        )
    return ImageSet(
        images=torch.from_numpy(images.copy()).unsqueeze(1),
        labels=torch.from_numpy(labels.astype(np.int64)),
        classes=tuple(str(d) for d in range(10)),
        split=split,
        full_size=MNIST_FULL_SIZE[split],
        source=folder,
    )


MNIST_FOLDER = "MNIST/raw"
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
MNIST_SOURCES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_PREFIX = {"train": "train", "test": "t10k"}
MNIST_FULL_SIZE = {"train": 60_000, "test": 10_000}


def read_idx(path: Path, dims: int) -> np.ndarray:
    """An IDX file of unsigned bytes with ``dims`` dimensions, gzipped or
    not."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as file:
            data = file.read()
    except (OSError, EOFError) as error:  # BadGzipFile is an OSError
        raise DataError(
            f"{path} is truncated or not a gzip file ({error})"
        ) from error
    if len(data) < 4 + 4 * dims or data[:4] != bytes([0, 0, 0x08, dims]):
        raise DataError(
            f"{path} is not an IDX file of {dims}-dimensional unsigned "
            "bytes: its header "
            f"starts {data[:4].hex()}, expected 000008{dims:02x}"
        )
    shape = tuple(
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big")
        for i in range(dims)
    )
    body = data[4 + 4 * dims :]
    size = math.prod(shape)  # exact: np.prod wraps around past 2**63
    if len(body) != size:
        raise DataError(
            f"{path} is truncated or corrupt: its header promises shape "
            f"{shape} "
            f"({size:,} bytes), but {len(body):,} bytes follow"
        )
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def mnist_file(
    folder: Path, name: str, download: bool
) -> tuple[Path, DataError | None]:
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate, None
    if not download:
        return folder / name, None
    source = Source(
        name, MNIST_SOURCES[name], tuple(m + name for m in MNIST_MIRRORS)
    )
    try:
        return fetch_source(source, folder), None
    except ChecksumError:
        raise
    except DataError as error:
        return folder / name, error


def check_images(images: object, name: str = "images") -> torch.Tensor:
    """Raise unless images is a uint8 (N, 1, 28, 28) tensor, N >= 1."""
    if not isinstance(images, torch.Tensor):
        kind = type(images).__name__
        raise ValueError(f"{name} must be a torch.Tensor, got {kind}")
    if images.dtype != torch.uint8:
        raise ValueError(
            f"{name} must be uint8 pixels 0..255 (as load_mnist returns "
            f"them), got {images.dtype}; pass ImageSet.images, not "
            "images already scaled"
        )
    if images.dim() != 4 or tuple(images.shape[1:]) != IMAGE_SHAPE:
        raise ValueError(
            f"{name} must have shape (N, 1, 28, 28), got "
            f"{tuple(images.shape)}"
        )
    if len(images) == 0:
        raise ValueError(f"{name} holds no images")
    return images


IMAGE_SHAPE = (1, 28, 28)  # one MNIST image: channel, height, width
PIXELS = 28 * 28  # the encoder's input and the decoder's output width


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def check_model_device(
    model: nn.Module, device: torch.device | str
) -> torch.device:
    device = torch.device(device)
    if model_device(model).type != device.type:
        raise ValueError(
            f"the model is on {model_device(model)} but device is "
            f"{device}: move it there with model.to(device) (before "
            "making its optimizer)"
        )
    return device


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode and no gradients inside; the mode is restored after."""
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
            f"{what} needs a torch.Generator (e.g. rlbook.seeding."
            "torch_stream(seed, purpose, device)), got "
            f"{type(generator).__name__}"
        )
    if generator.device.type != device.type:
        raise ValueError(
            f"the generator is on {generator.device} but {what} draws "
            f"numbers on {device}: create it there, torch_stream(seed, "
            f"purpose, {str(device)!r})"
        )
    return generator


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 1, 28, 28) as float32 (N, 784) in [0, 1], same device."""
    check_images(images)
    return images.flatten(1).float().div_(255)


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


@dataclass(frozen=True)
class VAEConfig:
    """Every setting of the VAE's run (Adam, as in PyTorch's example)."""

    validation_share: float = 0.1
    """share of the training images held out to pick the epoch"""
    hidden: tuple[int, ...] = (512, 256)
    """the encoder's hidden widths, mirrored by the decoder"""
    latent: int = 20
    """dimensions of the latent code"""
    epochs: int = 50
    """passes over the training images"""
    batch_size: int = 128
    """images per Adam step"""
    lr: float = 1e-3
    """Adam's learning rate"""


VAE_CONFIGS: dict[str, VAEConfig] = {
    # Seconds: proves the code runs; its losses mean nothing.
    "smoke": VAEConfig(epochs=1),
    # The first 15 epochs of the full run: what the CI build trains.
    "ci": VAEConfig(epochs=15),
    # The shipped model's run (scripts/train_vae.py).
    "full": VAEConfig(epochs=50),
}


def vae_config(budget: str) -> VAEConfig:
    """The VAE's settings at budget (smoke, ci or full)."""
    return VAE_CONFIGS[validate_budget(budget)]


def vae_spec(config: VAEConfig) -> dict[str, Any]:
    """The vae-mnist spec of a shipped model (see projects.shipping)."""
    model = {"hidden": list(config.hidden), "latent": config.latent}
    return {"model": model}


@register_kind("vae-mnist")
def build_vae(spec: dict[str, Any]) -> tuple[nn.Module, dict]:
    """A shipped model's network, from its spec; no extras."""
    return VAE(**dict(spec["model"])), {}


class DigitSplit(NamedTuple):
    """uint8 images (N, 1, 28, 28) of the three parts."""

    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor


def split_digits(
    train_images: torch.Tensor,
    test_images: torch.Tensor,
    config: VAEConfig,
    seed: int,
) -> DigitSplit:
    """Hold out a seeded share of the training images for validation."""
    valid, train = hold_out(
        int(train_images.shape[0]), config.validation_share, seed
    )
    return DigitSplit(
        train=train_images[train],
        valid=train_images[valid],
        test=test_images,
    )


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


def images_from_codes(model: VAE, z: torch.Tensor) -> torch.Tensor:
    """Decoded images in [0, 1], (B, 1, 28, 28), on the CPU."""
    with eval_mode(model):
        images = torch.sigmoid(model.decode(z)).unflatten(1, IMAGE_SHAPE)
        return images.cpu()


def reconstruct(
    model: VAE,
    images: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Reconstructions of uint8 images, (N, 1, 28, 28) in [0, 1], on the
    CPU: z = mu, or drawn from q(z | x) with a generator."""
    x = to_input(check_images(images).to(model_device(model)))
    with eval_mode(model):
        mu, logvar = model.encode(x)
        z = mu
        if generator is not None:
            z = model.reparameterize(mu, logvar, generator)
    return images_from_codes(model, z)


def sample(
    model: VAE, n: int, generator: torch.Generator
) -> torch.Tensor:
    """n new images (n, 1, 28, 28) on the CPU: z ~ N(0, I), decoded."""
    n = check_positive_int(n, "n")
    device = model_device(model)
    check_generator(generator, device, "sample")
    z = torch.randn((n, model.latent), generator=generator, device=device)
    return images_from_codes(model, z)


def check_code(model: VAE, z: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(z, torch.Tensor) or z.shape != (model.latent,):
        got = getattr(z, "shape", type(z).__name__)
        raise ValueError(
            f"{name} must be one latent code of shape ({model.latent},),"
            f" got {tuple(got) if isinstance(got, torch.Size) else got}"
        )
    return z.to(model_device(model), torch.float32)


def latent_walk(
    model: VAE, z_start: torch.Tensor, z_end: torch.Tensor, steps: int
) -> torch.Tensor:
    """Images (steps, 1, 28, 28) along the line from z_start to z_end,
    both ends included."""
    steps = check_positive_int(steps, "steps")
    if steps < 2:
        raise ValueError(f"steps must be at least 2 (both ends): {steps}")
    start = check_code(model, z_start, "z_start")
    end = check_code(model, z_end, "z_end")
    t = torch.linspace(0, 1, steps, device=start.device)[:, None]
    # lerp is exact at t = 0 and 1
    return images_from_codes(model, torch.lerp(start, end, t))


def latent_grid(
    model: VAE,
    steps: int,
    *,
    dims: tuple[int, int] = (0, 1),
    limit: float = 2.0,
    center: torch.Tensor | None = None,
) -> torch.Tensor:
    """A 2-D slice of the latent space, (steps, steps, 1, 28, 28): image
    [i, j] decodes center (default 0) with coordinates dims set to
    values[i], values[j], values = linspace(-limit, limit, steps)."""
    steps = check_positive_int(steps, "steps")
    if len(dims) != 2 or dims[0] == dims[1]:
        raise ValueError(
            f"dims must be two different latent dimensions, got {dims}"
        )
    for d in dims:
        if not isinstance(d, int) or not 0 <= d < model.latent:
            raise ValueError(
                f"dims must be in 0..{model.latent - 1} (the latent size "
                f"is {model.latent}), got {dims}"
            )
    if not limit > 0:
        raise ValueError(f"limit must be positive, got {limit!r}")
    device = model_device(model)
    if center is None:
        origin = torch.zeros(model.latent, device=device)
    else:
        origin = check_code(model, center, "center")
    values = torch.linspace(-limit, limit, steps, device=device)
    z = origin.repeat(steps, steps, 1)
    z[:, :, dims[0]] = values[:, None]
    z[:, :, dims[1]] = values[None, :]
    images = images_from_codes(model, z.flatten(0, 1))
    return images.unflatten(0, (steps, steps))


class DecodeImages(nn.Module):
    """The decoder as a generator: codes (B, latent) to images
    (B, 1, 28, 28) in [0, 1]."""

    def __init__(self, model: VAE) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        logits = self.model.decode(z)
        return torch.sigmoid(logits).unflatten(1, IMAGE_SHAPE)


def export_decoder(model: VAE) -> torch.export.ExportedProgram:
    """torch.export the decoder, for any batch size, on the model's
    device, with the weights it has now."""
    example = torch.zeros(2, model.latent, device=model_device(model))
    batch = torch.export.Dim("batch", min=1)
    with eval_mode(model):
        return torch.export.export(
            DecodeImages(model),
            (example,),
            dynamic_shapes=({0: batch},),
            strict=False,
        )
