import random

import numpy as np
import pytest
import torch

from rlbook.envs import make_env
from rlbook.seeding import seed_everything, set_deterministic


def draws():
    return random.random(), float(np.random.rand())  # noqa: NPY002 (checks the legacy generator is seeded), float(torch.rand(()))


def test_same_seed_same_numbers():
    seed_everything(3)
    first = draws()
    seed_everything(3)
    assert draws() == first


def test_different_seed_different_numbers():
    seed_everything(3)
    first = draws()
    seed_everything(4)
    assert draws() != first


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
