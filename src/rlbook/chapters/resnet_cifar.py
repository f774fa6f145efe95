"""Generated from chapters/resnet_cifar.md by scripts/sync_notebooks.py: do not edit.

The page's code cells tagged ``export``, in page order. Edit them on the
page, then run scripts/sync_notebooks.py.
"""

import contextlib
import functools
import math
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
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
    check_md5,
    check_split,
    fetch_source,
    missing,
    resolve_root,
)
from rlbook.device import synchronize
from rlbook.projects.runs import check_positive_int, fit_epochs, hold_out
from rlbook.projects.shipping import register_kind, round_to_shipped
from rlbook.seeding import stream_seed, torch_stream


def load_cifar10(
    split: str = "train",
    root: Path | str | None = None,
    *,
    download: bool = True,
) -> ImageSet:
    """CIFAR-10's ``split`` from the binary version: uint8
    ``(N, 3, 32, 32)`` and labels."""
    check_split(split)
    root = resolve_root(root)
    folder = root / CIFAR10_FOLDER
    paths = [folder / name for name in CIFAR10_FILES[split]]
    if not all(path.is_file() for path in paths):
        archive = root / CIFAR10_ARCHIVE.filename
        error = None
        if not archive.is_file() and download:
            try:
                fetch_source(CIFAR10_ARCHIVE, root)
            except ChecksumError:
                raise
            except DataError as caught:
                error = caught
        if archive.is_file():
            check_md5(archive, CIFAR10_ARCHIVE.md5)
            extract_cifar10(archive, root)
        absent = [path.name for path in paths if not path.is_file()]
        if absent:
            raise missing(
                f"CIFAR-10's {split} split ({', '.join(absent)})",
                root,
                f"{CIFAR10_FOLDER}/ from {CIFAR10_ARCHIVE.urls[0]} (the "
                "binary version)",
                error,
            )
    check_listed_checksums(root, paths)
    images, labels = [], []
    for path in paths:
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size == 0 or raw.size % CIFAR10_RECORD:
            raise DataError(
                f"{path} is truncated or not a CIFAR-10 binary batch: "
                f"its {raw.size:,} bytes "
                f"are not a whole number of {CIFAR10_RECORD:,}-byte "
                "records"
            )
        records = raw.reshape(-1, CIFAR10_RECORD)
        if records[:, 0].max() >= len(CIFAR10_CLASSES):
            bad = int(np.argmax(records[:, 0] >= len(CIFAR10_CLASSES)))
            raise DataError(
                f"{path} is corrupt: record {bad} has label byte "
                f"{records[bad, 0]}, but "
                f"CIFAR-10 labels are 0-9"
            )
        labels.append(records[:, 0])
        images.append(records[:, 1:].reshape(-1, 3, 32, 32))
    return ImageSet(
        images=torch.from_numpy(np.concatenate(images)),
        labels=torch.from_numpy(np.concatenate(labels).astype(np.int64)),
        classes=CIFAR10_CLASSES,
        split=split,
        full_size=CIFAR10_FULL_SIZE[split],
        source=folder,
    )


CIFAR10_ARCHIVE = Source(
    "cifar-10-binary.tar.gz",
    "c32a1d4ab5d03f1284b67883e8d87530",
    ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
)
CIFAR10_FOLDER = "cifar-10-batches-bin"
CIFAR10_FILES = {
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}
CIFAR10_CLASSES = tuple(
    "airplane automobile bird cat deer dog frog horse ship truck".split()
)
CIFAR10_RECORD = 1 + 3 * 32 * 32
CIFAR10_FULL_SIZE = {"train": 50_000, "test": 10_000}


