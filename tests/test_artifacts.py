"""Shipped agents: judged on seeds nothing else used, made by a clean commit of this repo.

The scores here are computed afresh on :data:`rlbook.seeding.HOLDOUT_SEED`
episodes, which no chapter trains, validates, chooses or reports on, against
the promise each chapter makes (for CartPole, the solve line read from
Gymnasium's spec). Whether a shipped agent is the one its code produces is
asserted by the chapters themselves: the CI build retrains each shipped agent
at its budget and fails if the weights differ by a bit.
"""

import itertools
import json
import subprocess

import pytest

from rlbook.cartpole import REWARD_THRESHOLD
from rlbook.chapters.sentiment_imdb import (
    classify_reviews,
    load_imdb,
    write_review_folder,
)
from rlbook.evaluate import evaluate_artifact
from rlbook.paths import artifacts_dir, repo_root
from rlbook.seeding import HOLDOUT_SEED, PONG_HOLDOUT_SEED

# agent folder -> the mean return over 100 held-out episodes its chapter promises
PROMISED = {
    "q-learning": REWARD_THRESHOLD,
    "sarsa": 400.0,  # the chapter ships SARSA below the solve line, and says so
    "dqn-state": REWARD_THRESHOLD,
    "dqn-pixels": 475.0,  # the pixel chapter's target, above the solve line
}
# The course's bar for learning from pixels: each training seed of the
# shipped variant averages at least this on its test episodes.
PIXEL_SEED_BAR = 450.0
HOLDOUT_EPISODES = 100
# model folder -> the least test accuracy on the shared test reviews it promises
MODEL_PROMISES = {"sentiment-lstm": 0.80}
# model folders whose score is checked against what their manifest recorded
SCORED_MODELS = ["resnet18-cifar", "vae-mnist"]
# Pong agent folder -> the least mean score it promises (the chapter's targets),
# for the agents shipped so far
PONG_PROMISES = {
    "pong-ppo": 18.0,
    "pong-ppo-minutes": 18.0,  # #26: the recipe "minutes" at its full budget
    # REINFORCE: TensorLayer's 35% of points at 20,000 games, as a score
    "pong-pg": 21 * 0.35 / 0.65 - 21,
}


def provenance_of(name: str) -> dict:
    return json.loads((artifacts_dir() / name / "weights.provenance.json").read_text())


@pytest.mark.parametrize("name", sorted(PROMISED))
def test_shipped_agent_keeps_its_promise_on_held_out_seeds(name):
    result = evaluate_artifact(
        artifacts_dir() / name, episodes=HOLDOUT_EPISODES, seed=HOLDOUT_SEED
    )
    assert result["mean_return"] >= PROMISED[name], result


def test_every_seed_of_the_shipped_pixel_variant_clears_the_course_bar():
    metrics = json.loads((artifacts_dir() / "dqn-pixels" / "metrics.json").read_text())
    own = [r for r in metrics["runs"] if r["variant"] == metrics["winner"]]
    assert len(own) >= 3, f"the shipped variant has {len(own)} seeds"
    for run in own:
        mean = sum(run["test_best"]) / len(run["test_best"])
        assert mean >= PIXEL_SEED_BAR, (run["seed"], mean)


def test_shipped_sentiment_model_keeps_its_promise_on_the_shared_test_reviews(
    shared_data, tmp_path
):
    test = load_imdb("test", shared_data, download=False)
    folder = write_review_folder(test, tmp_path / "test")
    record = classify_reviews(artifacts_dir() / "sentiment-lstm", folder)
    assert record["n"] == len(test)
    assert record["accuracy"] >= MODEL_PROMISES["sentiment-lstm"], record


def test_shipped_resnet_scores_what_its_manifest_says(shared_data):
    from rlbook.chapters.resnet_cifar import evaluate, load_cifar10
    from rlbook.projects.shipping import load_model

    shipped = load_model(artifacts_dir() / "resnet18-cifar", kind="resnet18-cifar")
    test = load_cifar10("test", shared_data, download=False)
    accuracy, confusion = evaluate(
        shipped.model, test.images, test.labels, device="cpu"
    )
    # Another thread count may sum in another order: allow one image either way.
    said = shipped.metrics[f"{shipped.metrics.get('shipped', 'best')}_test_accuracy"]
    assert abs(accuracy - said) <= 1 / len(test)
    assert int(confusion.sum()) == len(test)


