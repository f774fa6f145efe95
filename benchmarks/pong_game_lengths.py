"""How long Pong games last, against the emulator's time limit (issue #24).

    .venv/bin/python benchmarks/pong_game_lengths.py \
        --out artifacts/benchmarks/pong_game_lengths.json

``ALE/Pong-v5`` truncates a game at 108,000 frames (27,000 agent steps). The
shipped PPO run took that for the game's end and recorded scores, not
lengths. This measures what the repository's data can say: the lengths of
the shipped PPO agent's test games, best and final weights, replayed game for
game (the replayed scores must equal the shipped ones); the length of every
game in the REINFORCE run's checkpoint as committed at :data:`PG_CHECKPOINT`;
and, for the PPO run's training games, how many 27,000-step games its lanes'
steps could hold at most. Prints one JSON line (and writes it to ``--out``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
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
from train_pong import ROOT, TEST_GAMES, unpack

# The REINFORCE checkpoint measured (update 1,329), which left the tree when
# the run shipped: its games' lengths are in no other file.
PG_CHECKPOINT = "3539ed0f91d9:artifacts/pong-pg/checkpoint.pt.xz"


class LengthAgent:
    """Plays ``agent`` and records the length of each lane's games, in order."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.action_set = agent.action_set
        self.steps: np.ndarray | None = None
        self.lengths: list[list[int]] = []

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


def reinforce_lengths() -> list[int]:
    """Every game's length in the REINFORCE run's checkpoint at PG_CHECKPOINT."""
    packed = subprocess.run(
        ["git", "show", PG_CHECKPOINT], cwd=ROOT, capture_output=True, check=True
    ).stdout
    state = torch.load(
        io.BytesIO(unpack(packed)), map_location="cpu", weights_only=False
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

    pg = reinforce_lengths()
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
