"""The DQN project's execution modes, measured in one run: one JSON line.

    .venv/bin/python benchmarks/dqn_port_modes.py

Training, each mode in a fresh process (so its peak memory is its own): the
ported classic loop (``rlbook.chapters.dqn_port.train_port``, from the
chapter's page, seed 0) for ``--episodes`` episodes in ``eager fp32``, under ``torch.compile`` and
under ``bf16 autocast``. The modes' numerics differ, so their episodes
differ in length: time is reported per 1,000 environment steps (one
gradient step each), beside the whole loop's seconds; quality is the mean
return of the last 100 episodes.

Inference: latency of the eager run's final Q-network for one state (the
acting call) and for a batch of ``--batch`` states, for ``eager``,
``aoti-python`` (the AOTInductor package run from Python) and ``aoti-cpp``
(the same package run by ``deploy/cpp/aoti_infer.cpp``, a process with no
Python in it), all on ``--threads`` threads, outputs checked against eager.

Writes ``artifacts/projects/dqn/comparison.json`` (one record per mode)
unless ``--no-write``; prints one JSON line with every figure and the ratios
to eager. ``--budget smoke`` checks the script quickly (its numbers mean
nothing and it never writes the artifact).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

PROJECT = "dqn"
TRAIN_MODES = ("eager fp32", "torch.compile", "bf16 autocast")
INFER_MODES = ("eager", "aoti-python")


def train_mode(mode: str, episodes: int, threads: int, save: str | None) -> dict:
    """One training mode, in its own process."""
    import torch

    from rlbook.chapters.dqn_port import PortConfig, train_port
    from rlbook.projects.deploy import peak_memory_mb

    torch.set_num_threads(threads)
    run = train_port(
        PortConfig(episodes=episodes),
        seed=0,
        compile_network=mode == "torch.compile",
        autocast_dtype=torch.bfloat16 if mode == "bf16 autocast" else None,
    )
    if save:
        torch.save(run.q_net.state_dict(), save)
    last = run.returns[-100:]
    return {
        "seconds": run.seconds,
        "steps": run.steps,
        "episodes": len(run.returns),
        "last_100_mean": sum(last) / len(last),
        "peak_memory_mb": peak_memory_mb(),
        "threads": torch.get_num_threads(),
    }


def _network(weights: str):
    import torch

    from rlbook.chapters.dqn_port import PortConfig
    from rlbook.dqn import QNetwork

    net = QNetwork(4, 2, PortConfig().hidden)
    net.load_state_dict(torch.load(weights, weights_only=True))
    return net.eval()


def infer_mode(
    mode: str, weights: str, package: str, inputs_path: str, iters: int, threads: int
) -> dict:
    """Latency of one Python inference mode, in its own process."""
    import torch

    from rlbook.projects.deploy import load_aoti, peak_memory_mb, time_python

    inputs = torch.load(inputs_path, weights_only=True)
    fn = (
        load_aoti(package, check_inputs=False)
        if mode == "aoti-python"
        else _network(weights)
    )
    report = {}
    for name, states in inputs.items():
        report[name] = time_python(
            fn, (states,), iters=iters, warmup=max(2, iters // 10), threads=threads
        )
    report["peak_memory_mb"] = peak_memory_mb()
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", choices=["smoke", "full"], default="full")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--iters", type=int, default=500)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))

    import torch

    from rlbook.projects.deploy import (
        ComparisonRecord,
        benchmark_meta,
        build_cpp_runner,
        comparison_path,
        export_aoti,
        latency_records,
        run_in_subprocess,
        software_versions,
        time_cpp_batches,
        write_comparison,
    )
    from rlbook.seeding import torch_stream

    smoke = args.budget == "smoke"
    episodes, iters = (5, 3) if smoke else (args.episodes, args.iters)
    threads = args.threads
    versions = software_versions()
    records: list[ComparisonRecord] = []
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        weights = folder / "q_net.pt"
        for mode in TRAIN_MODES:
            save = str(weights) if mode == "eager fp32" else None
            result = run_in_subprocess(
                "dqn_port_modes:train_mode", mode, episodes, threads, save
            )
            per_k = 1000 * result["seconds"] / result["steps"]
            figures[f"train {mode} s/1k steps"] = per_k
            figures[f"train {mode} s"] = result["seconds"]
            records.append(
                ComparisonRecord(
                    mode=f"train: {mode}",
                    time=per_k,
                    time_unit="s/1,000 steps",
                    throughput=result["steps"] / result["seconds"],
                    peak_memory_mb=result["peak_memory_mb"],
                    quality=result["last_100_mean"],
                    quality_name="mean return of the last 100 episodes",
                    device=f"cpu ({result['threads']} thread(s))",
                    versions=versions,
                    data={
                        "episodes": result["episodes"],
                        "steps": result["steps"],
                        "batch": 64,
                    },
                    notes=(
                        f"{result['episodes']} episodes in {result['seconds']:.1f} s; "
                        f"budget {args.budget}"
                    ),
                )
            )
        net = _network(str(weights))
        states = torch.randn(args.batch, 4, generator=torch_stream(0, "states"))
        inputs = {"batch 1": states[:1], f"batch {args.batch}": states}
        inputs_path = folder / "inputs.pt"
        torch.save(inputs, inputs_path)
        package = export_aoti(net, (states[:2],), folder / "q_net.pt2")
        runner = build_cpp_runner(folder / "runner")
        latency: dict[str, dict] = {}
        for mode in INFER_MODES:
            latency[mode] = run_in_subprocess(
                "dqn_port_modes:infer_mode",
                mode,
                str(weights),
                str(package),
                str(inputs_path),
                iters,
                threads,
            )
        latency["aoti-cpp"] = time_cpp_batches(
            runner,
            package,
            {name: (x,) for name, x in inputs.items()},
            net,
            iters=iters,
            threads=threads,
            atol=1e-5,
            rtol=1e-4,
        )
    latency_rows, latency_figures = latency_records(
        latency,
        {name: len(x) for name, x in inputs.items()},
        prefix="infer",
        threads=threads,
        versions=versions,
        notes="the eager run's final Q-network; outputs checked against eager",
    )
    records += latency_rows
    figures.update(latency_figures)
    eager = figures["train eager fp32 s/1k steps"]
    ratios = {
        f"train {mode} / eager": figures[f"train {mode} s/1k steps"] / eager
        for mode in TRAIN_MODES[1:]
    }
    for name in inputs:
        base = figures[f"eager {name} ms"]
        for mode in ("aoti-python", "aoti-cpp"):
            ratios[f"{mode} / eager, {name}"] = figures[f"{mode} {name} ms"] / base
    meta = benchmark_meta("python benchmarks/dqn_port_modes.py", args.budget, threads)
    if not smoke and not args.no_write:
        write_comparison(comparison_path(PROJECT), records, meta)
    print(
        json.dumps({"project": PROJECT, **meta, "figures": figures, "ratios": ratios})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