def test_shipped_vae_scores_what_its_manifest_says(shared_data):
    from rlbook.chapters.vae_mnist import load_mnist, test_losses
    from rlbook.projects.shipping import load_model

    shipped = load_model(artifacts_dir() / "vae-mnist", kind="vae-mnist")
    test = load_mnist("test", shared_data, download=False)
    loss = test_losses(shipped.model, test.images, seed=0)["loss"]
    assert loss == pytest.approx(shipped.metrics["best_test_loss"], abs=0.01)


@pytest.mark.parametrize("name", sorted(PONG_PROMISES))
def test_shipped_pong_agent_keeps_its_promise_on_games_of_its_own(name):
    bar = PONG_PROMISES[name]
    provenance = provenance_of(name)
    assert provenance["score"]["test_best_mean"] >= bar, provenance["score"]
    # three new games, actions drawn from a stream that neither training,
    # validation nor the exported test used
    result = evaluate_artifact(
        artifacts_dir() / name, episodes=3, seed=PONG_HOLDOUT_SEED, envs=3
    )
    assert result["games"] == 3 and result["mean_score"] >= bar, result


@pytest.mark.parametrize(
    "name",
    sorted(PROMISED)
    + sorted(MODEL_PROMISES)
    + SCORED_MODELS
    + sorted(PONG_PROMISES)
    + ["pong-ppo-fast"],  # #26: its promise is the page's to report, met or not
)
def test_shipped_agent_was_exported_at_full_budget_from_a_clean_commit(name):
    provenance = provenance_of(name)
    assert provenance["budget"] == "full"
    commit = provenance["git_commit"]
    assert "+dirty" not in commit, f"{name} was exported from a dirty tree"
    for key in ("command", "config", "device", "wall_time_s", "packages", "score"):
        assert provenance[key], key
    if not (repo_root() / ".git").exists():
        pytest.skip("not a git checkout: cannot check the commit's ancestry")
    ancestry = subprocess.run(
        ["git", "merge-base", "--is-ancestor", commit, "HEAD"],
        cwd=repo_root(),
        capture_output=True,
        check=False,
    )
    assert ancestry.returncode == 0, (
        f"{name} was exported at {commit}, which is not a commit of this branch"
    )


@pytest.mark.parametrize("name", ["dqn-state", "q-learning", "sarsa"])
def test_agents_checked_bit_for_bit_record_the_machine_that_trained_them(name):
    """Their chapters compare bits only where this machine matches that one
    (rlbook.checkpoint.check_reproduction); without the fingerprint CI could
    never prove reproduction."""
    machine = provenance_of(name).get("machine")
    assert isinstance(machine, dict), f"{name} records no machine fingerprint"
    assert machine["cpu_model"] and machine["packages"]["torch"]


AGENT_FOLDERS = [
    "q-learning",
    "sarsa",
    "dqn-state",
    "dqn-pixels",
    "pong-pg",
    "pong-ppo",
    "pong-ppo-fast",
    "pong-ppo-minutes",
]
MODEL_FOLDERS = ["resnet18-cifar", "sentiment-lstm", "vae-mnist"]


@pytest.mark.parametrize("name", AGENT_FOLDERS + MODEL_FOLDERS)
def test_every_shipped_folder_records_the_sha256_of_its_weights(name):
    """So that a damaged byte stops the load (tests/test_hostile.py)."""
    folder = artifacts_dir() / name
    manifest = "agent.json" if name in AGENT_FOLDERS else "model.json"
    listed = json.loads((folder / manifest).read_text()).get("sha256", {})
    expected = {"weights.pt", "weights.provenance.json"}
    if name == "sentiment-lstm":
        expected.add("vocabulary")
    assert expected <= set(listed), f"{name} lacks {expected - set(listed)}"


def test_the_list_of_shipped_folders_is_every_folder_with_a_manifest():
    with_manifest = {
        p.parent.name
        for p in artifacts_dir().glob("*/*.json")
        if p.name in ("agent.json", "model.json")
    }
    assert with_manifest == set(AGENT_FOLDERS + MODEL_FOLDERS)


