"""The MNIST VAE: its shape, its loss terms against independent formulas, the
reparameterisation trick, training on real digits, pictures, export, determinism;
the run: the split, the rule that picks the epoch, resuming, shipping.

Most tests use a small model (one hidden layer of 64) on random or real pixels;
the training test reads the real MNIST subset in ``../shared/data`` (the folder
CI points ``RLBOOK_DATA`` at) and is skipped only outside CI when it is absent.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

from fullrun.project import save_model
from rlbook.chapters.vae_mnist import (
    VAE,
    VAE_CONFIGS,
    VAEConfig,
    evaluate_loss,
    export_decoder,
    latent_grid,
    latent_walk,
    load_mnist,
    reconstruct,
    sample,
    split_digits,
    test_losses,
    to_input,
    train_epoch,
    train_vae,
    vae_config,
    vae_loss,
    vae_spec,
)
from rlbook.checkpoint import make_provenance
from rlbook.projects.shipping import ModelArtifactError, load_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_vae(seed: int = 0, latent: int = 4) -> VAE:
    torch.manual_seed(seed)
    return VAE(hidden=(64,), latent=latent)


def random_images(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- the model


def test_layers_and_parameter_count_are_the_stated_architecture():
    model = VAE()  # 784-512-256, heads of 20, decoder 20-256-512-784
    linear = [
        (m.in_features, m.out_features)
        for m in model.encoder
        if hasattr(m, "in_features")
    ]
    assert linear == [(784, 512), (512, 256)]
    assert (model.to_mu.in_features, model.to_mu.out_features) == (256, 20)
    assert (model.to_logvar.in_features, model.to_logvar.out_features) == (256, 20)
    linear = [
        (m.in_features, m.out_features)
        for m in model.decoder
        if hasattr(m, "in_features")
    ]
    assert linear == [(20, 256), (256, 512), (512, 784)]
    assert isinstance(model.decoder[-1], torch.nn.Linear)  # logits, no sigmoid
    by_hand = (
        (784 * 512 + 512)
        + (512 * 256 + 256)
        + 2 * (256 * 20 + 20)
        + (20 * 256 + 256)
        + (256 * 512 + 512)
        + (512 * 784 + 784)
    )
    assert sum(p.numel() for p in model.parameters()) == by_hand == 1_082_680


def test_forward_shapes_and_z_is_mu_without_a_generator():
    model = small_vae()
    x = to_input(random_images(5))
    logits, mu, logvar = model(x)
    assert logits.shape == (5, 784) and mu.shape == logvar.shape == (5, 4)
    torch.testing.assert_close(logits, model.decode(mu))
    noisy, _, _ = model(x, gen(1))
    assert not torch.allclose(noisy, logits)


def test_to_input_scales_bytes_to_unit_interval_row_major():
    images = random_images(3)
    images[0, 0, 0, 0], images[0, 0, 0, 1] = 0, 255
    x = to_input(images)
    assert x.dtype == torch.float32 and x.shape == (3, 784)
    assert x[0, 0] == 0.0 and x[0, 1] == 1.0
    torch.testing.assert_close(x[2, 28 * 5 + 7], images[2, 0, 5, 7].float() / 255)


# ---------------------------------------------------------------- the loss


def test_kl_term_is_zero_at_the_prior_and_equals_the_closed_form():
    x = torch.rand(6, 784)
    logits = torch.randn(6, 784)
    zeros = torch.zeros(6, 3)
    _, _, kl = vae_loss(logits, x, zeros, zeros)
    assert kl.item() == 0.0
    mu, logvar = torch.randn(6, 3), torch.randn(6, 3)
    _, _, kl = vae_loss(logits, x, mu, logvar)
    q = Normal(mu, torch.exp(0.5 * logvar))
    expected = kl_divergence(q, Normal(0.0, 1.0)).sum() / 6  # summed, then per image
    torch.testing.assert_close(kl, expected)


def test_kl_term_matches_a_monte_carlo_estimate():
    g = gen(3)
    mu = torch.randn(1, 5, generator=g, dtype=torch.float64)
    logvar = torch.randn(1, 5, generator=g, dtype=torch.float64)
    _, _, kl = vae_loss(torch.zeros(1, 784), torch.zeros(1, 784), mu, logvar)
    q = Normal(mu[0], torch.exp(0.5 * logvar[0]))
    z = q.sample((200_000,))
    log_ratio = (q.log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(1)
    standard_error = log_ratio.std().item() / math.sqrt(len(z))
    assert abs(kl.item() - log_ratio.mean().item()) < 4 * standard_error


def test_bce_term_is_torchs_bce_on_sigmoid_summed_per_image():
    x = torch.rand(5, 1, 28, 28)  # grey targets, not binarized; either shape works
    logits = 3 * torch.randn(5, 784)
    mu, logvar = torch.randn(5, 2), torch.randn(5, 2)
    total, bce, kl = vae_loss(logits, x, mu, logvar)
    expected = F.binary_cross_entropy(
        torch.sigmoid(logits), x.flatten(1), reduction="sum"
    )
    torch.testing.assert_close(bce, expected / 5)
    torch.testing.assert_close(total, bce + kl)


def test_losses_are_per_image_not_per_batch():
    x, logits = torch.rand(1, 784), torch.randn(1, 784)
    mu, logvar = torch.randn(1, 3), torch.randn(1, 3)
    one = vae_loss(logits, x, mu, logvar)
    four = vae_loss(
        logits.repeat(4, 1), x.repeat(4, 1), mu.repeat(4, 1), logvar.repeat(4, 1)
    )
    for a, b in zip(one, four, strict=True):
        torch.testing.assert_close(a, b)


# ---------------------------------------------------------------- reparameterisation


def test_reparameterize_passes_gradients_to_mu_and_logvar():
    mu = torch.randn(3, 4, requires_grad=True)
    logvar = torch.randn(3, 4, requires_grad=True)
    z = VAE.reparameterize(mu, logvar, gen(7))
    z.sum().backward()
    eps = torch.randn(3, 4, generator=gen(7))
    torch.testing.assert_close(mu.grad, torch.ones(3, 4))
    torch.testing.assert_close(
        logvar.grad, 0.5 * torch.exp(0.5 * logvar.detach()) * eps
    )


def test_reparameterize_same_seed_same_z_other_seed_other_z():
    mu, logvar = torch.randn(2, 4), torch.randn(2, 4)
    z1 = VAE.reparameterize(mu, logvar, gen(1))
    assert torch.equal(z1, VAE.reparameterize(mu, logvar, gen(1)))
    assert not torch.equal(z1, VAE.reparameterize(mu, logvar, gen(2)))


def test_reparameterized_z_has_mean_mu_and_variance_exp_logvar():
    mu = torch.tensor([-1.0, 0.0, 2.0])
    logvar = torch.tensor([-2.0, 0.0, 1.0])
    n = 100_000
    z = VAE.reparameterize(mu.repeat(n, 1), logvar.repeat(n, 1), gen(0))
    std = torch.exp(0.5 * logvar)
    # 5 standard errors of the mean, and of the variance (sd of s^2 is s^2 sqrt(2/n))
    assert torch.all((z.mean(0) - mu).abs() < 5 * std / math.sqrt(n))
    var = std**2
    assert torch.all((z.var(0) - var).abs() < 5 * var * math.sqrt(2 / n))


# ---------------------------------------------------------------- training


def test_three_epochs_on_real_digits_lower_the_test_loss_clearly(shared_data):
    root = shared_data
    train = load_mnist("train", root, download=False).images[:1000]
    test = load_mnist("test", root, download=False).images[:1000]
    torch.manual_seed(0)
    model = VAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss() -> float:
        return evaluate_loss(model, test, generator=gen(9), device="cpu")["loss"]

    before = loss()  # about 543: every pixel predicted near 0.5
    for _ in range(3):
        train_epoch(model, train, optimizer, generator=gen(1), device="cpu")
    after = loss()
    assert after < 0.5 * before, (before, after)  # about 208 after 3 epochs


def test_train_epoch_reports_the_mean_per_image_weighting_the_short_batch():
    model = small_vae()
    with torch.no_grad():  # a tiny posterior variance: z = mu to float precision
        model.to_logvar.weight.zero_()
        model.to_logvar.bias.fill_(-40.0)
    images = random_images(20)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # nothing changes
    result = train_epoch(
        model, images, optimizer, generator=gen(0), device="cpu", batch_size=7
    )  # batches of 7, 7 and 6
    x = to_input(images)
    logits, mu, logvar = model(x)  # z = mu
    total, bce, kl = vae_loss(logits, x, mu, logvar)
    assert result["images"] == 20
    assert result["loss"] == pytest.approx(total.item(), rel=1e-5)
    assert result["bce"] == pytest.approx(bce.item(), rel=1e-5)
    assert result["kl"] == pytest.approx(kl.item(), rel=1e-5)
    assert result["seconds"] > 0


def test_training_twice_with_the_same_seeds_gives_identical_weights():
    """Only the passed generator drives training: torch's global RNG does not matter."""
    images = random_images(200)

    def run(train_seed: int, global_seed: int) -> tuple[dict[str, torch.Tensor], float]:
        model = small_vae(seed=0)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        torch.manual_seed(global_seed)  # must not change anything below
        g = gen(train_seed)
        for _ in range(2):
            result = train_epoch(
                model, images, optimizer, generator=g, device="cpu", batch_size=32
            )
        return model.state_dict(), result["loss"]

    (first, loss1), (second, loss2) = run(1, global_seed=10), run(1, global_seed=11)
    other, _ = run(2, global_seed=10)
    assert loss1 == loss2
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_bfloat16_autocast_runs_in_bfloat16_and_keeps_float32_weights():
    def epoch(dtype: torch.dtype | None) -> tuple[VAE, float]:
        model = small_vae()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        result = train_epoch(
            model,
            random_images(64),
            optimizer,
            generator=gen(0),
            device="cpu",
            autocast_dtype=dtype,
        )
        return model, result["loss"]

    model, mixed = epoch(torch.bfloat16)
    _, full = epoch(None)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert mixed != full  # bfloat16 matmuls round differently ...
    assert mixed == pytest.approx(full, rel=0.02)  # ... but compute the same loss


