"""Hostile input and faults (#28): bounded evaluation, clear errors, safe files."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rlbook import evaluate as evaluate_module
from rlbook.agents import Agent, load_agent
from rlbook.evaluate import evaluate_artifact, evaluate_batched


def run_cli(*args: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rlbook", *args],
        capture_output=True,
        text=True,
        timeout=120,
        **options,
    )


def assert_one_error_line(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


# -- item 1: evaluation plays in chunks of --envs ---------------------------------


def test_state_agent_evaluation_keeps_at_most_envs_environments(
    tabular_agent_dir, monkeypatch
):
    made = []
    make_vec = evaluate_module.gym.make_vec

    def counting(env_id, num_envs, **kwargs):
        made.append(num_envs)
        return make_vec(env_id, num_envs=num_envs, **kwargs)

    monkeypatch.setattr(evaluate_module.gym, "make_vec", counting)
    record = evaluate_artifact(tabular_agent_dir, episodes=11, seed=3, envs=4)
    assert made and max(made) <= 4
    # the same episodes as all at once
    policy = load_agent(tabular_agent_dir).policy
    whole = evaluate_batched(policy.act_batch, "CartPole-v1", episodes=11, seed=3)
    assert record["episodes"] == 11
    assert record["mean_return"] == round(whole.mean, 3)
    assert record["std_return"] == round(whole.std, 3)
    assert (record["min_return"], record["max_return"]) == (
        whole.returns.min(),
        whole.returns.max(),
    )


def test_return_stats_merge_chunks_like_one_array():
    from rlbook.evaluate import ReturnStats

    rng = np.random.default_rng(0)
    values = rng.integers(8, 501, size=1000).astype(float)
    stats = ReturnStats()
    for chunk in np.array_split(values, [1, 2, 10, 333, 334, 900]):
        stats.add(chunk)
    assert stats.count == 1000
    assert stats.mean == values.mean()  # whole-number returns sum exactly
    assert stats.std == pytest.approx(values.std(), rel=1e-12)
    assert (stats.min, stats.max) == (values.min(), values.max())


class _Stop(Exception):
    pass


def test_pixel_evaluation_memory_does_not_grow_with_episodes(monkeypatch, tmp_path):
    """A trillion episodes: nothing of that size is allocated; the run goes on
    until the policy stops it (the old code asked for an 8 TB array)."""
    from rlbook.pixels import pipeline_for

    calls = itertools.count()

    class Policy:
        def act_batch(self, obs):
            if next(calls) >= 30:
                raise _Stop
            return np.zeros(len(obs), dtype=np.int64)

    agent = Agent(
        tmp_path,
        "pixel-q-network",
        "CartPole-v1",
        Policy(),
        {"observation": {**pipeline_for("batched"), "stack": 2}},
    )
    monkeypatch.setattr(evaluate_module, "load_agent", lambda path: agent)
    with pytest.raises(_Stop):
        evaluate_artifact(tmp_path, episodes=10**12, seed=0, envs=2)


def test_pixel_returns_stream_in_finishing_order():
    from rlbook.pixels import evaluate_pixels, pixel_returns

    def left(obs):
        return np.zeros(len(obs), dtype=np.int64)

    streamed = dict(pixel_returns(left, 5, 40, 1, frames="simple", envs=2))
    whole = evaluate_pixels(left, 5, 40, 1, frames="simple", envs=2)
    assert sorted(streamed) == list(range(5))
    np.testing.assert_array_equal([streamed[i] for i in range(5)], whole)


MANY = ("--episodes", "1000000000")


def wait_for_cpu_seconds(pid: int, seconds: float) -> None:
    """Until process ``pid`` has run ``seconds`` of CPU time (at most a minute)."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        if (int(fields[11]) + int(fields[12])) / tick >= seconds:
            return
        time.sleep(0.1)


def test_evaluate_interrupted_by_ctrl_c_prints_one_line(tabular_agent_dir):
    process = subprocess.Popen(
        [sys.executable, "-m", "rlbook", "evaluate", str(tabular_agent_dir), *MANY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    wait_for_cpu_seconds(process.pid, 3.0)  # imports done, playing
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert out == "" and "Traceback" not in err
    assert err.strip().startswith("error: evaluate interrupted")
    assert len(err.strip().splitlines()) == 1
