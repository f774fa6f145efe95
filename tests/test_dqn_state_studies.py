"""The diagnostics logging and the truncation variant of the state DQN sweep.

The monitor must leave training's numbers alone; the truncation variant must
store truncated transitions as terminal and nothing else; the studies' script
must write records the chapter can read.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

import rlbook.chapters.dqn_improvements as dqn_improvements
from rlbook.cartpole import MAX_EPISODE_STEPS, THETA_THRESHOLD, X_THRESHOLD
from rlbook.chapters.dqn_improvements import (
    MONITOR_KEYS,
    NEAR_FAILURE,
    StackedReplayBuffer,
    TrainingMonitor,
    clip_grad_norm_per_run_,
    train_dqn_batched,
)
from rlbook.dqn import QNetwork
from tests.scripts import ROOT, load_script
from tests.test_dqn_improvements import TINY, assert_same_records

pytestmark = pytest.mark.usefixtures("one_torch_thread")

@pytest.mark.parametrize("target_every", [100, 0], ids=["target", "no-target"])
def test_monitoring_changes_no_number_of_the_run(target_every):
    config = replace(TINY, target_every=target_every)
    plain = train_dqn_batched(config, [0, 1])
    monitor = TrainingMonitor(2)
    logged = train_dqn_batched(config, [0, 1], monitor=monitor)
    for a, b in zip(plain, logged, strict=True):
        assert_same_records(a, b)
    # ... and it logged something at every validation point
    for run, log in zip(logged, monitor.log, strict=True):
        assert set(log) == set(MONITOR_KEYS)
        assert log["step"] == run["validation_step"]
        assert log["validation_return"] == run["validation_return"]
        assert log["td_error"][0] is None  # no update before step 500
        assert all(v > 0 for v in log["td_error"][1:])
        assert all(v > 0 for v in log["grad_norm"][1:])


def test_monitor_logs_the_pre_clip_norm_and_mean_abs_td_error():
    monitor = TrainingMonitor(2)
    monitor.after_update(
        torch.tensor([[1.0, -3.0], [0.5, 0.5]]), torch.tensor([4.0, 1.0])
    )
    monitor.after_update(
        torch.tensor([[-2.0, 2.0], [0.0, -1.5]]), torch.tensor([8.0, 3.0])
    )
    buffer = StackedReplayBuffer(replace(TINY, buffer_size=8), [0, 1])
    limit_x, limit_theta = NEAR_FAILURE * X_THRESHOLD, NEAR_FAILURE * THETA_THRESHOLD
    # run 0: 1 of 4 states past the x mark, run 1: 2 of 4 past the angle mark
    states = np.zeros((4, 2, 4), dtype=np.float32)
    states[0, 0, 0] = -1.01 * limit_x
    states[1, 0, 0] = 0.99 * limit_x  # inside: not near failure
    states[2, 1, 2] = 1.01 * limit_theta
    states[3, 1, 2] = -1.01 * limit_theta
    for t, obs in enumerate(states):
        buffer.add(obs, np.zeros(2), np.ones(2), obs, np.array([t == 3, False]))

    class Validation:
        returns = np.array([[10.0, 20.0], [30.0, 50.0]])
        start_values = np.array([[1.0, 3.0], [5.0, 5.0]])
        discounted = np.array([[9.0, 9.0], [8.0, 6.0]])

    monitor.at_validation(2_500, buffer, Validation)
    log0, log1 = monitor.log
    assert log0["td_error"] == [pytest.approx(2.0)]  # means 2.0 and 2.0
    assert log1["td_error"] == [pytest.approx(0.625)]  # 0.5 and 0.75
    assert log0["grad_norm"] == [6.0] and log0["grad_norm_max"] == [8.0]
    assert log1["grad_norm"] == [2.0] and log1["grad_norm_max"] == [3.0]
    assert log0["near_failure"] == [0.25] and log1["near_failure"] == [0.5]
    assert log0["terminal"] == [0.25] and log1["terminal"] == [0.0]
    assert log0["validation_return"] == [15.0] and log1["start_value"] == [5.0]
    assert log1["discounted"] == [7.0] and log0["step"] == [2_500]
    # the next point averages only the updates after this one
    monitor.at_validation(5_000, buffer, Validation)
    assert monitor.log[0]["td_error"][-1] is None


def test_clip_per_run_returns_each_runs_norm_before_clipping():
    weight = torch.zeros(2, 1, 2, requires_grad=True)
    weight.grad = torch.tensor([[[3.0, 4.0]], [[0.3, 0.4]]])
    norms = clip_grad_norm_per_run_([weight], max_norm=1.0)
    torch.testing.assert_close(norms, torch.tensor([5.0, 0.5]))


def balancing_q_network(obs_dim, n_actions, hidden=(), *, dueling=False):
    """A linear Q-network that balances the pole, whatever it is asked for."""
    net = QNetwork(obs_dim, n_actions, ())
    with torch.no_grad():
        net.head.weight.copy_(torch.tensor([[0, 0, -1.0, -1.0], [0, 0, 1.0, 1.0]]))
        net.head.bias.zero_()
    return net


@pytest.mark.parametrize("bug", [False, True], ids=["terminated", "or-truncated"])
def test_truncation_as_termination_stores_truncations_as_ends(monkeypatch, bug):
    config = replace(
        TINY,
        total_steps=1_200,
        learning_starts=100,
        train_every=25,
        learning_rate=1e-6,
        epsilon_fraction=0.001,
        epsilon_end=0.0,
        validate_every=600,
    )
    monkeypatch.setattr(dqn_improvements, "QNetwork", balancing_q_network)
    stored: list[bool] = []
    original = StackedReplayBuffer.add

    def record(self, obs, action, reward, next_obs, terminated):
        stored.append(bool(terminated[0]))
        original(self, obs, action, reward, next_obs, terminated)

    monkeypatch.setattr(StackedReplayBuffer, "add", record)
    (run,) = train_dqn_batched(config, [0], truncation_as_termination=bug)
    assert MAX_EPISODE_STEPS in run["episode_return"]  # a truncation happened
    ends = [stored[end - 1] for end in run["episode_end"]]
    if bug:
        assert all(ends)
    else:
        assert ends == [r < MAX_EPISODE_STEPS for r in run["episode_return"]]
    assert sum(stored) == sum(ends)  # no other step is stored as an end


@pytest.fixture(scope="module")
def studies():
    return load_script("scripts/dqn_state_studies.py")


@pytest.mark.parametrize("study", ["truncation", "diagnostics"])
def test_studies_write_records_the_chapter_reads(studies, tmp_path, study):
    out = tmp_path / f"{study}.json"
    args = [study, "--steps", "1000", "--validate-every", "500"]
    assert studies.main([*args, "--seeds", "0", "1", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["study"] == study and data["seeds"] == [0, 1]
    provenance = data["provenance"]
    assert provenance["command"].endswith(" ".join(args) + f" --seeds 0 1 --out {out}")
    assert provenance["budget"] == "custom"
    assert provenance["same_config_as_sweep"] is False
    assert provenance["cpu_seconds"] > 0 and "git_commit" in provenance
    if study == "truncation":
        runs = data["runs"]
        assert [r["seed"] for r in runs] == [0, 1]
        for run in runs:
            assert run["validation_step"] == [500, 1000]
            assert "episode_return" not in run and "returns" not in run["test"]
            assert {"mean", "start_value", "discounted"} <= set(run["final_test"])
    else:
        assert list(data["variants"]) == ["baseline", "no target network"]
        for variant in data["variants"].values():
            for run in variant["runs"]:
                assert run["step"] == [500, 1000]
                assert run["reproduces_shipped"] is False  # another budget
                assert set(MONITOR_KEYS) <= set(run)


# --- the shipped studies --------------------------------------------------------

SHIPPED = ROOT / "artifacts" / "dqn-state"


def shipped(name: str) -> dict:
    return json.loads((SHIPPED / name).read_text())


def test_shipped_truncation_runs_pair_with_the_sweeps_baseline():
    study = shipped("truncation.json")
    sweep = shipped("metrics.json")
    baseline = sweep["sweep"]["variants"]["baseline"]
    made = study["provenance"]
    assert made["budget"] == "full" and made["same_config_as_sweep"] is True
    assert made["config"] == sweep["config"]
    assert "dirty" not in made["git_commit"]
    assert [r["seed"] for r in study["runs"]] == [r["seed"] for r in baseline]
    for run, base in zip(study["runs"], baseline, strict=True):
        assert run["validation_step"] == base["validation_step"]
        assert run.keys() == base.keys() - {"episode_end", "episode_return"}
        # the variant trains differently: not a copy of the baseline
    assert [r["validation_return"] for r in study["runs"]] != [
        r["validation_return"] for r in baseline
    ]


def test_shipped_diagnostics_log_every_validation_point_of_the_sweeps_runs():
    study = shipped("diagnostics.json")
    sweep = shipped("metrics.json")
    assert study["provenance"]["same_config_as_sweep"] is True
    assert list(study["variants"]) == ["baseline", "no target network"]
    assert (SHIPPED / "diagnostics.json").stat().st_size < 40_000
    for name, variant in study["variants"].items():
        swept = {r["seed"]: r for r in sweep["sweep"]["variants"][name]}
        assert [r["seed"] for r in variant["runs"]] == sorted(swept)
        for run in variant["runs"]:
            # logging changed nothing: the sweep's own runs, bit for bit
            assert run["reproduces_shipped"] is True
            assert run["step"] == swept[run["seed"]]["validation_step"]
            assert all(len(run[key]) == len(run["step"]) for key in MONITOR_KEYS)
            assert all(0.0 <= v <= 1.0 for v in run["near_failure"] + run["terminal"])