def test_evaluate_loss_is_reproducible_and_reports_the_loss_at_the_mean():
    model = small_vae()
    model.train()
    images = random_images(30)
    first = evaluate_loss(model, images, generator=gen(4), device="cpu", batch_size=8)
    again = evaluate_loss(model, images, generator=gen(4), device="cpu", batch_size=8)
    assert first == again
    assert model.training  # the mode is restored
    x = to_input(images)
    logits, mu, logvar = model(x)  # no generator: z = mu
    total, bce, kl = vae_loss(logits, x, mu, logvar)
    assert first["loss_at_mean"] == pytest.approx(total.item(), rel=1e-5)
    assert first["bce_at_mean"] == pytest.approx(bce.item(), rel=1e-5)
    assert first["kl"] == pytest.approx(kl.item(), rel=1e-5)
    assert first["loss"] == pytest.approx(first["bce"] + first["kl"])
    assert first["bce"] != pytest.approx(
        first["bce_at_mean"], rel=1e-6
    )  # noise was drawn


# ---------------------------------------------------------------- pictures


def images_of(model: VAE, z: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.sigmoid(model.decode(z)).reshape(-1, 1, 28, 28)


def test_samples_are_images_in_the_unit_interval_and_seeded():
    model = small_vae()
    images = sample(model, 6, gen(0))
    assert images.shape == (6, 1, 28, 28)
    assert images.min() >= 0 and images.max() <= 1
    assert torch.equal(images, sample(model, 6, gen(0)))
    z = torch.randn(6, 4, generator=gen(0))
    torch.testing.assert_close(images, images_of(model, z))


def test_latent_walk_starts_and_ends_at_the_decoded_endpoints():
    model = small_vae()
    z_start, z_end = torch.randn(4), torch.randn(4)
    walk = latent_walk(model, z_start, z_end, 5)
    assert walk.shape == (5, 1, 28, 28)
    assert walk.min() >= 0 and walk.max() <= 1
    torch.testing.assert_close(walk[0], images_of(model, z_start[None])[0])
    torch.testing.assert_close(walk[-1], images_of(model, z_end[None])[0])
    torch.testing.assert_close(
        walk[2], images_of(model, (z_start + z_end)[None] / 2)[0]
    )


def test_latent_grid_sets_the_two_chosen_coordinates():
    model = small_vae()
    center = torch.randn(4)
    grid = latent_grid(model, 3, dims=(1, 3), limit=2.0, center=center)
    assert grid.shape == (3, 3, 1, 28, 28)
    z = center.clone()
    z[1], z[3] = -2.0, 2.0  # row 0: dims[0] at -limit; column 2: dims[1] at +limit
    torch.testing.assert_close(grid[0, 2], images_of(model, z[None])[0])
    z[1], z[3] = 0.0, 0.0
    torch.testing.assert_close(grid[1, 1], images_of(model, z[None])[0])


def test_reconstruct_at_the_mean_and_with_noise():
    model = small_vae()
    images = random_images(4)
    x = to_input(images)
    with torch.no_grad():
        mu, _ = model.encode(x)
    torch.testing.assert_close(reconstruct(model, images), images_of(model, mu))
    noisy = reconstruct(model, images, generator=gen(0))
    assert noisy.shape == (4, 1, 28, 28) and not torch.allclose(
        noisy, images_of(model, mu)
    )


# ---------------------------------------------------------------- export


def test_exported_decoder_runs_at_any_batch_size():
    model = small_vae()
    decoder = export_decoder(model).module()
    for batch in (1, 5):
        z = torch.randn(batch, 4)
        torch.testing.assert_close(decoder(z), images_of(model, z))


# ---------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"latent": 0}, "latent must be a positive int, got 0"),
        ({"hidden": (512, 0)}, r"hidden\[1\] must be a positive int"),
        ({"hidden": 512}, "hidden must be a sequence"),
    ],
)
def test_bad_model_sizes_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VAE(**kwargs)


