"""rlbook.frames: stacks rebuilt from single frames equal the frames that were seen."""

import numpy as np
import pytest
import torch

from rlbook.frames import FrameReplayMemory

SHAPE = (2, 3)


def frame(lane: int, episode: int, step: int) -> np.ndarray:
    """A frame that names where it came from: (lane, episode, step) in its pixels."""
    f = np.zeros(SHAPE, dtype=np.uint8)
    f[0, 0], f[0, 1], f[0, 2] = lane, episode % 256, step % 256
    f[1, :] = (step // 256) % 256
    return f


def run(memory: FrameReplayMemory, steps: int, seed: int = 0):
    """Drive the memory like a vector environment whose episodes end at random,
    some terminated and some truncated; return every transition as truth:
    (lane, episode, step) -> (obs stack, action, reward, next stack, terminated)."""
    rng = np.random.default_rng(seed)
    k, lanes = memory.stack, memory.lanes
    episode = np.zeros(lanes, dtype=int)
    step = np.zeros(lanes, dtype=int)
    seen = [[frame(e, 0, 0)] for e in range(lanes)]  # this episode's frames per lane
    memory.begin(np.stack([s[0] for s in seen]))
    truth = {}

    def stack_of(frames: list) -> np.ndarray:
        padded = [frames[0]] * max(0, k - len(frames)) + frames[-k:]
        return np.stack(padded)

    for _ in range(steps):
        actions = rng.integers(0, 4, lanes)
        rewards = rng.normal(size=lanes).astype(np.float32)
        ends = rng.random(lanes) < 0.08
        terminated = ends & (rng.random(lanes) < 0.5)  # the rest are truncated
        next_frames = np.stack([frame(e, episode[e], step[e] + 1) for e in range(lanes)])
        for e in range(lanes):
            obs = stack_of(seen[e])
            seen[e].append(next_frames[e])
            truth[e, episode[e], step[e]] = (
                obs, actions[e], rewards[e], stack_of(seen[e]), float(terminated[e])
            )
        memory.step(actions, rewards, terminated, next_frames)
        step += 1
        if ends.any():
            episode[ends] += 1
            step[ends] = 0
            firsts = []
            for e in np.flatnonzero(ends):
                seen[e] = [frame(e, episode[e], 0)]
                firsts.append(seen[e][0])
            memory.begin(np.stack(firsts), lanes=ends)
    return truth


def key_of(stack: np.ndarray) -> tuple[int, int, int]:
    last = stack[-1]
    return int(last[0, 0]), int(last[0, 1]), int(last[0, 2]) + 256 * int(last[1, 0])


@pytest.mark.parametrize(("lanes", "capacity", "steps"), [(1, 64, 300), (3, 90, 400)])
def test_sampled_stacks_equal_the_frames_seen(lanes, capacity, steps):
    """Across episode boundaries (both kinds) and after the rings wrapped round."""
    gen = torch.Generator().manual_seed(0)
    memory = FrameReplayMemory(capacity, SHAPE, stack=4, lanes=lanes, generator=gen)
    truth = run(memory, steps)
    assert memory.written.min() > memory.slots  # every ring wrapped
    batch = memory.sample(2000)
    seen_keys = set()
    for i in range(2000):
        obs = batch.obs[i].numpy()
        key = key_of(obs)
        # episode ids are kept mod 256, unique enough in this short run
        want = truth[key]
        np.testing.assert_array_equal(obs, want[0])
        assert batch.action[i].item() == want[1]
        assert batch.reward[i].item() == pytest.approx(want[2])
        np.testing.assert_array_equal(batch.next_obs[i].numpy(), want[3])
        assert batch.terminated[i].item() == want[4]
        seen_keys.add(key)
    # only transitions still in the ring, and (almost) all of them get drawn
    assert len(seen_keys) == len(memory)
    assert batch.obs.dtype == torch.uint8 and batch.obs.shape == (2000, 4, *SHAPE)


@pytest.mark.parametrize("n_step", [2, 3])
def test_n_step_transitions_sum_rewards_within_one_episode(n_step):
    """n-step returns stop at a terminal step, a cut-off episode and the newest
    step written; the next stack is the one after the last step summed."""
    gamma = 0.9
    gen = torch.Generator().manual_seed(1)
    memory = FrameReplayMemory(90, SHAPE, stack=3, lanes=3, generator=gen)
    truth = run(memory, 300, seed=3)
    batch = memory.sample(1000, n_step=n_step, gamma=gamma)
    lengths = set()
    for i in range(1000):
        lane, episode, step = key_of(batch.obs[i].numpy())
        reward, steps, terminated = 0.0, 0, 0.0
        while steps < n_step and terminated == 0.0:
            item = truth.get((lane, episode, step + steps))
            if item is None:  # cut off, or not written yet
                break
            reward += gamma**steps * item[2]
            terminated, next_obs = item[4], item[3]
            steps += 1
        assert batch.steps[i].item() == steps
        assert batch.reward[i].item() == pytest.approx(reward, abs=1e-5)
        assert batch.terminated[i].item() == terminated
        np.testing.assert_array_equal(batch.next_obs[i].numpy(), next_obs)
        lengths.add(steps)
    assert lengths == set(range(1, n_step + 1))  # every case was drawn


def test_first_frame_repeats_before_an_episode_starts():
    memory = FrameReplayMemory(16, SHAPE, stack=3)
    memory.begin(frame(0, 0, 0)[None])
    memory.step([1], [1.0], [False], frame(0, 0, 1)[None])
    batch = memory.sample(1)
    np.testing.assert_array_equal(batch.obs[0].numpy(), np.stack([frame(0, 0, 0)] * 3))
    np.testing.assert_array_equal(
        batch.next_obs[0].numpy(), np.stack([frame(0, 0, 0)] * 2 + [frame(0, 0, 1)])
    )


def test_a_truncated_episode_keeps_its_last_frame_for_the_bootstrap():
    memory = FrameReplayMemory(16, SHAPE, stack=2)
    memory.begin(frame(0, 0, 0)[None])
    memory.step([0], [1.0], [False], frame(0, 0, 1)[None])  # truncated here
    memory.begin(frame(0, 1, 0)[None])  # the reset frame goes to a new slot
    memory.step([1], [1.0], [True], frame(0, 1, 1)[None])
    assert len(memory) == 2
    batch = memory.sample(64)
    for obs, nxt, term in zip(batch.obs, batch.next_obs, batch.terminated, strict=True):
        if key_of(obs.numpy())[1] == 0:  # the truncated step
            assert key_of(nxt.numpy()) == (0, 0, 1) and term.item() == 0.0
        else:
            assert key_of(nxt.numpy()) == (0, 1, 1) and term.item() == 1.0


def test_frames_are_stored_once_and_beat_the_naive_layout_fourfold():
    memory = FrameReplayMemory(1000, (80, 80), stack=3)
    naive = FrameReplayMemory.naive_bytes_per_transition((80, 80), 3)
    assert memory.frames.nbytes == 1000 * 80 * 80  # one uint8 frame per slot
    assert memory.bytes_per_slot() <= naive / 4
    assert naive == 2 * 3 * 6400 * 4 + 16


def test_sampling_is_seeded():
    draws = []
    for _ in range(2):
        memory = FrameReplayMemory(
            64, SHAPE, stack=2, lanes=2, generator=torch.Generator().manual_seed(7)
        )
        run(memory, 50)
        draws.append(memory.sample(32).obs)
    assert torch.equal(draws[0], draws[1])


def test_bad_use_is_a_clear_error():
    with pytest.raises(ValueError, match="slots per lane"):
        FrameReplayMemory(4, SHAPE, stack=4)
    memory = FrameReplayMemory(16, SHAPE, stack=2)
    with pytest.raises(RuntimeError, match="begin"):
        memory.step([0], [0.0], [False], frame(0, 0, 1)[None])
    with pytest.raises(TypeError, match="uint8"):
        memory.begin(np.zeros((1, *SHAPE), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        memory.begin(np.zeros((1, 3, 3), dtype=np.uint8))
    memory.begin(frame(0, 0, 0)[None])
    with pytest.raises(RuntimeError, match="no transition"):
        memory.sample(1)
