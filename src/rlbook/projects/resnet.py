"""ResNet-18 on CIFAR-10, what surrounds the chapter's model: images, the recipe, evaluation.

The network (``ResNet18``), one training epoch (``train_epoch``) and the run
(``train_resnet``) are written on the chapter's page,
``chapters/resnet_cifar.md``, and generated into
:mod:`rlbook.chapters.resnet_cifar`. This module holds what they stand on:

* :func:`normalize` and :func:`augment`: uint8 images to normalised floats, and
  the usual CIFAR augmentation (random 32x32 crop of the image zero-padded by 4,
  random horizontal flip) for a whole batch at once, on whatever device it is.
* :class:`TrainConfig`, :func:`learning_rate_at`, :func:`make_optimizer`: SGD
  with Nesterov momentum, label smoothing and a one-cycle or cosine schedule
  stepped every batch.
* :func:`predict_logits` and :func:`evaluate`: accuracy and confusion matrix;
  :func:`autocast_to` and :func:`synchronize`, the execution modes' helpers.

Every random choice (initial weights aside) comes from a ``torch.Generator``
passed in, so two CPU runs with the same seeds end with bit-identical weights.
"""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "SCHEDULES",
    "TrainConfig",
    "augment",
    "autocast_to",
    "check_autocast_dtype",
    "check_dataset",
    "evaluate",
    "learning_rate_at",
    "make_optimizer",
    "normalize",
    "parameter_count",
    "predict_logits",
    "synchronize",
]

# Per-channel mean and standard deviation of CIFAR-10's full training set (50,000
# images, pixels scaled to [0, 1]): the values widely used for normalising it.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

SCHEDULES = ("onecycle", "cosine")
AUTOCAST_DTYPES = (torch.bfloat16, torch.float16)


