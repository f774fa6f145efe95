"""Where one PPO update on Pong spends its time, and the machine's two limits.

    .venv/bin/python benchmarks/pong_ppo_profile.py [--updates 3] [--variants]
        [--recipes] [--out FILE]

Trains the PPO page's full-recipe PPO for one warm-up and ``--updates`` timed
updates, and charges each part's wall and CPU time (collection: emulator,
preprocessing, frame stack, policy forward, sampling; learning: GAE, forward,
backward, clipping, Adam) by wrapping the functions the update calls, which
changes nothing it computes. Beside it, the limits: ALE stepping 16 games
with random actions alone, and the learner's counted FLOPs against the
matmul rate in float32 and bfloat16.

``--variants`` times the learner alone on one fixed buffer in each way #26
lists (bf16 autocast, channels_last, compile, fewer epochs or frames),
interleaved, with each one's ratio to float32 and a 95% bootstrap interval:
what each could save per update, not whether the agent still learns as fast.
``--recipes`` times collection, learning and the whole update of each CPU
recipe (``PPO_RECIPES``). Prints one JSON line (and writes it to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import harness
import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import rlbook.chapters.pong_ppo as page
import rlbook.pong as pong
from rlbook.checkpoint import atomic_write, git_commit


def clock_targets(run: page.PPO) -> list[tuple]:
    """What one update calls, as :meth:`harness.Clocks.patched` takes it."""
    phased = {"phased": True}
    return [
        (pong, "prepro_batch", "prepro_step", phased),  # PongVector.step's
        (page, "prepro_batch", "prepro_stack", phased),  # StackAgent's
        (pong.PongVector, "step", "emulator_step"),
        (page.StackAgent, "step_frames", "frame_stack"),
        (page.StackAgent, "new_games", "frame_stack"),
        (page, "sample_actions", "sample_actions"),
        (page, "gae", "gae"),
        (run.net, "forward", "forward", phased),
        (run.optimizer, "step", "optimizer_step"),
        (nn.utils, "clip_grad_norm_", "clip_grad"),
        (torch.Tensor, "backward", "backward"),
        (run, "collect", "collect", {"phase": True}),
        (run, "learn", "learn", {"phase": True}),
    ]


def profile_updates(run: page.PPO, updates: int) -> dict[str, Any]:
    """One warm-up update, then ``updates`` timed ones: each part's wall and
    CPU seconds per update, and the whole update's."""
    clocks = harness.Clocks()
    with clocks.patched(clock_targets(run)):
        run.train(until=run.update + 1)  # warm-up: emulators, first passes
        clocks.seconds.clear()
        wall, cpu = time.perf_counter(), time.process_time()
        run.train(until=run.update + updates)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    per = {k: [w / updates, c / updates] for k, (w, c) in clocks.seconds.items()}
    zero = [0.0, 0.0]
    step = per.get("emulator_step", zero)
    prep_step = per.get("collect.prepro_step", zero)  # in PongVector.step
    prep_stack = per.get("collect.prepro_stack", zero)  # the frame stack's
    parts = {
        "collect": {
            "emulator": np.subtract(step, prep_step).tolist(),
            "preprocess": np.add(prep_step, prep_stack).tolist(),
            "frame_stack": np.subtract(
                per.get("frame_stack", zero), prep_stack
            ).tolist(),
            "policy_forward": per.get("collect.forward", zero),
            "sample_actions": per.get("sample_actions", zero),
        },
        "learn": {
            "gae": per.get("gae", zero),
            "forward": per.get("learn.forward", zero),
            "backward": per.get("backward", zero),
            "clip_grad": per.get("clip_grad", zero),
            "optimizer_step": per.get("optimizer_step", zero),
        },
    }
    for ph in ("collect", "learn"):
        total = per[ph]
        parts[ph]["other"] = np.subtract(
            total, np.sum(list(parts[ph].values()), axis=0)
        ).tolist()
        parts[ph]["total"] = total
    return {
        "seconds_per_update": {"wall": wall / updates, "cpu": cpu / updates},
        "parts_wall_cpu_seconds": parts,
    }


