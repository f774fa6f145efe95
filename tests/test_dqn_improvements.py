"""The sweep trainer is S copies of the chapter's DQN, computed together.

Stacked networks, per-run gradient clipping, stacked replay and the batched
trainer are each checked against the one-network code they claim to equal.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, make_dataclass, replace

import numpy as np
import pytest
import torch
from torch import nn

import rlbook.chapters.dqn_improvements as dqn_improvements
import rlbook.chapters.dqn_state as dqn_state
from rlbook.cartpole import MAX_EPISODE_STEPS
from rlbook.chapters.dqn_improvements import (
    StackedQNetwork,
    StackedReplayBuffer,
    clip_grad_norm_per_run_,
    config_from,
    run_sweep,
    train_dqn_batched,
)
from rlbook.chapters.dqn_state import (
    DQNConfig,
    epsilon_at,
    make_buffer,
    td_loss,
    train_dqn,
)
from rlbook.dqn import QNetwork
from rlbook.replay import Batch, ReplayBuffer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def seeded_net(seed: int, hidden=(16, 8), **kwargs) -> QNetwork:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return QNetwork(4, 2, hidden, **kwargs)


# --- StackedQNetwork -------------------------------------------------------------


@pytest.mark.parametrize("dueling", [False, True], ids=["plain", "dueling"])
@pytest.mark.parametrize("hidden", [(), (16, 8), (8, 8)])
def test_stacked_forward_is_each_network_on_its_own_slice(dueling, hidden):
    nets = [seeded_net(s, hidden, dueling=dueling) for s in range(3)]
    stacked = StackedQNetwork(nets)
    obs = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(0))
    out = stacked(obs)
    assert out.shape == (3, 5, 2)
    for s, net in enumerate(nets):
        torch.testing.assert_close(out[s], net(obs[s]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dueling", [False, True], ids=["plain", "dueling"])
def test_state_of_round_trips_into_a_q_network(dueling):
    nets = [seeded_net(s, (8, 8), dueling=dueling) for s in range(3)]
    stacked = StackedQNetwork(nets)
    obs = torch.randn(7, 4, generator=torch.Generator().manual_seed(0))
    for s, net in enumerate(nets):
        state = stacked.state_of(s)
        assert state.keys() == net.state_dict().keys()
        for name, tensor in net.state_dict().items():
            assert torch.equal(state[name], tensor), name
        rebuilt = QNetwork(**stacked.spec)
        rebuilt.load_state_dict(state)
        assert torch.equal(rebuilt(obs), net(obs))
    # state_of returns copies: changing one leaves the stack alone.
    for tensor in stacked.state_of(0).values():
        tensor.add_(1.0)
    for name, tensor in nets[0].state_dict().items():
        assert torch.equal(stacked.state_of(0)[name], tensor), name


@pytest.mark.parametrize("dueling", [False, True], ids=["plain", "dueling"])
def test_load_state_of_overwrites_one_run_only(dueling):
    nets = [seeded_net(s, (8, 8), dueling=dueling) for s in range(3)]
    stacked = StackedQNetwork(nets)
    other = seeded_net(99, (8, 8), dueling=dueling)
    stacked.load_state_of(1, other.state_dict())
    obs = torch.randn(3, 6, 4, generator=torch.Generator().manual_seed(0))
    out = stacked(obs)
    for s, net in enumerate([nets[0], other, nets[2]]):
        for name, tensor in net.state_dict().items():
            assert torch.equal(stacked.state_of(s)[name], tensor), (s, name)
        torch.testing.assert_close(out[s], net(obs[s]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("nets", "message"),
    [
        ([], "at least one network"),
        ([seeded_net(0, (8,)), seeded_net(1, (16,))], "same spec"),
        ([seeded_net(0, (8,)), seeded_net(1, (8,), dueling=True)], "same spec"),
        ([seeded_net(0, (8,), batch_norm=True)] * 2, "BatchNorm"),
    ],
    ids=["none", "widths", "dueling", "batch-norm"],
)
def test_networks_that_cannot_be_stacked_are_a_clear_error(nets, message):
    with pytest.raises(ValueError, match=message):
        StackedQNetwork(nets)


# --- one gradient step: stacked equals separate ----------------------------------


def grads_of(stacked: StackedQNetwork, run: int) -> dict[str, torch.Tensor]:
    """Run ``run``'s gradients, named and shaped as a QNetwork's parameters."""
    grads = {}
    for k, name in enumerate(stacked.layer_names):
        grads[f"{name}.weight"] = stacked.weights[k].grad[run].T
        grads[f"{name}.bias"] = stacked.biases[k].grad[run, 0]
    return grads


def random_stacked_batch(runs: int, size: int, generator: torch.Generator) -> Batch:
    """Transitions ``(runs, size, ...)``; run s's rewards are 10^s times larger, so
    the runs' gradient norms differ by orders of magnitude."""
    scale = 10.0 ** torch.arange(runs, dtype=torch.float32)[:, None] / 3
    return Batch(
        obs=torch.randn(runs, size, 4, generator=generator),
        action=torch.randint(0, 2, (runs, size), generator=generator),
        reward=scale * torch.randn(runs, size, generator=generator),
        next_obs=torch.randn(runs, size, 4, generator=generator),
        terminated=(torch.rand(runs, size, generator=generator) < 0.3).float(),
        indices=torch.zeros(runs, size, dtype=torch.int64),
        weights=torch.ones(runs, size),
    )


