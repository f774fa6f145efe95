import copy
import json

import numpy as np
import pytest
import torch
from torch import nn

from rlbook.agents import ArtifactError, load_agent, save_agent
from rlbook.chapters.dqn_state import (
    LectureMemory,
    QNetworkPolicy,
    lecture_batches,
    td_loss,
)
from rlbook.checkpoint import make_provenance
from rlbook.dqn import QNetwork
from rlbook.evaluate import evaluate_artifact
from rlbook.replay import Batch, ReplayBuffer

from .conftest import needs_cuda


class Fixed(nn.Module):
    """A 'network' that returns fixed action values for every state."""

    def __init__(self, values):
        super().__init__()
        self.values = torch.tensor(values, dtype=torch.float32)

    def forward(self, obs):
        return self.values.expand(obs.shape[0], -1)


def batch(reward, terminated, action=0, weights=1.0):
    n = len(reward)
    return Batch(
        obs=torch.zeros(n, 4),
        action=torch.full((n,), action, dtype=torch.int64),
        reward=torch.tensor(reward, dtype=torch.float32),
        next_obs=torch.zeros(n, 4),
        terminated=torch.tensor(terminated, dtype=torch.float32),
        indices=torch.arange(n),
        weights=torch.full((n,), weights),
    )


def test_q_network_shapes_and_spec():
    net = QNetwork(4, 2, (16, 8), batch_norm=True)
    assert net(torch.zeros(5, 4)).shape == (5, 2)
    assert sum(isinstance(m, nn.BatchNorm1d) for m in net.modules()) == 2
    assert QNetwork(**net.spec).spec == net.spec


def test_dueling_head_combines_value_and_mean_centred_advantage():
    net = QNetwork(4, 3, (8,), dueling=True)
    obs = torch.randn(6, 4)
    features = net.body(obs)
    advantage = net.advantage(features)
    expected = net.value(features) + advantage - advantage.mean(dim=1, keepdim=True)
    torch.testing.assert_close(net(obs), expected)


def test_terminated_transition_has_no_bootstrap():
    loss, td = td_loss(
        Fixed([0.0, 0.0]), Fixed([50.0, 70.0]), batch([1.0], [1.0]), gamma=0.9
    )
    assert td.item() == pytest.approx(1.0)  # target = reward only
    assert loss.item() == pytest.approx(1.0)


def test_truncated_transition_keeps_its_bootstrap():
    # terminated = 0 (the transition was cut off by the time limit): bootstrap max Q_target
    _, td = td_loss(
        Fixed([0.0, 0.0]), Fixed([50.0, 70.0]), batch([1.0], [0.0]), gamma=0.9
    )
    assert td.item() == pytest.approx(1.0 + 0.9 * 70.0)


def test_double_dqn_values_the_online_networks_choice_with_the_target():
    online, target = Fixed([10.0, 0.0]), Fixed([50.0, 70.0])
    _, plain = td_loss(online, target, batch([0.0], [0.0]), gamma=1.0)
    _, double = td_loss(online, target, batch([0.0], [0.0]), gamma=1.0, double=True)
    assert plain.item() == pytest.approx(70.0 - 10.0)  # max of the target
    assert double.item() == pytest.approx(
        50.0 - 10.0
    )  # target's value of online argmax (0)


def test_huber_loss_is_linear_for_large_errors():
    args = (Fixed([0.0, 0.0]), Fixed([0.0, 0.0]), batch([10.0], [1.0]))
    mse, _ = td_loss(*args, gamma=0.9)
    huber, _ = td_loss(*args, gamma=0.9, huber=True)
    assert mse.item() == pytest.approx(100.0)
    assert huber.item() == pytest.approx(9.5)


def test_importance_weights_scale_each_item():
    args = (Fixed([0.0, 0.0]), Fixed([0.0, 0.0]))
    full, _ = td_loss(*args, batch([2.0], [1.0], weights=1.0), gamma=0.9)
    half, _ = td_loss(*args, batch([2.0], [1.0], weights=0.5), gamma=0.9)
    assert half.item() == pytest.approx(full.item() / 2)


def test_no_gradient_flows_through_the_target():
    net = QNetwork(4, 2, (8,))
    loss, _ = td_loss(net, net, batch([1.0, 0.0], [0.0, 0.0]), gamma=0.9)
    loss.backward()
    expected = torch.autograd.grad(
        (
            net(torch.zeros(2, 4))[:, 0]
            - (
                torch.tensor([1.0, 0.0])
                + 0.9 * net(torch.zeros(2, 4)).max(1).values.detach()
            )
        )
        .pow(2)
        .mean(),
        net.head.weight,
    )[0]
    torch.testing.assert_close(net.head.weight.grad, expected)


def test_lecture_memory_batches():
    memory = LectureMemory(capacity=3)
    for i in range(5):
        memory.push(
            np.full(4, i, np.float32), i % 2, 1.0, np.zeros(4, np.float32), i == 4
        )
    assert len(memory) == 3  # the deque dropped the two oldest
    batches = list(lecture_batches(memory, batch_size=8, updates=4))
    assert len(batches) == 4
    first = batches[0]
    assert first.obs.shape == (8, 4) and first.action.dtype == torch.int64
    assert set(first.obs[:, 0].tolist()) <= {2.0, 3.0, 4.0}


