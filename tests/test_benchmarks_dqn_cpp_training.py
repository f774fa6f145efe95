"""deploy/cpp/dqn_train.cpp and benchmarks/dqn_cpp_training.py: the C++ trainer
steps Gymnasium's CartPole equations, reports its loop by part, refuses bad
arguments; the clocks on the Python loop change nothing it computes."""

import json
import subprocess
import sys

import numpy as np
import pytest

from rlbook.chapters.dqn_port import PortConfig, train_port
from rlbook.envs import make_env

from .scripts import ROOT, load_script

sys.path.insert(0, str(ROOT / "benchmarks"))  # the script imports harness
bench = load_script("benchmarks/dqn_cpp_training.py")


def test_the_cpp_cartpole_steps_gymnasiums_equations(cpp_program):
    rng = np.random.default_rng(0)
    env = make_env("CartPole-v1")
    for _ in range(5):
        start = rng.uniform(-0.2, 0.2, 4)
        actions = "".join(rng.choice(["0", "1"], 40))
        done = subprocess.run(
            [
                str(cpp_program("dqn_train")),
                "--physics",
                ",".join(repr(float(v)) for v in start),
                actions,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        steps = json.loads(done.stdout)
        env.reset(seed=0)  # a fresh episode, then the start state set by hand
        env.unwrapped.state = start.copy()
        for action, (*state, terminated) in zip(actions, steps, strict=True):
            _, _, gym_terminated, _, _ = env.step(int(action))
            np.testing.assert_allclose(
                state, env.unwrapped.state, rtol=1e-12, atol=1e-15
            )
            assert terminated == gym_terminated
            if terminated:
                break


def test_the_cpp_trainer_reports_its_loop(cpp_program):
    done = subprocess.run(
        [str(cpp_program("dqn_train")), "--episodes", "4", "--seed", "1"],
        capture_output=True,
        text=True,
        check=True,
    )
    record = json.loads(done.stdout)
    assert record["episodes"] == 4 and record["threads"] == 1
    assert record["grad_steps"] == max(0, record["env_steps"] - 63)
    parts = record["parts_wall_cpu_seconds"]
    assert set(parts) == set(bench.PARTS)
    assert sum(wall for wall, _ in parts.values()) <= record["seconds"]
    again = subprocess.run(
        [str(cpp_program("dqn_train")), "--episodes", "4", "--seed", "1"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(again.stdout)["env_steps"] == record["env_steps"]  # seeded


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--episodes", "x"], "non-negative integer"),
        (["--frobnicate", "1"], "unknown argument"),
        (["--episodes"], "needs a value"),
        (["--physics", "1,2", "01"], "X,X_DOT,THETA,THETA_DOT"),
        (["--physics", "0,0,0,0", "012"], "0s and 1s"),
    ],
)
def test_the_cpp_trainer_refuses_bad_arguments(cpp_program, args, message):
    done = subprocess.run(
        [str(cpp_program("dqn_train")), *args], capture_output=True, text=True
    )
    assert done.returncode == 2 and message in done.stderr


def test_clocks_on_the_python_loop_change_nothing_it_computes():
    plain = train_port(PortConfig(episodes=15), seed=2)
    timed = bench.python_run(15, seed=2)
    assert timed["env_steps"] == plain.steps
    assert timed["grad_steps"] == max(0, plain.steps - 63)
    parts = timed["parts_wall_cpu_seconds"]
    assert parts["env"][0] > 0 and parts["act"][0] > 0
    assert sum(wall for wall, _ in parts.values()) <= timed["seconds"]
