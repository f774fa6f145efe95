"""rlbook.chapters.pong_ppo, the PPO page's export cells: GAE, the actor-critic,
the agent that plays it, PPO's learning rate and resuming, and its budgets."""

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from rlbook.chapters.pong_ppo import (
    PPO,
    PPO_RECIPES,
    PongActorCritic,
    StackAgent,
    explained_variance,
    gae,
    ppo_config,
)
from rlbook.pong import ACTIONS_3, PONG_SETTINGS, make_pong_vector, prepro_batch

from .conftest import needs_cuda, tiny_pong_configs

_, TINY_PPO = tiny_pong_configs()


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


def test_budgets_only_change_the_length_and_unknown_ones_are_refused():
    full, ci = ppo_config("full"), ppo_config("ci")
    assert (
        replace(
            ci,
            total_steps=full.total_steps,
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


def test_the_agent_plays_the_actions_its_network_has():
    assert StackAgent(PongActorCritic(actions=3)).action_set == ACTIONS_3
    with pytest.raises(ValueError, match="2 or 3 actions"):
        StackAgent(PongActorCritic(actions=6))


def test_explained_variance_of_known_critics():
    targets = np.array([[1.0, -1.0], [3.0, 5.0]])
    assert explained_variance(targets, targets) == 1.0
    assert explained_variance(np.full_like(targets, targets.mean()), targets) == 0.0
    # a constant offset explains nothing away; a critic with the wrong sign
    # leaves four times the variance
    assert explained_variance(targets + 7.0, targets) == 1.0
    assert explained_variance(-targets, targets) == pytest.approx(-3.0)
    assert np.isnan(explained_variance(targets, np.ones_like(targets)))


def test_the_update_logs_its_diagnostics(tiny_ppo):
    for entry in tiny_ppo.log:
        # (r - 1) - log r is never negative, and the critic's explained
        # variance is at most 1
        assert entry["approx_kl"] >= 0.0
        assert entry["explained_variance"] <= 1.0
        assert entry["truncated_games"] == 0
    # several epochs move the policy away from the one that collected
    assert max(e["approx_kl"] for e in tiny_ppo.log) > 1e-6


def test_one_epoch_of_one_minibatch_is_an_a2c_step():
    # PPO's update with one epoch of one minibatch takes its only step where
    # every ratio is 1: the same step as A2C's loss, written out here
    config = replace(TINY_PPO, epochs=1, minibatches=1, gae_lambda=1.0)
    run = PPO(config, seed=4)
    vec = make_pong_vector(config.envs, config.settings, seed=4)
    agent = StackAgent(run.net)
    try:
        frames = vec.reset()
        agent.start(frames)
        run._start = np.ones(config.envs, np.float32)
        buf, _ = run.collect(vec, agent, frames)
    finally:
        vec.close()
    net = copy.deepcopy(run.net).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=run.learning_rate(), eps=1e-5)
    with torch.no_grad():
        _, next_value = net(torch.from_numpy(agent.stack))
    adv = gae(
        buf["reward"],
        buf["value"],
        buf["start"],
        next_value.numpy(),
        run._start,
        config.gamma,
        config.gae_lambda,
    )
    targets = torch.from_numpy((adv + buf["value"]).reshape(-1))
    logits, value = net(torch.from_numpy(buf["obs"].reshape(config.batch, 4, 80, 80)))
    logp_all = torch.log_softmax(logits, dim=1)
    actions = torch.from_numpy(buf["action"].reshape(-1, 1))
    logp = logp_all.gather(1, actions).squeeze(1)
    a = torch.from_numpy(adv.reshape(-1))
    a = (a - a.mean()) / (a.std() + 1e-8)
    entropy = -(logp_all.exp() * logp_all).sum(1).mean()
    loss = (
        -(logp * a).mean()
        + config.value_coef * 0.5 * (value - targets).pow(2).mean()
        - config.entropy * entropy
    )
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), config.max_grad_norm)
    optimizer.step()

    stats = run.learn(buf, agent)
    assert stats["clip_fraction"] == 0.0
    for name, weight in run.net.state_dict().items():
        torch.testing.assert_close(weight, net.state_dict()[name], rtol=1e-5, atol=1e-8)


class RecordingVector:
    """A PongVector that keeps a copy of what every step returned."""

    def __init__(self, vec):
        self.vec = vec
        self.steps = []

    @property
    def final_frames(self):
        return self.vec.final_frames

    def step(self, actions):
        frames, reward, terminated, truncated = self.vec.step(actions)
        final = self.vec.final_frames
        self.steps.append(
            (
                frames.copy(),
                reward.copy(),
                terminated.copy(),
                truncated.copy(),
                None if final is None else final.copy(),
            )
        )
        return frames, reward, terminated, truncated


