"""The ResNet project's run: the split, resumed runs, the shipped folder.

Runs use a narrow ResNet-18 (``width=4``) on 16x16 colour images so that
the file runs in seconds on one CPU thread.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from rlbook.chapters.resnet_cifar import train_resnet
from rlbook.checkpoint import CheckpointError, make_provenance
from rlbook.projects.resnet import evaluate
from rlbook.projects.resnet_run import (
    RESNET_CONFIGS,
    SHIPPED_WEIGHTS,
    ResNetConfig,
    resnet_config,
    resnet_spec,
    split_images,
)
from rlbook.projects.shipping import (
    ModelArtifactError,
    load_model,
    round_to_shipped,
    save_model,
)

from .test_projects_resnet import colour_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")

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
