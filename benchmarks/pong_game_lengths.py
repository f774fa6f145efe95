"""How long Pong games last, against the emulator's time limit (issue #24).

    .venv/bin/python benchmarks/pong_game_lengths.py \
        --out artifacts/benchmarks/pong_game_lengths.json

``ALE/Pong-v5`` stops a game after ``max_num_frames_per_episode`` frames
(108,000, 27,000 agent steps at a skip of 4) and reports it as truncated. The
shipped PPO run treated that as the game's end (it predates the page's
bootstrap through truncation), and its record keeps each game's score but not
its length. This script measures what the repository's data can say:

- the shipped PPO agent's 10 test games, with its best and with its final
  weights, replayed game for game (same weights, seed and lanes as the export;
  the replayed scores must equal the shipped ones, or the script stops), with
  each game's length in agent steps;
- the length of every game of the REINFORCE run's committed checkpoint
  (``artifacts/pong-pg/checkpoint.pt.xz``, which records them);
- for the PPO run's training games, what the record bounds: how many games of
  27,000 steps its lanes' steps could hold at most.

Prints one JSON line (and writes it atomically to ``--out``), with the
command, the commit and the machine.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlbook.chapters.pong import load_network, play_games
from rlbook.chapters.pong_ppo import PongActorCritic, StackAgent
from rlbook.checkpoint import atomic_write, git_commit
from rlbook.paths import artifacts_dir
from rlbook.seeding import PONG_TEST_SEED

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from train_pong import TEST_GAMES, unpack


class LengthAgent:
    """Plays ``agent`` and counts each lane's steps per game."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.action_set = agent.action_set
        self.steps: np.ndarray | None = None
        self.lengths: list[list[int]] = []
        """per lane, the lengths of the games it finished, in order"""

    def start(self, frames: np.ndarray) -> None:
        self.steps = np.zeros(len(frames), np.int64)
        self.lengths = [[] for _ in frames]
        self.agent.start(frames)

    def act(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        assert self.steps is not None
        self.steps += 1
        return self.agent.act(frames, rng)

    def step_frames(self, frames: np.ndarray) -> None:
        self.agent.step_frames(frames)

    def new_games(self, frames: np.ndarray, mask: np.ndarray) -> None:
        assert self.steps is not None
        for lane in np.flatnonzero(mask):
            self.lengths[lane].append(int(self.steps[lane]))
            self.steps[lane] = 0
        self.agent.new_games(frames, mask)


def test_game_lengths(folder: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Replay the shipped test games of both weights; their lengths."""
    manifest = json.loads((folder / "agent.json").read_text())
    metrics = json.loads((folder / "metrics.json").read_text())
    weights = torch.load(folder / "weights.pt", map_location="cpu", weights_only=True)
    out: dict[str, Any] = {}
    for name, key in (("best", "policy"), ("final", "final_policy")):
        net = load_network(PongActorCritic, manifest["spec"]["network"], weights[key])
        agent = LengthAgent(StackAgent(net))
        lanes = 10  # play_games's default, as the export played them
        scores = play_games(
            agent, TEST_GAMES, seed=PONG_TEST_SEED, settings=settings, keep_scores=True
        ).scores.tolist()
        if scores != metrics["test"][name]:
            raise SystemExit(
                f"replayed {name} test scores {scores} differ from the shipped "
                f"{metrics['test'][name]}: not the games the export played"
            )
        lengths = [agent.lengths[g % lanes][g // lanes] for g in range(TEST_GAMES)]
        out[name] = {"scores": scores, "lengths": lengths}
    return out


def reinforce_lengths(path: Path) -> list[int]:
    """Every game's length in the REINFORCE run's committed checkpoint."""
    state = torch.load(
        io.BytesIO(unpack(path.read_bytes())), map_location="cpu", weights_only=False
    )
    return [int(n) for n in state["lengths"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    commit = git_commit()
    if args.out is not None and commit.endswith("+dirty"):
        raise SystemExit("commit your changes first: --out ships a result")
    torch.set_num_threads(1)
    start, cpu = time.perf_counter(), time.process_time()

    folder = artifacts_dir() / "pong-ppo"
    provenance = json.loads((folder / "weights.provenance.json").read_text())
    settings = provenance["config"]["settings"]
    cap_steps = settings["max_num_frames_per_episode"] // settings["frameskip"]
    tests = test_game_lengths(folder, settings)

    metrics = json.loads((folder / "metrics.json").read_text())
    envs = provenance["config"]["envs"]
    lane_steps = provenance["env_steps"] // envs
    training = {
        "games_finished": len(metrics["scores"]),
        "lanes": envs,
        "steps_per_lane": lane_steps,
        # a truncated game fills cap_steps of one lane's steps
        "truncated_at_most": envs * (lane_steps // cap_steps),
        "mean_steps_per_finished_game": provenance["env_steps"]
        / len(metrics["scores"]),
        "resumed_at_updates": provenance.get("resumed_at_updates", []),
    }

    pg = reinforce_lengths(artifacts_dir() / "pong-pg" / "checkpoint.pt.xz")
    record = {
        "benchmark": "pong_game_lengths",
        "cap_frames": settings["max_num_frames_per_episode"],
        "frameskip": settings["frameskip"],
        "cap_steps": cap_steps,
        "ppo_test_games": tests,
        "ppo_training": training,
        "reinforce_games": {
            "games": len(pg),
            "longest": max(pg),
            "at_cap": sum(n >= cap_steps for n in pg),
            "mean": float(np.mean(pg)),
        },
        "command": "python benchmarks/pong_game_lengths.py " + " ".join(sys.argv[1:]),
        "git_commit": commit,
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
        },
        "wall_s": round(time.perf_counter() - start, 1),
        "cpu_s": round(time.process_time() - cpu, 1),
    }
    line = json.dumps(record)
    print(line)
    if args.out is not None:
        atomic_write(args.out, lambda f: f.write(line.encode() + b"\n"))


if __name__ == "__main__":
    main()