@pytest.mark.parametrize(
    "path",
    sorted((artifacts_dir() / "pong-ppo-fast").glob("**/*seed-*.json")),
    ids=lambda p: p.relative_to(artifacts_dir()).as_posix(),
)
def test_every_timed_pong_record_says_where_it_first_reached_18(path):
    """#26: a script reads every seed's and probe's first +18 from its file."""
    record = json.loads(path.read_text())
    assert record["kind"] == "pong-ppo-fast" and record["target"] == 18.0
    hit = record["first_running_mean_at_least_18"]
    if hit is not None:
        assert hit["env_steps"] <= record["env_steps"]
        assert hit["process_wall_seconds"] > 0 and hit["process_cpu_seconds"] > 0
    assert path.name.endswith(f"seed-{record['seed']}.json")
    assert record["provenance"]["command"].startswith("python scripts/train_pong.py")


def test_the_agent_trained_in_minutes_is_the_minutes_recipe_and_the_rules_pick():
    """#26: the shipped fast agent is the median seed of the change timed on
    3 seeds, and that change is the recipe the PPO page's live run uses."""
    from dataclasses import asdict

    from rlbook.chapters.pong_ppo import ppo_config

    folder = artifacts_dir() / "pong-ppo-fast"
    provenance = json.loads((folder / "weights.provenance.json").read_text())
    assert provenance["config"] == asdict(ppo_config("full", recipe="minutes"))
    shipped = json.loads((folder / "timed" / provenance["timed_record"]).read_text())

    def changes(record: dict) -> list[str]:
        words = record["provenance"]["command"].split()
        return [b for a, b in itertools.pairwise(words) if a == "--change"]

    records = [
        json.loads(p.read_text()) for p in (folder / "timed").glob("*seed-*.json")
    ]
    seeds = [r for r in records if changes(r) == changes(shipped)]
    assert len(seeds) >= 3 and all(r["first_running_mean_at_least_18"] for r in seeds)
    walls = sorted(
        r["first_running_mean_at_least_18"]["process_wall_seconds"] for r in seeds
    )
    ours = shipped["first_running_mean_at_least_18"]["process_wall_seconds"]
    assert ours == walls[(len(walls) - 1) // 2]  # the middle one
    for record in seeds:  # every seed tested on 30 games, final and best
        assert len(record["test"]["final"]) == len(record["test"]["best"]) == 30
    assert provenance["score"]["test_final_mean"] == shipped["test"]["final_mean"]


def test_the_full_budget_agent_is_the_timed_pick_and_every_seed_was_tested():
    """#26: each timed seed of "minutes" went on from its +18 checkpoint to
    the full budget; the agent that ships is the run of the seed the timed
    rule picked, at its best validation, and every seed's best and final
    weights played 30 test games."""
    from dataclasses import asdict

    from rlbook.chapters.pong_ppo import ppo_config

    folder = artifacts_dir() / "pong-ppo-minutes"
    provenance = json.loads((folder / "weights.provenance.json").read_text())
    fast = json.loads(
        (artifacts_dir() / "pong-ppo-fast" / "weights.provenance.json").read_text()
    )
    config = ppo_config("full", recipe="minutes")
    assert provenance["config"] == asdict(config)
    assert provenance["timed_record"] == fast["timed_record"]  # the timed pick
    timed = artifacts_dir() / "pong-ppo-fast" / "timed"
    names = sorted(p.name for p in (folder / "seeds").glob("*seed-*.json"))
    assert len(names) >= 3 and provenance["timed_record"] in names
    for name in names:
        record = json.loads((folder / "seeds" / name).read_text())
        went_on_from = json.loads((timed / name).read_text())["updates"]
        assert record["went_on_from_update"] == went_on_from
        assert record["updates"] == config.total_steps // config.batch
        assert len(record["test"]["best"]) == len(record["test"]["final"]) == 30
    ours = json.loads((folder / "seeds" / provenance["timed_record"]).read_text())
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["best_update"] == ours["test"]["best_update"]
    assert metrics["test"] == {k: ours["test"][k] for k in ("best", "final")}
