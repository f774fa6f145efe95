"""The full run of *A variational autoencoder on MNIST*: the shipped model.

    .venv/bin/python scripts/train_vae.py --export

reads MNIST from ``$RLBOOK_DATA`` (the shared subset, or the full dataset
where it can be downloaded), trains the VAE of
``rlbook.chapters.vae_mnist.vae_config("full")`` with seed 0, one epoch at a
time, writing ``<runs>/checkpoint.pt`` after each: run the same command
again after an interruption and it goes on from the last finished epoch to
the weights it would have reached without stopping. With ``--export`` it
writes ``artifacts/vae-mnist/``: the weights of the epoch with the lowest
validation loss (ties to the earlier, a rule fixed in
``rlbook.projects.runs``) in float16, and ``metrics.json`` with the curves
and the test loss of the best *and* the final weights. ``--export`` refuses
a tree with uncommitted changes outside ``artifacts/``.
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

    args = script.parser(__doc__, "vae", "vae-mnist").parse_args()
    device, runs = script.start(args, "vae", ROOT)
    script.hold(runs)  # one run per runs folder

    import torch

    from rlbook.chapters.vae_mnist import (
        split_digits,
        train_vae,
        vae_config,
        vae_spec,
    )
    from rlbook.data import describe, load_mnist

    train, test = script.load(load_mnist)
    config = vae_config(args.budget)
    split = split_digits(train.images, test.images, config, args.seed)
    with (
        script.resuming(runs / "checkpoint.pt"),
        script.epoch_bar(
            config.epochs,
            "VAE epochs",
            lambda r: {"loss": f"{r['loss']:.1f}", "valid": f"{r['valid_loss']:.1f}"},
        ) as on_epoch,
    ):
        run = train_vae(
            split,
            config,
            args.seed,
            device=device,
            checkpoint=runs / "checkpoint.pt",
            on_epoch=on_epoch,
        )
    data = {
        "train": describe(train),
        "train_images": int(split.train.shape[0]),
        "valid_images": int(split.valid.shape[0]),
        "test": describe(test),
        "test_images": int(split.test.shape[0]),
    }
    metrics = {
        "seed": args.seed,
        "config": asdict(config),
        "data": data,
        "history": run.history,
        "best_epoch": run.best_epoch,
        "best_test": run.best_test,
        "final_test": run.final_test,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "seconds": script.epoch_seconds(run.history),
    }
    summary = {
        "best_epoch": run.best_epoch,
        "best_test_loss": run.best_test["loss"],
        "final_test_loss": run.final_test["loss"],
    }
    print(json.dumps(summary))
    if args.export:
        script.ship(
            "vae-mnist",
            root=ROOT,
            script="train_vae.py",
            args=args,
            config=config,
            device=device,
            run=run,
            metrics=metrics,
            summary=summary,
            score={
                "test_loss_per_image": run.best_test["loss"],
                "test_images": data["test_images"],
            },
            kind="vae-mnist",
            spec=vae_spec(config),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