def parameter_count(model: nn.Module) -> int:
    """Number of trainable scalars in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------- images


def check_images(images: torch.Tensor, name: str = "images") -> None:
    """Raise ValueError unless ``images`` is a uint8 ``(N, 3, H, W)`` batch."""
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise ValueError(
            f"{name} must be uint8 pixels in 0-255 (as rlbook.data.load_cifar10 "
            f"returns them), got dtype {images.dtype}; keep the raw bytes and let "
            "normalize() scale them"
        )
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"{name} must have shape (N, 3, H, W), got {tuple(images.shape)}; "
            "add a batch dimension with images[None] for a single image"
        )


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(N, 3, H, W)`` to float32 ``(pixel / 255 - mean) / std`` per channel.

    The result lives on the images' device and keeps their memory format; mean
    and standard deviation are :data:`CIFAR10_MEAN` and :data:`CIFAR10_STD`.
    """
    check_images(images)
    mean = torch.tensor(CIFAR10_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def augment(
    images: torch.Tensor, generator: torch.Generator, *, padding: int = 4
) -> torch.Tensor:
    """Random crop of the zero-padded image and random horizontal flip, per image.

    The standard CIFAR augmentation (He et al. 2016, Sec. 4.2): pad each image with
    ``padding`` zero pixels on every side, cut out an ``H x W`` window at a random
    offset (so the content moves by -``padding`` to +``padding`` pixels each way),
    and mirror it left-right with probability 1/2. Every image draws its own
    offsets and flip; the whole batch is one gather, with no Python loop.

    Args:
        images: uint8 ``(N, 3, H, W)`` on any device.
        generator: the random stream; it may live on the images' device or on the
            CPU (three small tensors of draws then travel to the images' device).
        padding: the largest shift, in pixels.

    Returns:
        uint8 ``(N, 3, H, W)`` on the images' device.
    """
    check_images(images)
    if not isinstance(padding, int) or isinstance(padding, bool) or padding < 0:
        raise ValueError(f"padding must be a non-negative int, got {padding!r}")
    n, channels, height, width = images.shape
    draw_on = generator.device
    # Offsets into the padded image: 0 .. 2 * padding, i.e. shifts of -padding .. +padding.
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
    # A flipped image reads its window's columns right to left.
    col_steps = torch.where(flips[:, None], col_steps.flip(0), col_steps)  # (N, W)
    rows = offsets[0, :, None] + row_steps  # (N, H)
    cols = offsets[1, :, None] + col_steps  # (N, W)
    # One gather from each flattened padded image (4x faster on a CPU than
    # indexing with four broadcast index tensors).
    flat = rows[:, :, None] * padded_width + cols[:, None, :]  # (N, H, W)
    flat = flat.view(n, 1, height * width).expand(n, channels, height * width)
    crops = padded.reshape(n, channels, -1).gather(2, flat)
    return crops.view(n, channels, height, width)


# ---------------------------------------------------------------- the recipe


@dataclass(frozen=True)
class TrainConfig:
    """Training recipe for ResNet-18 on CIFAR-10; sources of the defaults below.

    batch_size 128, peak learning rate 0.1, momentum 0.9 and weight decay 5e-4 are
    the common ResNet-18 CIFAR recipe (kuangliu/pytorch-cifar; Zagoruyko &
    Komodakis 2016, who also use Nesterov momentum; He et al. 2016 use the same
    but with weight decay 1e-4 for their CIFAR ResNets). Label smoothing 0.1:
    Szegedy et al. (2016). No weight decay on BatchNorm parameters and biases:
    "no bias decay" in He et al. (2019), *Bag of Tricks*. The one-cycle schedule
    (Smith & Topin 2019) rises linearly from ``peak / 25`` to the peak over the
    first 30% of the steps and falls linearly to 0: PyTorch's ``OneCycleLR`` with its
    defaults ``div_factor=25`` and ``pct_start=0.3``, but ``anneal_strategy="linear"``,
    momentum held fixed (``cycle_momentum=False``) and ending at 0 rather than at
    ``peak / 250,000``. "cosine" is cosine decay from the peak to 0 with no warm-up
    (Loshchilov & Hutter 2017; kuangliu/pytorch-cifar trains 200 epochs with it).
    30 epochs is a short budget, the kind a one-cycle schedule is made for;
    chapters set their own.
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
    """L2 penalty coefficient, applied through SGD's weight_decay"""
    decay_norm_and_bias: bool = False
    """also decay BatchNorm weights and biases (off: "no bias decay")"""
    label_smoothing: float = 0.1
    """share of the target mass spread uniformly over all classes"""
    schedule: str = "onecycle"
    """learning-rate schedule, stepped every batch: "onecycle" or "cosine\""""
    warmup_fraction: float = 0.3
    """onecycle only: share of all steps spent rising to the peak"""
    warmup_start: float = 1 / 25
    """onecycle only: the first step's learning rate as a fraction of the peak"""
    drop_last: bool = False
    """skip each epoch's last, smaller batch (fixed batch shapes, e.g. for compiling)"""

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r} (the recipe's is 0.1)")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum!r}")
        if self.nesterov and self.momentum == 0:
            raise ValueError(
                "nesterov=True needs momentum > 0; set momentum (e.g. 0.9) or "
                "nesterov=False"
            )
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(
                f"label_smoothing must lie in [0, 1), got {self.label_smoothing!r} "
                "(0 turns it off; 0.1 is usual)"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"schedule must be one of {SCHEDULES}, got {self.schedule!r}"
            )
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(
                f"warmup_fraction must lie in [0, 1), got {self.warmup_fraction!r}: "
                "it is the share of all steps spent warming up"
            )
        if not 0 < self.warmup_start <= 1:
            raise ValueError(
                f"warmup_start must lie in (0, 1], got {self.warmup_start!r}: it is "
                "the first learning rate as a fraction of the peak"
            )

    def steps_per_epoch(self, n_images: int) -> int:
        """SGD steps in one epoch over ``n_images`` (the last batch may be smaller)."""
        if n_images < 1:
            raise ValueError(f"n_images must be >= 1, got {n_images}")
        if self.drop_last:
            if n_images < self.batch_size:
                raise ValueError(
                    f"drop_last=True with {n_images} images and batch_size="
                    f"{self.batch_size} leaves no batch; lower batch_size"
                )
            return n_images // self.batch_size
        return math.ceil(n_images / self.batch_size)


def learning_rate_at(config: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate of SGD step ``step`` (0-based) of ``total_steps``.

    "onecycle": linear from ``lr * warmup_start`` at step 0 to ``lr`` at step
    ``round(warmup_fraction * total_steps)``, then linear to 0 at ``total_steps``.
    "cosine": ``lr * (1 + cos(pi * step / total_steps)) / 2``. Never below 0.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if config.schedule == "cosine":
        progress = min(step / total_steps, 1.0)
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    # The peak step, kept before the end so that the decay has at least one step.
    peak = min(round(config.warmup_fraction * total_steps), total_steps - 1)
    if step < peak:
        rise = step / peak
        return config.lr * (config.warmup_start + (1.0 - config.warmup_start) * rise)
    return config.lr * max(0.0, (total_steps - step) / (total_steps - peak))


def _schedule_factor(config: TrainConfig, total_steps: int, step: int) -> float:
    return learning_rate_at(config, step, total_steps) / config.lr


def make_optimizer(
    model: nn.Module, config: TrainConfig, steps_per_epoch: int
) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.LambdaLR]:
    """SGD and its learning-rate schedule, to be stepped once per batch.

    Weights of convolutions and linear layers (parameters with two or more
    dimensions) get ``config.weight_decay``; BatchNorm weights and all biases get
    none unless ``config.decay_norm_and_bias``. The schedule spans
    ``config.epochs * steps_per_epoch`` steps (see :func:`learning_rate_at`); call
    ``scheduler.step()`` after every ``optimizer.step()``, as :func:`train_epoch` does.

    Args:
        model: the network, already on its device (and in its memory format).
        config: the recipe.
        steps_per_epoch: batches per epoch, ``config.steps_per_epoch(len(images))``.

    Returns:
        ``(optimizer, scheduler)``; the scheduler is a ``LambdaLR`` whose factor at
        step ``s`` is ``learning_rate_at(config, s, total) / config.lr``.
    """
    if (
        not isinstance(steps_per_epoch, int)
        or isinstance(steps_per_epoch, bool)
        or steps_per_epoch < 1
    ):
        raise ValueError(
            f"steps_per_epoch must be a positive int, got {steps_per_epoch!r}; use "
            "config.steps_per_epoch(len(train_images))"
        )
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("model has no trainable parameters")
    if config.decay_norm_and_bias:
        groups = [{"params": trainable, "weight_decay": config.weight_decay}]
    else:
        groups = [
            {
                "params": [p for p in trainable if p.ndim > 1],
                "weight_decay": config.weight_decay,
            },
            {"params": [p for p in trainable if p.ndim <= 1], "weight_decay": 0.0},
        ]
        groups = [group for group in groups if group["params"]]
    optimizer = torch.optim.SGD(
        groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov
    )
    total_steps = config.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, functools.partial(_schedule_factor, config, total_steps)
    )
    return optimizer, scheduler


