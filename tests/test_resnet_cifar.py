"""ResNet-18 on CIFAR-10: the network's shape, the augmentation, the recipe, training;
the run: the split, resumed runs, the shipped folder.

Training tests use narrow nets (``width=4``) on small images so that the file runs
in seconds on one CPU thread; the parameter count and the export use the real
ResNet-18.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fullrun.project import save_model
from rlbook.chapters import resnet_cifar
from rlbook.chapters.resnet_cifar import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    RESNET_CONFIGS,
    SHIPPED_WEIGHTS,
    ResNet18,
    ResNetConfig,
    TrainConfig,
    augment,
    evaluate,
    learning_rate_at,
    make_optimizer,
    normalize,
    predict_logits,
    resnet_config,
    resnet_spec,
    split_images,
    train_epoch,
    train_resnet,
)
from rlbook.checkpoint import CheckpointError, make_provenance
from rlbook.projects.shipping import ModelArtifactError, load_model, round_to_shipped

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CPU = torch.device("cpu")


def random_images(n: int, size: int = 32, seed: int = 0, low: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(
        low, 256, (n, 3, size, size), dtype=torch.uint8, generator=generator
    )


def colour_dataset(
    n: int, seed: int, size: int = 16, classes: int = 4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose class is their colour, plus noise: learnable through crops and flips."""
    generator = torch.Generator().manual_seed(seed)
    palette = torch.tensor(
        [[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]],
        dtype=torch.int64,
    )[:classes]
    labels = torch.randint(0, classes, (n,), generator=generator)
    noise = torch.randint(-40, 41, (n, 3, size, size), generator=generator)
    images = (palette[labels][:, :, None, None] + noise).clamp(0, 255)
    return images.to(torch.uint8), labels


def train(
    seed: int,
    config: TrainConfig,
    images: torch.Tensor,
    labels: torch.Tensor,
    classes: int = 4,
    width: int = 4,
) -> tuple[nn.Module, list[dict[str, float]]]:
    torch.manual_seed(seed)
    model = ResNet18(classes, width=width)
    torch.seed()  # from here on the global generator is unpredictable: it must not matter
    optimizer, scheduler = make_optimizer(
        model, config, config.steps_per_epoch(len(images))
    )
    generator = torch.Generator().manual_seed(seed)
    stats = [
        train_epoch(
            model,
            images,
            labels,
            optimizer,
            scheduler,
            config,
            generator,
            device=CPU,
        )
        for _ in range(config.epochs)
    ]
    return model, stats