def extract_cifar10(archive: Path, root: Path) -> None:
    """Extract only the expected regular files of the CIFAR-10 binary
    archive."""
    wanted = {
        f"{CIFAR10_FOLDER}/{name}"
        for names in CIFAR10_FILES.values()
        for name in names
    }
    wanted.add(f"{CIFAR10_FOLDER}/batches.meta.txt")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if name not in wanted or not member.isfile():
                    continue
                source = tar.extractfile(member)
                assert source is not None
                target = root / name
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, partial = tempfile.mkstemp(
                    prefix=f".{target.name}.",
                    suffix=".part",
                    dir=target.parent,
                )
                try:
                    with os.fdopen(fd, "wb") as out:
                        shutil.copyfileobj(source, out)
                    os.chmod(
                        partial, 0o644
                    )  # mkstemp's files are private
                    os.replace(partial, target)
                except BaseException:
                    Path(partial).unlink(missing_ok=True)
                    raise
                wanted.discard(name)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise DataError(
            f"{archive} is not a readable CIFAR-10 archive ({error}); "
            "delete it and "
            "download it again"
        ) from error
    if wanted:
        raise DataError(
            f"{archive} lacks {sorted(wanted)}: it is not the CIFAR-10 "
            "binary archive"
        )


def check_images(images: torch.Tensor, name: str = "images") -> None:
    """Raise ValueError unless images is a uint8 (N, 3, H, W) batch."""
    if not isinstance(images, torch.Tensor):
        kind = type(images).__name__
        raise ValueError(f"{name} must be a torch.Tensor, got {kind}")
    if images.dtype != torch.uint8:
        raise ValueError(
            f"{name} must be uint8 pixels in 0-255 (as load_cifar10 "
            f"returns them), got dtype {images.dtype}; keep the raw "
            "bytes and let normalize() scale them"
        )
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"{name} must have shape (N, 3, H, W), got "
            f"{tuple(images.shape)}; add a batch dimension with "
            "images[None] for a single image"
        )


# Per-channel mean and standard deviation of CIFAR-10's full training set
# (50,000 images, pixels scaled to [0, 1]): the values widely used.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) to float32 (pixel / 255 - mean) / std per
    channel, on the images' device, in their memory format."""
    check_images(images)
    device = images.device
    mean = torch.tensor(CIFAR10_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD, device=device).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def augment(
    images: torch.Tensor, generator: torch.Generator, *, padding: int = 4
) -> torch.Tensor:
    """Random crop of the zero-padded image and random horizontal flip.

    uint8 (N, 3, H, W) on any device to the same; each image draws its own
    shift of -padding to +padding pixels each way and its flip. The
    generator may live on the images' device or on the CPU.
    """
    check_images(images)
    if (
        not isinstance(padding, int)
        or isinstance(padding, bool)
        or padding < 0
    ):
        raise ValueError(
            f"padding must be a non-negative int, got {padding!r}"
        )
    n, channels, height, width = images.shape
    draw_on = generator.device
    # Offsets into the padded image: 0 .. 2 * padding.
    offsets = torch.randint(
        0, 2 * padding + 1, (2, n), generator=generator, device=draw_on
    )
    flips = torch.randint(0, 2, (n,), generator=generator, device=draw_on)
    device = images.device
    offsets, flips = offsets.to(device), flips.to(device).bool()
    padded = F.pad(images, (padding, padding, padding, padding))  # zeros
    padded_width = width + 2 * padding
    row_steps = torch.arange(height, device=device)
    col_steps = torch.arange(width, device=device)
    # A flipped image reads its window's columns right to left: (N, W).
    col_steps = torch.where(flips[:, None], col_steps.flip(0), col_steps)
    rows = offsets[0, :, None] + row_steps  # (N, H)
    cols = offsets[1, :, None] + col_steps  # (N, W)
    # One gather from each flattened padded image (4x faster on a CPU
    # than indexing with four broadcast index tensors).
    flat = rows[:, :, None] * padded_width + cols[:, None, :]  # (N, H, W)
    pixels = height * width
    flat = flat.view(n, 1, pixels).expand(n, channels, pixels)
    crops = padded.reshape(n, channels, -1).gather(2, flat)
    return crops.view(n, channels, height, width)


