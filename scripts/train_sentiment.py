"""The full run of *Sentiment analysis: an LSTM on IMDb reviews*: the shipped model.

    .venv/bin/python scripts/train_sentiment.py --export

trains the BiLSTM of ``rlbook.chapters.sentiment_imdb.sentiment_config("full")``
on IMDb from ``$RLBOOK_DATA``, fits the bag-of-words baseline on the same
reviews, and ships ``artifacts/sentiment-lstm/``: the float16 weights of the
best epoch by validation accuracy (ties to the earlier), and the test
accuracy of the best *and* the final weights and of the baseline. See
``fullrun.project``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def project():
    """The sentiment chapter's part of the run (fullrun.project.run does the rest)."""
    from fullrun.project import Project, Report
    from rlbook.chapters.sentiment_imdb import (
        bag_of_words_baseline,
        load_imdb,
        prepare_reviews,
        sentiment_config,
        sentiment_spec,
        train_sentiment_lstm,
    )
    from rlbook.data import describe

    def report(train, test, split, config, run) -> Report:
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
        summary = {
            "best_epoch": run.best_epoch,
            "best_test_accuracy": run.best_test_accuracy,
            "final_test_accuracy": run.final_test_accuracy,
        }
        return Report(
            metrics={
                "data": data,
                "history": run.history,
                **summary,
                "baseline": baseline,
            },
            summary=summary,
            printed={"baseline_test_accuracy": baseline["test_accuracy"]},
            score={
                "test_accuracy": run.best_test_accuracy,
                "test_reviews": data["test_reviews"],
            },
            spec=sentiment_spec(config, split.vocabulary),
        )

    return Project(
        load=load_imdb,
        config=sentiment_config,
        prepare=lambda train, test, config, seed: prepare_reviews(
            train.texts, train.labels, test.texts, test.labels, config, seed
        ),
        train=train_sentiment_lstm,
        bar="BiLSTM epochs",
        report=report,
    )


def main() -> int:
    # This checkout's code runs, its tree is checked, its artifacts written.
    sys.path[:0] = [str(ROOT), str(ROOT / "src")]  # fullrun, rlbook
    from fullrun.project import run

    return run(__doc__, __file__, "sentiment", "sentiment-lstm", project)


if __name__ == "__main__":
    sys.exit(main())
