import json

import numpy as np
import pytest
import torch

from rlbook.agents import KINDS, ArtifactError, load_agent
from rlbook.chapters.dqn_state import evaluate_batched
from rlbook.chapters.tabular_cartpole import TabularPolicy, evaluate_policy
from rlbook.envs import UnknownEnvironmentError
from rlbook.evaluate import evaluate_artifact

from .conftest import CARTPOLE_DISCRETIZER, hand_made_cartpole_table, needs_cuda


def test_round_trip(tabular_agent_dir):
    agent = load_agent(tabular_agent_dir)
    assert agent.kind == "q-table" and agent.env_id == "CartPole-v1"
    assert isinstance(agent.policy, TabularPolicy)
    np.testing.assert_array_equal(agent.policy.q_table, hand_made_cartpole_table())


def test_missing_folder(tmp_path):
    with pytest.raises(ArtifactError, match="no agent folder"):
        load_agent(tmp_path / "nope")


def test_folder_without_manifest(tmp_path):
    with pytest.raises(ArtifactError, match=r"has no agent\.json"):
        load_agent(tmp_path)


def test_manifest_not_json(tabular_agent_dir):
    (tabular_agent_dir / "agent.json").write_text("{")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_agent(tabular_agent_dir)


def test_unknown_kind(tabular_agent_dir):
    manifest = json.loads((tabular_agent_dir / "agent.json").read_text())
    manifest["kind"] = "genetic"
    (tabular_agent_dir / "agent.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="unknown kind 'genetic'"):
        load_agent(tabular_agent_dir)


def test_table_of_wrong_shape(tabular_agent_dir):
    torch.save({"q_table": torch.zeros(10, 2)}, tabular_agent_dir / "weights.pt")
    with pytest.raises(ArtifactError, match="expected \\(4096, n_actions\\)"):
        load_agent(tabular_agent_dir)


def test_corrupt_weights(tabular_agent_dir):
    (tabular_agent_dir / "weights.pt").write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="corrupt"):
        load_agent(tabular_agent_dir)


def test_missing_weights_key(tabular_agent_dir):
    torch.save({"table": torch.zeros(4096, 2)}, tabular_agent_dir / "weights.pt")
    with pytest.raises(ArtifactError, match="do not fit kind 'q-table'"):
        load_agent(tabular_agent_dir)


def test_evaluation_is_deterministic(tabular_agent_dir):
    first = evaluate_artifact(tabular_agent_dir, episodes=5, seed=123)
    assert evaluate_artifact(tabular_agent_dir, episodes=5, seed=123) == first
    assert first["episodes"] == 5 and first["env_id"] == "CartPole-v1"


def test_evaluation_lists_every_return_only_when_asked(tabular_agent_dir):
    policy = load_agent(tabular_agent_dir).policy
    one_by_one = evaluate_policy(policy.act, "CartPole-v1", episodes=7, seed=3)
    record = evaluate_artifact(
        tabular_agent_dir, episodes=7, seed=3, envs=3, returns=True
    )
    assert record["returns"] == one_by_one.returns.tolist()
    assert "returns" not in evaluate_artifact(tabular_agent_dir, episodes=7, seed=3)


def test_evaluation_seeds_change_start_states(tabular_agent_dir):
    policy = load_agent(tabular_agent_dir).policy
    a = evaluate_policy(policy.act, "CartPole-v1", episodes=5, seed=0).returns
    b = evaluate_policy(policy.act, "CartPole-v1", episodes=5, seed=1000).returns
    assert not np.array_equal(a, b)


def test_hand_made_policy_beats_random(tabular_agent_dir):
    result = evaluate_artifact(tabular_agent_dir, episodes=10, seed=0)
    assert result["mean_return"] > 100  # a random policy averages about 22


@pytest.mark.parametrize("episodes, seed", [(0, 0), (5, -1)])
def test_bad_evaluation_arguments(tabular_agent_dir, episodes, seed):
    with pytest.raises(ValueError):
        evaluate_artifact(tabular_agent_dir, episodes=episodes, seed=seed)


def test_batched_evaluation_matches_one_by_one(tabular_agent_dir):
    policy = load_agent(tabular_agent_dir).policy
    one_by_one = evaluate_policy(policy.act, "CartPole-v1", episodes=12, seed=42)
    batched = evaluate_batched(policy.act_batch, "CartPole-v1", episodes=12, seed=42)
    np.testing.assert_array_equal(one_by_one.returns, batched.returns)


def test_batched_evaluation_of_unknown_environment():
    with pytest.raises(UnknownEnvironmentError):
        evaluate_batched(lambda obs: obs[:, 0] > 0, "CartPole-v9", episodes=2, seed=0)


class OffCpuTensor(torch.Tensor):
    """Stands in for a GPU tensor on machines without one: ``.numpy()`` refuses it."""

    def cpu(self, *args, **kwargs):
        return self.as_subclass(torch.Tensor)

    def numpy(self, *args, **kwargs):
        raise TypeError(
            "can't convert a tensor off the CPU to numpy; call .cpu() first"
        )


@pytest.mark.parametrize(
    "device", ["cpu", "off-cpu", pytest.param("cuda", marks=needs_cuda)]
)
def test_q_table_weights_from_any_device_build_a_numpy_policy(device):
    table = torch.from_numpy(hand_made_cartpole_table())
    if device == "off-cpu":
        table = table.as_subclass(OffCpuTensor)
    else:
        table = table.to(device)
    table.requires_grad_(True)  # as a table trained with autograd would be
    policy = KINDS.find("q-table")(
        {"discretizer": CARTPOLE_DISCRETIZER.to_dict()}, {"q_table": table}
    )
    assert type(policy.q_table) is np.ndarray
    np.testing.assert_array_equal(policy.q_table, hand_made_cartpole_table())
    obs = np.random.default_rng(0).uniform(-0.2, 0.2, size=(6, 4))
    assert type(policy.act_batch(obs)) is np.ndarray
    assert [policy.act(o) for o in obs] == policy.act_batch(obs).tolist()