class ConstantLogits(nn.Module):
    """Logits that ignore the image: ``logits`` for every row (and a gradient path)."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(logits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1) + 0.0 * x.mean()


# ---------------------------------------------------------------- the network


def test_resnet18_has_the_cifar_variants_parameter_count():
    assert sum(p.numel() for p in ResNet18().parameters()) == 11_173_962


def test_resnet18_keeps_full_resolution_until_stage_two():
    """No max-pool, stride-1 stem: stage 1 sees 32x32, stage 4 ends at 4x4."""
    model = ResNet18(width=8).eval()
    shapes = {}
    for name in ("layer1", "layer4"):
        getattr(model, name).register_forward_hook(
            lambda _m, _i, out, name=name: shapes.__setitem__(name, out.shape)
        )
    with torch.no_grad():
        logits = model(torch.zeros(2, 3, 32, 32))
    assert logits.shape == (2, 10)
    assert shapes["layer1"] == (2, 8, 32, 32)
    assert shapes["layer4"] == (2, 64, 4, 4)


def test_resnet18_exports_with_a_dynamic_batch_dimension():
    torch.manual_seed(0)
    model = ResNet18().eval()
    example = normalize(random_images(2))
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    other = normalize(random_images(3, seed=1))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(other), model(other))


def test_resnet18_rejects_a_bad_width():
    with pytest.raises(ValueError, match="width must be a positive int"):
        ResNet18(width=0)


# ---------------------------------------------------------------- images


def test_normalize_scales_and_standardises_each_channel():
    images = random_images(4)
    out = normalize(images)
    assert out.dtype == torch.float32 and out.device == images.device
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(out, (images.float() / 255 - mean) / std)
    # A pixel at the dataset's mean colour maps to zero in every channel.
    grey = torch.tensor([round(255 * m) for m in CIFAR10_MEAN], dtype=torch.uint8)
    assert normalize(grey.view(1, 3, 1, 1)).abs().max() < 0.01


def test_normalize_refuses_floats_with_a_hint():
    with pytest.raises(ValueError, match="must be uint8"):
        normalize(torch.rand(1, 3, 32, 32))


def crop_and_flip(images: torch.Tensor, out: torch.Tensor) -> list[tuple[int, ...]]:
    """For each output, every (dy, dx, flipped) whose crop of the zero-padded input it equals."""
    padded = F.pad(images, (4, 4, 4, 4))
    windows = padded.unfold(2, 32, 1).unfold(3, 32, 1)  # (N, 3, 9, 9, 32, 32)
    found = []
    for flipped, target in ((0, out), (1, out.flip(3))):
        same = (windows == target[:, :, None, None]).all(dim=(1, 4, 5))  # (N, 9, 9)
        for i, dy, dx in same.nonzero().tolist():
            found.append((i, dy - 4, dx - 4, flipped))
    return found


def test_augment_gives_each_image_a_shifted_crop_or_its_mirror():
    """Every output is an exact crop of the zero-padded image, shift in [-4, 4], maybe mirrored."""
    images = random_images(200, low=1)  # no zero pixels: padding shows as zeros
    out = augment(images, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == images.shape
    matches = crop_and_flip(images, out)
    assert sorted(i for i, *_ in matches) == list(range(200))  # one match each
    draws = {i: (dy, dx, flipped) for i, dy, dx, flipped in matches}
    shifts = {dy for dy, _, _ in draws.values()} | {dx for _, dx, _ in draws.values()}
    assert shifts == set(range(-4, 5))  # the extremes occur
    flips = sum(flipped for *_, flipped in draws.values())
    assert 70 <= flips <= 130  # Binomial(200, 1/2): mean 100, sd 7
    # Shifted crops really contain the zero padding.
    corner = [i for i, (dy, dx, _) in draws.items() if dy == -4 and dx == -4]
    assert corner and (out[corner, :, :4, :] == 0).all()


def test_augment_draws_each_image_its_own_crop_and_flip():
    images = random_images(1, low=1).expand(100, -1, -1, -1).contiguous()
    out = augment(images, torch.Generator().manual_seed(1))
    assert len(torch.unique(out, dim=0)) > 50  # 162 possible (shift, flip) draws


def test_augment_is_reproducible_from_its_generator_alone():
    images = random_images(64)
    first = augment(images, torch.Generator().manual_seed(7))
    torch.manual_seed(123)  # the global generator plays no part
    again = augment(images, torch.Generator().manual_seed(7))
    other = augment(images, torch.Generator().manual_seed(8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


# ---------------------------------------------------------------- the recipe


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"epochs": 0}, "epochs must be a positive int"),
        ({"batch_size": 2.5}, "batch_size must be a positive int"),
        ({"lr": 0.0}, "lr must be > 0"),
        ({"momentum": 1.0}, r"momentum must lie in \[0, 1\)"),
        ({"momentum": 0.0}, "nesterov=True needs momentum > 0"),
        ({"weight_decay": -1e-4}, "weight_decay must be >= 0"),
        ({"label_smoothing": 1.0}, r"label_smoothing must lie in \[0, 1\)"),
        ({"warmup_fraction": 1.0}, r"warmup_fraction must lie in \[0, 1\)"),
        ({"warmup_start": 0.0}, r"warmup_start must lie in \(0, 1\]"),
    ],
)
def test_bad_config_values_are_clear_errors(change, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**change)


def recorded_lrs(config: TrainConfig, steps_per_epoch: int) -> list[float]:
    optimizer, scheduler = make_optimizer(nn.Linear(2, 2), config, steps_per_epoch)
    lrs = []
    for _ in range(config.epochs * steps_per_epoch):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_onecycle_rises_to_the_peak_at_the_configured_step_then_falls_to_zero():
    config = TrainConfig(epochs=4, lr=0.2, warmup_fraction=0.25, warmup_start=0.1)
    lrs = recorded_lrs(config, steps_per_epoch=10)
    peak = lrs.index(max(lrs))
    assert peak == 10 and lrs[peak] == pytest.approx(0.2)
    assert lrs[0] == pytest.approx(0.02)
    assert all(a < b for a, b in itertools.pairwise(lrs[: peak + 1]))
    assert all(a > b for a, b in itertools.pairwise(lrs[peak:]))
    assert 0 < lrs[-1] <= 0.2 / 30 + 1e-12
    assert lrs == pytest.approx([learning_rate_at(config, s, 40) for s in range(40)])


def test_weight_decay_spares_batchnorm_and_biases():
    model = ResNet18(width=4)
    optimizer, _ = make_optimizer(model, TrainConfig(), 1)
    decayed, spared = optimizer.param_groups
    assert decayed["weight_decay"] == 5e-4 and spared["weight_decay"] == 0.0
    assert all(p.ndim == 4 or p is model.fc.weight for p in decayed["params"])
    assert any(p is model.fc.bias for p in spared["params"])
    assert len(decayed["params"]) + len(spared["params"]) == len(
        list(model.parameters())
    )
    assert optimizer.defaults["nesterov"] and optimizer.defaults["momentum"] == 0.9


# ---------------------------------------------------------------- training


def test_train_epoch_reports_the_label_smoothed_loss():
    """With logits that ignore the image, the epoch's loss is the smoothed cross-entropy."""
    labels = torch.tensor([0, 1, 1, 2, 2, 2, 2, 3])
    logits = [0.5, -1.0, 2.0, 0.0]
    model = ConstantLogits(logits)
    config = TrainConfig(epochs=1, batch_size=8, label_smoothing=0.2)
    optimizer, scheduler = make_optimizer(model, config, 1)
    stats = train_epoch(
        model,
        random_images(8, size=8),
        labels,
        optimizer,
        scheduler,
        config,
        torch.Generator().manual_seed(0),
        device=CPU,
    )
    expanded = torch.tensor(logits).expand(8, -1)
    smoothed = F.cross_entropy(expanded, labels, label_smoothing=0.2).item()
    plain = F.cross_entropy(expanded, labels).item()
    assert stats["loss"] == pytest.approx(smoothed, rel=1e-6)
    assert abs(smoothed - plain) > 0.05
    assert stats["accuracy"] == 0.5  # class 2 predicted, 4 of 8 are class 2
    assert stats["images"] == 8


