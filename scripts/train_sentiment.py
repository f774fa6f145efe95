"""The full run of *Sentiment analysis: an LSTM on IMDb reviews*: the shipped model.

    .venv/bin/python scripts/train_sentiment.py --export

reads IMDb from ``$RLBOOK_DATA`` (the shared subset, or the full dataset
where it can be downloaded), trains the BiLSTM of
``rlbook.chapters.sentiment_imdb.sentiment_config("full")`` with seed 0, one epoch at
a time, writing ``<runs>/checkpoint.pt`` after each: run the same command
again after an interruption and it goes on from the last finished epoch to
the weights it would have reached without stopping. Then it fits the
bag-of-words baseline on the same training reviews, and with ``--export``
writes ``artifacts/sentiment-lstm/``: the best epoch's weights (by validation
accuracy, ties to the earlier, a rule fixed in ``rlbook.projects.runs``) in
float16, and ``metrics.json`` with the curves, the test accuracy of the best
*and* the final weights, and the baseline's. ``--export`` refuses a tree
with uncommitted changes outside ``artifacts/``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

# The checkout this script belongs to: its code runs, its tree is checked, its
# artifacts are written (an rlbook installed from another clone is not used).
ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    if str(ROOT / "src") not in sys.path:
        sys.path.insert(0, str(ROOT / "src"))
    from rlbook.projects import script

    args = script.parser(__doc__, "sentiment", "sentiment-lstm").parse_args()
    device, runs = script.start(args, "sentiment", ROOT)
    script.hold(runs)  # one run per runs folder

    from rlbook.chapters.sentiment_imdb import (
        bag_of_words_baseline,
        prepare_reviews,
        sentiment_config,
        sentiment_spec,
        train_sentiment_lstm,
    )
    from rlbook.data import describe, load_imdb

    train, test = script.load(load_imdb)
    config = sentiment_config(args.budget)
    split = prepare_reviews(
        train.texts, train.labels, test.texts, test.labels, config, args.seed
    )
    with (
        script.resuming(runs / "checkpoint.pt"),
        script.epoch_bar(
            config.epochs,
            "BiLSTM epochs",
            lambda r: {"loss": f"{r['loss']:.3f}", "valid": f"{r['valid']:.3f}"},
        ) as on_epoch,
    ):
        run = train_sentiment_lstm(
            split,
            config,
            args.seed,
            device=device,
            checkpoint=runs / "checkpoint.pt",
            on_epoch=on_epoch,
        )
    baseline = bag_of_words_baseline(split)
    data = {
        "train": describe(train),
        "train_reviews": len(split.train_labels),
        "valid_reviews": len(split.valid_labels),
        "test": describe(test),
        "test_reviews": len(split.test_labels),
        "vocabulary": len(split.vocabulary),
        "test_unknown_rate": split.vocabulary.unknown_rate(split.test_tokens),
    }
    metrics = {
        "seed": args.seed,
        "config": asdict(config),
        "data": data,
        "history": run.history,
        "best_epoch": run.best_epoch,
        "best_test_accuracy": run.best_test_accuracy,
        "final_test_accuracy": run.final_test_accuracy,
        "baseline": baseline,
        "device": str(device),
        "seconds": script.epoch_seconds(run.history),
    }
    summary = {
        k: metrics[k]
        for k in ("best_epoch", "best_test_accuracy", "final_test_accuracy")
    }
    print(json.dumps({**summary, "baseline_test_accuracy": baseline["test_accuracy"]}))
    if args.export:
        script.ship(
            "sentiment-lstm",
            root=ROOT,
            script="train_sentiment.py",
            args=args,
            config=config,
            device=device,
            run=run,
            metrics=metrics,
            summary=summary,
            score={
                "test_accuracy": run.best_test_accuracy,
                "test_reviews": data["test_reviews"],
            },
            kind="sentiment-lstm",
            spec=sentiment_spec(config, split.vocabulary),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
