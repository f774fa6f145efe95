import random

import numpy as np
import pytest
import torch

from rlbook.chapters.running import seed_everything, set_deterministic
from rlbook.envs import make_env
from rlbook.seeding import numpy_stream, stream_seed, torch_stream

from .conftest import needs_cuda

DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]

# One draw from each global generator that seed_everything seeds.
GENERATORS = {
    "python": random.random,
    "numpy": lambda: float(np.random.rand()),  # noqa: NPY002 (the legacy global generator)
    "torch": lambda: float(torch.rand(())),
}


@pytest.fixture(autouse=True)
def restore_torch_flags():
    """Leave torch's global kernel settings as each test found them."""
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    yield
    torch.use_deterministic_algorithms(saved[0])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[1:]


@pytest.mark.parametrize("name", GENERATORS)
def test_same_seed_same_numbers(name):
    draw = GENERATORS[name]
    seed_everything(3)
    first = [draw() for _ in range(3)]
    seed_everything(3)
    assert [draw() for _ in range(3)] == first


@pytest.mark.parametrize("name", GENERATORS)
def test_different_seed_different_numbers(name):
    draw = GENERATORS[name]
    seed_everything(3)
    first = [draw() for _ in range(3)]
    seed_everything(4)
    assert [draw() for _ in range(3)] != first


def test_environment_action_space_is_seeded():
    env = make_env("CartPole-v1")
    seed_everything(5, env)
    first = [env.action_space.sample() for _ in range(20)]
    seed_everything(5, env)
    assert [env.action_space.sample() for _ in range(20)] == first


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_bad_seed_is_rejected(bad):
    with pytest.raises(ValueError, match="non-negative int"):
        seed_everything(bad)


def test_determinism_switch():
    try:
        set_deterministic(True)
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        set_deterministic(False)
    assert not torch.are_deterministic_algorithms_enabled()


def test_seeding_is_reproducible_by_default():
    torch.backends.cudnn.benchmark = True  # as an earlier cell might have left it
    seed_everything(0)
    assert torch.backends.cudnn.benchmark is False
    assert not torch.are_deterministic_algorithms_enabled()


def test_benchmark_only_when_asked_for():
    seed_everything(0, benchmark=True)
    assert torch.backends.cudnn.benchmark is True
    assert not torch.are_deterministic_algorithms_enabled()
    set_deterministic(False)
    assert torch.backends.cudnn.benchmark is False


def test_deterministic_turns_on_deterministic_algorithms():
    seed_everything(0, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic is True
    assert torch.backends.cudnn.benchmark is False


def test_deterministic_with_benchmark_is_a_clear_error():
    with pytest.raises(ValueError, match="contradict"):
        seed_everything(0, deterministic=True, benchmark=True)


def seeded_conv_training(seed: int, device: str) -> list[torch.Tensor]:
    """A few steps of a small conv net on random images, seeded with the defaults."""
    seed_everything(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 6 * 6, 2),
    ).to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(5):
        images = torch.rand(16, 3, 8, 8).to(device)
        loss = net(images).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return [p.detach().cpu().clone() for p in net.parameters()]


@pytest.mark.parametrize("device", DEVICES)
def test_seeded_training_twice_gives_the_same_weights(device):
    first = seeded_conv_training(1, device)
    second = seeded_conv_training(1, device)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)


# Streams: one independent generator per purpose of a run.

PURPOSES = ("init", "explore", "replay")


def test_same_seed_and_purpose_give_the_same_stream():
    np.testing.assert_array_equal(
        numpy_stream(7, "explore").random(100), numpy_stream(7, "explore").random(100)
    )
    assert torch.equal(
        torch.rand(100, generator=torch_stream(7, "explore")),
        torch.rand(100, generator=torch_stream(7, "explore")),
    )
    assert stream_seed(7, "explore") == stream_seed(7, "explore")