@pytest.mark.parametrize(
    ("huber", "double", "dueling"),
    [
        (False, False, False),
        (True, False, False),
        (False, True, False),
        (True, True, True),
    ],
    ids=["mse", "huber", "double", "huber-double-dueling"],
)
def test_a_batched_step_equals_separate_steps(huber, double, dueling):
    """td_loss * S, per-run clipping and one Adam: S independent chapter updates."""
    runs, size, max_norm, gamma = 3, 16, 0.3, 0.99
    online = [seeded_net(s, dueling=dueling) for s in range(runs)]
    target = [seeded_net(10 + s, dueling=dueling) for s in range(runs)]
    stacked, stacked_target = StackedQNetwork(online), StackedQNetwork(target)
    stacked_opt = torch.optim.Adam(stacked.parameters(), lr=1e-2)
    singles = [copy.deepcopy(net) for net in online]
    single_opts = [torch.optim.Adam(net.parameters(), lr=1e-2) for net in singles]
    generator = torch.Generator().manual_seed(0)
    for step in range(3):
        batch = random_stacked_batch(runs, size, generator)
        loss, _ = td_loss(
            stacked, stacked_target, batch, gamma=gamma, double=double, huber=huber
        )
        stacked_opt.zero_grad()
        (loss * runs).backward()
        clip_grad_norm_per_run_(stacked.parameters(), max_norm)

        norms = []
        for s, (net, opt) in enumerate(zip(singles, single_opts, strict=True)):
            part = Batch(*(field[s] for field in batch))
            loss_s, _ = td_loss(
                net, target[s], part, gamma=gamma, double=double, huber=huber
            )
            opt.zero_grad()
            loss_s.backward()
            norms.append(float(nn.utils.clip_grad_norm_(net.parameters(), max_norm)))
            clipped = {name: p.grad for name, p in net.named_parameters()}
            for name, grad in grads_of(stacked, s).items():
                torch.testing.assert_close(
                    grad, clipped[name], rtol=1e-4, atol=1e-6, msg=f"{step} {s} {name}"
                )
            opt.step()
        stacked_opt.step()
        if step == 0:
            # The check has teeth: some run is clipped, and one global norm
            # would scale some run differently from its own norm.
            own = np.minimum(1.0, max_norm / np.array(norms))
            shared = min(1.0, max_norm / np.linalg.norm(norms))
            assert (own < 1.0).any(), norms
            assert np.abs(own - shared).max() > 0.1, (own, shared)

    for s, net in enumerate(singles):
        state = stacked.state_of(s)
        for name, tensor in net.state_dict().items():
            torch.testing.assert_close(state[name], tensor, atol=1e-5, rtol=1e-5)


