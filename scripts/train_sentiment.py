"""The full run of *Sentiment analysis: an LSTM on IMDb reviews*: the shipped model.

    .venv/bin/python scripts/train_sentiment.py --export

reads IMDb from ``$RLBOOK_DATA`` (the shared subset, or the full dataset
where it can be downloaded), trains the BiLSTM of
``rlbook.projects.sentiment_run.sentiment_config("full")`` with seed 0, one epoch at
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

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs",
        type=Path,
        help="checkpoint folder (default _build/sentiment-<budget>)",
    )
    parser.add_argument(
        "--budget",
        default="full",
        choices=["smoke", "ci", "full"],
        help="full: the shipped model; smoke: seconds, to check the command",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    parser.add_argument(
        "--threads", type=int, default=0, help="CPU threads (0: torch's default)"
    )
    parser.add_argument(
        "--export", action="store_true", help="write artifacts/sentiment-lstm"
    )
    args = parser.parse_args()

    import torch
    from tqdm.auto import tqdm

    from rlbook.checkpoint import CheckpointError, make_provenance, require_clean_tree
    from rlbook.data import DataError, describe, load_imdb
    from rlbook.device import select_device
    from rlbook.paths import artifacts_dir
    from rlbook.projects.sentiment_run import (
        bag_of_words_baseline,
        prepare_reviews,
        sentiment_config,
        sentiment_spec,
        train_sentiment_lstm,
    )
    from rlbook.projects.shipping import save_model

    if args.export:
        try:
            require_clean_tree(ROOT)
        except CheckpointError as error:
            print(f"error: --export: {error}", file=sys.stderr)
            return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        train, test = load_imdb("train"), load_imdb("test")
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    config = sentiment_config(args.budget)
    runs = args.runs or ROOT / "_build" / f"sentiment-{args.budget}"
    device = select_device(args.device)
    split = prepare_reviews(
        train.texts, train.labels, test.texts, test.labels, config, args.seed
    )
    bar = tqdm(total=config.epochs, desc="BiLSTM epochs")

    def on_epoch(record: dict[str, float]) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{record['loss']:.3f}", valid=f"{record['valid']:.3f}")

    run = train_sentiment_lstm(
        split,
        config,
        args.seed,
        device=device,
        checkpoint=runs / "checkpoint.pt",
        on_epoch=on_epoch,
    )
    bar.update(config.epochs - bar.n)
    bar.close()
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
        # Every epoch's own time, summed: the run's wall time even when it
        # was resumed (each epoch's record keeps its time in the checkpoint).
        "seconds": sum(record["seconds"] for record in run.history),
    }
    summary = {
        k: metrics[k]
        for k in ("best_epoch", "best_test_accuracy", "final_test_accuracy")
    }
    print(json.dumps({**summary, "baseline_test_accuracy": baseline["test_accuracy"]}))
    if not args.export:
        return 0
    if run.resumed_from:
        metrics["seconds_note"] = (
            f"resumed after epoch {run.resumed_from}; seconds sums every epoch's time"
        )
    folder = artifacts_dir() / "sentiment-lstm"
    provenance = make_provenance(
        command=f"python scripts/train_sentiment.py --budget {args.budget} --export",
        config={**asdict(config), "seed": args.seed},
        budget=args.budget,
        device=device,
        wall_time_s=metrics["seconds"],
        score={
            "test_accuracy": run.best_test_accuracy,
            "test_reviews": data["test_reviews"],
        },
        require_clean=True,
        data=data,
    )
    save_model(
        folder,
        kind="sentiment-lstm",
        spec=sentiment_spec(config, split.vocabulary),
        model=run.best,
        provenance=provenance,
        metrics=summary,
    )
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    print(f"wrote {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