def test_train_epoch_sees_every_image_once_and_steps_the_schedule_per_batch():
    images, labels = colour_dataset(21, seed=0, size=8)
    config = TrainConfig(epochs=3, batch_size=8)
    model = ResNet18(4, width=4)
    optimizer, scheduler = make_optimizer(model, config, config.steps_per_epoch(21))
    stats = train_epoch(
        model,
        images,
        labels,
        optimizer,
        scheduler,
        config,
        torch.Generator().manual_seed(0),
        device=CPU,
    )
    assert stats["images"] == 21 and scheduler.last_epoch == 3
    dropped = dataclasses.replace(config, drop_last=True)
    stats = train_epoch(
        model,
        images,
        labels,
        optimizer,
        scheduler,
        dropped,
        torch.Generator().manual_seed(0),
        device=CPU,
    )
    assert stats["images"] == 16 and scheduler.last_epoch == 5


def test_a_narrow_resnet_learns_a_learnable_task():
    images, labels = colour_dataset(128, seed=0)
    test_images, test_labels = colour_dataset(200, seed=1)
    config = TrainConfig(epochs=5, batch_size=16, lr=0.05)
    model, stats = train(0, config, images, labels)
    accuracy, _ = evaluate(model, test_images, test_labels, device=CPU)
    assert accuracy > 0.8  # chance is 0.25
    assert stats[-1]["loss"] < stats[0]["loss"]


