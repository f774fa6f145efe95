"""Replay: the package's uniform ring buffer, and the sum tree and
prioritized buffer of the page chapters/dqn_state.md, which live in its
module. The pixel page's frame memory is tested in test_dqn_pixels.py."""

import numpy as np
import pytest
import torch

from rlbook.chapters.dqn_state import PrioritizedReplayBuffer, SumTree
from rlbook.replay import Batch, ReplayBuffer

from .conftest import needs_cuda

DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]


def transition(i: int) -> tuple[np.ndarray, int, float, np.ndarray, bool]:
    """Transition number ``i``, recognisable in every field."""
    obs = np.array([i, -i], dtype=np.float64)
    return obs, i % 3, 0.5 * i, obs + 100, i % 2 == 1


def filled(buffer: ReplayBuffer, n: int) -> ReplayBuffer:
    for i in range(n):
        buffer.add(*transition(i))
    return buffer


# --- ReplayBuffer ------------------------------------------------------------


def test_ring_overwrites_the_oldest_transitions():
    buffer = filled(ReplayBuffer(5, (2,)), 7)
    assert len(buffer) == 5
    assert buffer.capacity == 5
    assert buffer.pos == 2
    order = [5, 6, 2, 3, 4]  # 0 and 1 were overwritten by 5 and 6
    np.testing.assert_array_equal(buffer.obs[:, 0].numpy(), order)
    np.testing.assert_array_equal(buffer.obs[:, 1].numpy(), [-i for i in order])
    np.testing.assert_array_equal(
        buffer.next_obs[:, 0].numpy(), [i + 100 for i in order]
    )
    np.testing.assert_array_equal(buffer.action.numpy(), [i % 3 for i in order])
    np.testing.assert_array_equal(buffer.reward.numpy(), [0.5 * i for i in order])
    np.testing.assert_array_equal(buffer.terminated.numpy(), [i % 2 for i in order])


@pytest.mark.parametrize("device", DEVICES)
def test_sample_shapes_dtypes_and_device(device):
    buffer = filled(ReplayBuffer(10, (2,), device=device), 4)
    batch = buffer.sample(8)
    assert isinstance(batch, Batch)
    expected = {
        "obs": ((8, 2), torch.float32),
        "action": ((8,), torch.int64),
        "reward": ((8,), torch.float32),
        "next_obs": ((8, 2), torch.float32),
        "terminated": ((8,), torch.float32),
        "indices": ((8,), torch.int64),
        "weights": ((8,), torch.float32),
    }
    for name, (shape, dtype) in expected.items():
        tensor = getattr(batch, name)
        assert (tuple(tensor.shape), tensor.dtype, tensor.device.type) == (
            shape,
            dtype,
            device,
        )
    assert torch.equal(batch.weights, torch.ones(8, device=device))
    # every row is the transition stored in the slot it names
    i = batch.indices.cpu().numpy()
    np.testing.assert_array_equal(batch.obs[:, 0].cpu().numpy(), i)
    np.testing.assert_array_equal(batch.next_obs[:, 0].cpu().numpy(), i + 100)
    np.testing.assert_array_equal(batch.action.cpu().numpy(), i % 3)
    np.testing.assert_array_equal(batch.reward.cpu().numpy(), 0.5 * i)


def test_terminated_is_stored_as_given_and_truncation_is_not_terminal():
    buffer = ReplayBuffer(4, (1,))
    buffer.add([0.0], 0, 1.0, [1.0], terminated=True)
    # an episode cut by a time limit: truncated, not terminated, so it must bootstrap
    buffer.add([1.0], 0, 1.0, [2.0], terminated=False)
    buffer.add([2.0], 0, 1.0, [3.0], terminated=np.bool_(True))
    buffer.add([3.0], 0, 1.0, [4.0], terminated=np.bool_(False))
    np.testing.assert_array_equal(buffer.terminated.numpy(), [1.0, 0.0, 1.0, 0.0])


def test_sample_draws_only_from_the_filled_part():
    buffer = filled(
        ReplayBuffer(100, (2,), generator=torch.Generator().manual_seed(0)), 3
    )
    indices = buffer.sample(1000).indices
    assert indices.max().item() < 3
    assert set(indices.tolist()) == {0, 1, 2}


def test_generators_seeded_alike_sample_alike():
    a = filled(ReplayBuffer(50, (2,), generator=torch.Generator().manual_seed(7)), 30)
    b = filled(ReplayBuffer(50, (2,), generator=torch.Generator().manual_seed(7)), 30)
    c = filled(ReplayBuffer(50, (2,), generator=torch.Generator().manual_seed(8)), 30)
    first, second, other = (
        a.sample(64).indices,
        b.sample(64).indices,
        c.sample(64).indices,
    )
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