def test_clip_grad_norm_per_run_scales_each_run_to_its_own_norm():
    weight = torch.zeros(3, 2, 2, requires_grad=True)
    bias = torch.zeros(3, 1, 2, requires_grad=True)
    # Run 0's gradient has norm 5 (3 and 4), run 1's 0.5, run 2's is zero.
    weight.grad = torch.zeros(3, 2, 2)
    bias.grad = torch.zeros(3, 1, 2)
    weight.grad[:2, 0, 0] = torch.tensor([3.0, 0.3])
    bias.grad[:2, 0, 1] = torch.tensor([4.0, 0.4])
    clip_grad_norm_per_run_([weight, bias], max_norm=1.0)
    torch.testing.assert_close(weight.grad[:, 0, 0], torch.tensor([0.6, 0.3, 0.0]))
    torch.testing.assert_close(bias.grad[:, 0, 1], torch.tensor([0.8, 0.4, 0.0]))
    assert weight.grad.count_nonzero() == bias.grad.count_nonzero() == 2


# --- StackedReplayBuffer ---------------------------------------------------------


def add_numbered(buffer: StackedReplayBuffer, steps: range) -> None:
    """Transition t of run s: obs (s, t, 0, 0), next_obs (s, t + 1, 1, 1), ..."""
    runs = np.arange(buffer.n)
    for t in steps:
        obs = np.zeros((buffer.n, 4), dtype=np.float32)
        obs[:, 0], obs[:, 1] = runs, t
        next_obs = obs + np.array([0, 1, 1, 1], dtype=np.float32)
        reward = (10 * t + runs).astype(np.float32)
        buffer.add(obs, (runs + t) % 2, reward, next_obs, np.full(buffer.n, t % 3 == 0))


def check_rows(batch: Batch, runs: int, kept: range) -> None:
    run = batch.obs[..., 0].long()
    t = batch.obs[..., 1].long()
    assert torch.equal(run, torch.arange(runs)[:, None].expand_as(run))
    assert set(t.flatten().tolist()) <= set(kept)
    assert torch.equal(batch.next_obs, batch.obs + torch.tensor([0.0, 1.0, 1.0, 1.0]))
    assert torch.equal(batch.action, (run + t) % 2)
    assert torch.equal(batch.reward, (10 * t + run).float())
    assert torch.equal(batch.terminated, (t % 3 == 0).float())


CONFIG = DQNConfig(buffer_size=8)


def test_stacked_replay_samples_each_runs_own_transitions():
    buffer = StackedReplayBuffer(CONFIG, [5, 6, 7])
    add_numbered(buffer, range(5))
    batch = buffer.sample(64)
    shapes = {name: tuple(getattr(batch, name).shape) for name in Batch._fields}
    assert shapes == {
        "obs": (3, 64, 4),
        "action": (3, 64),
        "reward": (3, 64),
        "next_obs": (3, 64, 4),
        "terminated": (3, 64),
        "indices": (3, 64),
        "weights": (3, 64),
    }
    assert batch.action.dtype == torch.int64
    assert torch.equal(batch.weights, torch.ones(3, 64))
    check_rows(batch, 3, range(5))
    assert torch.equal(batch.indices, batch.obs[..., 1].long())  # slot t holds step t


def test_stacked_replay_wraps_around_keeping_the_newest_transitions():
    buffer = StackedReplayBuffer(CONFIG, [5, 6])
    add_numbered(buffer, range(19))  # capacity 8: steps 11..18 survive
    batch = buffer.sample(2_000)
    check_rows(batch, 2, range(11, 19))
    for s in range(2):
        assert set(batch.obs[s, :, 1].long().tolist()) == set(range(11, 19))
    assert torch.equal(batch.indices, batch.obs[..., 1].long() % 8)


@pytest.mark.parametrize("prioritized", [False, True], ids=["uniform", "prioritized"])
def test_stacked_replay_run_draws_what_train_dqn_of_its_seed_draws(prioritized):
    """Run s samples the indices make_buffer(config, seed_s) would: paired seeds."""
    config = replace(CONFIG, prioritized=prioritized)
    seeds = [3, 7]
    stacked = StackedReplayBuffer(config, seeds)
    add_numbered(stacked, range(13))
    together = stacked.sample(6)
    for s, seed in enumerate(seeds):
        alone = make_buffer(config, seed)
        for t in range(13):
            alone.add(
                [s, t, 0, 0], (s + t) % 2, 10 * t + s, [s, t + 1, 1, 1], t % 3 == 0
            )
        expected = alone.sample(6)
        for name in Batch._fields:
            assert torch.equal(getattr(together, name)[s], getattr(expected, name)), (
                name
            )
    # The runs' draws differ: each run has its own stream.
    assert not torch.equal(together.indices[0], together.indices[1])


