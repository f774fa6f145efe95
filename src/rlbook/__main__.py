"""Command line of the book's shipped results.

``python -m rlbook evaluate <artifact-dir> --episodes N --seed S``
    plays a shipped agent greedily.
``python -m rlbook classify-reviews <artifact-dir> <folder>``
    classifies ``<folder>/pos/*.txt`` and ``<folder>/neg/*.txt`` with the
    shipped sentiment model.

Prints exactly one JSON line on success; on bad input, one ``error: ...`` line
on stderr and exit status 2; interrupted (Ctrl-C), one line and death by SIGINT
(status 130 in a shell).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
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
    classify = commands.add_parser(
        "classify-reviews",
        help="classify a folder of movie reviews with the shipped sentiment model",
    )
    classify.add_argument(
        "artifact", help="model folder, e.g. artifacts/sentiment-lstm"
    )
    classify.add_argument(
        "folder", help="a folder with pos/*.txt and neg/*.txt, e.g. aclImdb/test"
    )
    classify.add_argument(
        "--batch-size", type=int, default=64, help="reviews per forward pass"
    )
    return parser


INTERRUPTED = 130  # the shell's status for a command stopped by SIGINT


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        print(
            f"error: {args.command} interrupted (Ctrl-C) before it finished; "
            "nothing was printed",
            file=sys.stderr,
        )
        return INTERRUPTED


def _run(args: argparse.Namespace) -> int:
    from .agents import ArtifactError
    from .data import DataError
    from .envs import UnknownEnvironmentError
    from .evaluate import EvaluationError, evaluate_artifact
    from .projects.shipping import ModelArtifactError

    try:
        if args.command == "classify-reviews":
            if args.batch_size < 1:
                raise EvaluationError(
                    f"--batch-size must be >= 1, got {args.batch_size}"
                )
            from .chapters.sentiment_imdb import classify_reviews

            record = classify_reviews(
                args.artifact, args.folder, batch_size=args.batch_size
            )
        else:
            record = evaluate_artifact(
                args.artifact,
                episodes=args.episodes,
                seed=args.seed,
                frames=args.frames,
                envs=args.envs,
                scores=False,  # a Pong record's statistics only: bounded memory
            )
    except (
        ArtifactError,
        DataError,
        EvaluationError,
        ModelArtifactError,
        UnknownEnvironmentError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(record))
    return 0


def _exit(code: int) -> None:
    """Exit with ``code``; interrupted, die of SIGINT as the shell expects of Ctrl-C
    (its status is then 130), whatever state the interrupted imports left."""
    if code == INTERRUPTED and hasattr(signal, "SIGINT"):
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    sys.exit(code)


if __name__ == "__main__":
    _exit(main())