def test_bad_arguments_are_clear_errors():
    buffer = ReplayBuffer(4, (2,))
    with pytest.raises(ValueError, match="empty replay buffer"):
        buffer.sample(1)
    filled(buffer, 2)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        buffer.sample(0)
    with pytest.raises(ValueError, match=r"obs has shape \(3,\), expected \(2,\)"):
        buffer.add(np.zeros(3), 0, 0.0, np.zeros(2), False)
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        ReplayBuffer(0, (2,))


# --- SumTree -----------------------------------------------------------------


def assert_consistent(tree: SumTree, expected_leaves: np.ndarray) -> None:
    """Leaves hold ``expected_leaves`` and every internal node the sum of its children."""
    np.testing.assert_array_equal(
        tree.priorities(np.arange(tree.capacity)), expected_leaves
    )
    nodes = np.arange(1, tree._first_leaf)  # leaf 0's node
    np.testing.assert_array_equal(
        tree.tree[nodes], tree.tree[2 * nodes] + tree.tree[2 * nodes + 1]
    )
    np.testing.assert_allclose(tree.total, expected_leaves.sum(), rtol=1e-12)


@pytest.mark.parametrize("capacity", [1, 5, 8, 13, 1000])
def test_sum_tree_stays_consistent_under_random_updates(capacity):
    rng = np.random.default_rng(capacity)
    tree = SumTree(capacity)
    expected = np.zeros(capacity)
    for _ in range(20):
        # many repeated indices per call: the last write of each must win
        indices = rng.integers(0, capacity, size=rng.integers(1, 2 * capacity + 2))
        priorities = rng.random(indices.size) * 10
        tree.update(indices, priorities)
        for i, p in zip(indices, priorities, strict=True):
            expected[i] = p
        assert_consistent(tree, expected)
        # the single-leaf path must agree too
        i = int(rng.integers(capacity))
        expected[i] = rng.random()
        tree.update(np.array([i]), np.array([expected[i]]))
        assert_consistent(tree, expected)


def test_sum_tree_keeps_the_last_of_duplicate_writes():
    tree = SumTree(6)
    tree.update(np.array([2, 4, 2, 2, 4]), np.array([1.0, 5.0, 2.0, 3.0, 7.0]))
    np.testing.assert_array_equal(tree.priorities(np.arange(6)), [0, 0, 3, 0, 7, 0])
    assert tree.total == 10.0


@pytest.mark.parametrize("capacity", [1, 7, 16, 100])
def test_sum_tree_find_matches_searchsorted_on_the_cumulative_sum(capacity):
    rng = np.random.default_rng(capacity)
    # integer priorities (a third of them zero) keep every sum exact, so even values
    # on an interval's boundary must agree with searchsorted
    priorities = rng.integers(0, 5, size=capacity).astype(np.float64)
    priorities[rng.integers(capacity)] = 3.0
    tree = SumTree(capacity)
    tree.update(np.arange(capacity), priorities)
    values = np.concatenate(
        [np.arange(0, tree.total, 0.5), rng.random(500) * tree.total]
    )
    expected = np.searchsorted(np.cumsum(priorities), values, side="right")
    np.testing.assert_array_equal(tree.find(values), expected)
    assert np.all(priorities[tree.find(values)] > 0)


def test_sum_tree_find_at_total_never_returns_an_empty_leaf():
    tree = SumTree(10)
    tree.update(
        np.array([0, 3, 4]), np.array([0.1, 0.2, 0.3])
    )  # leaves 5..9 (and more) empty
    leaf = tree.find(np.array([tree.total, np.nextafter(tree.total, 0.0)]))
    np.testing.assert_array_equal(leaf, [4, 4])
    # rounding: a sum of many small floats, searched exactly at the top
    tree = SumTree(7)
    tree.update(np.arange(3), np.full(3, 0.1))
    assert tree.find(np.array([tree.total]))[0] == 2


def test_sum_tree_bad_arguments_are_clear_errors():
    tree = SumTree(4)
    with pytest.raises(ValueError, match="all zero"):
        tree.find(np.array([0.0]))
    with pytest.raises(ValueError, match=r"leaf indices must lie in \[0, 4\)"):
        tree.update(np.array([4]), np.array([1.0]))
    with pytest.raises(ValueError, match="non-negative"):
        tree.update(np.array([0, 1]), np.array([1.0, -1.0]))
    tree.update(np.array([0]), np.array([1.0]))
    with pytest.raises(ValueError, match="values must lie in"):
        tree.find(np.array([1.5]))


# --- PrioritizedReplayBuffer ---------------------------------------------------


