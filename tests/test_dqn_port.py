"""The ported CartPole DQN: Gymnasium's API, time-outs bootstrapped, reproducible."""

from __future__ import annotations

import pytest
import torch

from rlbook.chapters.dqn_port import PortConfig, train_port

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# A time limit of 12 steps: early random episodes often last longer, so some
# end by time-out with the pole still up.
SHORT = PortConfig(episodes=30, batch_size=16, buffer_size=500, max_episode_steps=12)


def test_time_outs_are_stored_as_non_terminal_so_the_target_bootstraps():
    run = train_port(SHORT, seed=0)
    assert len(run.returns) == 30 and run.steps == sum(run.returns)
    assert run.timeouts > 0  # the case the fix is about happened
    fallen = len(run.returns) - run.timeouts
    assert run.stored_terminal == fallen  # only real terminations end the sum
    assert all(r <= 12 for r in run.returns)


def test_the_old_loop_stores_every_episode_end_as_terminal():
    from dataclasses import replace

    old = train_port(replace(SHORT, bootstrap_through_timeouts=False), seed=0)
    assert old.timeouts > 0
    assert old.stored_terminal == len(old.returns)


def test_a_seeded_run_repeats_exactly():
    config = PortConfig(episodes=8, batch_size=16, buffer_size=500)
    first, again = train_port(config, seed=3), train_port(config, seed=3)
    assert first.returns == again.returns
    for name, weight in first.q_net.state_dict().items():
        assert torch.equal(weight, again.q_net.state_dict()[name]), name
    other = train_port(config, seed=4)
    assert other.returns != first.returns


def test_it_learns_to_balance_longer_than_random():
    config = PortConfig(episodes=120, batch_size=32, epsilon_decay=0.95)
    run = train_port(config, seed=0)
    first, last = run.returns[:20], run.returns[-20:]
    assert sum(last) / 20 > 2 * sum(first) / 20, (first, last)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("episodes", 0, "episodes must be >= 1"),
        ("epsilon_decay", 1.5, "epsilon_decay"),
        ("target_every", 0, "target_every"),
    ],
)
def test_bad_settings_are_clear_errors(field, value, message):
    with pytest.raises(ValueError, match=message):
        PortConfig(**{field: value})


def test_bf16_autocast_runs_the_network_in_bf16_and_float16_is_refused(monkeypatch):
    from rlbook.chapters.dqn_state import td_loss as real

    seen = []

    def spy(q_net, target_net, batch, **kwargs):
        seen.append(q_net(batch.obs).dtype)
        return real(q_net, target_net, batch, **kwargs)

    monkeypatch.setattr("rlbook.chapters.dqn_port.td_loss", spy)
    config = PortConfig(episodes=3, batch_size=8, buffer_size=200)
    train_port(config, seed=0, autocast_dtype=torch.bfloat16)
    assert seen and set(seen) == {torch.bfloat16}
    seen.clear()
    train_port(config, seed=0)
    assert set(seen) == {torch.float32}
    with pytest.raises(ValueError, match="gradient scaler"):
        train_port(config, seed=0, autocast_dtype=torch.float16)


def test_a_compiled_network_is_the_one_that_learns(monkeypatch):
    compiled = []

    def fake_compile(module):
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    config = PortConfig(episodes=2, batch_size=8, buffer_size=200)
    run = train_port(config, seed=0, compile_network=True)
    assert compiled == [run.q_net]
