"""The DQN project's execution modes, measured in one run: one JSON line.

    .venv/bin/python benchmarks/dqn_port_modes.py

Training, each mode in a fresh process (so its peak memory is its own): the
ported classic loop (``rlbook.chapters.dqn_port.train_port``, from the
chapter's page, seed 0) for ``--episodes`` episodes in ``eager fp32``, under
``torch.compile`` and under ``bf16 autocast``. The modes' numerics differ, so
their episodes differ in length: time is reported per 1,000 environment steps
(one gradient step each), beside the whole loop's seconds; quality is the mean
return of the last 100 episodes.

Inference: latency of the eager run's final Q-network for one state (the
acting call) and for a batch of ``--batch`` states, for ``eager``,
``aoti-python`` (the AOTInductor package run from Python) and ``aoti-cpp``
(the same package run by ``deploy/cpp/aoti_infer.cpp``, a process with no
Python in it), all on ``--threads`` threads, outputs checked against eager.

Its table, ``artifacts/projects/dqn/comparison.json``, and its JSON line
are :class:`harness.Bench`'s. ``--budget smoke`` checks the script quickly.
"""

from __future__ import annotations

import sys

import harness
import torch

from rlbook.chapters.dqn_port import PortConfig, train_port
from rlbook.dqn import QNetwork
from rlbook.seeding import torch_stream

PROJECT = "dqn"
TRAIN_MODES = ("eager fp32", "torch.compile", "bf16 autocast")
INFER_MODES = ("eager", "aoti-python")


def train_mode(mode: str, episodes: int, threads: int, budget: str, save: str) -> dict:
    """One training mode, in its own process; eager saves its final network."""
    torch.set_num_threads(threads)
    run = train_port(
        PortConfig(episodes=episodes),
        seed=0,
        compile_network=mode == "torch.compile",
        autocast_dtype=torch.bfloat16 if mode == "bf16 autocast" else None,
    )
    if mode == TRAIN_MODES[0]:
        torch.save(run.q_net.state_dict(), save)
    last = run.returns[-100:]
    played = len(run.returns)
    return harness.measured(
        time=1000 * run.seconds / run.steps,
        throughput=run.steps / run.seconds,
        quality=sum(last) / len(last),
        figures={f"train {mode} s": run.seconds},
        data={"episodes": played, "steps": run.steps},
        notes=f"{played} episodes in {run.seconds:.1f} s; budget {budget}",
    )


def _network(weights: str) -> QNetwork:
    net = QNetwork(4, 2, PortConfig().hidden)
    net.load_state_dict(torch.load(weights, weights_only=True))
    return net.eval()


def infer_mode(
    mode: str, weights: str, package: str, inputs_path: str, iters: int, threads: int
) -> dict:
    """Latency of one Python inference mode, in its own process."""
    inputs = torch.load(inputs_path, weights_only=True)
    if mode == "aoti-python":
        fn = harness.load_aoti(package, check_inputs=False)
    else:
        fn = _network(weights)
    return harness.time_inputs(fn, inputs, iters, threads)


def main() -> int:
    args = harness.parse_args(
        __doc__,
        {"episodes": 500, "batch": 64, "iters": 500},
        {"episodes": 5, "iters": 3},
    )
    with harness.Bench(PROJECT, __file__, args) as bench:
        weights = bench.folder / "q_net.pt"
        bench.train(
            train_mode,
            TRAIN_MODES,
            args.episodes,
            args.threads,
            args.budget,
            str(weights),
            figure="s/1k steps",
            time_unit="s/1,000 steps",
            quality_name="mean return of the last 100 episodes",
            data={"batch": 64},
        )
        net = _network(str(weights))
        states = torch.randn(args.batch, 4, generator=torch_stream(0, "states"))
        package = harness.export_aoti(net, (states[:2],), bench.folder / "q_net.pt2")
        bench.infer(
            infer_mode,
            INFER_MODES,
            {"batch 1": (states[:1],), f"batch {args.batch}": (states,)},
            package,
            str(weights),
            reference=net,
            atol=1e-5,
            rtol=1e-4,
            prefix="infer",
            notes="the eager run's final Q-network; outputs checked against eager",
        )
        return bench.finish()


if __name__ == "__main__":
    sys.exit(main())
