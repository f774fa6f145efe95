"""The CartPole DQN trained from Python and from C++, both eager, timed by part.

    .venv/bin/python benchmarks/dqn_cpp_training.py [--episodes 500]
        [--repeats 5] [--budget smoke] [--no-write]

The page's loop (``train_port``) against ``deploy/cpp/dqn_train.cpp``, the
same loop on libtorch's C++ API, alternating, each run's time charged to
the same parts; ``benchmarks/projects.md`` says how. Writes ``"cpp_training"``
in ``artifacts/projects/dqn/comparison.json`` (not at smoke nor with
``--no-write``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from unittest import mock

import harness
import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import rlbook.chapters.dqn_port as port
from rlbook.checkpoint import atomic_write, git_commit
from rlbook.dqn import QNetwork
from rlbook.paths import repo_root
from rlbook.projects.deploy import comparison_path
from rlbook.replay import ReplayBuffer

PARTS = (
    "env",
    "act",
    "store",
    "sample",
    "forward_loss",
    "backward",
    "optimizer_step",
    "target_copy",
)
SOURCE_SECONDS = 145.0  # the source chapter's 500 episodes (RTX 4090, Python)


def python_run(episodes: int, seed: int = 0) -> dict[str, Any]:
    """The page's loop with clocks on its parts; what it computes is unchanged."""
    clocks = harness.Clocks()
    make_env = port.make_env

    def clocked_env(*args: Any, **kwargs: Any) -> Any:
        env = make_env(*args, **kwargs)
        env.step = clocks.wrap(env.step, "env")
        env.reset = clocks.wrap(env.reset, "env")
        return env

    targets = [
        (QNetwork, "forward", "forward", {"phased": True}),
        (port, "td_loss", "forward_loss", {"phase": True}),
        (ReplayBuffer, "add", "store"),
        (ReplayBuffer, "sample", "sample"),
        (torch.Tensor, "backward", "backward"),
        (torch.optim.Adam, "step", "optimizer_step"),
        (nn.Module, "load_state_dict", "target_copy"),
    ]
    torch.set_num_threads(1)
    with mock.patch.object(port, "make_env", clocked_env), clocks.patched(targets):
        wall, cpu = time.perf_counter(), time.process_time()
        run = port.train_port(port.PortConfig(episodes=episodes), seed=seed)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    parts = {part: clocks.get(part) for part in PARTS if part != "act"}
    parts["act"] = clocks.get("none.forward")
    # td_loss's own forward passes are inside forward_loss already
    last = run.returns[-100:]
    return {
        "env_steps": run.steps,
        "grad_steps": run.steps - (port.PortConfig().batch_size - 1),
        "seconds": wall,
        "cpu_seconds": cpu,
        "parts_wall_cpu_seconds": {p: parts[p] for p in PARTS},
        "last_100_mean_return": sum(last) / len(last),
    }


def cpp_run(binary: Path, episodes: int, seed: int = 0) -> dict[str, Any]:
    done = subprocess.run(
        [str(binary), "--episodes", str(episodes), "--seed", str(seed)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise harness.DeployError(
            f"{binary.name} failed (exit {done.returncode}): {done.stderr.strip()}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def network_math(rate_gflops: float) -> dict[str, float]:
    """FLOPs of one gradient step and one acting step of the 4-128-128-2
    network, and the seconds the math alone takes at ``rate_gflops``."""
    config = port.PortConfig()
    net, target = QNetwork(4, 2, config.hidden), QNetwork(4, 2, config.hidden)
    obs = torch.randn(config.batch_size, 4)
    with FlopCounterMode(display=False) as counter:
        q = net(obs).gather(1, torch.zeros(config.batch_size, 1, dtype=torch.long))
        with torch.no_grad():
            target(obs).max(dim=1)
        q.sum().backward()
    grad_step = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(obs[0])
    act = counter.get_total_flops()
    return {
        "flops_per_grad_step": grad_step,
        "flops_per_act": act,
        "math_us_per_grad_step": grad_step / rate_gflops / 1e3,
        "math_us_per_act": act / rate_gflops / 1e3,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", choices=("smoke", "full"), default="full")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.budget == "smoke":
        args.episodes, args.repeats = 5, 1
    binary = harness.build_cpp_program("dqn_train", repo_root() / "runs" / "bin")

    python_run(3)  # warm-up: imports, first allocations
    cpp_run(binary, 3)
    runs: dict[str, list[dict[str, Any]]] = {"python": [], "cpp": []}
    for _ in range(args.repeats):  # interleaved: python, cpp, python, cpp, ...
        runs["python"].append(python_run(args.episodes))
        runs["cpp"].append(cpp_run(binary, args.episodes))

    def per_step(name: str, key: str) -> list[float]:
        return [1e6 * r[key] / r["env_steps"] for r in runs[name]]

    rate = harness.matmul_gflops(torch.float32, 1)
    summary: dict[str, Any] = {}
    for name, rs in runs.items():
        parts = {
            p: np.mean([r["parts_wall_cpu_seconds"][p] for r in rs], axis=0).tolist()
            for p in PARTS
        }
        summary[name] = {
            "runs": rs,
            "env_steps": rs[0]["env_steps"],
            "mean_parts_wall_cpu_seconds": parts,
            "us_per_step_wall": per_step(name, "seconds"),
            "us_per_step_cpu": per_step(name, "cpu_seconds"),
        }
    ratios = {}
    for clock, key in (("cpu", "cpu_seconds"), ("wall", "seconds")):
        ratio = harness.bootstrap_ratio(per_step("cpp", key), per_step("python", key))
        ratios[f"cpp_over_python_per_step_{clock}"] = [
            ratio.mean,
            ratio.low,
            ratio.high,
        ]
    record = {
        "benchmark": "dqn_cpp_training",
        "command": "python benchmarks/dqn_cpp_training.py",
        "episodes": args.episodes,
        "repeats": args.repeats,
        "budget": args.budget,
        "python": summary["python"],
        "cpp": summary["cpp"],
        **ratios,
        "network_math": network_math(rate),
        "matmul_gflops_fp32_1thread": rate,
        "source_seconds_500_episodes": SOURCE_SECONDS,
        "machine": harness.cpu_description(),
        "versions": harness.software_versions(),
        "git_commit": git_commit(),
        "date": time.strftime("%Y-%m-%d"),
    }
    line = json.dumps(record)
    print(line)
    if args.budget == "full" and not args.no_write:
        path = comparison_path("dqn")
        table = json.loads(path.read_text()) if path.is_file() else {}
        table["cpp_training"] = record
        text = json.dumps(table, indent=2, sort_keys=True) + "\n"
        atomic_write(path, lambda handle: handle.write(text.encode()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
