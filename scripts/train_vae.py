"""The full run of *A variational autoencoder on MNIST*: the shipped model.

    .venv/bin/python scripts/train_vae.py --export

trains ``rlbook.chapters.vae_mnist.vae_config("full")`` on MNIST from
``$RLBOOK_DATA`` and ships ``artifacts/vae-mnist/``: the float16 weights of
the epoch with the lowest validation loss (ties to the earlier), and the
test loss of the best *and* the final weights. See ``fullrun.project``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def project():
    """The VAE chapter's part of the run (fullrun.project.run does the rest)."""
    from fullrun.project import Project, Report
    from rlbook.chapters.vae_mnist import (
        load_mnist,
        split_digits,
        train_vae,
        vae_config,
        vae_spec,
    )
    from rlbook.data import describe

    def report(train, test, split, config, run) -> Report:
        data = {
            "train": describe(train),
            "train_images": int(split.train.shape[0]),
            "valid_images": int(split.valid.shape[0]),
            "test": describe(test),
            "test_images": int(split.test.shape[0]),
        }
        return Report(
            metrics={
                "data": data,
                "history": run.history,
                "best_epoch": run.best_epoch,
                "best_test": run.best_test,
                "final_test": run.final_test,
            },
            summary={
                "best_epoch": run.best_epoch,
                "best_test_loss": run.best_test["loss"],
                "final_test_loss": run.final_test["loss"],
            },
            score={
                "test_loss_per_image": run.best_test["loss"],
                "test_images": data["test_images"],
            },
            spec=vae_spec(config),
        )

    return Project(
        load=load_mnist,
        config=vae_config,
        prepare=lambda train, test, config, seed: split_digits(
            train.images, test.images, config, seed
        ),
        train=train_vae,
        bar="VAE epochs",
        postfix=lambda r: {
            "loss": f"{r['loss']:.1f}",
            "valid": f"{r['valid_loss']:.1f}",
        },
        report=report,
    )


def main() -> int:
    # This checkout's code runs, its tree is checked, its artifacts written.
    sys.path[:0] = [str(ROOT), str(ROOT / "src")]  # fullrun, rlbook
    from fullrun.project import run

    return run(__doc__, __file__, "vae", "vae-mnist", project)


if __name__ == "__main__":
    sys.exit(main())