def test_bad_images_are_clear_errors():
    with pytest.raises(ValueError, match="must be uint8 pixels"):
        to_input(torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError, match=r"shape \(N, 1, 28, 28\), got \(2, 28, 28\)"):
        to_input(random_images(2)[:, 0])
    model = small_vae()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="holds no images"):
        train_epoch(
            model, random_images(2)[:0], optimizer, generator=gen(0), device="cpu"
        )


def test_mismatched_loss_inputs_are_clear_errors():
    x, logits = torch.rand(3, 784), torch.randn(3, 784)
    mu = torch.zeros(3, 2)
    with pytest.raises(ValueError, match=r"logits \(2, 784\) and pixels \(3, 784\)"):
        vae_loss(logits[:2], x, mu, mu)
    with pytest.raises(ValueError, match=r"mu \(3, 2\) and logvar \(3, 1\)"):
        vae_loss(logits, x, mu, mu[:, :1])


def test_bad_training_arguments_are_clear_errors():
    model = small_vae()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    images = random_images(4)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        train_epoch(
            model, images, optimizer, generator=gen(0), device="cpu", batch_size=0
        )
    with pytest.raises(ValueError, match=r"needs a torch\.Generator"):
        train_epoch(model, images, optimizer, generator=0, device="cpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="float16 needs a gradient scaler"):
        train_epoch(
            model,
            images,
            optimizer,
            generator=gen(0),
            device="cpu",
            autocast_dtype=torch.float16,
        )
    with pytest.raises(ValueError, match="the model is on cpu but device is meta"):
        train_epoch(model, images, optimizer, generator=gen(0), device="meta")


def test_bad_picture_arguments_are_clear_errors():
    model = small_vae()
    with pytest.raises(ValueError, match="steps must be at least 2"):
        latent_walk(model, torch.zeros(4), torch.zeros(4), 1)
    with pytest.raises(
        ValueError, match=r"z_end must be one latent code of shape \(4,\)"
    ):
        latent_walk(model, torch.zeros(4), torch.zeros(1, 4), 3)
    with pytest.raises(ValueError, match="two different latent dimensions"):
        latent_grid(model, 3, dims=(2, 2))
    with pytest.raises(ValueError, match=r"dims must be in 0\.\.3"):
        latent_grid(model, 3, dims=(0, 4))
    with pytest.raises(ValueError, match="n must be a positive int"):
        sample(model, 0, gen(0))


# ---------------------------------------------------------------- the run


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