def counts(
    buffer: PrioritizedReplayBuffer, draws: int, batch_size: int = 32
) -> np.ndarray:
    indices = [
        buffer.sample(batch_size).indices.numpy() for _ in range(draws // batch_size)
    ]
    return np.bincount(np.concatenate(indices), minlength=len(buffer))


def test_new_transitions_get_the_max_priority():
    buffer = filled(PrioritizedReplayBuffer(8, (2,), alpha=0.5, seed=0), 3)
    # before any TD error is known: priority 1.0 each, so uniform and nonzero
    np.testing.assert_array_equal(
        buffer.tree.priorities(np.arange(8)), [1, 1, 1, 0, 0, 0, 0, 0]
    )
    assert np.all(counts(buffer, 3000) > 800)
    buffer.update_priorities(
        np.array([0, 1]), np.array([3.0, -0.5])
    )  # max is now 3 + eps
    for i in (3, 4, 5):
        buffer.add(*transition(i))
    new = buffer.tree.priorities(np.array([3, 4, 5]))
    np.testing.assert_allclose(new, (3.0 + buffer.eps) ** 0.5)


def test_sampling_frequencies_match_priorities():
    buffer = filled(PrioritizedReplayBuffer(10, (2,), alpha=1.0, seed=1), 4)
    buffer.update_priorities(torch.arange(4), torch.tensor([1.0, -2.0, 3.0, -4.0]))
    frequencies = counts(buffer, 40_000) / 40_000
    np.testing.assert_allclose(frequencies, [0.1, 0.2, 0.3, 0.4], atol=0.02)


def test_priority_is_abs_td_error_plus_eps_to_the_alpha():
    buffer = filled(PrioritizedReplayBuffer(10, (2,), alpha=0.5, eps=0.01, seed=0), 3)
    buffer.update_priorities(np.array([0, 1, 2]), np.array([-4.0, 0.0, 2.25]))
    np.testing.assert_allclose(
        buffer.tree.priorities(np.arange(3)), np.sqrt([4.01, 0.01, 2.26])
    )
    assert buffer.max_priority == pytest.approx(4.01)


def test_raising_a_priority_makes_it_sampled_more():
    buffer = filled(PrioritizedReplayBuffer(10, (2,), alpha=1.0, seed=2), 10)
    buffer.update_priorities(np.arange(10), np.ones(10))
    before = counts(buffer, 3200)[3] / 3200
    buffer.update_priorities(
        torch.tensor([3]), torch.tensor([30.0], requires_grad=True)
    )
    after = counts(buffer, 3200)[3] / 3200
    assert before == pytest.approx(0.1, abs=0.03)
    assert after == pytest.approx(30 / 39, abs=0.03)


def test_importance_weights():
    buffer = filled(
        PrioritizedReplayBuffer(10, (2,), alpha=1.0, beta=0.5, eps=1e-12, seed=3), 4
    )
    buffer.update_priorities(np.arange(4), np.array([1.0, 2.0, 3.0, 4.0]))
    probability = np.array([0.1, 0.2, 0.3, 0.4])
    for _ in range(20):
        batch = buffer.sample(4)
        i = batch.indices.numpy()
        expected = (4 * probability[i]) ** -0.5
        np.testing.assert_allclose(
            batch.weights.numpy(), expected / expected.max(), rtol=1e-6
        )
        assert batch.weights.max().item() == 1.0
    # stratified over 4 segments: [0, 2.5) holds items 0 and 1, [7.5, 10) only item 3
    assert 3 in batch.indices.tolist()
    assert torch.equal(buffer.sample(16, beta=0.0).weights, torch.ones(16))


def test_prioritized_sampling_is_seeded():
    a = filled(PrioritizedReplayBuffer(20, (2,), seed=5), 20)
    b = filled(PrioritizedReplayBuffer(20, (2,), seed=5), 20)
    for buffer in (a, b):
        buffer.update_priorities(np.arange(20), np.linspace(0.0, 5.0, 20))
    assert torch.equal(a.sample(32).indices, b.sample(32).indices)


def test_prioritized_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="beta must lie in"):
        PrioritizedReplayBuffer(4, (2,), beta=1.5)
    buffer = PrioritizedReplayBuffer(4, (2,))
    with pytest.raises(ValueError, match="empty replay buffer"):
        buffer.sample(2)
    filled(buffer, 2)
    with pytest.raises(ValueError, match=r"filled slots in \[0, 2\)"):
        buffer.update_priorities(np.array([2]), np.array([1.0]))
    with pytest.raises(ValueError, match="finite"):
        buffer.update_priorities(np.array([0]), np.array([np.nan]))


@pytest.mark.parametrize("device", DEVICES)
def test_prioritized_batch_lives_on_the_device(device):
    buffer = filled(PrioritizedReplayBuffer(16, (2,), device=device, seed=0), 5)
    batch = buffer.sample(8)
    for name, tensor in batch._asdict().items():
        assert tensor.device.type == device, name
    assert batch.weights.dtype == torch.float32
    assert batch.indices.dtype == torch.int64
    td = (
        batch.reward * 2
    ).requires_grad_()  # a TD error still on the device, with grad
    buffer.update_priorities(batch.indices, td)
    assert buffer.max_priority == pytest.approx(
        max(1.0, 2 * batch.reward.max().item() + 1e-6)
    )
