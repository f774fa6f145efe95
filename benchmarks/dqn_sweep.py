"""How many DQN runs per minute: one agent at a time, against many seeds at once.

    .venv/bin/python benchmarks/dqn_sweep.py [--steps 10000] [--seeds 10] [--workers 2]

Trains the baseline DQN of *Deep Q-learning on CartPole's state* for
``--steps`` steps per run three ways: ``single`` (``train_dqn``, one run
after another on one thread), ``batched`` (``train_dqn_batched``, ``--seeds``
seeds in one process) and ``sweep`` (``run_sweep`` of two identical variants
on ``--workers`` processes, as the chapter's sweep runs). Prints one JSON
line: runs per minute of each way, ratios to ``single``, and the projected
wall time of the chapter's full sweep (6 variants x 10 seeds x 50,000 steps;
baseline runs only, prioritized replay costs more).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from rlbook.chapters.dqn_improvements import run_sweep, train_dqn_batched
from rlbook.chapters.dqn_state import DQNConfig, train_dqn

FULL_SWEEP_RUNS = 60
FULL_SWEEP_STEPS = 50_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000, help="env steps per run")
    parser.add_argument("--seeds", type=int, default=10, help="seeds per batch")
    parser.add_argument("--single-runs", type=int, default=2, help="runs the old way")
    parser.add_argument("--workers", type=int, default=2, help="sweep processes")
    args = parser.parse_args()
    counts = (args.seeds, args.single_runs, args.workers)
    if args.steps < DQNConfig.validate_every or min(counts) < 1:
        parser.error(
            f"need --steps >= {DQNConfig.validate_every} (one validation) "
            "and positive --seeds, --single-runs and --workers"
        )
    torch.set_num_threads(1)
    config = DQNConfig(total_steps=args.steps)
    seeds = list(range(args.seeds))

    start = time.perf_counter()
    for seed in range(args.single_runs):
        train_dqn(config, seed)
    single = args.single_runs / (time.perf_counter() - start) * 60

    start = time.perf_counter()
    train_dqn_batched(config, seeds)
    batched = args.seeds / (time.perf_counter() - start) * 60

    start = time.perf_counter()
    run_sweep({"a": config, "b": config}, seeds, workers=args.workers)
    sweep = 2 * args.seeds / (time.perf_counter() - start) * 60

    scale = FULL_SWEEP_STEPS / args.steps
    print(
        json.dumps(
            {
                "benchmark": "dqn_sweep",
                "steps_per_run": args.steps,
                "seeds_per_batch": args.seeds,
                "workers": args.workers,
                "runs_per_min_single": round(single, 2),
                "runs_per_min_batched": round(batched, 2),
                "runs_per_min_sweep": round(sweep, 2),
                "ratio_batched": round(batched / single, 2),
                "ratio_sweep": round(sweep / single, 2),
                "projected_full_sweep_min_single": round(
                    FULL_SWEEP_RUNS / single * scale, 1
                ),
                "projected_full_sweep_min_sweep": round(
                    FULL_SWEEP_RUNS / sweep * scale, 1
                ),
                "cpu_count": os.cpu_count(),
                "machine": platform.machine(),
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
