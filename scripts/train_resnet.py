"""The full run of *Image classification: ResNet-18 on CIFAR-10*: the shipped model.

    .venv/bin/python scripts/train_resnet.py --export

trains ``rlbook.chapters.resnet_cifar.resnet_config("full")`` on CIFAR-10 from
``$RLBOOK_DATA`` and ships ``artifacts/resnet18-cifar/``: the *final* weights
in int8 (a one-cycle schedule ends its learning rate near zero on purpose,
and 466 validation images, a standard error of about 2 points, cannot pick
between its last epochs: validation stays a diagnostic), and the test
accuracy and confusion matrix of the final *and* the best-validation
weights. See ``fullrun.project``.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

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
            weight_format=SHIPPED_WEIGHTS,
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
    # This checkout's code runs, its tree is checked, its artifacts written.
    sys.path[:0] = [str(ROOT), str(ROOT / "src")]  # fullrun, rlbook
    from fullrun.project import run

    return run(__doc__, __file__, "resnet", "resnet18-cifar", project)


if __name__ == "__main__":
    sys.exit(main())