def emulator_ceiling(envs: int, steps: int, seed: int) -> dict[str, float]:
    """ALE's vector environment alone: random actions, no preprocessing."""
    vec = pong.make_pong_vector(envs, seed=seed)
    vec.reset()
    rng = np.random.default_rng(seed)
    per_lane = max(1, steps // envs)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(per_lane):
        vec._env.step(rng.integers(0, 3, envs))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    vec.close()
    return {
        "steps_per_s": per_lane * envs / wall,
        "cpu_s_per_step": cpu / (per_lane * envs),
    }


def learner_flops(config: page.PPOConfig) -> dict[str, float]:
    """Counted FLOPs of one collection forward pass over all lanes, and of one
    learning minibatch's forward and backward pass."""
    net = page.PongActorCritic(config.frames, config.actions)
    x = torch.randint(0, 2, (config.envs, config.frames, 80, 80), dtype=torch.uint8)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(x)
    collect = counter.get_total_flops()
    size = config.batch // config.minibatches
    xb = torch.randint(0, 2, (size, config.frames, 80, 80), dtype=torch.uint8)
    with FlopCounterMode(display=False) as counter:
        logits, value = net(xb)
        (logits.sum() + value.sum()).backward()
    minibatch = counter.get_total_flops()
    return {
        "collect_forward_per_step": collect,
        "learn_per_minibatch": minibatch,
        "collect_per_update": collect * config.steps,
        "learn_per_update": minibatch * config.minibatches * config.epochs,
    }


VARIANTS: dict[str, dict[str, Any]] = {
    "fp32": {},
    "bf16_autocast": {"autocast": True},
    "channels_last": {"channels_last": True},
    "compile": {"compile": True},
    "epochs_2": {"config": {"epochs": 2}},
    "minibatches_2": {"config": {"minibatches": 2}},
    "frames_2": {"config": {"frames": 2}},
    "bf16_compile_frames_2": {
        "autocast": True,
        "compile": True,
        "config": {"frames": 2},
    },
    # the fast recipe's learner, by its own flags: PPO.learn's bfloat16
    # autocast and compiled loss, on the shipped 4 frames
    "bf16_compile": {
        "config": {k: v for k, v in page.PPO_RECIPES["fast"].items() if k != "overlap"}
    },
}


def learner_variants(config: page.PPOConfig, seed: int, repeats: int) -> dict[str, Any]:
    """CPU seconds of one learning phase (``PPO.learn``) per variant, on one
    buffer collected once, interleaved across variants."""
    runs, buffers = {}, {}
    for name, v in VARIANTS.items():
        c = replace(config, **v.get("config", {}))
        run = page.PPO(c, seed=seed)
        if v.get("channels_last"):
            run.net = run.net.to(memory_format=torch.channels_last)
        if v.get("compile"):
            run.net = torch.compile(run.net)
        if v.get("autocast"):  # the network in bfloat16, the loss in float32
            forward = run.net.forward

            def bf16_forward(x: torch.Tensor, forward=forward):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    logits, value = forward(x)
                return logits.float(), value.float()

            run.net.forward = bf16_forward
        key = (c.frames, c.envs, c.steps)
        if key not in buffers:  # the same experience for every variant
            vec = pong.make_pong_vector(c.envs, c.settings, seed=seed)
            agent = page.StackAgent(page.PongActorCritic(c.frames, c.actions))
            frames = vec.reset()
            agent.start(frames)
            run._start = np.ones(c.envs, np.float32)
            buf, _ = run.collect(vec, agent, frames)
            vec.close()
            buffers[key] = (buf, agent, run._start)
        runs[name] = (run, v)
    samples: dict[str, list[float]] = {name: [] for name in runs}
    compile_s: dict[str, float] = {}
    for rep in range(repeats + 1):  # the first round warms up (and compiles)
        for name, (run, _) in runs.items():
            c = run.config
            buf, agent, start = buffers[(c.frames, c.envs, c.steps)]
            run._start = start
            cpu, wall = time.process_time(), time.perf_counter()
            run.learn(buf, agent)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            if rep == 0:
                compile_s[name] = wall
            else:
                samples[name].append(cpu)
    out: dict[str, Any] = {}
    for name, xs in samples.items():
        ratio = harness.bootstrap_ratio(xs, samples["fp32"], seed=seed)
        out[name] = {
            "cpu_s_per_update": xs,
            "first_call_wall_s": compile_s[name],
            "ratio_to_fp32": ratio.mean,
            "ratio_95ci": [ratio.low, ratio.high],
        }
    return out


def time_recipe(run: page.PPO, updates: int) -> dict[str, Any]:
    """Steps per second (wall and CPU) of collection, learning and the whole
    update, after one warm-up. Collection is timed where it runs: the
    overlap's collector process sends its clocks with each rollout."""
    collect, learn = run.collect, run.learn
    rows: list[list[float]] = []  # collect wall, cpu; learn wall, cpu

    def timed_collect(*args: Any) -> tuple[dict[str, np.ndarray], np.ndarray]:
        wall, cpu = time.perf_counter(), time.process_time()
        buf, frames = collect(*args)
        buf["collect_seconds"] = np.array(
            [time.perf_counter() - wall, time.process_time() - cpu]
        )
        return buf, frames

    def timed_learn(buf: dict[str, np.ndarray], agent: Any) -> dict[str, float]:
        seconds = buf.pop("collect_seconds")
        wall, cpu = time.perf_counter(), time.process_time()
        stats = learn(buf, agent)
        rows.append([*seconds, time.perf_counter() - wall, time.process_time() - cpu])
        return stats

    run.collect, run.learn = timed_collect, timed_learn  # type: ignore[method-assign]
    wall = time.perf_counter()
    run.train(until=run.update + 1)
    first = time.perf_counter() - wall
    rows.clear()
    wall = time.perf_counter()
    run.train(until=run.update + updates)
    wall = time.perf_counter() - wall
    steps = run.config.batch
    c_wall, c_cpu, l_wall, l_cpu = np.mean(rows, axis=0)
    return {
        "updates_timed": len(rows),
        "steps_per_update": steps,
        "first_update_wall_s": first,
        "update_steps_per_s": len(rows) * steps / wall,
        "collect_steps_per_s": steps / c_wall,
        "collect_steps_per_cpu_s": steps / c_cpu,
        "learn_steps_per_s": steps / l_wall,
        "learn_steps_per_cpu_s": steps / l_cpu,
    }


CPU_RECIPES = ("shipped", "fast", "minutes")


def recipe_rates(seed: int, updates: int) -> dict[str, Any]:
    """:func:`time_recipe` for every CPU recipe of the page, in turn."""
    out: dict[str, Any] = {
        "cores_available": len(os.sched_getaffinity(0)),
        "recipes": {},
    }
    for name in CPU_RECIPES:
        config = replace(page.ppo_config("full", recipe=name), validate_every=10**9)
        out["recipes"][name] = {
            "flags": page.PPO_RECIPES[name],
            **time_recipe(page.PPO(config, seed=seed), updates),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--variants", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--recipes",
        action="store_true",
        help="steps per second of collection and learning, every recipe",
    )
    parser.add_argument(
        "--note", default=None, help="recorded as is: how the machine was shared"
    )
    args = parser.parse_args()

    config = replace(page.ppo_config("full"), validate_every=10**9)
    run = page.PPO(config, seed=args.seed)
    profile = profile_updates(run, args.updates)
    learn_cpu = profile["parts_wall_cpu_seconds"]["learn"]["total"][1]
    flops = learner_flops(config)
    record = {
        "benchmark": "pong_ppo_profile",
        "updates_timed": args.updates,
        "steps_per_update": config.batch,
        **profile,
        "emulator_ceiling": emulator_ceiling(config.envs, 4096, args.seed),
        "flops": flops,
        # per CPU-second: the learner's rate per busy core, comparable with
        # the matrix-multiply rate per core below on a machine others share
        "learn_gflops_per_cpu_s": flops["learn_per_update"] / learn_cpu / 1e9,
        "matmul_gflops_per_s": {
            f"{name}_{t}thread": harness.matmul_gflops(dtype, t)
            for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))
            for t in sorted({1, os.cpu_count() or 1})
        },
        "command": "python benchmarks/pong_ppo_profile.py " + shlex.join(sys.argv[1:]),
        "note": args.note,
        "git_commit": git_commit(),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            **harness.cpu_description(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
        },
    }
    if args.variants:
        record["learner_variants"] = learner_variants(config, args.seed, args.repeats)
    if args.recipes:
        record["recipe_rates"] = recipe_rates(args.seed, args.updates)
    line = json.dumps(record, separators=(",", ":"))
    print(line)
    if args.out is not None:
        atomic_write(args.out, lambda f: f.write(line.encode() + b"\n"))


if __name__ == "__main__":
    main()
