"""The full run of *A variational autoencoder on MNIST*: the shipped model.

    .venv/bin/python scripts/train_vae.py --export

reads MNIST from ``$RLBOOK_DATA`` (the shared subset, or the full dataset
where it can be downloaded), trains the VAE of
``rlbook.projects.vae_run.vae_config("full")`` with seed 0, one epoch at a
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

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=Path, help="checkpoint folder (default _build/vae-<budget>)"
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
        "--export", action="store_true", help="write artifacts/vae-mnist"
    )
    args = parser.parse_args()

    import torch
    from tqdm.auto import tqdm

    from rlbook.checkpoint import CheckpointError, make_provenance, require_clean_tree
    from rlbook.data import DataError, describe, load_mnist
    from rlbook.device import select_device
    from rlbook.paths import artifacts_dir
    from rlbook.projects.shipping import save_model
    from rlbook.projects.vae_run import split_digits, train_vae, vae_config, vae_spec

    if args.export:
        try:
            require_clean_tree(ROOT)
        except CheckpointError as error:
            print(f"error: --export: {error}", file=sys.stderr)
            return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        train, test = load_mnist("train"), load_mnist("test")
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    config = vae_config(args.budget)
    runs = args.runs or ROOT / "_build" / f"vae-{args.budget}"
    device = select_device(args.device)
    split = split_digits(train.images, test.images, config, args.seed)
    bar = tqdm(total=config.epochs, desc="VAE epochs")

    def on_epoch(record: dict[str, float]) -> None:
        bar.update(1)
        bar.set_postfix(
            loss=f"{record['loss']:.1f}", valid=f"{record['valid_loss']:.1f}"
        )

    run = train_vae(
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
        # Every epoch's own time, summed: the run's wall time even when it
        # was resumed (each epoch's record keeps its time in the checkpoint).
        "seconds": sum(record["seconds"] for record in run.history),
    }
    summary = {
        "best_epoch": run.best_epoch,
        "best_test_loss": run.best_test["loss"],
        "final_test_loss": run.final_test["loss"],
    }
    print(json.dumps(summary))
    if not args.export:
        return 0
    if run.resumed_from:
        metrics["seconds_note"] = (
            f"resumed after epoch {run.resumed_from}; seconds sums every epoch's time"
        )
    folder = artifacts_dir() / "vae-mnist"
    provenance = make_provenance(
        command=f"python scripts/train_vae.py --budget {args.budget} --export",
        config={**asdict(config), "seed": args.seed},
        budget=args.budget,
        device=device,
        wall_time_s=metrics["seconds"],
        score={
            "test_loss_per_image": run.best_test["loss"],
            "test_images": data["test_images"],
        },
        require_clean=True,
        data=data,
    )
    save_model(
        folder,
        kind="vae-mnist",
        spec=vae_spec(config),
        model=run.best,
        provenance=provenance,
        metrics=summary,
    )
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    print(f"wrote {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
