"""Replay sampling, the lecture's way against rlbook's, on the same DQN config.

    .venv/bin/python benchmarks/dqn_replay.py [--updates 3000] [--repeats 3] [--threads 1]

Both ways train the lecture's Q-network from the same 10,000 CartPole
transitions with the same update; they differ only in how batches are drawn:
``dataloader`` (the lecture's ``Dataset`` over a deque through a
``DataLoader``: per-item Python, then a collate) or ``rlbook``
(:class:`rlbook.replay.ReplayBuffer`: one ``randint`` plus one gather per
field). The ways alternate; the best of ``--repeats`` timings is kept. Prints
one JSON line: updates per second of each way and their ratio, and the same
for drawing batches alone.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch

from rlbook.chapters.dqn_state import LectureMemory, lecture_batches, td_loss
from rlbook.dqn import QNetwork
from rlbook.envs import make_env
from rlbook.replay import Batch, ReplayBuffer

CAPACITY = 10_000
BATCH_SIZE = 32
GAMMA = 0.99


def random_transitions(count: int, seed: int = 0) -> list[tuple]:
    """``count`` transitions of a random policy on CartPole-v1."""
    env = make_env("CartPole-v1")
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    transitions = []
    while len(transitions) < count:
        action = int(env.action_space.sample())
        next_obs, reward, terminated, truncated, _ = env.step(action)
        transitions.append((obs, action, float(reward), next_obs, bool(terminated)))
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
    return transitions


def make_update(seed: int) -> Callable[[Batch], None]:
    """One DQN update of a fresh lecture network; identical for both ways."""
    torch.manual_seed(seed)
    q_net = QNetwork(4, 2, (128, 64), batch_norm=True)
    target_net = QNetwork(4, 2, (128, 64), batch_norm=True)
    target_net.load_state_dict(q_net.state_dict())
    optimizer = torch.optim.SGD(q_net.parameters(), lr=1e-3, momentum=0.9)

    def update(batch: Batch) -> None:
        loss, _ = td_loss(q_net, target_net, batch, gamma=GAMMA)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return update


def no_update(batch: Batch) -> None:
    """Draw batches only: isolates the cost of sampling."""


def rate(batches: Iterator[Batch], update: Callable[[Batch], None]) -> float:
    """Batches per second through ``update``."""
    start = time.perf_counter()
    count = 0
    for batch in batches:
        update(batch)
        count += 1
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=3000, help="updates per timing")
    parser.add_argument("--repeats", type=int, default=3, help="timings of each way")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    # Tiny matrices: one thread is faster than coordinating several (the chapter
    # trains with one thread too).
    torch.set_num_threads(args.threads)

    transitions = random_transitions(CAPACITY)
    memory = LectureMemory(CAPACITY)
    buffer = ReplayBuffer(CAPACITY, (4,), generator=torch.Generator().manual_seed(0))
    for obs, action, reward, next_obs, terminated in transitions:
        memory.push(obs, action, reward, next_obs, terminated)
        buffer.add(obs, action, reward, next_obs, terminated)

    def rlbook_batches(updates: int) -> Iterator[Batch]:
        for _ in range(updates):
            yield buffer.sample(BATCH_SIZE)

    ways = {
        "dataloader": lambda n: lecture_batches(memory, BATCH_SIZE, n),
        "rlbook": rlbook_batches,
    }
    best = {name: 0.0 for name in ways}
    best_sampling = {name: 0.0 for name in ways}
    for repeat in range(args.repeats + 1):  # the first round warms up and is not kept
        for name, batches in ways.items():
            updates = rate(batches(args.updates), make_update(repeat))
            sampled = rate(batches(args.updates), no_update)
            if repeat > 0:
                best[name] = max(best[name], updates)
                best_sampling[name] = max(best_sampling[name], sampled)
    record = {
        "benchmark": "dqn_replay",
        "updates_per_s_dataloader": round(best["dataloader"], 1),
        "updates_per_s_rlbook": round(best["rlbook"], 1),
        "ratio": round(best["rlbook"] / best["dataloader"], 2),
        # Sampling alone (no update): where the two ways differ.
        "batches_per_s_dataloader": round(best_sampling["dataloader"], 1),
        "batches_per_s_rlbook": round(best_sampling["rlbook"], 1),
        "sampling_ratio": round(
            best_sampling["rlbook"] / best_sampling["dataloader"], 2
        ),
        "updates": args.updates,
        "repeats": args.repeats,
        "batch_size": BATCH_SIZE,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
