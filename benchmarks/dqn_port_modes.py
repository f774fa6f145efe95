"""The DQN project's execution modes, measured in one run: one JSON line.

    .venv/bin/python benchmarks/dqn_port_modes.py

The method is ``benchmarks/projects.md``'s. Training, the same work in every
mode: ``--learner-steps`` of the port's learner step (a batch of 64 drawn
from replay, ``td_loss`` from the chapter's page, Adam) on one fixed replay
buffer (``--buffer`` CartPole transitions of a seeded random policy), the
batches from the same seeded stream, against a target network held at the
initial weights; ``eager fp32``, ``torch.compile`` (the Q-network, as
``train_port(compile_network=True)`` compiles it) and ``bf16 autocast``,
checked on the Q-values and TD loss of one batch. Inference: the port's
Q-network (seeded initial weights: latency does not depend on them) on one
state (the acting call) and on ``--batch`` states, ``eager``,
``aoti-python`` and ``aoti-cpp``. The table's ``cpp_training`` key, written
by ``benchmarks/dqn_cpp_training.py``, is kept.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import sys

import harness
import torch

from rlbook.chapters.dqn_port import PortConfig
from rlbook.chapters.dqn_state import td_loss
from rlbook.dqn import QNetwork
from rlbook.envs import make_env
from rlbook.replay import ReplayBuffer
from rlbook.seeding import numpy_stream, stream_seed, torch_stream, train_seed

PROJECT = "dqn"
TRAIN_MODES = ("eager fp32", "torch.compile", "bf16 autocast")
INFER_MODES = ("eager", "aoti-python")
TOLERANCES = {
    "eager fp32": (0.0, 0.0),
    "torch.compile": (1e-5, 1e-4),
    # bf16 keeps 8 significant bits: a relative error of 2^-8 per rounding.
    "bf16 autocast": (5e-2, 5e-2),
}
"""(atol, rtol) of each mode's outputs against eager fp32's."""


def _network(seed: int) -> QNetwork:
    torch.manual_seed(stream_seed(seed, "init"))
    return QNetwork(4, 2, PortConfig().hidden)


def fill_buffer(size: int, seed: int) -> ReplayBuffer:
    """``size`` CartPole transitions of a uniformly random policy (seeded)."""
    buffer = ReplayBuffer(size, (4,), "cpu", generator=torch_stream(seed, "replay"))
    env = make_env("CartPole-v1")
    coins = numpy_stream(seed, "explore")
    episode = 0
    obs, _ = env.reset(seed=train_seed(seed, episode))
    while len(buffer) < size:
        action = int(coins.integers(2))
        next_obs, reward, terminated, truncated, _ = env.step(action)
        # The port's rule: only termination drops the bootstrap.
        buffer.add(obs, action, reward, next_obs, terminated)
        obs = next_obs
        if terminated or truncated:
            episode += 1
            obs, _ = env.reset(seed=train_seed(seed, episode))
    env.close()
    return buffer


class LearnerRunner:
    """One training mode in its process: a step is ``steps`` learner steps."""

    def __init__(self, mode: str, buffer_size: int, steps: int, seed: int) -> None:
        self.config = PortConfig()
        self.buffer = fill_buffer(buffer_size, seed)
        self.q_net = _network(seed)
        self.target_net = copy.deepcopy(self.q_net)
        self.dtype = torch.bfloat16 if mode == "bf16 autocast" else None
        self.optimizer = torch.optim.Adam(
            self.q_net.parameters(), lr=self.config.learning_rate
        )
        self.steps = steps
        self.check_batch = self.buffer.sample(self.config.batch_size)
        self.forward, self.compiled = self.q_net, None
        if mode == "torch.compile":
            # The Q-network, one graph; the target network stays eager.
            report = harness.explain(self.q_net, self.check_batch.obs)
            self.compiled = {"what": "Q-network, fullgraph=True", **report}
            self.forward = torch.compile(self.q_net, fullgraph=True)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cpu", dtype=self.dtype)

    def outputs(self) -> tuple[torch.Tensor, ...]:
        with torch.no_grad(), self.autocast():
            q_values = self.forward(self.check_batch.obs)
            loss, _ = td_loss(
                self.forward,
                self.target_net,
                self.check_batch,
                gamma=self.config.gamma,
            )
        return q_values, loss

    def step(self) -> None:
        for _ in range(self.steps):
            batch = self.buffer.sample(self.config.batch_size)
            with self.autocast():
                loss, _ = td_loss(
                    self.forward, self.target_net, batch, gamma=self.config.gamma
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()


train_mode = LearnerRunner  # interleave builds each mode's runner in its process


def infer_mode(
    mode: str, seed: int, package: str, inputs_path: str, name: str, iters: int
) -> harness.CallRunner:
    """One Python inference mode's runner (in its own process)."""
    inputs = torch.load(inputs_path, weights_only=True)[name]
    if mode == "aoti-python":
        fn = harness.load_aoti(package, check_inputs=harness.TIMING_CHECK_INPUTS)
    else:
        fn = _network(seed).eval()
    return harness.CallRunner(fn, inputs, iters)


DEFAULTS = {
    "reps": 10,
    "warmup": 2,
    "learner-steps": 1000,
    "buffer": 10_000,
    "batch": 64,
    "iters": 500,
}
SMOKE = {"reps": 2, "warmup": 1, "learner_steps": 20, "buffer": 500, "iters": 3}
"""The options (:func:`harness.parse_args`) and their smoke values."""


def train_args(args: argparse.Namespace) -> tuple[int, int, int]:
    """:func:`train_mode`'s arguments after the mode, at ``args``."""
    return args.buffer, args.learner_steps, 0


def infer_inputs(args: argparse.Namespace) -> dict[str, tuple[torch.Tensor]]:
    """The timed inputs by name: one state, and ``--batch`` of them."""
    states = torch.randn(args.batch, 4, generator=torch_stream(0, "states"))
    return {"batch 1": (states[:1],), f"batch {args.batch}": (states,)}


def infer_args(args: argparse.Namespace) -> tuple[int]:
    """:func:`infer_mode`'s arguments after the mode, before the package."""
    return (0,)


def main() -> int:
    args = harness.parse_args(__doc__, DEFAULTS, SMOKE)
    steps = args.learner_steps
    with harness.Bench(PROJECT, __file__, args) as bench:
        bench.interleaved(
            train_mode,
            TRAIN_MODES,
            *train_args(args),
            prefix="train",
            unit="s/1,000 learner steps",
            scale=1000 / steps,
            items=steps,
            tolerances=TOLERANCES,
            data={"buffer": args.buffer, "learner_steps": steps, "batch": 64},
            notes=f"fixed replay buffer; budget {args.budget}",
        )
        net = _network(*infer_args(args)).eval()
        inputs = infer_inputs(args)
        states = inputs[f"batch {args.batch}"][0]
        package = harness.export_aoti(net, (states[:2],), bench.folder / "q_net.pt2")
        bench.infer_interleaved(
            infer_mode,
            INFER_MODES,
            inputs,
            package,
            *infer_args(args),
            prefix="infer",
            notes="the port's Q-network (seeded initial weights)",
        )
        return bench.finish()


if __name__ == "__main__":
    sys.exit(main())
