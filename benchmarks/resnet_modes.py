"""The ResNet project's execution modes, measured in one run: one JSON line.

    RLBOOK_DATA=<data folder> .venv/bin/python benchmarks/resnet_modes.py

The method is ``benchmarks/projects.md``'s. Training: ``eager fp32``,
``channels_last``, ``bf16 autocast`` and ``torch.compile`` (the whole
network, ``fullgraph=True``) over the same augmented batches of the shared
CIFAR-10 training images (the shipped recipe, batch 128), a step
``--steps-per-sample`` SGD steps, checked on the logits of 32 training
images. Inference, with the shipped model (``artifacts/resnet18-cifar``):
one image and ``--batch`` images, ``eager``, ``eager channels_last``,
``aoti-python`` and ``aoti-cpp``. ``--budget smoke`` uses a narrow net and
a tiny untrained model for inference.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, replace

import harness
import torch

from rlbook.chapters.resnet_cifar import (
    ResNet18,
    ResNetConfig,
    build_resnet,
    load_cifar10,
    make_optimizer,
    normalize,
    resnet_config,
    split_images,
    train_epoch,
)
from rlbook.data import describe
from rlbook.paths import artifacts_dir
from rlbook.projects.shipping import load_model
from rlbook.seeding import stream_seed, torch_stream

PROJECT = "resnet"
TRAIN_MODES = ("eager fp32", "channels_last", "bf16 autocast", "torch.compile")
INFER_MODES = ("eager", "eager channels_last", "aoti-python")
CHECK_BATCH = 32
TOLERANCES = {
    "eager fp32": (0.0, 0.0),
    # The same arithmetic in another order (another memory layout, fused
    # kernels): float32 rounding through 18 layers.
    "channels_last": (1e-3, 1e-3),
    "torch.compile": (1e-3, 1e-3),
    # bf16 keeps 8 significant bits: a relative error of 2^-8 per rounding,
    # compounded through 18 layers.
    "bf16 autocast": (0.25, 0.1),
}
"""(atol, rtol) of each mode's logits against eager fp32's."""


class TrainRunner:
    """One training mode in its process: a step is ``steps`` SGD steps."""

    def __init__(
        self, mode: str, config_dict: dict, steps: int, total: int, seed: int
    ) -> None:
        train, test = load_cifar10("train"), load_cifar10("test")
        config = ResNetConfig(**config_dict)
        split = split_images(
            train.images, train.labels, test.images, test.labels, config, seed
        )
        self.recipe = replace(config.train_config(), drop_last=True)
        torch.manual_seed(stream_seed(seed, "init"))
        self.model = build_resnet(config)
        self.channels_last = mode == "channels_last"
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer, self.scheduler = make_optimizer(
            self.model, self.recipe, total * steps
        )
        self.check = normalize(split.train_images[:CHECK_BATCH])
        self.forward, self.compiled = self.model, None
        if mode == "torch.compile":
            self.compiled = {
                "what": "the whole network, fullgraph=True",
                **harness.explain(self.model.eval(), self.check[:2]),
            }
            self.forward = torch.compile(self.model, fullgraph=True)
        self.autocast = torch.bfloat16 if mode == "bf16 autocast" else None
        self.generator = torch_stream(seed, "data")
        self.size = steps * self.recipe.batch_size
        self.images, self.labels = split.train_images, split.train_labels
        self.done = 0

    def outputs(self) -> torch.Tensor:
        x = self.check
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        self.model.eval()
        with torch.no_grad():
            with torch.autocast(
                "cpu", dtype=self.autocast, enabled=self.autocast is not None
            ):
                return self.forward(x).float()

    def step(self) -> None:
        start = self.done * self.size % (len(self.images) - self.size + 1)
        part = slice(start, start + self.size)
        self.done += 1
        train_epoch(
            self.forward,
            self.images[part],
            self.labels[part],
            self.optimizer,
            self.scheduler,
            self.recipe,
            self.generator,
            device="cpu",
            autocast_dtype=self.autocast,
            channels_last=self.channels_last,
        )


train_mode = TrainRunner  # interleave builds each mode's runner in its process


def _shipped(artifact: str, smoke: bool) -> torch.nn.Module:
    """The shipped model, or in smoke a narrow untrained one."""
    if smoke:
        torch.manual_seed(0)
        return ResNet18(width=8).eval()
    return load_model(artifact, kind="resnet18-cifar").model


def infer_mode(
    mode: str,
    artifact: str,
    smoke: bool,
    package: str,
    inputs_path: str,
    name: str,
    iters: int,
) -> harness.CallRunner:
    """One Python inference mode's runner (in its own process)."""
    inputs = torch.load(inputs_path, weights_only=True)[name]
    if mode == "aoti-python":
        return harness.CallRunner(
            harness.load_aoti(package, check_inputs=harness.TIMING_CHECK_INPUTS),
            inputs,
            iters,
        )
    model = _shipped(artifact, smoke)
    if mode == "eager channels_last":
        model = model.to(memory_format=torch.channels_last)
        inputs = tuple(x.contiguous(memory_format=torch.channels_last) for x in inputs)
    return harness.CallRunner(model, inputs, iters)


