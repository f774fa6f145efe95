"""Generated from chapters/resnet_cifar.md by scripts/sync_notebooks.py: do not edit.

The page's code cells tagged ``export``, in page order. Edit them on the
page, then run scripts/sync_notebooks.py.
"""

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from rlbook.projects.resnet import (
    TrainConfig,
    augment,
    autocast_to,
    check_autocast_dtype,
    check_dataset,
    evaluate,
    make_optimizer,
    normalize,
    synchronize,
)
from rlbook.projects.resnet_run import (
    SHIPPED_WEIGHTS,
    ImageSplit,
    ResNetConfig,
    resnet_spec,
)
from rlbook.projects.runs import fit_epochs
from rlbook.projects.shipping import round_to_shipped
from rlbook.seeding import stream_seed, torch_stream


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
        for name, value in (
            ("num_classes", num_classes),
            ("width", width),
        ):
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or value < 1
            ):
                raise ValueError(
                    f"{name} must be a positive int, got {value!r} "
                    "(ResNet18's defaults are num_classes=10, width=64)"
                )
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


def build_resnet(config: ResNetConfig) -> ResNet18:
    """The network of config (its weights from torch's global stream)."""
    return ResNet18(**resnet_spec(config)["model"])


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