def test_confusion_matrix_rows_are_true_classes_and_its_trace_the_hits():
    labels = torch.tensor([0, 0, 1, 2, 2, 2, 3, 3, 3, 3])
    model = ConstantLogits([0.0, 0.0, 1.0, 0.0])  # always predicts class 2
    accuracy, confusion = evaluate(model, random_images(10, size=8), labels, device=CPU)
    assert confusion.dtype == torch.int64 and confusion.shape == (4, 4)
    assert confusion.sum(dim=1).tolist() == [2, 1, 3, 4]  # rows sum to class counts
    assert confusion[:, 2].tolist() == [2, 1, 3, 4]  # column 2: everything predicted 2
    assert accuracy == 0.3 == confusion.trace().item() / 10


def test_evaluate_leaves_the_models_mode_and_predicts_in_eval_mode():
    torch.manual_seed(0)
    model = ResNet18(4, width=4).train()
    images = random_images(6, size=8)
    logits = predict_logits(model, images, device=CPU, batch_size=4)
    assert model.training
    with torch.no_grad():
        expected = model.eval()(normalize(images))
    torch.testing.assert_close(logits, expected)


def test_training_twice_with_the_same_seeds_gives_identical_weights():
    images, labels = colour_dataset(40, seed=0, size=8)
    config = TrainConfig(epochs=2, batch_size=16)
    first, _ = train(3, config, images, labels)
    second, _ = train(3, config, images, labels)
    other, _ = train(4, config, images, labels)
    state, again = first.state_dict(), second.state_dict()
    assert all(torch.equal(state[name], again[name]) for name in state)
    assert not torch.equal(state["fc.weight"], other.state_dict()["fc.weight"])


def test_bf16_autocast_and_channels_last_train_and_evaluate_on_cpu():
    images, labels = colour_dataset(16, seed=0, size=8)
    config = TrainConfig(epochs=1, batch_size=8)
    torch.manual_seed(0)
    model = ResNet18(4, width=4).to(memory_format=torch.channels_last)
    seen = []  # (stem input is NHWC, logits dtype) for every forward pass
    model.fc.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    model.stem.register_forward_hook(
        lambda _m, inputs, _o: seen.append(
            inputs[0].is_contiguous(memory_format=torch.channels_last)
        )
    )
    optimizer, scheduler = make_optimizer(model, config, 2)
    modes = {"autocast_dtype": torch.bfloat16, "channels_last": True}
    stats = train_epoch(
        model,
        images,
        labels,
        optimizer,
        scheduler,
        config,
        torch.Generator().manual_seed(0),
        device=CPU,
        **modes,
    )
    assert torch.isfinite(torch.tensor(stats["loss"]))
    accuracy, confusion = evaluate(model, images, labels, device=CPU, **modes)
    assert confusion.sum() == 16 and 0 <= accuracy <= 1
    assert seen == [True, torch.bfloat16] * 3  # two training batches, one evaluation