def test_prioritized_stacked_replay_updates_only_its_own_run():
    config = replace(CONFIG, prioritized=True, per_alpha=1.0)
    buffer = StackedReplayBuffer(config, [5, 6])
    add_numbered(buffer, range(8))
    batch = buffer.sample(16)
    assert batch.weights.shape == (2, 16)
    check_rows(batch, 2, range(8))
    # Run 0's slot 3 becomes 1000 times more likely than the rest; run 1 stays uniform.
    slots = torch.arange(8)
    td_error = torch.stack([torch.where(slots == 3, 1000.0, 1.0), torch.ones(8)])
    buffer.update_priorities(torch.stack([slots, slots]), td_error)
    drawn = buffer.sample(800).indices
    share_of_3 = (drawn == 3).float().mean(dim=1)
    assert share_of_3[0] > 0.9
    assert 0.05 < share_of_3[1] < 0.2  # 1/8 = 0.125
    assert set(drawn[1].tolist()) == set(range(8))


# --- the trainers ------------------------------------------------------------------

TINY = DQNConfig(
    total_steps=1_500,
    learning_starts=500,
    validate_every=500,
    buffer_size=2_000,
    batch_size=32,
    hidden=(16,),
)


def assert_same_records(a: dict, b: dict) -> None:
    """Equal records: every number, list and weight tensor."""
    assert a.keys() == b.keys()
    for key in a:
        if key == "seconds":
            continue
        if key in ("state", "final_state"):
            assert a[key].keys() == b[key].keys()
            for name in a[key]:
                assert torch.equal(a[key][name], b[key][name]), (key, name)
        else:
            assert a[key] == b[key], key


# Every variant switched on at once, to compare the batched trainer's
# prioritized replay (beta annealing, priority updates) and double/dueling/Huber
# code paths with train_dqn's.
VARIANTS = replace(
    TINY,
    total_steps=1_000,
    huber=True,
    double=True,
    dueling=True,
    prioritized=True,
    target_every=50,
)


def batched_once(config: DQNConfig, seeds: list[int]) -> list[dict]:
    with torch.random.fork_rng(devices=[]):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return train_dqn_batched(config, seeds)
        finally:
            torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_batched() -> list[dict]:
    return batched_once(TINY, [0, 1])


@pytest.fixture(scope="module")
def variants_batched() -> list[dict]:
    return batched_once(VARIANTS, [0, 1])


def test_batched_training_is_deterministic(tiny_batched):
    again = train_dqn_batched(TINY, [0, 1])
    assert len(again) == 2
    for a, b in zip(tiny_batched, again, strict=True):
        assert_same_records(a, b)
    # Something was learned and recorded: the comparison is not of empty lists.
    assert len(again[0]["validation_return"]) == 3
    assert again[0]["updates"] == 500
    heads = [record["final_state"]["head.weight"] for record in again]
    assert not torch.equal(*heads)


def test_sweep_in_process_is_train_dqn_batched(tiny_batched):
    sweep = run_sweep({"a": TINY}, [0, 1], workers=1)
    assert list(sweep) == ["a"]
    for a, b in zip(tiny_batched, sweep["a"], strict=True):
        assert_same_records(a, b)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("variants", [False, True], ids=["plain", "variants"])
def test_batched_run_equals_train_dqn_of_its_seed(
    tiny_batched, variants_batched, variants, seed
):
    """The same episodes, validations and (up to float order) weights as train_dqn."""
    config = VARIANTS if variants else TINY
    with torch.random.fork_rng(devices=[]):
        alone = train_dqn(config, seed)
    together = (variants_batched if variants else tiny_batched)[seed]
    assert together.keys() == alone.keys() | {"runs_in_batch"}
    assert together["runs_in_batch"] == 2
    for key in ("seed", "updates", "network", "best_step", "best_validation"):
        assert together[key] == alone[key], key
    for key in (
        "episode_end",
        "episode_return",
        "validation_step",
        "validation_return",
    ):
        assert together[key] == alone[key], key
    for record in ("test", "final_test"):
        assert together[record]["returns"] == alone[record]["returns"]
        assert together[record]["start_value"] == pytest.approx(
            alone[record]["start_value"], rel=1e-5
        )
    for state in ("state", "final_state"):
        for name, tensor in alone[state].items():
            torch.testing.assert_close(
                together[state][name], tensor, atol=1e-5, rtol=1e-4
            )


