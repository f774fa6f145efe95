"""The ResNet project's execution modes, measured in one run: one JSON line.

    RLBOOK_DATA=<data folder> .venv/bin/python benchmarks/resnet_modes.py

Training, each mode in a fresh process (so its peak memory is its own), from
the same initial weights over the same augmented batches of the shared
CIFAR-10 training images: ``eager fp32``, ``channels_last``, ``bf16
autocast`` and ``torch.compile``. Each mode runs ``--warmup`` untimed steps
(compilation happens there), then ``--steps`` timed ones of the shipped
recipe (batch 128); its quality figure is the validation accuracy after
them, which after so few steps only shows that every mode learns alike.

Inference, with the shipped model (``artifacts/resnet18-cifar``): latency
of one image and of a batch of ``--batch`` images for ``eager``,
``eager channels_last``, ``aoti-python`` (the AOTInductor package run from
Python) and ``aoti-cpp`` (the same package run by
``deploy/cpp/aoti_infer.cpp``, a process with no Python in it), all on
``--threads`` threads, outputs checked against eager; and the time to
classify every test image (the quality figure: test accuracy) in eager mode.

Its table, ``artifacts/projects/resnet/comparison.json``, and its JSON line
are :class:`harness.Bench`'s. ``--budget smoke`` checks the script in a minute or two (a narrow
net, a tiny untrained model for inference).
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, replace

import harness
import torch

from rlbook.chapters.resnet_cifar import (
    ResNet18,
    ResNetConfig,
    build_resnet,
    evaluate,
    make_optimizer,
    normalize,
    resnet_config,
    split_images,
    train_epoch,
)
from rlbook.data import load_cifar10
from rlbook.paths import artifacts_dir
from rlbook.projects.shipping import load_model
from rlbook.seeding import stream_seed, torch_stream

PROJECT = "resnet"
TRAIN_MODES = ("eager fp32", "channels_last", "bf16 autocast", "torch.compile")
INFER_MODES = ("eager", "eager channels_last", "aoti-python")


def train_mode(
    mode: str, config_dict: dict, steps: int, warmup: int, threads: int, seed: int
) -> dict:
    """One training mode, in its own process: seconds for ``steps`` steps and more."""
    torch.set_num_threads(threads)
    train, test = load_cifar10("train"), load_cifar10("test")
    config = ResNetConfig(**config_dict)
    split = split_images(
        train.images, train.labels, test.images, test.labels, config, seed
    )
    recipe = replace(config.train_config(), drop_last=True)
    torch.manual_seed(stream_seed(seed, "init"))
    model = build_resnet(config)
    channels_last = mode == "channels_last"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer, scheduler = make_optimizer(model, recipe, warmup + steps)
    forward = torch.compile(model) if mode == "torch.compile" else model
    autocast = torch.bfloat16 if mode == "bf16 autocast" else None
    generator = torch_stream(seed, "data")
    images = split.train_images[: (warmup + steps) * recipe.batch_size]
    labels = split.train_labels[: images.shape[0]]
    cut = warmup * recipe.batch_size

    def run(part: slice) -> dict:
        return train_epoch(
            forward,
            images[part],
            labels[part],
            optimizer,
            scheduler,
            recipe,
            generator,
            device="cpu",
            autocast_dtype=autocast,
            channels_last=channels_last,
        )

    run(slice(0, cut))
    timed = run(slice(cut, None))
    valid, _ = evaluate(
        model,
        split.valid_images,
        split.valid_labels,
        device="cpu",
        channels_last=channels_last,
    )
    return harness.measured(
        time=timed["seconds"],
        throughput=timed["images"] / timed["seconds"],
        quality=valid,
    )


def _shipped(artifact: str, smoke: bool) -> torch.nn.Module:
    """The shipped model, or in smoke a narrow untrained one."""
    if smoke:
        torch.manual_seed(0)
        return ResNet18(width=8).eval()
    return load_model(artifact, kind="resnet18-cifar").model


def classify_test(artifact: str, smoke: bool, threads: int) -> dict:
    """Classify every test image with the shipped model in eager mode."""
    torch.set_num_threads(threads)
    model = _shipped(artifact, smoke)
    test = load_cifar10("test")
    evaluate(model, test.images[:8], test.labels[:8], device="cpu")
    start = time.perf_counter()
    accuracy, _ = evaluate(model, test.images, test.labels, device="cpu")
    return harness.measured(
        seconds=time.perf_counter() - start, images=len(test), accuracy=accuracy
    )


def infer_mode(
    mode: str,
    artifact: str,
    smoke: bool,
    package: str,
    inputs_path: str,
    iters: int,
    threads: int,
) -> dict:
    """Latency of one Python inference mode, in its own process."""
    inputs = torch.load(inputs_path, weights_only=True)
    model = _shipped(artifact, smoke)
    if mode == "eager channels_last":
        model = model.to(memory_format=torch.channels_last)
        inputs = {
            name: (images.contiguous(memory_format=torch.channels_last),)
            for name, (images,) in inputs.items()
        }
    fn = (
        harness.load_aoti(package, check_inputs=False)
        if mode == "aoti-python"
        else model
    )
    return harness.time_inputs(fn, inputs, iters, threads)


def main() -> int:
    args = harness.parse_args(
        __doc__,
        {"steps": 6, "warmup": 2, "batch": 64, "iters": 20},
        {"steps": 2, "warmup": 1, "batch": 8, "iters": 3},
    )
    smoke = args.budget == "smoke"
    config = resnet_config("smoke" if smoke else "full")
    test = load_cifar10("test")
    with harness.Bench(PROJECT, __file__, args) as bench:
        bench.train_steps(
            train_mode,
            TRAIN_MODES,
            asdict(replace(config, train_images=None)),
            len(load_cifar10("train")),
            test,
            {"batch": config.batch_size, "width": config.width},
        )
        artifact = str(artifacts_dir() / "resnet18-cifar")
        model = _shipped(artifact, smoke)
        one, many = normalize(test.images[:1]), normalize(test.images[: args.batch])
        # Export with the large batch as the example: traced with a batch of
        # 2, Inductor specialises CPU convolutions to batches below 16 and
        # the package refuses larger ones (torch 2.13; see export_aoti).
        package = harness.export_aoti(model, (many,), bench.folder / "resnet.pt2")
        bench.infer(
            infer_mode,
            INFER_MODES,
            {"batch 1": (one,), f"batch {args.batch}": (many,)},
            package,
            artifact,
            smoke,
            reference=model,
            atol=1e-3,
            rtol=1e-3,
            prefix="infer",
            notes="the shipped model; outputs checked against eager",
        )
        whole = bench.call(classify_test, artifact, smoke, args.threads)
        bench.add(
            "classify test set s",
            mode="classify the test images: eager",
            time=whole["seconds"],
            time_unit=f"s/{whole['images']} images",
            throughput=whole["images"] / whole["seconds"],
            peak_memory_mb=whole["peak_memory_mb"],
            quality=whole["accuracy"],
            quality_name="test accuracy",
            data={"test": whole["images"], "batch": 500},
            notes="the shipped model, float16 weights read into float32",
        )
        return bench.finish()


if __name__ == "__main__":
    sys.exit(main())
