"""The full run of *Image classification: ResNet-18 on CIFAR-10*: the shipped model.

    .venv/bin/python scripts/train_resnet.py --export

reads CIFAR-10 from ``$RLBOOK_DATA`` (the shared subset, or the full
dataset where it can be downloaded), trains the ResNet-18 of
``rlbook.chapters.resnet_cifar.resnet_config("full")`` with seed 0, one epoch
at a time, writing ``<runs>/checkpoint.pt`` after each: run the same command
again after an interruption and it goes on from the last finished epoch to
the weights it would have reached without stopping. With ``--export`` it
writes ``artifacts/resnet18-cifar/``: the final weights, in int8 with
per-channel scales (a one-cycle schedule ends its learning rate near zero on
purpose, and 466 validation images, a standard error of about 2 points,
cannot pick between its last epochs: validation stays a diagnostic), and
``metrics.json`` with the curves and the test accuracy and confusion matrix
of the final *and* the best-validation weights. ``--export`` refuses a tree
with uncommitted changes outside ``artifacts/``.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

# The checkout this script belongs to: its code runs, its tree is checked, its
# artifacts are written (an rlbook installed from another clone is not used).
ROOT = Path(__file__).resolve().parents[1]


def project():
    """The ResNet chapter's part of the run (fullrun.project.run does the rest)."""
    from fullrun.project import Project, Report
    from rlbook.chapters.resnet_cifar import (
        SHIPPED_WEIGHTS,
        load_cifar10,
        resnet_config,
        resnet_spec,
        split_images,
        train_resnet,
    )
    from rlbook.data import describe

    def report(train, test, split, config, run) -> Report:
        data = {
            "train": describe(train),
            "train_images": int(split.train_labels.numel()),
            "valid_images": int(split.valid_labels.numel()),
            "test": describe(test),
            "test_images": int(split.test_labels.numel()),
        }
        summary = {
            "shipped": "final",
            "best_epoch": run.best_epoch,
            "best_test_accuracy": run.best_test_accuracy,
            "final_test_accuracy": run.final_test_accuracy,
        }
        return Report(
            metrics={
                "recipe": asdict(config.train_config()),
                "data": data,
                "classes": list(train.classes),
                "history": run.history,
                **summary,
                "best_confusion": run.best_confusion.tolist(),
                "final_confusion": run.final_confusion.tolist(),
            },
            summary=summary,
            score={
                "test_accuracy": run.final_test_accuracy,
                "test_images": data["test_images"],
            },
            spec=resnet_spec(config, train.classes),
            save_options={"weight_format": SHIPPED_WEIGHTS},
            ships="final",
        )

    return Project(
        load=load_cifar10,
        config=resnet_config,
        prepare=lambda train, test, config, seed: split_images(
            train.images, train.labels, test.images, test.labels, config, seed
        ),
        train=train_resnet,
        bar="ResNet-18 epochs",
        report=report,
    )


def main() -> int:
    for folder in (ROOT, ROOT / "src"):  # fullrun, rlbook
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    from fullrun.project import run

    return run(__doc__, __file__, "resnet", "resnet18-cifar", project)


if __name__ == "__main__":
    sys.exit(main())
