"""The VAE project's run: the split, the rule that picks the epoch, resuming, shipping."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from rlbook.chapters.vae_mnist import test_losses, train_vae
from rlbook.checkpoint import make_provenance
from rlbook.projects.shipping import ModelArtifactError, load_model, save_model
from rlbook.projects.vae_run import (
    VAE_CONFIGS,
    VAEConfig,
    split_digits,
    vae_config,
    vae_spec,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = VAEConfig(hidden=(16,), latent=2, epochs=3, batch_size=16, lr=3e-3)


def digits(n: int, seed: int) -> torch.Tensor:
    """Blocky images: a bright square somewhere on a dark field."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
    corners = torch.randint(0, 20, (n, 2), generator=generator)
    for i, (row, column) in enumerate(corners.tolist()):
        images[i, 0, row : row + 8, column : column + 8] = 255
    return images


@pytest.fixture(scope="module")
def split():
    return split_digits(digits(120, 1), digits(40, 2), TINY, seed=0)


def test_split_is_seeded_and_disjoint():
    images = torch.arange(50, dtype=torch.uint8).view(50, 1, 1, 1).expand(50, 1, 28, 28)
    a = split_digits(images, images[:3], TINY, seed=5)
    ids_train = set(a.train[:, 0, 0, 0].tolist())
    ids_valid = set(a.valid[:, 0, 0, 0].tolist())
    assert len(ids_valid) == 5 and len(ids_train) == 45
    assert ids_train.isdisjoint(ids_valid)
    assert torch.equal(split_digits(images, images[:3], TINY, seed=5).valid, a.valid)
    assert not torch.equal(
        split_digits(images, images[:3], TINY, seed=6).valid, a.valid
    )
    with pytest.raises(ValueError, match="validation_share"):
        split_digits(images, images, replace(TINY, validation_share=0.0), 0)


def test_budgets_share_the_model_and_an_unknown_one_is_an_error():
    assert vae_config("ci") == replace(VAE_CONFIGS["full"], epochs=15)
    assert vae_config("full").hidden == (512, 256)
    with pytest.raises(ValueError, match="budget"):
        vae_config("huge")


def test_the_best_epoch_has_the_lowest_validation_loss(split):
    run = train_vae(split, TINY, seed=0)
    losses = [r["valid_loss"] for r in run.history]
    assert all(loss > 0 for loss in losses)  # nats per image
    assert len(set(losses)) == len(losses)
    assert run.best_epoch == 1 + losses.index(min(losses))
    assert all(r["valid"] == -r["valid_loss"] for r in run.history)
    assert run.best_test == test_losses(run.best, split.test, 0)
    assert run.final_test == test_losses(run.final, split.test, 0)
    for tensor in run.final.state_dict().values():
        assert torch.equal(tensor, tensor.half().float())


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(split, tmp_path):
    whole = train_vae(split, TINY, seed=0)

    class Stop(Exception):
        pass

    def stop(record):
        if record["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        train_vae(split, TINY, seed=0, checkpoint=tmp_path / "run.pt", on_epoch=stop)
    resumed = train_vae(split, TINY, seed=0, checkpoint=tmp_path / "run.pt")
    assert resumed.resumed_from == 2
    for name, tensor in whole.final.state_dict().items():
        assert torch.equal(tensor, resumed.final.state_dict()[name]), name
    assert [r["valid_loss"] for r in resumed.history] == [
        r["valid_loss"] for r in whole.history
    ]


def test_a_shipped_vae_loads_back_and_scores_the_same(split, tmp_path):
    run = train_vae(split, replace(TINY, epochs=1), seed=0)
    folder = save_model(
        tmp_path / "vae",
        kind="vae-mnist",
        spec=vae_spec(TINY),
        model=run.best,
        provenance=make_provenance(
            command="pytest", config={}, budget="smoke", device="cpu", wall_time_s=0.0
        ),
    )
    shipped = load_model(folder, kind="vae-mnist")
    assert test_losses(shipped.model, split.test, 0) == run.best_test
    with pytest.raises(ModelArtifactError, match="spec does not"):
        save_model(
            tmp_path / "bad",
            kind="vae-mnist",
            spec={"model": {"hidden": [8], "latent": 2}},
            model=run.best,
            provenance={},
        )