# Learning never starts; two validations of the same weights tie.
NO_UPDATES = replace(TINY, total_steps=500, validate_every=250)


def test_a_seed_starts_the_same_whatever_runs_beside_it():
    """Initial weights, exploration and start states come from the seed's own streams."""
    with torch.random.fork_rng(devices=[]):
        alone = train_dqn(NO_UPDATES, 0)
    with_1 = train_dqn_batched(NO_UPDATES, [0, 1])
    with_2 = train_dqn_batched(NO_UPDATES, [2, 0])
    assert len(alone["episode_end"]) > 10
    assert alone["best_step"] == 500  # a tie goes to the later validation
    for together in (with_1[0], with_2[1]):
        assert together["updates"] == 0
        assert together["validation_return"] == alone["validation_return"]
        assert together["best_step"] == alone["best_step"]
        assert together["episode_end"] == alone["episode_end"]
        assert together["episode_return"] == alone["episode_return"]
        for name, tensor in alone["final_state"].items():  # the initial weights
            assert torch.equal(together["final_state"][name], tensor), name
    assert with_1[1]["episode_end"] != alone["episode_end"]


def test_first_updates_have_train_dqns_gradients(monkeypatch):
    """Each run's gradient is its own mean loss's: `loss * n` before backward."""
    config = replace(TINY, total_steps=520, validate_every=520)  # 10 updates
    single_norms: list[float] = []
    original = nn.utils.clip_grad_norm_

    def record_single(parameters, max_norm):
        norm = original(parameters, max_norm)
        single_norms.append(float(norm))
        return norm

    batched_norms: list[list[float]] = []
    original_per_run = dqn_improvements.clip_grad_norm_per_run_

    def record_batched(parameters, max_norm):
        parameters = list(parameters)
        squares = sum(p.grad.pow(2).flatten(1).sum(1) for p in parameters)
        batched_norms.append(squares.sqrt().tolist())
        original_per_run(parameters, max_norm)

    monkeypatch.setattr(nn.utils, "clip_grad_norm_", record_single)
    monkeypatch.setattr(dqn_improvements, "clip_grad_norm_per_run_", record_batched)
    train_dqn_batched(config, [0, 1])
    per_seed = []
    for seed in (0, 1):
        single_norms.clear()
        with torch.random.fork_rng(devices=[]):
            train_dqn(config, seed)
        per_seed.append(list(single_norms))
    assert len(batched_norms) == len(per_seed[0]) == 10
    np.testing.assert_allclose(np.array(batched_norms), np.array(per_seed).T, rtol=1e-4)


def balancing_q_network(obs_dim, n_actions, hidden=(), *, dueling=False):
    """A linear Q-network that balances the pole (~480 steps), whatever it is asked for."""
    net = QNetwork(obs_dim, n_actions, ())
    with torch.no_grad():
        net.head.weight.copy_(torch.tensor([[0, 0, -1.0, -1.0], [0, 0, 1.0, 1.0]]))
        net.head.bias.zero_()
    return net