def test_a_game_cut_by_the_time_limit_is_bootstrapped_through():
    settings = dict(PONG_SETTINGS, max_num_frames_per_episode=160)  # 40 steps
    config = replace(TINY_PPO, steps=48, settings=settings)
    run = PPO(config, seed=2)
    vec = make_pong_vector(config.envs, settings, seed=2)
    recording = RecordingVector(vec)
    agent = StackAgent(run.net)
    try:
        frames = vec.reset()
        agent.start(frames)
        run._start = np.ones(config.envs, np.float32)
        buf, _ = run.collect(recording, agent, frames)
    finally:
        vec.close()
    cut = 0
    for t, (frames, raw, terminated, truncated, final) in enumerate(recording.steps):
        for lane in range(config.envs):
            if not truncated[lane] or terminated[lane]:
                assert buf["reward"][t, lane] == raw[lane]
                continue
            cut += 1
            # stopped: the next step starts a game, GAE stops there
            assert buf["start"][t + 1, lane] == 1.0
            # the cut game's last frame, not the next game's first
            assert not np.array_equal(final[lane], frames[lane])
            last = np.roll(buf["obs"][t, lane], -1, axis=0)
            last[-1] = prepro_batch(final[lane][None])[0]
            with torch.no_grad():
                _, value = run.net(torch.from_numpy(last[None]))
            assert abs(value.item()) > 1e-3  # the bootstrap is visible
            expected = raw[lane] + config.gamma * value.item()
            assert buf["reward"][t, lane] == pytest.approx(expected, abs=1e-5)
    assert cut == config.envs == buf["truncated"].sum()


def test_the_shipped_recipe_is_unchanged_and_the_fast_one_only_speeds_it():
    # the shipped agent's run must stay reproducible from its config
    shipped = ppo_config("full")
    assert (shipped.frames, shipped.bf16, shipped.compile, shipped.overlap) == (
        4,
        False,
        False,
        False,
    )
    assert ppo_config("full", recipe="shipped") == shipped
    fast = ppo_config("full", recipe="fast")
    assert (fast.frames, fast.bf16, fast.compile, fast.overlap) == (4, True, True, True)
    assert replace(fast, bf16=False, compile=False, overlap=False) == shipped
    assert ppo_config("ci", recipe="fast").total_steps == ppo_config("ci").total_steps
    # minutes: fast with the two changes timed on 3 seeds, nothing else
    minutes = ppo_config("full", recipe="minutes")
    assert (minutes.minibatches, minutes.learning_rate) != (
        fast.minibatches,
        fast.learning_rate,
    )
    assert (
        replace(minutes, minibatches=fast.minibatches, learning_rate=fast.learning_rate)
        == fast
    )
    with pytest.raises(ValueError, match="recipe"):
        ppo_config("full", recipe="faster")


def test_the_gpu_recipe_is_the_shipped_learner_and_refuses_the_overlap():
    assert ppo_config("full", recipe="gpu") == ppo_config("full")
    # the overlap forks a CPU collector: a learner elsewhere cannot follow
    elsewhere = PPO(replace(TINY_PPO, overlap=True), seed=0, device="meta")
    with pytest.raises(ValueError, match="overlap=False"):
        elsewhere.train()


