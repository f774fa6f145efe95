"""Collecting Pong experience: pg-pong.py's one-game loop against rlbook's batched rollout.

    .venv/bin/python benchmarks/pong_rollout.py [--steps 4000] [--envs 32]
        [--threads 0] [--repeats 2]

Both ways play the chapter's Pong with the same random two-layer policy and
produce what REINFORCE needs of every step (difference frame, action,
reward); the backward pass at each game's end is left out of both.
``single`` is ``pg-pong.py``'s loop: one game, float64, records kept in
lists. ``vector`` is :func:`rollout`: ``N`` games in ALE's thread pool, one
sparse float32 forward pass over them a step, on one torch thread. The
ceiling is ALE alone with random actions, one game and ``N``: no rollout can
beat it, so ``ceiling_ratio`` bounds what any rollout can gain here.

The ways alternate ``--repeats`` times for every ``--envs``; the best rate of
each is kept. Prints one JSON line: steps per second, CPU time per step (all
threads: steadier than wall time on a busy machine), and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import numpy as np

from rlbook.chapters.pong import (
    TorchPolicy,
    init_numpy_policy,
    make_pong,
    numpy_forward,
    policy_probs_sparse,
    prepro,
    sample_actions,
    torch_threads,
)
from rlbook.pong import ACTIONS_3, INPUTS, frame_difference, make_pong_vector


def rollout(
    policy_fn: Callable[[np.ndarray], np.ndarray],
    vec_env: Any,
    steps: int,
    rng: np.random.Generator,
    action_set: tuple[int, ...] = ACTIONS_3,
) -> dict[str, np.ndarray]:
    """Play ``steps`` more steps in every lane of ``vec_env`` (a
    :class:`rlbook.pong.PongVector`), ``policy_fn`` mapping ``(N, 6400)``
    difference frames to ``(N, len(action_set))`` probabilities.

    Returns ``(T, N)`` arrays: ``x`` (the difference frames acted on, int8:
    exact), ``action`` (indices into ``action_set``), ``reward``,
    ``terminated`` and ``truncated``; and ``episode_returns``, the scores of
    the games that ended, in order.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if vec_env.frames is None:
        vec_env.reset()
    n = vec_env.num_envs
    ale_actions = np.asarray(action_set, dtype=np.int64)
    x = np.zeros((steps, n, INPUTS), np.int8)
    action = np.zeros((steps, n), np.int64)
    reward = np.zeros((steps, n), np.float32)
    terminated = np.zeros((steps, n), bool)
    truncated = np.zeros((steps, n), bool)
    already_finished = len(vec_env.finished)
    for t in range(steps):
        obs = vec_env.observation()
        probs = np.asarray(policy_fn(obs))
        if probs.shape != (n, len(action_set)):
            raise ValueError(
                f"policy_fn returned shape {probs.shape}, expected ({n}, {len(action_set)})"
            )
        x[t] = obs
        action[t] = sample_actions(probs, rng)
        _, reward[t], terminated[t], truncated[t] = vec_env.step(ale_actions[action[t]])
    return {
        "x": x,
        "action": action,
        "reward": reward,
        "terminated": terminated,
        "truncated": truncated,
        "episode_returns": np.array(vec_env.finished[already_finished:]),
    }


def single(steps: int, seed: int) -> tuple[float, float]:
    """pg-pong.py's loop, one game: env steps per second, CPU seconds per step."""
    rng = np.random.default_rng(seed)
    actions = len(ACTIONS_3)
    model = init_numpy_policy(rng, actions=actions)  # float64, as pg-pong.py
    env = make_pong()
    observation, _ = env.reset(seed=seed)
    prev_x = None
    xs, hs, dlogps, drs = [], [], [], []
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        cur_x = prepro(observation)
        x = frame_difference(cur_x, prev_x)
        prev_x = cur_x
        probs, h = numpy_forward(model, x[None])
        index = int((np.cumsum(probs[0]) < rng.uniform()).sum())
        index = min(index, actions - 1)
        xs.append(x)
        hs.append(h[0])
        dlogps.append(np.eye(actions)[index] - probs[0])  # pg-pong's "fake label"
        observation, reward, terminated, truncated, _ = env.step(ACTIONS_3[index])
        drs.append(reward)
        if terminated or truncated:  # pg-pong.py updates here; we only reset
            xs, hs, dlogps, drs = [], [], [], []
            observation, _ = env.reset()
            prev_x = None
    rate = steps / (time.perf_counter() - start)
    cpu = (time.process_time() - cpu) / steps
    env.close()
    return rate, cpu