def test_train_epoch_augments_every_batch_with_the_given_generator(monkeypatch):
    calls = []

    def spy(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        calls.append((len(images), generator))
        return augment(images, generator)

    monkeypatch.setattr(resnet_cifar, "augment", spy)
    images, labels = colour_dataset(20, seed=0, size=8)
    config = TrainConfig(epochs=1, batch_size=8)
    model = ResNet18(4, width=4)
    optimizer, scheduler = make_optimizer(model, config, 3)
    generator = torch.Generator().manual_seed(0)
    train_epoch(
        model,
        images,
        labels,
        optimizer,
        scheduler,
        config,
        generator,
        device=CPU,
    )
    assert calls == [(8, generator), (8, generator), (4, generator)]


def one_epoch_with(autocast_dtype: torch.dtype, **kwargs) -> dict[str, float]:
    images, labels = colour_dataset(16, seed=0, size=8)
    config = TrainConfig(epochs=1, batch_size=8)
    torch.manual_seed(0)
    model = ResNet18(4, width=4)
    optimizer, scheduler = make_optimizer(model, config, 2)
    return train_epoch(
        model,
        images,
        labels,
        optimizer,
        scheduler,
        config,
        torch.Generator().manual_seed(0),
        device=CPU,
        autocast_dtype=autocast_dtype,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("dtype", "message"),
    [(torch.float16, "needs loss scaling"), (torch.float64, "autocast_dtype must be")],
)
def test_unsupported_autocast_settings_are_clear_errors(dtype, message):
    with pytest.raises(ValueError, match=message):
        one_epoch_with(dtype)


# GradScaler skips the first steps (their scaled gradients overflow), so the
# scheduler steps before the optimizer has: expected, and what torch warns about.
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`")
def test_float16_trains_through_the_grad_scaler():
    scaler = torch.amp.GradScaler("cpu")
    stats = one_epoch_with(torch.float16, grad_scaler=scaler)
    assert torch.isfinite(torch.tensor(stats["loss"]))
    assert scaler.get_scale() < 2.0**16  # the scaler saw the steps and backed off


def test_mismatched_labels_are_a_clear_error():
    model = ResNet18(4, width=4)
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        evaluate(
            model,
            random_images(4, size=8),
            torch.zeros(3, dtype=torch.int64),
            device=CPU,
        )


# ---------------------------------------------------------------- the run

TINY = ResNetConfig(width=4, epochs=2, batch_size=32, lr=0.05)


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, ...]:
    train_images, train_labels = colour_dataset(200, seed=1)
    test_images, test_labels = colour_dataset(64, seed=2)
    return train_images, train_labels, test_images, test_labels


def test_split_holds_out_a_seeded_share_disjoint_from_training(data):
    images = torch.arange(100).view(100, 1, 1, 1).expand(100, 3, 8, 8)
    images = images.to(torch.uint8).contiguous()
    labels = torch.arange(100) % 4
    split = split_images(images, labels, images[:5], labels[:5], TINY, seed=3)
    train_ids = set(split.train_images[:, 0, 0, 0].tolist())
    valid_ids = set(split.valid_images[:, 0, 0, 0].tolist())
    assert len(valid_ids) == 10 and len(train_ids) == 90
    assert train_ids.isdisjoint(valid_ids)
    assert split.valid_labels.tolist() == [
        i % 4 for i in split.valid_images[:, 0, 0, 0].tolist()
    ]
    again = split_images(images, labels, images[:5], labels[:5], TINY, seed=3)
    assert torch.equal(again.valid_images, split.valid_images)
    other = split_images(images, labels, images[:5], labels[:5], TINY, seed=4)
    assert not torch.equal(other.valid_images, split.valid_images)
    capped = split_images(
        images, labels, images[:5], labels[:5], replace(TINY, train_images=7), seed=3
    )
    assert torch.equal(capped.train_images, split.train_images[:7])
    assert torch.equal(capped.valid_images, split.valid_images)


def test_too_few_images_or_a_bad_share_are_clear_errors():
    images = torch.zeros(3, 3, 8, 8, dtype=torch.uint8)
    labels = torch.zeros(3, dtype=torch.int64)
    with pytest.raises(ValueError, match="validation_share"):
        split_images(
            images, labels, images, labels, replace(TINY, validation_share=1.0), 0
        )
    with pytest.raises(ValueError, match="too few"):
        split_images(
            images[:1],
            labels[:1],
            images,
            labels,
            replace(TINY, validation_share=0.5),
            0,
        )


def test_budgets_share_the_full_recipe_and_an_unknown_one_is_an_error():
    assert resnet_config("ci") == replace(RESNET_CONFIGS["full"], epochs=2)
    assert resnet_config("full").width == 64
    with pytest.raises(ValueError, match="budget"):
        resnet_config("huge")


def run(data, tmp_path: Path | None = None, epochs: int = 2, seed: int = 0):
    split = split_images(*data, replace(TINY, epochs=epochs), seed)
    checkpoint = None if tmp_path is None else tmp_path / "run.pt"
    return train_resnet(
        split, replace(TINY, epochs=epochs), seed, checkpoint=checkpoint
    )


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(data, tmp_path):
    whole = run(data)
    split = split_images(*data, TINY, 0)
    # Interrupt after the first epoch: fit_epochs stops when on_epoch raises.

    class Stop(Exception):
        pass

    def stop(record):
        raise Stop

    with pytest.raises(Stop):
        train_resnet(split, TINY, 0, checkpoint=tmp_path / "run.pt", on_epoch=stop)
    resumed = run(data, tmp_path)
    assert resumed.resumed_from == 1
    for name, tensor in whole.final.state_dict().items():
        assert torch.equal(tensor, resumed.final.state_dict()[name]), name
    for key in ("loss", "accuracy", "valid"):
        assert [r[key] for r in resumed.history] == [r[key] for r in whole.history]


def test_a_checkpoint_of_other_settings_is_refused(data, tmp_path):
    run(data, tmp_path, epochs=1)
    with pytest.raises(CheckpointError, match="other settings"):
        run(data, tmp_path, epochs=2, seed=1)


def test_the_run_reports_the_rounded_best_and_final_weights_it_returns(data):
    result = run(data)
    assert result.best_epoch == max(
        range(1, 3), key=lambda e: (result.history[e - 1]["valid"], -e)
    )
    for model, accuracy, confusion in (
        (result.best, result.best_test_accuracy, result.best_confusion),
        (result.final, result.final_test_accuracy, result.final_confusion),
    ):
        again_rounded = round_to_shipped(copy.deepcopy(model), SHIPPED_WEIGHTS)
        for name, tensor in model.state_dict().items():
            torch.testing.assert_close(
                again_rounded.state_dict()[name], tensor, rtol=1e-6, atol=0
            )
        assert model.stem[0].weight.unique().numel() <= 255 * 4  # int8 grids
        again, matrix = evaluate(model, data[2], data[3], device="cpu")
        assert again == accuracy and torch.equal(matrix, confusion)
        assert int(confusion.sum()) == 64


def test_a_shipped_resnet_loads_back_with_its_classes(data, tmp_path):
    result = run(data, epochs=1)
    classes = ["red", "green", "blue", "yellow", *"abcdef"]
    spec = resnet_spec(TINY, classes)
    folder = save_model(
        tmp_path / "resnet",
        kind="resnet18-cifar",
        spec=spec,
        model=result.best,
        provenance=make_provenance(
            command="pytest", config={}, budget="smoke", device="cpu", wall_time_s=0.0
        ),
        weight_format=SHIPPED_WEIGHTS,
    )
    shipped = load_model(folder, kind="resnet18-cifar")
    assert shipped.extras["classes"] == classes
    accuracy, _ = evaluate(shipped.model, data[2], data[3], device="cpu")
    assert accuracy == result.best_test_accuracy
    with pytest.raises(ModelArtifactError, match="sentiment-lstm"):
        load_model(folder, kind="sentiment-lstm")
    for bad, message in (
        ({**spec, "classes": ["one"]}, "classes"),
        ({**spec, "mean": [0.5, 0.5, 0.5]}, "mean"),
        ({**spec, "model": {"num_classes": 10, "width": 8}}, "spec does not"),
    ):
        with pytest.raises(ModelArtifactError, match=message):
            save_model(
                tmp_path / "bad",
                kind="resnet18-cifar",
                spec=bad,
                model=result.best,
                provenance={},
            )
