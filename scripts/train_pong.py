"""The full runs of *Policy gradients on Pong from pixels*: REINFORCE, then PPO.

    .venv/bin/python scripts/train_pong.py reinforce --runs _build/pong
    .venv/bin/python scripts/train_pong.py ppo --runs _build/pong
    .venv/bin/python scripts/train_pong.py reinforce --runs _build/pong --export

Each run keeps its whole state in ``<runs>/<agent>/checkpoint.pt``, written
every ``--checkpoint-seconds`` and at the end, always between updates: run the
same command again after any interruption and the run goes on from its last
checkpoint (see :mod:`rlbook.pong_train` for what a resumed PPO run
restarts). ``progress.json`` beside it has the curves so far.

``--export`` tests the best and the final weights of a finished run on 10
games and writes ``artifacts/pong-pg/`` or ``artifacts/pong-ppo/`` (weights,
manifest, curves, provenance); it refuses a tree with uncommitted changes
outside ``artifacts/``. ``--snapshot`` writes, for a run still going,
``in-progress.json`` into that folder (its curves so far and their
provenance, no agent: the chapter shows it as a run in progress) and
``checkpoint.pt.xz``, the whole resumable checkpoint, compressed, so that a
run longer than a working session survives on ``main``: started where the
runs folder has no checkpoint, a run goes on from the committed one. The
export of the finished run removes both.

A resumed run keeps the budget and seed it started with: ``--budget`` or
``--seed`` that differ from the checkpoint's are refused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMITTED_CHECKPOINT = "checkpoint.pt.xz"
"""Beside the snapshot: the resumable checkpoint of a run that is not finished,
packed by :func:`pack` (it must keep the tracked tree under 40 MB)."""


def pack(data: bytes) -> bytes:
    """Compress a checkpoint losslessly: its bytes in four planes, then xz.

    A checkpoint is mostly float32 arrays, aligned in the file; putting every
    fourth byte together lets xz find the exponents' regularity (a 15.5 MB
    REINFORCE checkpoint: 11.7 MB, against 14.0 MB with gzip alone).
    """
    import lzma

    import numpy as np

    pad = (-len(data)) % 4
    planes = np.frombuffer(data + bytes(pad), np.uint8).reshape(-1, 4).T.tobytes()
    return bytes([pad]) + lzma.compress(planes, preset=6)


def unpack(packed: bytes) -> bytes:
    """The checkpoint :func:`pack` compressed, byte for byte."""
    import lzma

    import numpy as np

    pad, planes = packed[0], lzma.decompress(packed[1:])
    data = np.frombuffer(planes, np.uint8).reshape(4, -1).T.tobytes()
    return data[: len(data) - pad]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("agent", choices=["reinforce", "ppo"])
    parser.add_argument("--runs", type=Path, default=ROOT / "_build" / "pong")
    parser.add_argument("--seed", type=int, default=None, help="default 0")
    parser.add_argument(
        "--budget", default=None, choices=["smoke", "ci", "full"], help="default full"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, auto (PPO only)")
    parser.add_argument("--checkpoint-seconds", type=float, default=300.0)
    ship = parser.add_mutually_exclusive_group()
    ship.add_argument("--export", action="store_true", help="ship a finished run")
    ship.add_argument(
        "--snapshot", action="store_true", help="record an unfinished run's curves"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from rlbook.checkpoint import (
        CheckpointError,
        atomic_write,
        git_commit,
        load_checkpoint,
        save_checkpoint,
    )

    torch.set_num_threads(args.threads)
    folder = args.runs / args.agent
    checkpoint = folder / "checkpoint.pt"
    shipped = args.out or ROOT / "artifacts" / (
        "pong-pg" if args.agent == "reinforce" else "pong-ppo"
    )
    committed = shipped / COMMITTED_CHECKPOINT

    if args.agent == "reinforce":
        from rlbook.chapters.pong import Reinforce as Run
        from rlbook.chapters.pong import reinforce_config as make_config
    else:
        from rlbook.chapters.pong import PPO as Run  # type: ignore[assignment]
        from rlbook.chapters.pong import ppo_config as make_config  # type: ignore[assignment]

    if args.export or args.snapshot:
        from rlbook.checkpoint import require_clean_tree
        from rlbook.pong_train import export_pong, snapshot_pong

        try:
            require_clean_tree(ROOT)
        except CheckpointError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        if not checkpoint.exists():
            what = "export" if args.export else "snapshot"
            print(
                f"error: no run to {what}: {checkpoint} does not exist", file=sys.stderr
            )
            return 2
        try:
            state = load_checkpoint(checkpoint)
            budget = state.get("budget", "full")
            command = f"python scripts/train_pong.py {args.agent} --budget {budget}"
            if args.export:
                written = export_pong(state, shipped, command=command, root=ROOT)
                committed.unlink(missing_ok=True)
            else:
                written = snapshot_pong(state, shipped, command=command, root=ROOT)
                packed = pack(checkpoint.read_bytes())
                atomic_write(committed, lambda h: h.write(packed))
                print(f"wrote {committed} ({committed.stat().st_size / 1e6:.1f} MB)")
        except (ValueError, CheckpointError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"wrote {written}")
        return 0

    from rlbook.runlock import RunsFolderBusy, hold_runs_folder

    try:
        hold_runs_folder(folder)  # one run per runs folder
    except RunsFolderBusy as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    commits: list[str] = []
    resumed_at: list[int] = []  # updates at which the run went on from a checkpoint
    if not checkpoint.exists() and committed.exists():
        # A new machine: go on from the checkpoint committed on main.
        data = unpack(committed.read_bytes())
        atomic_write(checkpoint, lambda h: h.write(data))
        print(f"no checkpoint in {folder}: starting from {committed}", flush=True)
    budget = args.budget or "full"
    if checkpoint.exists():
        try:
            state = load_checkpoint(checkpoint)
        except CheckpointError as error:
            print(f"error: cannot resume: {error}", file=sys.stderr)
            return 2
        budget = str(state.get("budget", "full"))
        for option, asked, stored in (
            ("--budget", args.budget, budget),
            ("--seed", args.seed, state.get("seed")),
        ):
            if asked is not None and asked != stored:
                print(
                    f"error: {checkpoint} is a run with {option} {stored}, not "
                    f"{asked}: drop {option} to resume it, or use another --runs "
                    "folder for a new run",
                    file=sys.stderr,
                )
                return 2
        run = Run.from_state(state)
        commits = json.loads(state.get("commits", "[]"))
        resumed_at = [*json.loads(state.get("resumed_at", "[]")), run.update]
        print(f"resuming {checkpoint} at update {run.update}", flush=True)
    else:
        run = Run(make_config(budget), 0 if args.seed is None else args.seed)
    commit = os.environ.get("RLBOOK_GIT_COMMIT") or git_commit(ROOT)

    def save(r: Run) -> None:
        state = r.state_dict()
        state["budget"] = budget
        state["commits"] = json.dumps(sorted(set(commits) | {commit}))
        state["resumed_at"] = json.dumps(resumed_at)
        save_checkpoint(checkpoint, state)
        text = json.dumps(
            {
                "agent": args.agent,
                "update": r.update,
                "env_steps": r.env_steps,
                "wall_seconds": r.wall_seconds,
                "cpu_seconds": r.cpu_seconds,
                "scores": r.scores,
                "log": r.log,
                "validations": r.validations,
            }
        )
        atomic_write(folder / "progress.json", lambda h: h.write(text.encode()))

    last = [time.perf_counter()]

    def progress(r: Run) -> None:
        if time.perf_counter() - last[0] > 60:
            recent = r.scores[-20:]
            print(
                f"update {r.update} games {len(r.scores)} steps {r.env_steps} "
                f"wall {r.wall_seconds:.0f}s cpu {r.cpu_seconds:.0f}s last-20 mean "
                f"{sum(recent) / max(1, len(recent)):.2f}",
                flush=True,
            )
            last[0] = time.perf_counter()

    run.train(
        checkpoint=save, checkpoint_seconds=args.checkpoint_seconds, progress=progress
    )
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    sys.exit(main())
