"""benchmarks/pong_rollout.py: its batched rollout over the emulator's games side
by side, and the one JSON line it prints."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlbook.pong import ACTIONS_2, make_pong_vector
from rlbook.seeding import numpy_stream

from .scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
rollout = load_script("benchmarks/pong_rollout.py").rollout


def uniform(actions: int = 3):
    """A policy that picks each of its actions with equal probability."""
    return lambda x: np.full((len(x), actions), 1.0 / actions)


def test_a_finished_game_restarts_in_the_same_step_with_a_zero_difference():
    vec = make_pong_vector(2, seed=0)
    first = vec.reset()[0].copy()
    noop = lambda x: np.tile([1.0, 0.0, 0.0], (len(x), 1))  # noqa: E731
    out = rollout(noop, vec, 800, np.random.default_rng(0))  # a game lasts ~764
    done = out["terminated"] | out["truncated"]
    t = np.flatnonzero(done[:, 0])
    assert len(t) == 1 and done[t[0]].all()  # same actions, same game
    np.testing.assert_array_equal(out["episode_returns"], [-21.0, -21.0])
    assert out["reward"][: t[0] + 1].sum(axis=0).tolist() == [-21.0, -21.0]
    assert not out["x"][t[0] + 1].any()  # pg-pong's prev_x = None
    assert out["x"][t[0]].any()
    # each rollout reports only the games that ended during it
    assert rollout(noop, vec, 5, np.random.default_rng(0))["episode_returns"].size == 0
    vec.reset()
    np.testing.assert_array_equal(vec.frames[0], first)
    vec.close()


def test_rollout_is_reproducible_and_lanes_get_their_own_seeds():
    def play(seed: int, actions_seed: int) -> dict:
        vec = make_pong_vector(3, seed=seed)
        out = rollout(uniform(), vec, 60, numpy_stream(actions_seed, "actions"))
        out["seeds"] = vec.seeds
        vec.close()
        return out

    a, b, c = play(0, 0), play(0, 0), play(1, 1)
    assert a["x"].shape == (60, 3, 6400) and a["x"].dtype == np.int8
    assert a["action"].shape == a["reward"].shape == a["terminated"].shape == (60, 3)
    for k in ("x", "action", "reward", "terminated", "seeds"):
        np.testing.assert_array_equal(a[k], b[k])
    assert len(set(a["seeds"].tolist())) == 3  # each lane its own seed
    assert not np.array_equal(a["seeds"], c["seeds"])
    assert not np.array_equal(a["action"], c["action"])
    assert not np.array_equal(a["action"][:, 0], a["action"][:, 1])


def test_rollout_checks_the_policys_output():
    vec = make_pong_vector(2, seed=0)
    with pytest.raises(ValueError, match=r"expected \(2, 3\)"):
        rollout(uniform(2), vec, 5, np.random.default_rng(0))
    out = rollout(uniform(2), vec, 5, np.random.default_rng(0), ACTIONS_2)
    assert out["action"].max() <= 1
    vec.close()


def test_benchmark_script_prints_one_json_line():
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "pong_rollout.py"),
            *("--steps", "40", "--envs", "2", "4", "--repeats", "1"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 1 and run.stderr == ""
    result = json.loads(lines[0])
    for key in ("steps_per_s_single", "steps_per_s_vector", "ratio", "envs", "cpus"):
        assert key in result
    assert result["envs"] in (2, 4) and set(result["steps_per_s_by_envs"]) == {"2", "4"}
    assert result["ratio"] == pytest.approx(
        result["steps_per_s_vector"] / result["steps_per_s_single"], rel=0.05
    )