def test_runs_store_train_dqns_transitions_through_truncations(monkeypatch):
    """Every stored transition, truncated episodes included, is train_dqn's.

    The networks start as a pole-balancing policy and barely learn, so
    episodes reach the 500-step limit: the trainers must reset there, and
    store the truncated transition with terminated = False (it bootstraps).
    """
    config = replace(
        TINY,
        total_steps=1_200,
        learning_starts=100,
        train_every=25,
        learning_rate=1e-6,
        epsilon_fraction=0.001,  # greedy from step 2 on, once learning starts
        epsilon_end=0.0,
        validate_every=600,
    )
    monkeypatch.setattr(dqn_improvements, "QNetwork", balancing_q_network)
    monkeypatch.setattr(dqn_state, "QNetwork", balancing_q_network)
    stored_alone: list[tuple] = []
    original_add = ReplayBuffer.add

    def record_add(self, obs, action, reward, next_obs, terminated):
        stored_alone.append(
            (list(obs), int(action), float(reward), list(next_obs), bool(terminated))
        )
        original_add(self, obs, action, reward, next_obs, terminated)

    stored_together: list[list[tuple]] = [[], []]
    original_stacked_add = StackedReplayBuffer.add

    def record_stacked_add(self, obs, action, reward, next_obs, terminated):
        for s, stored in enumerate(stored_together):
            stored.append(
                (
                    list(obs[s]),
                    int(action[s]),
                    float(reward[s]),
                    list(next_obs[s]),
                    bool(terminated[s]),
                )
            )
        original_stacked_add(self, obs, action, reward, next_obs, terminated)

    monkeypatch.setattr(ReplayBuffer, "add", record_add)
    monkeypatch.setattr(StackedReplayBuffer, "add", record_stacked_add)
    together = batched_once(config, [0, 1])
    for seed in (0, 1):
        stored_alone.clear()
        with torch.random.fork_rng(devices=[]):
            alone = train_dqn(config, seed)
        assert MAX_EPISODE_STEPS in alone["episode_return"]  # a truncation happened
        assert together[seed]["episode_end"] == alone["episode_end"]
        assert together[seed]["episode_return"] == alone["episode_return"]
        assert len(stored_alone) == config.total_steps
        assert stored_together[seed] == stored_alone
        ends = [stored_alone[end - 1][4] for end in alone["episode_end"]]
        returns = alone["episode_return"]
        assert ends == [r < MAX_EPISODE_STEPS for r in returns]  # truncated: False


# --- configs and the schedule -------------------------------------------------------


def test_config_from_a_mapping_or_any_dataclass_with_the_same_fields():
    fields_ = asdict(TINY)
    fields_["hidden"] = [16]  # as JSON or a worker process would carry it
    assert config_from(fields_) == TINY
    assert config_from(TINY) == TINY
    ChapterConfig = make_dataclass(
        "ChapterConfig", [(name, type(value)) for name, value in asdict(TINY).items()]
    )
    chapter = ChapterConfig(**asdict(TINY))
    assert config_from(chapter) == TINY
    assert config_from({"huber": True}) == DQNConfig(huber=True)


def test_config_from_names_unknown_fields():
    with pytest.raises(ValueError, match="unknown DQNConfig fields: epsilon, lr"):
        config_from({"lr": 1e-3, "epsilon": 0.1, "gamma": 0.9})
    Renamed = make_dataclass("Renamed", [("gamma", float), ("lr", float)])
    with pytest.raises(ValueError, match=r"unknown DQNConfig fields: lr$"):
        config_from(Renamed(0.9, 1e-3))


def test_epsilon_decays_linearly_then_stays():
    config = DQNConfig(
        total_steps=1_000, validate_every=500, epsilon_fraction=0.2, epsilon_end=0.05
    )
    assert epsilon_at(config, 0) == 1.0
    assert epsilon_at(config, 100) == pytest.approx(0.525)
    assert epsilon_at(config, 200) == pytest.approx(0.05)
    assert epsilon_at(config, 201) == 0.05
    assert epsilon_at(config, 999) == 0.05


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"total_steps": 300, "validate_every": 500}, "validate_every=500"),
        ({"validate_every": 0}, "validate_every=0"),
        ({"epsilon_fraction": 0.0}, "epsilon_fraction"),
    ],
)
def test_config_without_validation_or_decay_is_a_clear_error(fields, message):
    with pytest.raises(ValueError, match=message):
        DQNConfig(**fields)


def test_empty_stacked_buffer_and_uniform_beta_are_clear_errors():
    buffer = StackedReplayBuffer(DQNConfig(), [0, 1])
    with pytest.raises(ValueError, match="empty replay buffer"):
        buffer.sample(4)
    with pytest.raises(ValueError, match="prioritized"):
        buffer.beta = 0.5


def test_run_sweep_in_process_leaves_the_callers_thread_count_alone():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        run_sweep({"a": TINY}, [0], workers=1, threads=1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