class BasicBlock(nn.Module):
    """relu(F(x) + shortcut(x)): (N, in, H, W) -> (N, out, H/s, W/s)."""

    def __init__(
        self, in_channels: int, channels: int, stride: int = 1
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels, channels, 3, stride=stride, padding=1, bias=False
        )
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(
            channels, channels, 3, padding=1, bias=False
        )
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(
                    in_channels, channels, 1, stride=stride, bias=False
                ),
                nn.BatchNorm2d(channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18, CIFAR variant: normalised (N, 3, H, W) -> logits."""

    def __init__(self, num_classes: int = 10, *, width: int = 64) -> None:
        super().__init__()
        check_positive_int(num_classes, "num_classes")
        check_positive_int(width, "width")
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        stages = []
        in_channels = width
        for index, multiple in enumerate((1, 2, 4, 8)):
            channels = width * multiple
            stride = 1 if index == 0 else 2
            stages.append(
                nn.Sequential(
                    BasicBlock(in_channels, channels, stride),
                    BasicBlock(channels, channels, 1),
                )
            )
            in_channels = channels
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(in_channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(
                    module.weight, mode="fan_out", nonlinearity="relu"
                )
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


@dataclass(frozen=True)
class ResNetConfig:
    """Every setting of ResNet-18's run that differs between budgets (the
    rest of the recipe is TrainConfig's, below)."""

    validation_share: float = 0.1
    """share of the training images held out to pick the epoch"""
    train_images: int | None = None
    """use only the first this many other training images (None: all)"""
    width: int = 64
    """channels of the first stage (64 is ResNet-18)"""
    epochs: int = 30
    """passes over the training images; the schedule spans all of them"""
    batch_size: int = 128
    """images per SGD step"""
    lr: float = 0.1
    """peak learning rate of the one-cycle schedule"""

    def train_config(self) -> "TrainConfig":
        """The recipe, TrainConfig, with these settings."""
        return TrainConfig(
            epochs=self.epochs, batch_size=self.batch_size, lr=self.lr
        )


RESNET_CONFIGS: dict[str, ResNetConfig] = {
    # Seconds: proves the code runs; its accuracy means nothing.
    "smoke": ResNetConfig(
        train_images=256, width=8, epochs=1, batch_size=64
    ),
    # The full recipe with a two-epoch schedule: what the CI build trains.
    "ci": ResNetConfig(epochs=2),
    # The shipped model's run (scripts/train_resnet.py).
    "full": ResNetConfig(epochs=20),
}


def resnet_config(budget: str) -> ResNetConfig:
    """ResNet-18's settings at budget (smoke, ci or full)."""
    return RESNET_CONFIGS[validate_budget(budget)]


SHIPPED_WEIGHTS = "int8"
"""ResNet-18's weight format (see projects.shipping): 11 MB, not 22."""


def resnet_spec(
    config: ResNetConfig,
    classes: tuple[str, ...] | list[str] | None = None,
) -> dict[str, Any]:
    """The resnet18-cifar spec of a shipped model (projects.shipping)."""
    spec: dict[str, Any] = {
        "model": {"num_classes": 10, "width": config.width}
    }
    spec["classes"] = list(classes) if classes is not None else None
    spec["mean"], spec["std"] = list(CIFAR10_MEAN), list(CIFAR10_STD)
    return spec


def build_resnet(config: ResNetConfig) -> ResNet18:
    """The network of config (its weights from torch's global stream)."""
    return ResNet18(**resnet_spec(config)["model"])


@register_kind("resnet18-cifar")
def build_shipped_resnet(spec: dict[str, Any]) -> tuple[nn.Module, dict]:
    """A shipped model's network, from its spec, and its extras."""
    model = ResNet18(**dict(spec["model"]))
    classes = spec["classes"]
    if classes is not None and (
        not isinstance(classes, list)
        or len(classes) != model.fc.out_features
    ):
        raise ValueError(
            f"classes must list {model.fc.out_features} names, "
            f"got {classes!r}"
        )
    # normalize() uses CIFAR-10's statistics; a model trained with
    # others would read its inputs wrong.
    stats = (tuple(spec["mean"]), tuple(spec["std"]))
    if stats != (CIFAR10_MEAN, CIFAR10_STD):
        raise ValueError(
            f"the model was trained with mean {spec['mean']} and std "
            f"{spec['std']}, not CIFAR-10's {CIFAR10_MEAN} and "
            f"{CIFAR10_STD}"
        )
    return model, {"classes": classes}


@dataclass(frozen=True)
class TrainConfig:
    """Training recipe for ResNet-18 on CIFAR-10; sources of the defaults.

    batch_size 128, peak learning rate 0.1, momentum 0.9 and weight decay
    5e-4 are the common ResNet-18 CIFAR recipe (kuangliu/pytorch-cifar;
    Zagoruyko & Komodakis 2016, who also use Nesterov momentum; He et al.
    2016 use the same but with weight decay 1e-4 for their CIFAR ResNets).
    Label smoothing 0.1: Szegedy et al. (2016). No weight decay on
    BatchNorm parameters and biases: "no bias decay" in He et al. (2019),
    Bag of Tricks. The one-cycle schedule (Smith & Topin 2019) rises
    linearly from peak / 25 to the peak over the first 30% of the steps
    and falls linearly to 0: PyTorch's OneCycleLR with its defaults
    div_factor=25 and pct_start=0.3, but anneal_strategy="linear",
    momentum held fixed (cycle_momentum=False) and ending at 0 rather than
    at peak / 250,000.
    """

    epochs: int = 30
    """passes over the training set; the schedule spans all of them"""
    batch_size: int = 128
    """images per SGD step"""
    lr: float = 0.1
    """peak learning rate of SGD (reached at the end of warm-up)"""
    momentum: float = 0.9
    """SGD momentum"""
    nesterov: bool = True
    """Nesterov momentum instead of heavy-ball momentum"""
    weight_decay: float = 5e-4
    """L2 penalty on weights (not BatchNorm's nor biases), through SGD"""
    label_smoothing: float = 0.1
    """share of the target mass spread uniformly over all classes"""
    warmup_fraction: float = 0.3
    """share of all steps spent rising to the peak"""
    warmup_start: float = 1 / 25
    """the first step's learning rate as a fraction of the peak"""
    drop_last: bool = False
    """skip each epoch's last, smaller batch (fixed shapes, to compile)"""

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            check_positive_int(getattr(self, name), name)
        ranges = {  # field: (the test, what it must be)
            "lr": (lambda v: v > 0, "be > 0"),
            "momentum": (lambda v: 0 <= v < 1, "lie in [0, 1)"),
            "weight_decay": (lambda v: v >= 0, "be >= 0"),
            "label_smoothing": (lambda v: 0 <= v < 1, "lie in [0, 1)"),
            "warmup_fraction": (lambda v: 0 <= v < 1, "lie in [0, 1)"),
            "warmup_start": (lambda v: 0 < v <= 1, "lie in (0, 1]"),
        }
        for name, (ok, what) in ranges.items():
            value = getattr(self, name)
            if not ok(value):
                raise ValueError(f"{name} must {what}, got {value!r}")
        if self.nesterov and self.momentum == 0:
            raise ValueError(
                "nesterov=True needs momentum > 0; set momentum (e.g. "
                "0.9) or nesterov=False"
            )

    def steps_per_epoch(self, n_images: int) -> int:
        """SGD steps in one epoch over n_images."""
        if n_images < 1:
            raise ValueError(f"n_images must be >= 1, got {n_images}")
        if self.drop_last:
            if n_images < self.batch_size:
                raise ValueError(
                    f"drop_last=True with {n_images} images and "
                    f"batch_size={self.batch_size} leaves no batch"
                )
            return n_images // self.batch_size
        return math.ceil(n_images / self.batch_size)


def learning_rate_at(
    config: TrainConfig, step: int, total_steps: int
) -> float:
    """The one-cycle learning rate of SGD step `step` (from 0): linear
    from lr * warmup_start to lr at step round(warmup_fraction *
    total_steps), then linear to 0 at total_steps."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    # The peak step, kept before the end: the decay has at least one step.
    peak = min(
        round(config.warmup_fraction * total_steps), total_steps - 1
    )
    if step < peak:
        rise = step / peak
        return config.lr * (
            config.warmup_start + (1.0 - config.warmup_start) * rise
        )
    return config.lr * max(
        0.0, (total_steps - step) / (total_steps - peak)
    )


def schedule_factor(
    config: TrainConfig, total_steps: int, step: int
) -> float:
    return learning_rate_at(config, step, total_steps) / config.lr


def make_optimizer(
    model: nn.Module, config: TrainConfig, steps_per_epoch: int
) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.LambdaLR]:
    """SGD and its schedule over config.epochs * steps_per_epoch steps,
    both stepped once per batch; no weight decay on parameters of one
    dimension (BatchNorm's and the biases)."""
    check_positive_int(steps_per_epoch, "steps_per_epoch")
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("model has no trainable parameters")
    groups = [
        {
            "params": [p for p in trainable if p.ndim > 1],
            "weight_decay": config.weight_decay,
        },
        {
            "params": [p for p in trainable if p.ndim <= 1],
            "weight_decay": 0.0,
        },
    ]
    groups = [group for group in groups if group["params"]]
    optimizer = torch.optim.SGD(
        groups,
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov,
    )
    total_steps = config.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        functools.partial(schedule_factor, config, total_steps),
    )
    return optimizer, scheduler


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
    """Hold out a seeded share of the training images for validation;
    keep config.train_images of the rest (None: all) for training."""
    valid, train = hold_out(
        int(train_labels.numel()), config.validation_share, seed
    )
    if config.train_images is not None:
        train = train[: config.train_images]
    return ImageSplit(
        train_images=train_images[train],
        train_labels=train_labels[train],
        valid_images=train_images[valid],
        valid_labels=train_labels[valid],
        test_images=test_images,
        test_labels=test_labels,
    )


AUTOCAST_DTYPES = (torch.bfloat16, torch.float16)


def check_dataset(images: torch.Tensor, labels: torch.Tensor) -> None:
    check_images(images)
    if (
        not isinstance(labels, torch.Tensor)
        or labels.dtype != torch.int64
    ):
        raise ValueError(
            "labels must be an int64 tensor of class indices, got "
            f"{getattr(labels, 'dtype', type(labels).__name__)}"
        )
    if labels.shape != (images.shape[0],):
        raise ValueError(
            f"labels must have shape ({images.shape[0]},), one per "
            f"image, got {tuple(labels.shape)}"
        )
    if images.shape[0] == 0:
        raise ValueError(
            "images is empty: there is nothing to train or evaluate on"
        )


def check_autocast_dtype(dtype: torch.dtype | None) -> None:
    if dtype is not None and dtype not in AUTOCAST_DTYPES:
        raise ValueError(
            "autocast_dtype must be None, torch.bfloat16 or "
            f"torch.float16, got {dtype}"
        )


def autocast_to(
    device: torch.device, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager[object]:
    """torch.autocast to dtype on the device's type; None: nothing."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def train_epoch(
    model: nn.Module,
    images_u8: torch.Tensor,
    labels: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    config: TrainConfig,
    generator: torch.Generator,
    *,
    device: torch.device | str,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    grad_scaler: torch.amp.GradScaler | None = None,
) -> dict[str, float]:
    """One pass over the training set; one SGD step per batch."""
    check_dataset(images_u8, labels)
    if labels.device != images_u8.device:
        raise ValueError(
            f"labels are on {labels.device} but images_u8 on "
            f"{images_u8.device}; put both on the same device"
        )
    device = torch.device(device)
    check_autocast_dtype(autocast_dtype)
    if autocast_dtype == torch.float16 and grad_scaler is None:
        raise ValueError(
            "autocast_dtype=torch.float16 needs loss scaling: pass "
            "grad_scaler=torch.amp.GradScaler(device_type), or use "
            "torch.bfloat16"
        )
    n = images_u8.shape[0]
    steps = config.steps_per_epoch(n)
    memory_format = (
        torch.channels_last if channels_last else torch.contiguous_format
    )
    model.train()
    synchronize(device)
    start = time.perf_counter()
    order = torch.randperm(
        n, generator=generator, device=generator.device
    )
    order = order.to(images_u8.device)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    size = config.batch_size
    for step in range(steps):
        index = order[step * size : (step + 1) * size]
        batch = images_u8[index].to(device, non_blocking=True)
        target = labels[index].to(device, non_blocking=True)
        x = normalize(augment(batch, generator))
        x = x.contiguous(memory_format=memory_format)
        with autocast_to(device, autocast_dtype):
            logits = model(x)
        loss = F.cross_entropy(
            logits.float(), target, label_smoothing=config.label_smoothing
        )
        optimizer.zero_grad(set_to_none=True)
        if grad_scaler is None:
            loss.backward()
            optimizer.step()
        else:
            grad_scaler.scale(loss).backward()
            grad_scaler.step(optimizer)
            grad_scaler.update()
        scheduler.step()
        loss_sum += loss.detach() * target.shape[0]
        correct += (logits.detach().argmax(dim=1) == target).sum()
        seen += target.shape[0]
    mean_loss = loss_sum.item() / seen  # the epoch's only wait
    accuracy = correct.item() / seen
    return {
        "loss": mean_loss,
        "accuracy": accuracy,
        "images": seen,
        "seconds": time.perf_counter() - start,
    }


def predict_logits(
    model: nn.Module,
    images_u8: torch.Tensor,
    *,
    device: torch.device | str,
    batch_size: int = 500,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> torch.Tensor:
    """float32 logits (N, classes) on device: eval mode, no augmentation,
    batch_size images at a time; the model's mode is restored after."""
    check_images(images_u8, "images_u8")
    check_positive_int(batch_size, "batch_size")
    device = torch.device(device)
    check_autocast_dtype(autocast_dtype)
    memory_format = (
        torch.channels_last if channels_last else torch.contiguous_format
    )
    was_training = model.training
    model.eval()
    outputs = []
    try:
        with torch.inference_mode():
            for start in range(0, images_u8.shape[0], batch_size):
                batch = images_u8[start : start + batch_size].to(device)
                x = normalize(batch).contiguous(
                    memory_format=memory_format
                )
                with autocast_to(device, autocast_dtype):
                    logits = model(x)
                outputs.append(logits.float())
    finally:
        model.train(was_training)
    return torch.cat(outputs)


def evaluate(
    model: nn.Module,
    images_u8: torch.Tensor,
    labels: torch.Tensor,
    *,
    device: torch.device | str,
    batch_size: int = 500,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> tuple[float, torch.Tensor]:
    """Accuracy, and the int64 (K, K) confusion matrix on the CPU: entry
    [i, j] counts images of true class i predicted as j."""
    check_dataset(images_u8, labels)
    logits = predict_logits(
        model,
        images_u8,
        device=device,
        batch_size=batch_size,
        autocast_dtype=autocast_dtype,
        channels_last=channels_last,
    )
    k = logits.shape[1]
    target = labels.to(logits.device)
    if int(target.min()) < 0 or int(target.max()) >= k:
        raise ValueError(
            f"labels must lie in 0..{k - 1} for a model with {k} "
            f"outputs, got {int(target.min())}..{int(target.max())}"
        )
    predicted = logits.argmax(dim=1)
    confusion = torch.bincount(
        target * k + predicted, minlength=k * k
    ).view(k, k)
    confusion = confusion.cpu()
    return int(confusion.trace()) / images_u8.shape[0], confusion


@dataclass
class ResNetRun:
    """A run's curves, and both sets of weights with their test figures
    (the weights rounded to what ships, SHIPPED_WEIGHTS)."""

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
    """Train config.epochs epochs; test the best and final weights."""
    device = torch.device(device)
    recipe = config.train_config()
    torch.manual_seed(stream_seed(seed, "init"))
    model = build_resnet(config).to(device)
    steps = recipe.steps_per_epoch(int(split.train_labels.numel()))
    optimizer, scheduler = make_optimizer(model, recipe, steps)
    generator = torch_stream(seed, "data")  # batch order, augmentation

    def one_epoch() -> dict[str, float]:
        return train_epoch(
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
        images, labels = split.valid_images, split.valid_labels
        return evaluate(model, images, labels, device=device)[0]

    start = time.perf_counter()
    result = fit_epochs(
        model,
        optimizer,
        epochs=config.epochs,
        train_epoch=one_epoch,
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
    test_images, test_labels = split.test_images, split.test_labels
    best_accuracy, best_confusion = evaluate(
        best, test_images, test_labels, device="cpu"
    )
    final_accuracy, final_confusion = evaluate(
        final, test_images, test_labels, device="cpu"
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
