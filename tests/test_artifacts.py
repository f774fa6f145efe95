"""Shipped agents still score what their provenance says."""

import json

import pytest

from rlbook.evaluate import evaluate_artifact
from rlbook.paths import artifacts_dir

# agent folder -> the score its chapter promises (mean return over 100 test episodes)
SHIPPED = {"q-learning": 195.0, "sarsa": 0.0, "dqn-state": 475.0}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_agent_scores_what_its_provenance_says(name):
    folder = artifacts_dir() / name
    provenance = json.loads((folder / "weights.provenance.json").read_text())
    score = provenance["score"]
    result = evaluate_artifact(folder, episodes=score["episodes"], seed=score["seed"])
    assert result["mean_return"] == pytest.approx(score["mean_return"], abs=1e-6)
    assert result["mean_return"] >= SHIPPED[name]
    assert provenance["budget"] == "full"
    for key in ("command", "config", "device", "wall_time_s", "git_commit", "packages"):
        assert provenance[key], key


def test_shipped_dqn_trained_within_its_time_budget():
    provenance = json.loads(
        (artifacts_dir() / "dqn-state" / "weights.provenance.json").read_text()
    )
    assert provenance["wall_time_s"] <= 100.0