# ---------------------------------------------------------------- training and evaluation


def check_dataset(images: torch.Tensor, labels: torch.Tensor) -> None:
    check_images(images)
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64:
        raise ValueError(
            "labels must be an int64 tensor of class indices, got "
            f"{getattr(labels, 'dtype', type(labels).__name__)}"
        )
    if labels.shape != (images.shape[0],):
        raise ValueError(
            f"labels must have shape ({images.shape[0]},), one per image, got "
            f"{tuple(labels.shape)}"
        )
    if images.shape[0] == 0:
        raise ValueError("images is empty: there is nothing to train or evaluate on")


def check_autocast_dtype(dtype: torch.dtype | None) -> None:
    if dtype is not None and dtype not in AUTOCAST_DTYPES:
        raise ValueError(
            f"autocast_dtype must be None, torch.bfloat16 or torch.float16, got {dtype}"
        )


def autocast_to(
    device: torch.device, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager[object]:
    """``torch.autocast`` to ``dtype`` on the device's type, or nothing for None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def synchronize(device: torch.device) -> None:
    """Wait for queued work on ``device`` so that wall-clock times measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def predict_logits(
    model: nn.Module,
    images_u8: torch.Tensor,
    *,
    device: torch.device | str,
    batch_size: int = 500,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> torch.Tensor:
    """The model's float32 logits ``(N, num_classes)`` on ``device``, for uint8 images.

    Runs in eval mode (BatchNorm's running statistics) under
    ``torch.inference_mode()``, ``batch_size`` images at a time, without
    augmentation; the model's training mode is restored afterwards.
    """
    check_images(images_u8, "images_u8")
    if (
        not isinstance(batch_size, int)
        or isinstance(batch_size, bool)
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    device = torch.device(device)
    check_autocast_dtype(autocast_dtype)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    was_training = model.training
    model.eval()
    outputs = []
    try:
        with torch.inference_mode():
            for start in range(0, images_u8.shape[0], batch_size):
                batch = images_u8[start : start + batch_size].to(device)
                x = normalize(batch).contiguous(memory_format=memory_format)
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
    """Accuracy and confusion matrix of the model on uint8 images with int64 labels.

    Returns:
        ``(accuracy, confusion)``: the share of images whose arg-max logit is their
        label, and an int64 ``(K, K)`` CPU tensor (K = number of logits) whose entry
        ``[i, j]`` counts images of true class ``i`` predicted as ``j``; its rows
        sum to the class counts and its trace is the number right.
    """
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
            f"labels must lie in 0..{k - 1} for a model with {k} outputs, got "
            f"{int(target.min())}..{int(target.max())}"
        )
    predicted = logits.argmax(dim=1)
    confusion = torch.bincount(target * k + predicted, minlength=k * k).view(k, k)
    confusion = confusion.cpu()
    return int(confusion.trace()) / images_u8.shape[0], confusion
