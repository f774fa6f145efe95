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


def assert_learns_as_unmeasured(measured: page.PPO) -> None:
    """``measured`` (seed 4) went through a warm-up update and then two
    timed ones: it must hold what a run that nobody timed holds."""
    plain = page.PPO(TINY, seed=4)
    plain.train(until=1)  # the warm-up call, then the timed one
    plain.train(until=3)
    for a, b in zip(weights(plain), weights(measured), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert plain.scores == measured.scores


def test_a_profiled_run_learns_exactly_what_an_unprofiled_one_does():
    profiled = page.PPO(TINY, seed=4)
    record = profile.profile_updates(profiled, updates=2)
    assert_learns_as_unmeasured(profiled)
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


RATES = (
    "update_steps_per_s",
    "collect_steps_per_s",
    "collect_steps_per_cpu_s",
    "learn_steps_per_s",
    "learn_steps_per_cpu_s",
)


def test_timing_a_recipe_changes_nothing_its_run_learns():
    timed = page.PPO(TINY, seed=4)
    rates = profile.time_recipe(timed, updates=2)
    assert_learns_as_unmeasured(timed)
    assert rates["updates_timed"] == 2 and rates["steps_per_update"] == TINY.batch
    for key in RATES:
        assert 0 < rates[key] < float("inf"), key


def test_the_overlapped_recipe_is_timed_in_its_collector_process():
    # the collector's clocks travel with its rollouts: without them the
    # learner finds no collect_seconds in what it receives
    run = page.PPO(replace(TINY, overlap=True), seed=1)
    rates = profile.time_recipe(run, updates=2)
    assert rates["updates_timed"] == 2
    for key in RATES:
        assert 0 < rates[key] < float("inf"), key


def test_every_recipe_of_the_page_is_timed_in_one_run(monkeypatch):
    def tiny(budget, recipe="shipped"):  # the recipes' overlap, nothing slow
        overlap = page.PPO_RECIPES[recipe].get("overlap", False)
        return replace(TINY, overlap=overlap)

    monkeypatch.setattr(page, "ppo_config", tiny)
    record = profile.recipe_rates(seed=0, updates=1)
    assert set(record["recipes"]) == set(page.PPO_RECIPES) - {"gpu"}
    assert record["recipes"]["fast"]["flags"] == page.PPO_RECIPES["fast"]
    assert record["cores_available"] >= 1
