"""A small shipped record of a PPO run that was not exported: its curve, thinned.

    .venv/bin/python scripts/thin_pong_run.py RUN_FOLDER \
        --out artifacts/pong-ppo-fast/dev-frames-2.json \
        --what "seed 0 of the fast recipe with 2 frames, ..." [--log LOG] [--every 8]

``RUN_FOLDER`` is a runs folder of ``scripts/train_pong.py``. The record keeps
every game's score, the log's cumulative columns every ``--every`` updates
and at the last, the validations, and the run's config, seed, budget,
commits and resumptions. ``--what`` says in words what the run was; ``--log``
adds the last progress line the run printed, which can be later than its
last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CURVE_COLUMNS = ["update", "env_steps", "games", "run_wall_seconds", "run_cpu_seconds"]
LOG_LINE = re.compile(
    r"update (?P<update>\d+) games (?P<games>\d+) steps (?P<env_steps>\d+) "
    r"wall (?P<wall_seconds>[\d.]+)s cpu (?P<cpu_seconds>[\d.]+)s "
    r"last-20 mean (?P<running_mean>-?[\d.]+)"
)


def last_logged(log: Path) -> dict[str, Any] | None:
    """The last progress line ``train_pong.py`` printed, parsed, or None."""
    lines = [m for line in log.read_text().splitlines() if (m := LOG_LINE.search(line))]
    if not lines:
        return None
    fields = lines[-1].groupdict()
    out: dict[str, Any] = {k: int(fields[k]) for k in ("update", "games", "env_steps")}
    out.update(
        {k: float(fields[k]) for k in ("wall_seconds", "cpu_seconds", "running_mean")}
    )
    return out


def thin(progress: dict[str, Any], state: dict[str, Any], every: int) -> dict[str, Any]:
    """The record of a run from its progress file and its checkpoint's state."""
    if every < 1:
        raise ValueError(f"every must be at least 1, got {every}")
    log = progress["log"]
    if not log:
        raise ValueError("the run has no update yet")
    keep = [e for e in log if e["update"] % every == 0]
    if keep[-1:] != [log[-1]]:
        keep.append(log[-1])
    return {
        "kind": "pong-ppo-run-curve",
        "seed": int(state["seed"]),
        "config": json.loads(state["config"]),
        "budget": state.get("budget"),
        "updates": progress["update"],
        "env_steps": progress["env_steps"],
        "games": len(progress["scores"]),
        "run_wall_seconds": round(progress["wall_seconds"], 1),
        "run_cpu_seconds": round(progress["cpu_seconds"], 1),
        "scores": [int(s) for s in progress["scores"]],
        "curve_columns": CURVE_COLUMNS,
        "curve": [
            [
                e["update"],
                e["env_steps"],
                e["games"],
                round(e["wall_seconds"], 1),
                round(e["cpu_seconds"], 1),
            ]
            for e in keep
        ],
        "validations": [
            {"update": v["update"], "mean": v["mean"]} for v in progress["validations"]
        ],
        "trained_at_commits": json.loads(state.get("commits", "[]")),
        "resumed_at_updates": json.loads(state.get("resumed_at", "[]")),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the run's folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--what", required=True, help="what the run was, in words")
    parser.add_argument("--log", type=Path, default=None, help="the run's printed log")
    parser.add_argument("--every", type=int, default=8, help="keep every Nth update")
    args = parser.parse_args()

    from rlbook.checkpoint import (
        atomic_write,
        git_commit,
        load_checkpoint,
        machine_fingerprint,
    )

    progress = json.loads((args.run / "progress.json").read_text())
    state = load_checkpoint(args.run / "checkpoint.pt")
    if state["update"] != progress["update"]:
        print(
            f"error: the checkpoint is at update {state['update']}, its progress "
            f"file at {progress['update']}",
            file=sys.stderr,
        )
        return 2
    record = thin(progress, state, args.every)
    record["provenance"] = {
        "what": args.what,
        "last_logged": last_logged(args.log) if args.log else None,
        "command": "python scripts/thin_pong_run.py RUN_FOLDER "
        + f"--out {args.out} --every {args.every}"
        + (" --log LOG" if args.log else ""),
        "git_commit": git_commit(ROOT),
        "date": time.strftime("%Y-%m-%d"),
        "thinned_on": machine_fingerprint(),
    }
    text = json.dumps(record, separators=(",", ":")) + "\n"
    atomic_write(args.out, lambda f: f.write(text.encode()))
    print(f"wrote {args.out} ({len(text):,} bytes, {len(record['curve'])} rows)")
    return 0


if __name__ == "__main__":
    sys.path[:0] = [str(ROOT / "src")]
    sys.exit(main())
