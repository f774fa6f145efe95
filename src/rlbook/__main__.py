"""Command line: ``python -m rlbook evaluate <artifact-dir> --episodes N --seed S``.

Prints exactly one JSON line on success; on bad input, one ``error: ...`` line
on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rlbook", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    evaluate = commands.add_parser("evaluate", help="evaluate a shipped agent greedily")
    evaluate.add_argument("artifact", help="agent folder, e.g. artifacts/q-learning")
    evaluate.add_argument(
        "--episodes", type=int, default=100, help="episodes (default 100)"
    )
    evaluate.add_argument(
        "--seed", type=int, default=10_000, help="first episode's seed"
    )
    evaluate.add_argument(
        "--frames",
        choices=["gymnasium", "batched", "simple"],
        help="agents that play from pixels: Gymnasium's own frames, the batched "
        "redraw of them, or simple frames (default: those the agent was trained on)",
    )
    evaluate.add_argument(
        "--envs", type=int, default=8, help="pixel agents: environments alive at once"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .agents import ArtifactError
    from .envs import UnknownEnvironmentError
    from .evaluate import evaluate_artifact

    try:
        record = evaluate_artifact(
            args.artifact,
            episodes=args.episodes,
            seed=args.seed,
            frames=args.frames,
            envs=args.envs,
        )
    except (ArtifactError, UnknownEnvironmentError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