@needs_cuda
def test_a_cuda_learner_takes_the_cpu_learners_steps(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    cpu, gpu = PPO(TINY_PPO, seed=3), PPO(TINY_PPO, seed=3, device="cuda")
    cpu.train(until=2)
    gpu.train(until=2)
    assert gpu.scores == cpu.scores and gpu.env_steps == cpu.env_steps
    for a, b in zip(cpu.net.parameters(), gpu.net.parameters(), strict=True):
        assert b.device.type == "cuda"
        torch.testing.assert_close(b.cpu(), a, rtol=1e-3, atol=1e-4)


def minibatch(config, seed=0, size=24):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randint(0, 2, (size, config.frames, 80, 80), generator=g).to(
        torch.uint8
    )
    actions = torch.randint(0, 3, (size,), generator=g)
    old_logp = torch.full((size,), float(np.log(1 / 3)))
    adv, ret = torch.randn(size, generator=g), torch.randn(size, generator=g)
    return obs, actions, old_logp, adv, ret


def test_bf16_runs_the_learners_forward_in_bfloat16_and_its_loss_in_float32():
    fp32 = PPO(TINY_PPO, seed=2)
    bf16 = PPO(replace(TINY_PPO, bf16=True), seed=2)
    batch = minibatch(TINY_PPO)
    exact, rounded = fp32.minibatch_loss(*batch), bf16.minibatch_loss(*batch)
    assert rounded["loss"].dtype == rounded["ratio"].dtype == torch.float32
    # bfloat16 keeps 8 bits of mantissa: close to float32's loss, never equal
    assert not torch.equal(exact["ratio"], rounded["ratio"])
    for key in ("loss", "value_loss", "entropy"):
        assert rounded[key].item() == pytest.approx(
            exact[key].item(), rel=0.05, abs=1e-3
        )
    # and its gradients reach the float32 weights
    rounded["loss"].backward()
    assert all(
        p.grad is not None and p.grad.dtype == torch.float32
        for p in bf16.net.parameters()
    )


def test_the_compiled_learner_takes_the_eager_learners_steps():
    eager = PPO(TINY_PPO, seed=2)
    compiled = PPO(replace(TINY_PPO, compile=True), seed=2)
    vec = make_pong_vector(TINY_PPO.envs, PONG_SETTINGS, seed=2)
    try:
        agent = StackAgent(eager.net)
        frames = vec.reset()
        agent.start(frames)
        eager._start = np.ones(TINY_PPO.envs, np.float32)
        buf, _ = eager.collect(vec, agent, frames)
    finally:
        vec.close()
    compiled._start = eager._start
    a, b = eager.learn(buf, agent), compiled.learn(buf, agent)
    assert compiled.compiled_loss is not None  # the compiled loss took the steps
    assert a["policy_loss"] == pytest.approx(b["policy_loss"], abs=1e-5)
    for k, v in eager.net.state_dict().items():
        assert torch.allclose(v, compiled.net.state_dict()[k], atol=1e-5), k


def overlapped_run(seed, **changes):
    """A tiny overlapped run to its end, and what each learn() received:
    the weights it started from and the rollout."""
    run = PPO(replace(TINY_PPO, overlap=True, **changes), seed=seed)
    seen = []
    learn = run.learn

    def spy(buf, agent):
        weights = copy.deepcopy(run.net.state_dict())
        seen.append((weights, buf))
        return learn(buf, agent)

    run.learn = spy
    run.train()
    return run, seen


def test_overlap_is_deterministic_and_learns_from_the_policy_one_update_behind():
    run, seen = overlapped_run(1, learning_rate=3e-3)
    again, _ = overlapped_run(1, learning_rate=3e-3)
    for k, v in run.net.state_dict().items():
        assert torch.equal(v, again.net.state_dict()[k]), k

    def drop(log):  # wall times differ, all else must not
        return [{k: v for k, v in e.items() if not k.endswith("_seconds")} for e in log]

    assert drop(run.log) == drop(again.log) and run.scores == again.scores
    assert (
        run.env_steps == TINY_PPO.updates * TINY_PPO.batch == len(seen) * TINY_PPO.batch
    )
    # the collector's CPU time is in the run's
    assert run.collector_cpu_seconds > 0 and run.cpu_seconds > run.collector_cpu_seconds

    def logp(weights, buf):
        net = PongActorCritic(TINY_PPO.frames, TINY_PPO.actions)
        net.load_state_dict(weights)
        obs = torch.from_numpy(buf["obs"].reshape(-1, TINY_PPO.frames, 80, 80))
        with torch.no_grad():
            lp = torch.log_softmax(net(obs)[0], dim=1)
        return lp.gather(1, torch.from_numpy(buf["action"].reshape(-1, 1))).squeeze(1)

    # rollout 0 and 1 come from the first weights, rollout k from those
    # learn() started from at update k - 1: one update behind
    behind = [seen[0][0]] + [w for w, _ in seen[:-1]]
    for k, (weights, buf) in enumerate(seen):
        stored = torch.from_numpy(buf["logp"].reshape(-1))
        assert torch.allclose(logp(behind[k], buf), stored, atol=1e-5), k
        if k >= 1:
            assert not torch.allclose(logp(weights, buf), stored, atol=1e-3), k


def test_the_overlapped_ratio_divides_by_the_acting_policys_probability():
    # one epoch of one minibatch: the only step's ratio is the current
    # policy's probability over the one that acted, a step behind: not 1
    run, seen = overlapped_run(4, epochs=1, minibatches=1, learning_rate=3e-3)
    for entry, (weights, buf) in zip(run.log[1:], seen[1:], strict=True):
        net = PongActorCritic(TINY_PPO.frames, TINY_PPO.actions)
        net.load_state_dict(weights)
        obs = torch.from_numpy(buf["obs"].reshape(-1, TINY_PPO.frames, 80, 80))
        with torch.no_grad():
            lp = torch.log_softmax(net(obs)[0], dim=1)
        new = lp.gather(1, torch.from_numpy(buf["action"].reshape(-1, 1))).squeeze(1)
        log_r = new - torch.from_numpy(buf["logp"].reshape(-1))
        kl = (log_r.exp() - 1 - log_r).mean().item()
        assert kl > 1e-5
        assert entry["approx_kl"] == pytest.approx(kl, abs=2e-5)


def test_the_minutes_recipe_of_the_live_run_is_deterministic():
    # the page's live PPO run uses it: two runs of one seed, bfloat16,
    # compiled and overlapped, must print the same numbers
    fast = replace(TINY_PPO, **PPO_RECIPES["minutes"])
    first, second = PPO(fast, seed=6), PPO(fast, seed=6)
    first.train()
    second.train()
    for k, v in first.net.state_dict().items():
        assert torch.equal(v, second.net.state_dict()[k]), k

    def drop(log):  # wall times differ, all else must not
        return [{k: v for k, v in e.items() if not k.endswith("_seconds")} for e in log]

    assert drop(first.log) == drop(second.log)
    assert first.scores == second.scores
    assert first.validations == second.validations
    assert first.compiled_loss is not None  # the compiled loss took the steps
