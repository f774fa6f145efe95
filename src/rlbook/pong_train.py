"""What the Pong chapter's two runs stand on, and playing whole games with either.

The algorithms themselves, REINFORCE as ``pg-pong.py`` and PPO, are written on
the chapter's page (``chapters/pong.md``) and generated into
:mod:`rlbook.chapters.pong` for the full-run script and the tests. This
module holds the engineering around them:

* :func:`sparse_hidden`: the forward pass of a difference frame through
  ``W1`` by its nonzero pixels only (a few dozen of 6,400);
* :class:`DifferenceAgent`, :class:`StackAgent`: the per-lane preprocessing
  state of each agent, and :func:`play_games`, whole games in a bounded number
  of emulators and bounded memory (validation, the final test,
  ``python -m rlbook evaluate``);
* :class:`PongRun`: a run's record (counters, curves, validation, the
  update loop's timing and checkpoints, the checkpoint's common part);
* the shipping of a finished run (:func:`export_pong`) and the snapshot of an
  unfinished one (:func:`snapshot_pong`), for ``scripts/train_pong.py``.

A REINFORCE update starts 10 new games, so resuming from a checkpoint gives
exactly the run that never stopped. PPO's games run on across updates; its
checkpoint cannot hold the emulators' states, so a resumed PPO run restarts
the games in progress (every lane starts a new game, frame stacks empty): the
one approximation, tested, and the same weights otherwise.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .pong import (
    ACTIONS_2,
    ACTIONS_3,
    INPUTS,
    PONG_SETTINGS,
    make_pong_vector,
    prepro_batch,
    sample_actions,
)
from .seeding import PONG_TEST_SEED, numpy_stream

RUNNING_GAMES = 20
"""The running score of a training run is the mean final score of its last
``RUNNING_GAMES`` games, for both agents (fixed before any run)."""


def running_mean(scores: np.ndarray, window: int = RUNNING_GAMES) -> np.ndarray:
    """Mean of the last ``window`` scores at each game (fewer at the start)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"scores must have shape (G,), got {scores.shape}")
    cumulative = np.concatenate([[0.0], np.cumsum(scores)])
    index = np.arange(1, scores.size + 1)
    start = np.maximum(0, index - window)
    return (cumulative[index] - cumulative[start]) / (index - start)


def first_reaching(
    scores: np.ndarray, level: float, window: int = RUNNING_GAMES
) -> int | None:
    """Index of the first game at which the running mean of ``window`` full
    games reaches ``level``; ``None`` if it never does."""
    means = running_mean(scores, window)
    hit = np.flatnonzero(means[window - 1 :] >= level)
    return int(hit[0]) + window - 1 if hit.size else None


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block on ``n`` torch CPU threads.

    Playing runs the policy on a handful of frames per step, while ALE's own
    threads emulate the games: more torch threads only fight them for the
    cores (measured: two threads made a game ten times slower on a busy
    2-core machine).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def rng_state(rng: np.random.Generator) -> str:
    return json.dumps(rng.bit_generator.state)


def set_rng_state(rng: np.random.Generator, state: str) -> None:
    rng.bit_generator.state = json.loads(state)


# ---------------------------------------------------------------- sparse policy


def sparse_hidden(w1_t: torch.Tensor, x: np.ndarray) -> torch.Tensor:
    """The hidden pre-activations ``x @ W1.T``, summing only the rows of ``W1.T``
    at the nonzero pixels of ``x``.

    A difference frame has a few dozen nonzero pixels of 6,400, so this does a
    few thousand additions where the dense product does 1.28 million
    multiply-adds per frame; the results agree to float rounding (tested).

    Args:
        w1_t: ``(inputs, hidden)``, ``W1`` transposed and contiguous.
        x: ``(B, inputs)`` difference frames (any numeric dtype).
    """
    rows, cols = np.nonzero(x)
    offsets = np.searchsorted(rows, np.arange(x.shape[0]))
    weights = torch.from_numpy(x[rows, cols].astype(np.float32))
    return F.embedding_bag(
        torch.from_numpy(cols),
        w1_t,
        torch.from_numpy(offsets),
        mode="sum",
        per_sample_weights=weights.to(w1_t.dtype),
    )