def vector(steps: int, envs: int, seed: int, threads: int) -> tuple[float, float]:
    """rlbook's batched rollout over ``envs`` games: env steps per second, CPU
    seconds per step (ALE's threads included)."""
    rng = np.random.default_rng(seed)
    model = init_numpy_policy(rng, actions=len(ACTIONS_3), dtype=np.float32)
    policy = TorchPolicy.from_numpy(model)
    w1_t = policy.hidden.weight.detach().t().contiguous()
    vec = make_pong_vector(envs, seed=seed, num_threads=threads)
    vec.reset()
    per_lane = max(1, steps // envs)
    start, cpu = time.perf_counter(), time.process_time()
    with torch_threads(1):  # ALE's threads need the cores; the forward is tiny
        rollout(lambda x: policy_probs_sparse(policy, w1_t, x), vec, per_lane, rng)
    rate = per_lane * envs / (time.perf_counter() - start)
    cpu = (time.process_time() - cpu) / (per_lane * envs)
    vec.close()
    return rate, cpu


def emulator_only(
    steps: int, envs: int, seed: int, threads: int
) -> tuple[float, float]:
    """The ceiling: env steps per second of ALE alone, random actions, one game
    and ``envs`` games in its thread pool."""
    rng = np.random.default_rng(seed)
    env = make_pong()
    env.reset(seed=seed)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(int(rng.integers(0, 6)))
        if terminated or truncated:
            env.reset()
    one = steps / (time.perf_counter() - start)
    env.close()
    vec = make_pong_vector(envs, seed=seed, num_threads=threads)
    vec.reset()
    per_lane = max(1, steps // envs)
    start = time.perf_counter()
    for _ in range(per_lane):
        vec.step(rng.integers(0, 6, envs))
    many = per_lane * envs / (time.perf_counter() - start)
    vec.close()
    return one, many


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4000, help="env steps per run")
    parser.add_argument(
        "--envs", type=int, nargs="+", default=[32], help="games side by side, N"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="ALE threads (0: one per core)"
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]  # other jobs slow both ways down
    best_single, cpu_single = 0.0, float("inf")
    best_vector = dict.fromkeys(args.envs, 0.0)
    cpu_vector = dict.fromkeys(args.envs, float("inf"))
    for _ in range(args.repeats):
        rate, cpu = single(args.steps, args.seed)
        best_single, cpu_single = max(best_single, rate), min(cpu_single, cpu)
        for n in args.envs:
            rate, cpu = vector(args.steps, n, args.seed, args.threads)
            best_vector[n] = max(best_vector[n], rate)
            cpu_vector[n] = min(cpu_vector[n], cpu)
    best_n = max(best_vector, key=best_vector.__getitem__)
    ceiling_one, ceiling_many = 0.0, 0.0
    for _ in range(args.repeats):
        one, many = emulator_only(args.steps, best_n, args.seed, args.threads)
        ceiling_one, ceiling_many = max(ceiling_one, one), max(ceiling_many, many)
    print(
        json.dumps(
            {
                "steps_per_s_single": round(best_single),
                "steps_per_s_vector": round(best_vector[best_n]),
                "ratio": round(best_vector[best_n] / best_single, 2),
                "envs": best_n,
                "steps_per_s_by_envs": {
                    str(n): round(r) for n, r in best_vector.items()
                },
                "emulator_only_steps_per_s": {
                    "one_game": round(ceiling_one),
                    f"{best_n}_games": round(ceiling_many),
                },
                "ceiling_ratio": round(ceiling_many / best_single, 2),
                "cpu_us_per_step_single": round(1e6 * cpu_single),
                "cpu_us_per_step_vector": round(1e6 * cpu_vector[best_n]),
                "ale_threads": args.threads,
                "steps": args.steps,
                "repeats": args.repeats,
                "cpus": os.cpu_count(),
                "load_average_1min": [
                    round(load_before, 2),
                    round(os.getloadavg()[0], 2),
                ],
                "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                "machine": platform.machine(),
                "versions": {
                    name: version(name)
                    for name in ("numpy", "torch", "gymnasium", "ale-py")
                }
                | {"python": platform.python_version()},
            }
        )
    )


if __name__ == "__main__":
    main()
