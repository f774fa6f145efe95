"""benchmarks/pong_ppo_profile.py: the clocks it wraps around one PPO update
change nothing the update computes, and come off again."""

import sys
from dataclasses import replace

import torch

import rlbook.chapters.pong_ppo as page

from .scripts import ROOT, load_script

sys.path.insert(0, str(ROOT / "benchmarks"))  # the script imports harness
profile = load_script("benchmarks/pong_ppo_profile.py")

TINY = replace(
    page.ppo_config("smoke"),
    envs=2,
    steps=16,
    minibatches=2,
    epochs=1,
    total_steps=10 * 32,
    validate_every=10**9,
)


def weights(run: page.PPO) -> list[torch.Tensor]:
    return [p.detach().clone() for p in run.net.parameters()]


def test_a_profiled_run_learns_exactly_what_an_unprofiled_one_does():
    plain = page.PPO(TINY, seed=4)
    plain.train(until=1)  # as the profile: a warm-up call, then the timed one
    plain.train(until=3)
    profiled = page.PPO(TINY, seed=4)
    record = profile.profile_updates(profiled, updates=2)
    for a, b in zip(weights(plain), weights(profiled), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert plain.scores == profiled.scores
    parts = record["parts_wall_cpu_seconds"]
    for name in ("emulator", "policy_forward", "preprocess"):
        assert parts["collect"][name][0] > 0, name
    for name in ("forward", "backward", "optimizer_step"):
        assert parts["learn"][name][0] > 0, name
    phases = parts["collect"]["total"][0] + parts["learn"]["total"][0]
    assert phases <= record["seconds_per_update"]["wall"] * 1.01


def test_the_clocks_come_off_after_the_profile():
    run = page.PPO(TINY, seed=0)

    def wrapped() -> list:
        """Everything the profile wraps, as it stands now."""
        return [getattr(t, n) for t, n, *_ in profile.clock_targets(run)]

    originals = wrapped()
    profile.profile_updates(run, updates=1)
    assert wrapped() == originals
    assert "forward" not in vars(run.net) and "learn" not in vars(run)