@torch.no_grad()
def policy_probs_sparse(
    policy: nn.Module, w1_t: torch.Tensor, x: np.ndarray
) -> np.ndarray:
    """``policy.probs`` of a batch of difference frames, through :func:`sparse_hidden`."""
    logits = policy.out(torch.relu(sparse_hidden(w1_t, x)))
    if policy.actions == 2:
        p = torch.sigmoid(logits[:, 0])
        return torch.stack([p, 1 - p], dim=1).numpy()
    return torch.softmax(logits, dim=1).numpy()


# ---------------------------------------------------------------- agents that play


class PongAgent(Protocol):
    """What :func:`play_games` needs: per-lane preprocessing state and a policy."""

    action_set: tuple[int, ...]

    def start(self, frames: np.ndarray) -> None:
        """New games in every lane: ``(N, 210, 160, 3)`` first frames."""

    def act(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``(N,)`` action indices for the latest frames."""

    def new_games(self, frames: np.ndarray, mask: np.ndarray) -> None:
        """Lanes ``mask`` started a new game, whose first frame ``frames`` shows."""


def action_set(actions: int) -> tuple[int, ...]:
    """ALE actions of a policy with ``actions`` outputs: Karpathy's UP/DOWN
    sigmoid for 2, NOOP/UP/DOWN for 3."""
    if actions not in (2, 3):
        raise ValueError(f"Pong policies have 2 or 3 actions, not {actions}")
    return ACTIONS_2 if actions == 2 else ACTIONS_3


class DifferenceAgent:
    """Plays with a two-layer policy on difference frames (the REINFORCE agent)."""

    def __init__(self, policy: nn.Module) -> None:
        self.policy = policy.float().eval()
        self.action_set = action_set(policy.actions)
        self._w1_t = self.policy.hidden.weight.detach().t().contiguous()
        self._current: np.ndarray | None = None
        self._previous: np.ndarray | None = None

    def start(self, frames: np.ndarray) -> None:
        self._current = prepro_batch(frames)
        self._previous = self._current.copy()

    def difference(self) -> np.ndarray:
        """``(N, 6400)`` int8: the latest preprocessed frames minus the ones before."""
        assert self._current is not None and self._previous is not None
        diff = self._current.astype(np.int8) - self._previous.astype(np.int8)
        return diff.reshape(len(diff), INPUTS)

    def probs(self, x: np.ndarray) -> np.ndarray:
        """The policy's action probabilities for difference frames ``x``."""
        return policy_probs_sparse(self.policy, self._w1_t, x)

    def act(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return sample_actions(self.probs(self.difference()), rng)

    def step_frames(self, frames: np.ndarray) -> None:
        assert self._current is not None, "start() first"
        self._previous = self._current
        self._current = prepro_batch(frames)

    def new_games(self, frames: np.ndarray, mask: np.ndarray) -> None:
        assert self._current is not None and self._previous is not None
        self._previous[mask] = self._current[mask]


class StackAgent:
    """Plays with an actor-critic on the last ``frames`` preprocessed frames (PPO)."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net.float().eval()
        self.action_set = action_set(net.actions)
        self.stack: np.ndarray | None = None

    def start(self, frames: np.ndarray) -> None:
        first = prepro_batch(frames)
        self.stack = np.repeat(first[:, None], self.net.frames, axis=1)

    def step_frames(self, frames: np.ndarray) -> None:
        assert self.stack is not None, "start() first"
        self.stack = np.roll(self.stack, -1, axis=1)
        self.stack[:, -1] = prepro_batch(frames)

    def new_games(self, frames: np.ndarray, mask: np.ndarray) -> None:
        assert self.stack is not None
        self.stack[mask] = prepro_batch(frames[mask])[:, None]

    @torch.no_grad()
    def act(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        assert self.stack is not None
        logits, _ = self.net(torch.from_numpy(self.stack))
        return sample_actions(torch.softmax(logits, dim=1).numpy(), rng)


class GameScores:
    """Count, mean, standard deviation, wins, lowest and highest of whole-number
    game scores fed one at a time, and, only if asked, the scores themselves.

    Without the scores, memory does not grow with the number of games. The
    sums are Python integers, so exact: the mean is the one NumPy gives for the
    array of the scores (whose sum of whole numbers below 2**53 is exact in any
    order), whatever order the games end in. The standard deviation comes from
    the same exact sums, rounded twice (a division and a square root); NumPy's
    ``std`` of the array can differ from it in the last bit or two, because
    its pairwise sum rounds in an order set by the whole sequence, which only
    the kept scores give back.
    """

    def __init__(self, games: int, *, keep_scores: bool = False) -> None:
        self.count = 0
        self.won = 0
        """games with a positive score"""
        self.lowest = math.inf
        self.highest = -math.inf
        self._sum = 0
        self._squares = 0
        self._kept = np.zeros(games) if keep_scores else None

    def add(self, game: int, score: float) -> None:
        """Game ``game`` (its index in play order) ended with ``score``."""
        if not float(score).is_integer():
            raise ValueError(f"a Pong score is a whole number, not {score!r}")
        whole = int(score)
        self.count += 1
        self.won += whole > 0
        self.lowest = min(self.lowest, float(score))
        self.highest = max(self.highest, float(score))
        self._sum += whole
        self._squares += whole * whole
        if self._kept is not None:
            self._kept[game] = score

    @property
    def mean(self) -> float:
        return self._sum / self.count if self.count else math.nan

    @property
    def std(self) -> float:
        """The population standard deviation (NumPy's ``std``, ``ddof=0``)."""
        if not self.count:
            return math.nan
        n = self.count
        return math.sqrt((n * self._squares - self._sum * self._sum) / (n * n))

    @property
    def scores(self) -> np.ndarray:
        """Every game's score in play order (game ``g`` at index ``g``)."""
        if self._kept is None:
            raise ValueError("the scores were not kept: play with keep_scores=True")
        return self._kept


def play_games(
    agent: DifferenceAgent | StackAgent,
    games: int,
    *,
    seed: int,
    purpose: str = "test",
    settings: Mapping[str, Any] = PONG_SETTINGS,
    lanes: int = 10,
    max_steps: int | None = None,
    keep_scores: bool = False,
) -> GameScores:
    """The final scores of ``games`` whole games, at most ``lanes`` emulators
    alive, kept as running statistics (:class:`GameScores`).

    Actions are sampled from the agent's policy with the stream
    ``numpy_stream(seed, purpose)``: without sticky actions Pong is
    deterministic, so a greedy policy would play the same game every time,
    and the games differ only through the policy's own randomness. Lane ``i``
    plays games ``i``, ``i + lanes``, ...; a lane that has played its share
    steps on idle. ``max_steps`` (per lane) guards against a game that never
    ends; unfinished games raise. ``keep_scores`` also keeps every game's
    score (:attr:`GameScores.scores`); without it memory does not grow with
    ``games``.
    """
    with torch_threads(1):
        return _play_games(
            agent, games, seed, purpose, settings, lanes, max_steps, keep_scores
        )


def _play_games(
    agent: DifferenceAgent | StackAgent,
    games: int,
    seed: int,
    purpose: str,
    settings: Mapping[str, Any],
    lanes: int,
    max_steps: int | None,
    keep_scores: bool,
) -> GameScores:
    if games < 1 or lanes < 1:
        raise ValueError(f"need games >= 1 and lanes >= 1, got {games}, {lanes}")
    lanes = min(lanes, games)
    share = np.array([len(range(i, games, lanes)) for i in range(lanes)])
    rng = numpy_stream(seed, purpose)
    vec = make_pong_vector(lanes, settings, seed=seed)
    played = np.zeros(lanes, dtype=np.int64)  # games each lane has finished
    result = GameScores(games, keep_scores=keep_scores)
    try:
        frames = vec.reset()
        agent.start(frames)
        steps = 0
        while (played < share).any():
            actions = agent.act(frames, rng)
            before = vec.scores.copy()
            frames, reward, terminated, truncated = vec.step(
                np.asarray(agent.action_set)[actions]
            )
            done = terminated | truncated
            agent.step_frames(frames)
            if done.any():
                agent.new_games(frames, done)
                for lane in np.flatnonzero(done):
                    if played[lane] < share[lane]:
                        game = lane + lanes * int(played[lane])
                        result.add(game, float(before[lane] + reward[lane]))
                        played[lane] += 1
            steps += 1
            if max_steps is not None and steps >= max_steps:
                raise RuntimeError(f"games still running after {max_steps} steps")
    finally:
        vec.close()
    return result


# ---------------------------------------------------------------- a run's record


class PongRun:
    """What both runs share: counters, curves, validation, the update loop and
    the checkpoint's common part. A subclass sets :attr:`KIND` and
    :attr:`NET_KEY` and provides ``_network`` and ``_agent``."""

    KIND: str
    NET_KEY: str
    config: Any
    optimizer: torch.optim.Optimizer
    rng: np.random.Generator

    def _start_record(self, config: Any, seed: int) -> None:
        self.config = config
        self.seed = seed
        self.update = 0
        self.env_steps = 0
        self.wall_seconds = 0.0
        self.cpu_seconds = 0.0
        """CPU time of the process, every thread (ALE's too): unlike the wall
        time, neither other jobs on the machine nor a paused process add to it"""
        self.scores: list[float] = []
        self.log: list[dict[str, float]] = []
        """per update: update, env_steps, wall_seconds, cpu_seconds, games, and
        the run's own statistics"""
        self.validations: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        """``{"update", "mean", "state"}`` of the best validation so far"""

    def _network(self) -> nn.Module:
        raise NotImplementedError

    def _agent(self) -> DifferenceAgent | StackAgent:
        raise NotImplementedError

    def _loop(
        self,
        until: int,
        one_update: Callable[[], dict[str, float]],
        checkpoint: Callable[[Any], None] | None,
        checkpoint_seconds: float,
        progress: Callable[[Any], None] | None,
    ) -> None:
        """Call ``one_update`` until ``until`` updates are done, timing each,
        validating every ``validate_every`` updates and at the run's last,
        logging, and checkpointing every ``checkpoint_seconds`` and at the end."""
        last_save = time.perf_counter()
        while self.update < until:
            start, cpu = time.perf_counter(), time.process_time()
            stats = one_update()
            self.update += 1
            self.wall_seconds += time.perf_counter() - start
            self.cpu_seconds += time.process_time() - cpu
            if (
                self.update % self.config.validate_every == 0
                or self.update == self.config.updates
            ):
                self.validate()
            self.log.append(
                {
                    "update": self.update,
                    "env_steps": self.env_steps,
                    "wall_seconds": round(self.wall_seconds, 3),
                    "cpu_seconds": round(self.cpu_seconds, 3),
                    "games": len(self.scores),
                    **{k: round(v, 5) for k, v in stats.items()},
                }
            )
            if progress is not None:
                progress(self)
            if checkpoint is not None and (
                time.perf_counter() - last_save >= checkpoint_seconds
                or self.update == until
            ):
                checkpoint(self)
                last_save = time.perf_counter()

    def validate(self) -> None:
        """Score the current weights on validation games; keep the best weights."""
        start, cpu = time.perf_counter(), time.process_time()
        scores = play_games(
            self._agent(),
            self.config.validation_games,
            seed=self.seed,
            purpose=f"validation-{self.update}",
            settings=self.config.settings,
            keep_scores=True,
        ).scores
        net = self._network().train()  # the agent switched it to eval mode
        mean = float(scores.mean())
        self.validations.append(
            {"update": self.update, "mean": mean, "scores": scores.tolist()}
        )
        if self.best is None or mean > self.best["mean"]:
            self.best = {
                "update": self.update,
                "mean": mean,
                "state": {k: v.clone() for k, v in net.state_dict().items()},
            }
        self.wall_seconds += time.perf_counter() - start
        self.cpu_seconds += time.process_time() - cpu

    def state_dict(self) -> dict[str, Any]:
        """The whole run between two updates, as :func:`save_checkpoint` takes it."""
        return {
            "kind": self.KIND,
            "config": json.dumps(asdict(self.config)),
            "seed": self.seed,
            self.NET_KEY: self._network().state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": rng_state(self.rng),
            "update": self.update,
            "env_steps": self.env_steps,
            "wall_seconds": self.wall_seconds,
            "cpu_seconds": self.cpu_seconds,
            "scores": self.scores,
            "log": json.dumps(self.log),
            "validations": json.dumps(self.validations),
            "best": self.best,
        }

    def _load_record(self, state: Mapping[str, Any]) -> None:
        self._network().load_state_dict(state[self.NET_KEY])
        self.optimizer.load_state_dict(state["optimizer"])
        set_rng_state(self.rng, state["rng"])
        self.update = state["update"]
        self.env_steps = state["env_steps"]
        self.wall_seconds = state["wall_seconds"]
        self.cpu_seconds = state.get("cpu_seconds", 0.0)
        self.scores = list(state["scores"])
        self.log = json.loads(state["log"])
        self.validations = json.loads(state["validations"])
        self.best = state["best"]


def check_kind(state: Mapping[str, Any], kind: str) -> None:
    if state.get("kind") != kind:
        raise ValueError(f"not a {kind} checkpoint: kind {state.get('kind')!r}")


# ---------------------------------------------------------------- shipping

TEST_GAMES = 10
"""Games each shipped agent is tested on (the chapter's table)."""
OBSERVATIONS = {
    "difference": {
        "preprocess": "rlbook.pong.prepro_batch",
        "input": "difference of the last two preprocessed frames, zero at a game's start",
    },
    "stack": {
        "preprocess": "rlbook.pong.prepro_batch",
        "input": "the last `frames` preprocessed frames, the first repeated at a game's start",
    },
}


@dataclass(frozen=True)
class PongPolicy:
    """A shipped Pong agent: builds a fresh :class:`PongAgent` for each set of games."""

    kind: str
    net: nn.Module
    """the chapter's ``TorchPolicy`` or ``PongActorCritic``"""

    def make_agent(self) -> DifferenceAgent | StackAgent:
        return _agent_for(self.net)

    def act_batch(self, obs: np.ndarray) -> np.ndarray:  # the Policy protocol
        raise TypeError(
            "Pong agents play whole games: use rlbook.pong_train.play_games"
        )

    def act(self, obs: np.ndarray) -> int:
        raise TypeError(
            "Pong agents play whole games: use rlbook.pong_train.play_games"
        )


def _spec_for(state: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    config = json.loads(state["config"])
    if state["kind"] == "pong-reinforce":
        network = {
            "inputs": INPUTS,
            "hidden": config["hidden"],
            "actions": config["actions"],
        }
        return "pong-pg", {
            "network": network,
            "observation": dict(OBSERVATIONS["difference"]),
        }
    network = {"frames": config["frames"], "actions": config["actions"]}
    observation = {**OBSERVATIONS["stack"], "frames": config["frames"]}
    return "pong-actor-critic", {"network": network, "observation": observation}


def _build_pong(
    kind: str, spec: Mapping[str, Any], weights: Mapping[str, Any]
) -> PongPolicy:
    from .pong import _check_settings

    _check_settings(spec["settings"])
    expected = OBSERVATIONS["difference" if kind == "pong-pg" else "stack"][
        "preprocess"
    ]
    if spec["observation"]["preprocess"] != expected:
        raise ValueError(
            f"{kind} agents see frames through {expected}, not "
            f"{spec['observation']['preprocess']!r}"
        )
    net = _net_for(kind, spec["network"], weights["policy"])
    if tuple(spec["action_set"]) != action_set(net.actions):
        raise ValueError(
            f"action_set {spec['action_set']} is not the {net.actions}-action "
            f"policy's {list(action_set(net.actions))}"
        )
    return PongPolicy(kind, net)


def _register() -> None:
    from .agents import register_kind

    for kind in ("pong-pg", "pong-actor-critic"):
        register_kind(kind)(
            lambda spec, weights, kind=kind: _build_pong(kind, spec, weights)
        )


_register()


def _net_for(
    kind: str, network: Mapping[str, Any], weights: Mapping[str, torch.Tensor]
) -> nn.Module:
    """The network of a shipped ``kind``, holding ``weights`` (cast to float32)."""
    from .chapters.pong import PongActorCritic, TorchPolicy

    net = (TorchPolicy if kind == "pong-pg" else PongActorCritic)(**network)
    net.load_state_dict(weights)
    return net.float().eval()


def _agent_for(net: nn.Module) -> DifferenceAgent | StackAgent:
    from .chapters.pong import TorchPolicy

    if isinstance(net, TorchPolicy):
        return DifferenceAgent(net)
    return StackAgent(net)


def test_weights(
    state: Mapping[str, Any],
    weights: Mapping[str, torch.Tensor],
    games: int = TEST_GAMES,
) -> np.ndarray:
    """Scores of ``games`` test games with ``weights`` of the run ``state``."""
    kind, spec = _spec_for(state)
    agent = _agent_for(_net_for(kind, spec["network"], weights))
    settings = json.loads(state["config"])["settings"]
    return play_games(
        agent, games, seed=PONG_TEST_SEED, settings=settings, keep_scores=True
    ).scores


PROGRESS_FILE = "in-progress.json"


def planned_updates(state: Mapping[str, Any]) -> int:
    """How many updates the run ``state`` was configured for."""
    from .chapters.pong import PPOConfig, ReinforceConfig

    config = json.loads(state["config"])
    run_config = ReinforceConfig if state["kind"] == "pong-reinforce" else PPOConfig
    return run_config(**config).updates


def snapshot_pong(
    state: Mapping[str, Any],
    out: str | Path,
    *,
    command: str,
    root: str | Path | None = None,
) -> Path:
    """Record where an unfinished full run stands, without shipping an agent.

    Writes ``out/in-progress.json``: the run's curves so far (scores, log,
    validations), how far it has gone of its planned updates, and where it came
    from. No weights ship with it and nothing is tested: a chapter shows it as
    a run in progress, never as a result. :func:`export_pong` removes it once
    the finished run ships. ``scripts/train_pong.py --snapshot`` refuses a
    tree with uncommitted changes before it calls this; ``root`` is that
    checkout, whose commit the provenance records.
    """
    from .checkpoint import atomic_write, make_provenance

    config = json.loads(state["config"])
    planned = planned_updates(state)
    if state["update"] >= planned:
        raise ValueError(
            f"the run has finished ({state['update']} of {planned} updates): "
            "export it with --export instead"
        )
    record = {
        "kind": state["kind"],
        "update": int(state["update"]),
        "planned_updates": int(planned),
        "env_steps": int(state["env_steps"]),
        "wall_seconds": round(float(state["wall_seconds"]), 1),
        "cpu_seconds": round(float(state.get("cpu_seconds", 0.0)), 1),
        "scores": np.asarray(state["scores"]).tolist(),
        "log": json.loads(state["log"]),
        "validations": json.loads(state["validations"]),
        "provenance": make_provenance(
            command=command,
            config=config,
            budget=state.get("budget", "full"),
            device="cpu",
            wall_time_s=state["wall_seconds"],
            trained_at_commits=json.loads(state.get("commits", "[]")),
            resumed_at_updates=json.loads(state.get("resumed_at", "[]")),
            cpu_count=os.cpu_count(),
            root=root,
        ),
    }
    Path(out).mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, separators=(",", ":")) + "\n"
    target = Path(out) / PROGRESS_FILE
    atomic_write(target, lambda handle: handle.write(text.encode()))
    return target


def export_pong(
    state: Mapping[str, Any],
    out: str | Path,
    *,
    command: str,
    root: str | Path | None = None,
) -> Path:
    """Ship a finished run: its best-validation weights as the agent, both tested.

    The rule, fixed before the runs: the shipped weights are those of the
    run's best validation (10 games every ``validate_every`` updates, the last
    at the final update; ties go to the earlier); the final weights ship
    beside them and both are tested on :data:`TEST_GAMES` games.
    ``scripts/train_pong.py --export`` refuses a tree with uncommitted changes
    before it calls this; ``root`` is that checkout, whose commit the
    provenance records. The manifest lists the SHA-256 of ``metrics.json``
    too, so a changed curve fails on load.
    """
    from .agents import save_agent
    from .checkpoint import git_commit, make_provenance

    config = json.loads(state["config"])
    updates = planned_updates(state)
    if state["update"] < updates:
        raise ValueError(
            f"the run is at update {state['update']} of {updates}: finish it before exporting"
        )

    def half(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}

    net_key = "policy" if state["kind"] == "pong-reinforce" else "net"
    best, final = half(state["best"]["state"]), half(state[net_key])
    tests = {"best": test_weights(state, best), "final": test_weights(state, final)}
    kind, spec = _spec_for(state)
    spec.update(
        settings=config["settings"],
        action_set=list(action_set(config["actions"])),
        play="actions sampled from the policy (greedy play repeats one game: Pong "
        "without sticky actions is deterministic)",
        best_update=state["best"]["update"],
    )
    log = json.loads(state["log"])
    scores = np.asarray(state["scores"])
    reached = first_reaching(scores, 18.0) if kind == "pong-actor-critic" else None
    reached_zero = first_reaching(scores, 0.0)
    game_update = np.searchsorted(
        [e["games"] for e in log], np.arange(1, scores.size + 1)
    )

    def at_game(g: int | None) -> dict[str, Any] | None:
        if g is None:
            return None
        entry = log[int(game_update[g])]
        return {
            "game": g + 1,
            "env_steps": entry["env_steps"],
            "wall_seconds": entry["wall_seconds"],
            "cpu_seconds": entry.get("cpu_seconds"),
        }

    score = {
        "test_best_mean": float(tests["best"].mean()),
        "test_final_mean": float(tests["final"].mean()),
        "test_best": tests["best"].tolist(),
        "test_final": tests["final"].tolist(),
        "games": TEST_GAMES,
        "seed": PONG_TEST_SEED,
    }
    provenance = make_provenance(
        command=command,
        config=config,
        budget=state.get("budget", "full"),
        device="cpu",
        wall_time_s=state["wall_seconds"],
        score=score,
        trained_at_commits=json.loads(state.get("commits", "[]")),
        resumed_at_updates=json.loads(state.get("resumed_at", "[]")),
        exported_at_commit=git_commit(root),
        env_steps=state["env_steps"],
        cpu_count=os.cpu_count(),
        cpu_time_s=round(state.get("cpu_seconds", 0.0), 1),
        updates=state["update"],
        chosen_by="the weights of the best validation (10 games each); ties to the earlier",
        running_mean_games=RUNNING_GAMES,
        first_running_mean_at_least_18=at_game(reached),
        first_running_mean_at_least_0=at_game(reached_zero),
        root=root,
    )
    metrics = {
        "kind": kind,
        "scores": scores.tolist(),
        "log": log,
        "validations": json.loads(state["validations"]),
        "test": {k: v.tolist() for k, v in tests.items()},
        "best_update": state["best"]["update"],
    }
    text = json.dumps(metrics, separators=(",", ":")) + "\n"
    save_agent(
        out,
        kind=kind,
        env_id=config["settings"]["env_id"],
        spec=spec,
        weights={"policy": best, "final_policy": final},
        provenance=provenance,
        files={"metrics.json": text.encode()},  # listed in the manifest, written last
    )
    # the finished run replaces any snapshot of it in progress
    (Path(out) / PROGRESS_FILE).unlink(missing_ok=True)
    return Path(out)