DEFAULTS = {"reps": 5, "warmup": 2, "steps-per-sample": 1, "batch": 32, "iters": 3}
SMOKE = {"reps": 2, "warmup": 1, "batch": 8, "iters": 3}
"""The options (:func:`harness.parse_args`) and their smoke values."""


def train_args(args: argparse.Namespace) -> tuple:
    """:func:`train_mode`'s arguments after the mode, at ``args``."""
    config = resnet_config("smoke" if args.budget == "smoke" else "full")
    config_dict = asdict(replace(config, train_images=None))
    return config_dict, args.steps_per_sample, args.warmup + args.reps, 0


def infer_inputs(args: argparse.Namespace) -> dict[str, tuple[torch.Tensor]]:
    """The timed inputs by name: one test image, and ``--batch`` of them."""
    test = load_cifar10("test")
    one, many = normalize(test.images[:1]), normalize(test.images[: args.batch])
    return {"batch 1": (one,), f"batch {args.batch}": (many,)}


def infer_args(args: argparse.Namespace) -> tuple[str, bool]:
    """:func:`infer_mode`'s arguments after the mode, before the package."""
    return str(artifacts_dir() / "resnet18-cifar"), args.budget == "smoke"


def main() -> int:
    args = harness.parse_args(__doc__, DEFAULTS, SMOKE)
    smoke = args.budget == "smoke"
    config = resnet_config("smoke" if smoke else "full")
    train = load_cifar10("train")
    steps = args.steps_per_sample
    with harness.Bench(PROJECT, __file__, args) as bench:
        images = steps * config.batch_size
        bench.interleaved(
            train_mode,
            TRAIN_MODES,
            *train_args(args),
            prefix="train",
            unit=f"s/{steps} steps",
            items=images,
            tolerances=TOLERANCES,
            data={"batch": config.batch_size, "width": config.width},
            notes=f"{describe(train)}; budget {args.budget}",
        )
        model = _shipped(*infer_args(args))
        inputs = infer_inputs(args)
        # Export with the large batch as the example: traced with a batch of
        # 2, Inductor specialises CPU convolutions to batches below 16 and
        # the package refuses larger ones (torch 2.13; see export_aoti).
        package = harness.export_aoti(
            model, inputs[f"batch {args.batch}"], bench.folder / "resnet.pt2"
        )
        bench.infer_interleaved(
            infer_mode,
            INFER_MODES,
            inputs,
            package,
            *infer_args(args),
            prefix="infer",
            notes="the shipped model (int8 weights read into float32)",
            atol=1e-3,
            rtol=1e-3,
        )
        return bench.finish()


if __name__ == "__main__":
    sys.exit(main())