def short_training_run(seed: int) -> list[torch.Tensor]:
    """A few DQN updates on random CartPole data, seeded."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = QNetwork(4, 2, (16, 16))
    target = copy.deepcopy(net)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    buffer = ReplayBuffer(200, (4,), generator=torch.Generator().manual_seed(seed))
    for _ in range(200):
        buffer.add(
            rng.normal(size=4), int(rng.integers(2)), 1.0, rng.normal(size=4), False
        )
    for _ in range(20):
        loss, _ = td_loss(net, target, buffer.sample(32), gamma=0.99, double=True)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return [p.detach().clone() for p in net.parameters()]


def test_seeded_training_is_deterministic_on_cpu():
    first, second = short_training_run(3), short_training_run(3)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(first[0], short_training_run(4)[0])


@pytest.fixture
def q_network_agent(tmp_path):
    torch.manual_seed(0)
    net = QNetwork(4, 2, (8,), dueling=True)
    folder = tmp_path / "dqn"
    save_agent(
        folder,
        kind="q-network",
        env_id="CartPole-v1",
        spec={"network": net.spec},
        weights={"q_net": net.state_dict()},
        provenance=make_provenance(
            command="pytest", config={}, budget="smoke", device="cpu", wall_time_s=0.0
        ),
    )
    return folder, net


def test_q_network_agent_round_trip(q_network_agent):
    folder, net = q_network_agent
    agent = load_agent(folder)
    assert isinstance(agent.policy, QNetworkPolicy)
    obs = np.random.default_rng(0).normal(size=(7, 4)).astype(np.float32)
    expected = net(torch.as_tensor(obs)).argmax(1).numpy()
    np.testing.assert_array_equal(agent.policy.act_batch(obs), expected)
    assert agent.policy.act(obs[0]) == expected[0]
    assert evaluate_artifact(folder, episodes=3, seed=0)["kind"] == "q-network"


def test_q_network_weights_of_another_architecture_are_a_clear_error(q_network_agent):
    folder, _ = q_network_agent
    other = QNetwork(4, 2, (32,))
    torch.save({"q_net": other.state_dict()}, folder / "weights.pt")
    with pytest.raises(ArtifactError, match="do not fit kind 'q-network'"):
        load_agent(folder)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_policy_acts_on_the_networks_device_and_returns_cpu_numpy(device):
    torch.manual_seed(0)
    net = QNetwork(4, 3, (16,)).eval()
    obs = np.random.default_rng(0).normal(size=(9, 4)).astype(np.float32)
    expected = net(torch.as_tensor(obs)).argmax(1).numpy()
    policy = QNetworkPolicy(net.to(device))
    actions = policy.act_batch(obs)
    assert isinstance(actions, np.ndarray) and actions.shape == (9,)
    np.testing.assert_array_equal(actions, expected)
    assert policy.act(obs[0]) == expected[0]
    assert isinstance(policy.act(obs[0]), int)


class OffCpuTensor(torch.Tensor):
    """Stands in for a GPU tensor on machines without one: ``.numpy()`` refuses it."""

    def cpu(self, *args, **kwargs):
        return self.as_subclass(torch.Tensor)

    def numpy(self, *args, **kwargs):
        raise TypeError(
            "can't convert a tensor off the CPU to numpy; call .cpu() first"
        )


class DeviceSpy(nn.Module):
    """A 'network' whose parameters live on ``device``; it records its input's
    device and returns action values as an :class:`OffCpuTensor`."""

    def __init__(self, device: str) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, device=device))
        self.seen: torch.device | None = None

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        self.seen = obs.device
        values = torch.tensor([[0.0, 1.0]]).expand(obs.shape[0], -1)
        return values.as_subclass(OffCpuTensor)


def test_policy_moves_observations_to_the_parameters_device_and_back():
    # "meta" stands in for a GPU on machines without one: it is not the CPU.
    spy = DeviceSpy("meta")
    actions = QNetworkPolicy(spy).act_batch(np.zeros((3, 4), np.float32))
    assert spy.seen == torch.device("meta")
    assert type(actions) is np.ndarray
    np.testing.assert_array_equal(actions, [1, 1, 1])


def test_policy_of_a_network_without_parameters_runs_on_the_cpu():
    actions = QNetworkPolicy(Fixed([0.0, 2.0, 1.0])).act_batch(np.zeros((2, 4)))
    np.testing.assert_array_equal(actions, [1, 1])


def test_an_observation_record_on_an_agent_of_state_is_a_clear_error(
    q_network_agent,
):
    # a hand-edited manifest: a pipeline record on an agent that reads states
    folder, _ = q_network_agent
    manifest = json.loads((folder / "agent.json").read_text())
    manifest["spec"]["observation"] = {"frames": "weird"}
    (folder / "agent.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="does not play from pixels"):
        evaluate_artifact(folder, episodes=2, seed=0)
