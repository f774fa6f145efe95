"""The full run of *Image classification: ResNet-18 on CIFAR-10*: the shipped model.

    .venv/bin/python scripts/train_resnet.py --export

reads CIFAR-10 from ``$RLBOOK_DATA`` (the shared subset, or the full
dataset where it can be downloaded), trains the ResNet-18 of
``rlbook.projects.resnet_run.resnet_config("full")`` with seed 0, one epoch
at a time, writing ``<runs>/checkpoint.pt`` after each: run the same command
again after an interruption and it goes on from the last finished epoch to
the weights it would have reached without stopping. With ``--export`` it
writes ``artifacts/resnet18-cifar/``: the best epoch's weights (by
validation accuracy, ties to the earlier, a rule fixed in
``rlbook.projects.runs``) in int8 with per-channel scales, and ``metrics.json`` with the curves
and the test accuracy and confusion matrix of the best *and* the final
weights. ``--export`` refuses a tree with uncommitted changes outside
``artifacts/``.
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
        "--runs", type=Path, help="checkpoint folder (default _build/resnet-<budget>)"
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
        "--export", action="store_true", help="write artifacts/resnet18-cifar"
    )
    args = parser.parse_args()

    import torch
    from tqdm.auto import tqdm

    from rlbook.checkpoint import CheckpointError, make_provenance, require_clean_tree
    from rlbook.data import DataError, describe, load_cifar10
    from rlbook.device import select_device
    from rlbook.paths import artifacts_dir
    from rlbook.projects.resnet_run import (
        SHIPPED_WEIGHTS,
        resnet_config,
        resnet_spec,
        split_images,
        train_resnet,
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
        train, test = load_cifar10("train"), load_cifar10("test")
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    config = resnet_config(args.budget)
    runs = args.runs or ROOT / "_build" / f"resnet-{args.budget}"
    device = select_device(args.device)
    split = split_images(
        train.images, train.labels, test.images, test.labels, config, args.seed
    )
    bar = tqdm(total=config.epochs, desc="ResNet-18 epochs")

    def on_epoch(record: dict[str, float]) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{record['loss']:.3f}", valid=f"{record['valid']:.3f}")

    run = train_resnet(
        split,
        config,
        args.seed,
        device=device,
        checkpoint=runs / "checkpoint.pt",
        on_epoch=on_epoch,
    )
    bar.update(config.epochs - bar.n)
    bar.close()
    data = {
        "train": describe(train),
        "train_images": int(split.train_labels.numel()),
        "valid_images": int(split.valid_labels.numel()),
        "test": describe(test),
        "test_images": int(split.test_labels.numel()),
    }
    metrics = {
        "seed": args.seed,
        "config": asdict(config),
        "recipe": asdict(config.train_config()),
        "data": data,
        "classes": list(train.classes),
        "history": run.history,
        "best_epoch": run.best_epoch,
        "best_test_accuracy": run.best_test_accuracy,
        "final_test_accuracy": run.final_test_accuracy,
        "best_confusion": run.best_confusion.tolist(),
        "final_confusion": run.final_confusion.tolist(),
        "device": str(device),
        "threads": torch.get_num_threads(),
        # Every epoch's own time, summed: the run's wall time even when it
        # was resumed (each epoch's record keeps its time in the checkpoint).
        "seconds": sum(record["seconds"] for record in run.history),
    }
    summary = {
        k: metrics[k]
        for k in ("best_epoch", "best_test_accuracy", "final_test_accuracy")
    }
    print(json.dumps(summary))
    if not args.export:
        return 0
    if run.resumed_from:
        metrics["seconds_note"] = (
            f"resumed after epoch {run.resumed_from}; seconds sums every epoch's time"
        )
    folder = artifacts_dir() / "resnet18-cifar"
    provenance = make_provenance(
        command=f"python scripts/train_resnet.py --budget {args.budget} --export",
        config={**asdict(config), "seed": args.seed},
        budget=args.budget,
        device=device,
        wall_time_s=metrics["seconds"],
        score={
            "test_accuracy": run.best_test_accuracy,
            "test_images": data["test_images"],
        },
        require_clean=True,
        data=data,
    )
    save_model(
        folder,
        kind="resnet18-cifar",
        spec=resnet_spec(config, train.classes),
        model=run.best,
        provenance=provenance,
        metrics=summary,
        weight_format=SHIPPED_WEIGHTS,
    )
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    print(f"wrote {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
