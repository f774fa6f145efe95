"""Collecting CartPole frames: Gymnasium's renderer against rlbook's batched one.

    .venv/bin/python benchmarks/pixel_collection.py [--frames 3000] [--envs 32]
        [--threads 1] [--repeats 2]

Each way steps CartPole with random actions and makes the preprocessed 80x80
frame of every step: ``single`` (one Gymnasium environment, pygame's
600x400 render, then :func:`rlbook.chapters.dqn_pixels.preprocess`),
``async`` (Gymnasium's ``AsyncVectorEnv``, one worker process per core) and
``batched`` (:class:`rlbook.cartpole.CartPoleBatch` and
:func:`rlbook.chapters.dqn_pixels.render_batch`, every frame in one batch).
The ways alternate; the best of ``--repeats`` rates is kept. Prints one JSON
line with ``frames_per_s_*`` and the ratios to ``single``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import gymnasium as gym
import numpy as np
import torch

from rlbook.cartpole import CartPoleBatch
from rlbook.chapters.dqn_pixels import preprocess, render_batch
from rlbook.envs import make_env


class Preprocessed(gym.ObservationWrapper):
    """Observations become preprocessed frames (rendered in the worker)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.observation_space = gym.spaces.Box(0, 255, (80, 80), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return preprocess(self.env.render())


def make_pixel_env() -> gym.Env:
    return Preprocessed(make_env("CartPole-v1", render_mode="rgb_array"))


def single(frames: int, seed: int) -> float:
    env = make_env("CartPole-v1", render_mode="rgb_array")
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    start = time.perf_counter()
    for _ in range(frames):
        _, _, terminated, truncated, _ = env.step(int(rng.integers(2)))
        preprocess(env.render())
        if terminated or truncated:
            env.reset()
    rate = frames / (time.perf_counter() - start)
    env.close()
    return rate


def vector_async(frames: int, envs: int, seed: int) -> float:
    env = gym.vector.AsyncVectorEnv([make_pixel_env] * envs)
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    steps = frames // envs
    start = time.perf_counter()
    for _ in range(steps):  # finished episodes reset on the next step
        env.step(rng.integers(0, 2, envs))
    rate = steps * envs / (time.perf_counter() - start)
    env.close()
    return rate


def batched(frames: int, envs: int, seed: int) -> float:
    batch = CartPoleBatch(envs)
    rng = np.random.default_rng(seed)
    batch.reset(seed + np.arange(envs))
    render_batch(batch.state)  # warm-up
    steps = frames // envs
    next_seed = seed + envs
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated = batch.step(rng.integers(0, 2, envs))
        render_batch(batch.state)
        for i in np.flatnonzero(terminated | truncated):
            batch.reset_one(int(i), next_seed)
            next_seed += 1
    return steps * envs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--envs", type=int, default=32, help="batched environments")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    workers = (
        max(2, len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else 2
    )
    best = {"single": 0.0, "async": 0.0, "batched": 0.0}
    for _ in range(args.repeats):
        best["single"] = max(best["single"], single(args.frames, args.seed))
        best["async"] = max(
            best["async"], vector_async(args.frames, workers, args.seed)
        )
        best["batched"] = max(
            best["batched"], batched(args.frames, args.envs, args.seed)
        )
    print(
        json.dumps(
            {
                "frames_per_s_single": round(best["single"]),
                "frames_per_s_async": round(best["async"]),
                "frames_per_s_batched": round(best["batched"]),
                "ratio_async": round(best["async"] / best["single"], 2),
                "ratio_batched": round(best["batched"] / best["single"], 2),
                "async_workers": workers,
                "batched_envs": args.envs,
                "torch_threads": args.threads,
                "frames": args.frames,
                "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
            }
        )
    )


if __name__ == "__main__":
    main()
