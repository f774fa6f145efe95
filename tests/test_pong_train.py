"""rlbook.pong_train: REINFORCE as pg-pong, PPO's pieces, resuming, playing whole
games in bounded emulators, and shipping an agent the CLI rebuilds."""

import copy
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from rlbook.agents import ArtifactError, load_agent
from rlbook.chapters.pong import (
    PPO,
    PongActorCritic,
    PPOConfig,
    Reinforce,
    ReinforceConfig,
    TorchPolicy,
    discount_rewards,
    gae,
    ppo_config,
    reinforce_config,
)
from rlbook.pong import (
    INPUTS,
    numpy_backward,
    numpy_forward,
    numpy_logit_grad,
)
from rlbook.pong_train import (
    DifferenceAgent,
    StackAgent,
    export_pong,
    first_reaching,
    planned_updates,
    play_games,
    policy_probs_sparse,
    running_mean,
    snapshot_pong,
    sparse_hidden,
)

from .scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
TINY_PG = ReinforceConfig(
    games_per_update=2, updates=2, validate_every=2, validation_games=2
)
TINY_PPO = PPOConfig(
    envs=2,
    steps=32,
    minibatches=2,
    epochs=2,
    total_steps=256,
    validate_every=4,
    validation_games=2,
)


def difference_frames(batch: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = (rng.random((batch, INPUTS)) < 0.01) * rng.choice([-1, 1], (batch, INPUTS))
    x[0] = 0  # a game's first frame: no difference at all
    return x.astype(np.int8)


def test_sparse_forward_equals_the_dense_one():
    policy = TorchPolicy()
    x = difference_frames(7)
    w1_t = policy.hidden.weight.detach().t().contiguous()
    dense = torch.from_numpy(x.astype(np.float32)) @ policy.hidden.weight.detach().t()
    torch.testing.assert_close(sparse_hidden(w1_t, x), dense, atol=1e-6, rtol=1e-5)
    with torch.no_grad():
        expected = policy.probs(torch.from_numpy(x.astype(np.float32))).numpy()
    np.testing.assert_allclose(
        policy_probs_sparse(policy, w1_t, x), expected, atol=1e-6
    )


def test_a_reinforce_update_is_pg_pongs_rmsprop_step_on_the_summed_gradient():
    run = Reinforce(TINY_PG)
    model = {k: v.astype(np.float64) for k, v in run.policy.to_numpy().items()}
    x = difference_frames(300, seed=1)
    actions = np.random.default_rng(2).integers(0, 3, 300)
    rewards = np.zeros(300, np.float32)
    rewards[[40, 99, 180, 299]] = [1, -1, -1, 1]
    lane = np.repeat([0, 1], 150)
    rewards[149] = -1  # each game ends with a point
    adv = run.advantages(rewards, lane)
    for g in (0, 1):  # standardised per game, returns reset at each point
        sel = lane == g
        expected = discount_rewards(rewards[sel])
        expected = (expected - expected.mean()) / expected.std()
        np.testing.assert_allclose(adv[sel], expected, atol=1e-5)

    run.learn(x, actions, adv)
    probs, h = numpy_forward(model, x.astype(np.float64))
    grads = numpy_backward(
        model, x.astype(np.float64), h, numpy_logit_grad(probs, actions, adv)
    )
    for k, g in grads.items():  # pg-pong.py's RMSProp step, from an empty cache
        cache = 0.99 * np.zeros_like(g) + (1 - 0.99) * g**2
        model[k] -= 1e-4 * g / (np.sqrt(cache) + 1e-5)
    after = run.policy.to_numpy()
    for k in model:
        np.testing.assert_allclose(after[k], model[k], atol=2e-6, rtol=1e-4)


@pytest.fixture(scope="module")
def tiny_reinforce_runs() -> tuple[Reinforce, dict]:
    """A tiny REINFORCE run to its end, and the same run's state after update 1:
    trained once for every test of this module that needs them (#28)."""
    straight = Reinforce(TINY_PG, seed=3)
    straight.train()
    first = Reinforce(TINY_PG, seed=3)
    first.train(until=1)
    return straight, copy.deepcopy(first.state_dict())


@pytest.fixture
def tiny_reinforce(tiny_reinforce_runs) -> tuple[Reinforce, dict]:
    """The shared runs, with a fresh copy of the halfway state for each test: a run
    resumed from it trains its optimizer's tensors in place."""
    straight, halfway = tiny_reinforce_runs
    return straight, copy.deepcopy(halfway)


@pytest.fixture(scope="module")
def tiny_ppo() -> PPO:
    """A tiny PPO run to its end, shared by the resume and export tests (#28)."""
    run = PPO(TINY_PPO, seed=1)
    run.train()
    return run


def test_reinforce_resumed_from_a_checkpoint_is_the_run_that_never_stopped(
    tiny_reinforce,
):
    straight, halfway = tiny_reinforce
    resumed = Reinforce.from_state(halfway)
    resumed.train()
    assert resumed.scores == straight.scores and resumed.env_steps == straight.env_steps
    for k, v in straight.policy.state_dict().items():
        assert torch.equal(v, resumed.policy.state_dict()[k]), k
    assert resumed.best is not None and resumed.best["update"] == 2
    assert [v["update"] for v in resumed.validations] == [2]
    assert all(-21 <= s <= 21 for s in straight.scores) and len(straight.scores) == 4


def test_a_batch_is_one_whole_game_per_lane_all_by_the_same_weights():
    from rlbook.pong import make_pong_vector

    run = Reinforce(TINY_PG)
    vec = make_pong_vector(2)
    try:
        x, _, rewards, lane = run.play_batch(vec)
    finally:
        vec.close()
    for g in (0, 1):
        r = rewards[lane == g]
        assert max((r == 1).sum(), (r == -1).sum()) == 21  # a whole game to 21
        assert not x[lane == g][0].any()  # its first step sees no difference
    assert np.all(np.diff(lane) >= 0)


def test_gae_matches_a_step_by_step_reference():
    rng = np.random.default_rng(0)
    t_len, n, gamma, lam = 9, 3, 0.9, 0.8
    rewards = rng.standard_normal((t_len, n)).astype(np.float32)
    values = rng.standard_normal((t_len, n)).astype(np.float32)
    starts = (rng.random((t_len, n)) < 0.2).astype(np.float32)
    next_value = rng.standard_normal(n).astype(np.float32)
    next_start = np.array([0, 1, 0], np.float32)
    got = gae(rewards, values, starts, next_value, next_start, gamma, lam)
    for lane in range(n):
        # the advantage of step t sums discounted TD errors up to the game's end
        v = np.append(values[:, lane], next_value[lane])
        s = np.append(starts[:, lane], next_start[lane])
        for t in range(t_len):
            total, weight = 0.0, 1.0
            for k in range(t, t_len):
                cont = 1.0 - s[k + 1]
                total += weight * (rewards[k, lane] + gamma * v[k + 1] * cont - v[k])
                weight *= gamma * lam * cont
                if cont == 0:
                    break
            assert got[t, lane] == pytest.approx(total, abs=1e-5)


def test_ppo_resumed_restarts_its_games_and_otherwise_continues_exactly(tiny_ppo):
    # One object trained in two calls restarts its games at the second call,
    # as a resumed run does: the two must agree to the bit.
    assert TINY_PPO.updates == 4
    two_calls = PPO(TINY_PPO, seed=1)
    two_calls.train(until=2)
    two_calls.train()
    first = PPO(TINY_PPO, seed=1)
    first.train(until=2)
    resumed = PPO.from_state(first.state_dict())
    resumed.train()
    for k, v in two_calls.net.state_dict().items():
        assert torch.equal(v, resumed.net.state_dict()[k]), k
    assert resumed.env_steps == two_calls.env_steps == 4 * TINY_PPO.batch

    def drop(log):  # wall times differ, all else must not
        return [{k: v for k, v in e.items() if not k.endswith("_seconds")} for e in log]

    assert drop(resumed.log) == drop(two_calls.log)
    # the approximation is real: a run that never stopped plays on its games
    straight = tiny_ppo
    assert not torch.equal(straight.net.policy.weight, resumed.net.policy.weight)


def test_ppo_anneals_its_learning_rate_to_zero():
    run = PPO(replace(TINY_PPO, total_steps=640))
    assert run.learning_rate() == TINY_PPO.learning_rate
    run.update = run.config.updates
    assert run.learning_rate() == 0.0


def test_the_actor_critic_checks_its_input():
    net = PongActorCritic(frames=4)
    logits, values = net(torch.zeros(5, 4, 80, 80, dtype=torch.uint8))
    assert logits.shape == (5, 3) and values.shape == (5,)
    with pytest.raises(ValueError, match=r"\(B, 4, 80, 80\)"):
        net(torch.zeros(5, 2, 80, 80))


def test_play_games_keeps_a_bounded_number_of_emulators_and_is_reproducible(
    monkeypatch,
):
    import rlbook.pong_train as pt

    opened = []
    real = pt.make_pong_vector
    monkeypatch.setattr(
        pt, "make_pong_vector", lambda n, *a, **k: opened.append(n) or real(n, *a, **k)
    )
    torch.manual_seed(0)
    net = PongActorCritic()
    a = play_games(StackAgent(net), 3, seed=9, lanes=2, keep_scores=True).scores
    b = play_games(StackAgent(net), 3, seed=9, lanes=2, keep_scores=True).scores
    assert opened == [2, 2] and a.shape == (3,)
    np.testing.assert_array_equal(a, b)
    # a game ends when one side reaches 21: our score minus theirs
    assert np.all((np.abs(a) >= 1) & (np.abs(a) <= 21))
    with pytest.raises(ValueError, match="games >= 1"):
        play_games(StackAgent(net), 0, seed=0)


class InstantPong:
    """A stand-in for the emulators: lane ``i``'s games last ``i + 1`` steps
    (``length`` steps if given), and its ``k``-th game ends ``100 i + k``, so a
    score says which game it was."""

    def __init__(self, lanes: int, length: int | None = None) -> None:
        self.lanes = lanes
        self.length = np.full(lanes, length) if length else np.arange(1, lanes + 1)
        self.steps = np.zeros(lanes, dtype=np.int64)
        self.games = np.zeros(lanes, dtype=np.int64)
        self.scores = np.zeros(lanes)  # the score so far: 0 until the last step

    def reset(self) -> np.ndarray:
        return np.zeros((self.lanes, 1))

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        self.steps += 1
        done = self.steps >= self.length
        reward = np.where(done, 100.0 * np.arange(self.lanes) + self.games, 0.0)
        self.games += done
        self.steps[done] = 0
        return self.reset(), reward, done, np.zeros(self.lanes, dtype=bool)

    def close(self) -> None:
        pass


class IdleAgent:
    action_set = (0,)

    def start(self, frames: np.ndarray) -> None:
        pass

    def act(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.zeros(len(frames), dtype=np.int64)

    def step_frames(self, frames: np.ndarray) -> None:
        pass

    def new_games(self, frames: np.ndarray, mask: np.ndarray) -> None:
        pass


def test_play_games_statistics_are_numpys_of_the_scores_in_play_order(monkeypatch):
    import rlbook.pong_train as pt

    monkeypatch.setattr(pt, "make_pong_vector", lambda n, *a, **k: InstantPong(n))
    played = play_games(IdleAgent(), 23, seed=0, lanes=4, keep_scores=True)
    # game g is lane g % 4's (g // 4)-th, though the lanes end games at
    # different paces
    order = np.array([100.0 * (g % 4) + g // 4 for g in range(23)])
    np.testing.assert_array_equal(played.scores, order)
    assert played.count == 23 and played.won == 22  # game 0 scores 0
    assert played.mean == float(order.mean())  # bit for bit
    assert played.std == pytest.approx(float(order.std()), rel=1e-15, abs=0)
    assert (played.lowest, played.highest) == (order.min(), order.max())
    plain = play_games(IdleAgent(), 23, seed=0, lanes=4)
    assert (plain.mean, plain.std, plain.won) == (
        played.mean,
        played.std,
        played.won,
    )
    with pytest.raises(ValueError, match="keep_scores=True"):
        _ = plain.scores


def test_play_games_memory_does_not_grow_with_the_games(monkeypatch):
    """#28: 50,000 games once kept 50,000 scores (over a megabyte in
    Python floats and lists); the statistics alone take a few numbers."""
    import tracemalloc

    import rlbook.pong_train as pt

    monkeypatch.setattr(pt, "make_pong_vector", lambda n, *a, **k: InstantPong(n, 1))
    tracemalloc.start()
    try:
        played = play_games(IdleAgent(), 50_000, seed=0, lanes=10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert played.count == 50_000
    assert peak < 256 * 1024, f"peak {peak / 1024:.0f} KiB"


def test_running_mean_and_first_reaching():
    scores = np.array([-21.0, -1.0, 19.0, 21.0, 21.0])
    np.testing.assert_allclose(running_mean(scores, 2), [-21, -11, 9, 20, 21])
    assert first_reaching(scores, 18.0, window=2) == 3
    assert first_reaching(scores, 21.0, window=3) is None
    assert first_reaching(scores, -11.0, window=2) == 1  # needs a full window


def test_budgets_only_change_the_length_and_unknown_ones_are_refused():
    full, ci = reinforce_config("full"), reinforce_config("ci")
    assert (
        replace(
            ci,
            updates=full.updates,
            validate_every=full.validate_every,
            validation_games=full.validation_games,
        )
        == full
    )
    assert (
        ppo_config("full").updates
        > ppo_config("ci").updates
        > ppo_config("smoke").updates
    )
    with pytest.raises(ValueError, match="budget"):
        ppo_config("huge")


def evaluate_in_process(capsys, *args: str) -> tuple[int, str, str]:
    """``python -m rlbook ARGS`` in this process: its status, stdout and stderr
    (test_cli.py runs the command itself in a fresh interpreter)."""
    from rlbook.__main__ import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("kind", ["reinforce", "ppo"])
def test_export_ships_an_agent_that_the_cli_rebuilds_from_its_manifest(
    tmp_path, kind, request, monkeypatch, capsys
):
    import rlbook.pong_train as pt

    # The finished tiny runs the other tests train (#28), and 2 test games
    # instead of TEST_GAMES' 10: the export must play and record as many as
    # TEST_GAMES says, whatever it is.
    run = request.getfixturevalue(
        "tiny_reinforce" if kind == "reinforce" else "tiny_ppo"
    )
    if kind == "reinforce":
        run = run[0]
    real_test_weights = pt.test_weights
    monkeypatch.setattr(pt, "TEST_GAMES", 2)
    monkeypatch.setattr(
        pt,
        "test_weights",
        lambda state, weights, games=None: real_test_weights(
            state, weights, pt.TEST_GAMES if games is None else games
        ),
    )
    early = (Reinforce(TINY_PG) if kind == "reinforce" else PPO(TINY_PPO)).state_dict()
    with pytest.raises(ValueError, match="finish it before exporting"):
        export_pong(early, tmp_path / "early", command="test")
    # an unfinished run may only be recorded as in progress, without weights
    snapshot = json.loads(
        snapshot_pong(early, tmp_path / "agent", command="test").read_text()
    )
    assert snapshot["update"] == 0 < snapshot["planned_updates"]
    assert snapshot["scores"] == [] and snapshot["provenance"]["command"] == "test"
    assert sorted(p.name for p in (tmp_path / "agent").iterdir()) == [
        "in-progress.json"
    ]
    assert run.update == planned_updates(run.state_dict())  # finished
    with pytest.raises(ValueError, match="export it"):
        snapshot_pong(run.state_dict(), tmp_path / "late", command="test")
    # the same run seen as halfway through a plan twice as long
    config = json.loads(run.state_dict()["config"])
    config["updates" if kind == "reinforce" else "total_steps"] *= 2
    halfway = {**run.state_dict(), "config": json.dumps(config)}
    path = snapshot_pong(halfway, tmp_path / "halfway", command="test")
    snapshot = json.loads(path.read_text())
    assert snapshot["planned_updates"] == 2 * snapshot["update"] > 0
    assert snapshot["log"][-1]["games"] == len(snapshot["scores"])
    assert snapshot["scores"] or kind == "ppo"  # tiny PPO ends no game
    assert snapshot["log"][-1]["env_steps"] == snapshot["env_steps"]
    assert snapshot["validations"] and snapshot["cpu_seconds"] > 0
    out = export_pong(run.state_dict(), tmp_path / "agent", command="test")
    assert not (out / "in-progress.json").exists()  # the finished run replaces it
    manifest = json.loads((out / "agent.json").read_text())
    spec = manifest["spec"]
    assert manifest["env_id"] == "ALE/Pong-v5" and spec["settings"]["frameskip"] == 4
    assert spec["observation"]["preprocess"] == "rlbook.pong.prepro_batch"
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["test"]["best"]) == len(metrics["test"]["final"]) == 2
    provenance = json.loads((out / "weights.provenance.json").read_text())
    assert provenance["score"]["test_best"] == metrics["test"]["best"]
    assert provenance["score"]["games"] == 2

    agent = load_agent(out)
    played = play_games(
        agent.policy.make_agent(),
        2,
        seed=4,
        purpose="evaluate",
        lanes=1,
        settings=spec["settings"],
        keep_scores=True,
    )
    code, stdout, stderr = evaluate_in_process(
        capsys, "evaluate", str(out), "--episodes", "2", "--envs", "1", "--seed", "4"
    )
    assert code == 0, stderr
    assert len(stdout.splitlines()) == 1
    record = json.loads(stdout)
    assert record["games"] == 2 and record["kind"] == manifest["kind"]
    # the command line lists no scores (its memory stays bounded), only their
    # statistics: those of the same games played here
    assert "scores" not in record and np.all(np.abs(played.scores) <= 21)
    assert record["mean_score"] == float(played.scores.mean())
    assert record["games_won"] == int((played.scores > 0).sum())
    assert record["min_score"] == played.scores.min()
    assert record["max_score"] == played.scores.max()

    code, _, stderr = evaluate_in_process(
        capsys, "evaluate", str(out), "--episodes", "1", "--frames", "simple"
    )
    assert code == 2 and "not to Pong" in stderr

    # #28: metrics.json is in the manifest's SHA-256 set, so a changed byte
    # fails on load; a manifest without the set (the folders shipped before
    # it) still loads
    assert set(manifest["sha256"]) == {
        "weights.pt",
        "weights.provenance.json",
        "metrics.json",
    }
    exported = (out / "metrics.json").read_bytes()
    (out / "metrics.json").write_bytes(
        exported.replace(b'"best_update":', b'"best_update": ')
    )
    with pytest.raises(ArtifactError, match=r"metrics\.json in .*changed or damaged"):
        load_agent(out)
    unhashed = {k: v for k, v in manifest.items() if k != "sha256"}
    (out / "agent.json").write_text(json.dumps(unhashed))
    load_agent(out)
    (out / "metrics.json").write_bytes(exported)

    spec["observation"]["preprocess"] = "somebody.else"
    (out / "agent.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="prepro_batch"):
        load_agent(out)
    spec["observation"]["preprocess"] = "rlbook.pong.prepro_batch"
    spec["settings"]["env_id"] = "ALE/Pongg-v5"
    (out / "agent.json").write_text(json.dumps(manifest))
    code, _, stderr = evaluate_in_process(
        capsys, "evaluate", str(out), "--episodes", "1"
    )
    assert code == 2 and stderr.startswith("error:")  # an uncaught error raises here


def test_difference_agent_sees_zero_at_a_new_game():
    agent = DifferenceAgent(TorchPolicy())
    frames = np.zeros((2, 210, 160, 3), np.uint8)
    frames[..., 0] = 144
    agent.start(frames)
    moved = frames.copy()
    moved[:, 100:104, 50:52, 0] = 236
    agent.step_frames(moved)
    assert agent.difference().any(axis=1).all()
    agent.new_games(moved, np.array([True, False]))
    diff = agent.difference()
    assert not diff[0].any() and diff[1].any()


def test_agents_play_the_actions_their_network_has():
    from rlbook.pong import ACTIONS_2, ACTIONS_3

    # Karpathy's sigmoid network moves UP or DOWN; the softmax one may also stay
    assert DifferenceAgent(TorchPolicy(actions=2)).action_set == ACTIONS_2
    assert DifferenceAgent(TorchPolicy(actions=3)).action_set == ACTIONS_3
    assert StackAgent(PongActorCritic(actions=3)).action_set == ACTIONS_3
    with pytest.raises(ValueError, match="2 or 3 actions"):
        StackAgent(PongActorCritic(actions=6))


def train_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_pong.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_a_new_machine_goes_on_from_the_committed_checkpoint(tmp_path, tiny_reinforce):
    """The run longer than a session: main carries checkpoint.pt.xz, and a runs
    folder without a checkpoint starts from it and ends where a run that never
    stopped ends; a resume under another budget or seed is refused."""
    from rlbook.checkpoint import save_checkpoint

    script = load_script("scripts/train_pong.py")

    straight, halfway = tiny_reinforce  # trained once for the module (#28)
    state = {
        **halfway,
        "budget": "smoke",
        "commits": "[]",
        "resumed_at": "[]",
    }
    save_checkpoint(tmp_path / "old" / "checkpoint.pt", state)
    shipped = tmp_path / "artifacts"
    shipped.mkdir()
    data = (tmp_path / "old" / "checkpoint.pt").read_bytes()
    for odd in (b"", b"x", b"xy", b"xyz"):  # every padding
        assert script.unpack(script.pack(odd)) == odd
    packed = script.pack(data)  # and a checkpoint, compressed once (seconds, #28)
    assert script.unpack(packed) == data
    (shipped / script.COMMITTED_CHECKPOINT).write_bytes(packed)
    runs = tmp_path / "runs"
    said = []
    for option in (["--seed", "7"], ["--budget", "full"]):
        refused = train_script(
            "reinforce", "--runs", str(runs), "--out", str(shipped), *option
        )
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.startswith("error:") and option[0] in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        said.append(refused.stdout)
    assert "starting from" in said[0]  # the refused run was the committed one
    done = train_script("reinforce", "--runs", str(runs), "--out", str(shipped))
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stdout
    resumed = torch.load(runs / "reinforce" / "checkpoint.pt", weights_only=True)
    assert resumed["budget"] == "smoke" and resumed["update"] == 2
    assert json.loads(resumed["resumed_at"]) == [1]
    for k, v in straight.policy.state_dict().items():
        assert torch.equal(v, resumed["policy"][k]), k


def test_a_second_run_in_the_same_runs_folder_is_refused(tmp_path):
    from rlbook.runlock import hold_runs_folder

    hold_runs_folder(tmp_path / "runs" / "reinforce")  # this process is the first run
    second = train_script(
        "reinforce", "--runs", str(tmp_path / "runs"), "--budget", "smoke"
    )
    assert second.returncode == 2
    assert second.stderr.startswith("error: another run") and "--runs" in second.stderr
    assert not (tmp_path / "runs" / "reinforce" / "checkpoint.pt").exists()