@pytest.mark.parametrize(
    "a, b", [(p, q) for i, p in enumerate(PURPOSES) for q in PURPOSES[i + 1 :]]
)
def test_purposes_of_one_seed_are_different_uncorrelated_streams(a, b):
    assert stream_seed(7, a) != stream_seed(7, b)
    for draw in (
        lambda purpose: numpy_stream(7, purpose).random(1000),
        lambda purpose: torch.rand(1000, generator=torch_stream(7, purpose)).numpy(),
    ):
        x, y = draw(a), draw(b)
        assert not np.array_equal(x, y)
        assert abs(np.corrcoef(x, y)[0, 1]) < 0.1


def test_different_seeds_give_different_streams():
    assert stream_seed(7, "explore") != stream_seed(8, "explore")
    x = numpy_stream(7, "explore").random(1000)
    y = numpy_stream(8, "explore").random(1000)
    assert not np.array_equal(x, y)
    assert abs(np.corrcoef(x, y)[0, 1]) < 0.1


def test_stream_seed_is_a_63_bit_int_and_stable():
    value = stream_seed(0, "explore")
    assert type(value) is int and 0 <= value < 2**63
    # Shipped full runs were seeded through this derivation: changing it
    # silently changes every run's numbers.
    assert value == 4205323455744154028


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
@pytest.mark.parametrize("make", [stream_seed, numpy_stream, torch_stream])
def test_bad_stream_seed_is_rejected(make, bad):
    with pytest.raises(ValueError, match="non-negative int"):
        make(bad, "explore")


@pytest.mark.parametrize("make", [stream_seed, numpy_stream, torch_stream])
def test_empty_purpose_is_rejected(make):
    with pytest.raises(ValueError, match="non-empty"):
        make(7, "")


@pytest.mark.parametrize("device", DEVICES)
def test_torch_stream_draws_match_its_stream_seed(device):
    generator = torch_stream(7, "replay", device)
    assert generator.device.type == device
    expected = torch.Generator(device=device).manual_seed(stream_seed(7, "replay"))
    assert generator.initial_seed() == stream_seed(7, "replay")
    assert torch.equal(
        torch.rand(10, generator=generator, device=device),
        torch.rand(10, generator=expected, device=device),
    )


def test_the_books_seed_ranges_never_overlap():
    """Each purpose's seeds, as used (episodes per evaluation, games per test):
    no seed serves two purposes, CartPole's or Pong's."""
    from rlbook import seeding

    episodes = 1_000  # far more than any evaluation plays
    cartpole = {
        "validation": range(seeding.VALIDATION_SEED, seeding.VALIDATION_SEED + episodes),
        "test": range(seeding.TEST_SEED, seeding.TEST_SEED + episodes),
        "hold-out": range(seeding.HOLDOUT_SEED, seeding.HOLDOUT_SEED + episodes),
        "training": range(seeding.train_seed(0, 0), seeding.train_seed(99, 999_999) + 1),
    }
    pong = {
        "test": range(seeding.PONG_TEST_SEED, seeding.PONG_TEST_SEED + 3),
        "hold-out": range(seeding.PONG_HOLDOUT_SEED, seeding.PONG_HOLDOUT_SEED + 1),
        "training": range(0, 100),
    }
    ranges = [(f"CartPole {k}", r) for k, r in cartpole.items()]
    ranges += [(f"Pong {k}", r) for k, r in pong.items()]
    for i, (name_a, a) in enumerate(ranges):
        for name_b, b in ranges[i + 1 :]:
            overlap = max(a.start, b.start) < min(a.stop, b.stop)
            assert not overlap, f"{name_a} seeds {a} overlap {name_b} seeds {b}"


def test_train_seeds_of_two_runs_never_meet():
    from rlbook.seeding import train_seed

    assert train_seed(1, 0) > train_seed(0, 999_999)
    with pytest.raises(ValueError):
        train_seed(0, 1_000_000)
