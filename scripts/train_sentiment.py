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

import sys
from pathlib import Path

# The checkout this script belongs to: its code runs, its tree is checked, its
# artifacts are written (an rlbook installed from another clone is not used).
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
    for folder in (ROOT, ROOT / "src"):  # fullrun, rlbook
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    from fullrun.project import run

    return run(__doc__, __file__, "sentiment", "sentiment-lstm", project)


if __name__ == "__main__":
    sys.exit(main())
