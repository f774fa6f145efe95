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

Writes ``artifacts/projects/resnet/comparison.json`` (one record per mode)
unless ``--no-write``; prints one JSON line with every figure and the ratios
to eager. ``--budget smoke`` checks the script in a minute or two (a narrow
net, a tiny untrained model for inference; its numbers mean nothing and it
never writes the artifact).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "resnet"
TRAIN_MODES = ("eager fp32", "channels_last", "bf16 autocast", "torch.compile")
INFER_MODES = ("eager", "eager channels_last", "aoti-python")


def _split(config_dict: dict, seed: int):
    from rlbook.data import load_cifar10
    from rlbook.projects.resnet_run import ResNetConfig, split_images

    train, test = load_cifar10("train"), load_cifar10("test")
    config = ResNetConfig(**config_dict)
    split = split_images(
        train.images, train.labels, test.images, test.labels, config, seed
    )
    return split, config


def train_mode(
    mode: str, config_dict: dict, steps: int, warmup: int, threads: int, seed: int
) -> dict:
    """One training mode, in its own process: seconds for ``steps`` steps and more."""
    import torch

    from rlbook.chapters.resnet_cifar import build_resnet, train_epoch
    from rlbook.projects.deploy import peak_memory_mb
    from rlbook.projects.resnet import evaluate, make_optimizer
    from rlbook.seeding import stream_seed, torch_stream

    torch.set_num_threads(threads)
    split, config = _split(config_dict, seed)
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
    return {
        "seconds": timed["seconds"],
        "images": timed["images"],
        "loss": timed["loss"],
        "peak_memory_mb": peak_memory_mb(),
        "valid_accuracy": valid,
        "threads": torch.get_num_threads(),
    }


def _shipped(artifact: str, smoke: bool):
    """The shipped model, or in smoke a narrow untrained one."""
    import torch

    from rlbook.chapters.resnet_cifar import ResNet18
    from rlbook.projects.shipping import load_model

    if smoke:
        torch.manual_seed(0)
        return ResNet18(width=8).eval()
    return load_model(artifact, kind="resnet18-cifar").model


def classify_test(artifact: str, smoke: bool, threads: int) -> dict:
    """Classify every test image with the shipped model in eager mode."""
    import torch

    from rlbook.data import load_cifar10
    from rlbook.projects.deploy import peak_memory_mb
    from rlbook.projects.resnet import evaluate

    torch.set_num_threads(threads)
    model = _shipped(artifact, smoke)
    test = load_cifar10("test")
    evaluate(model, test.images[:8], test.labels[:8], device="cpu")
    start = time.perf_counter()
    accuracy, _ = evaluate(model, test.images, test.labels, device="cpu")
    return {
        "seconds": time.perf_counter() - start,
        "images": len(test),
        "accuracy": accuracy,
        "peak_memory_mb": peak_memory_mb(),
    }


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
    import torch

    from rlbook.projects.deploy import load_aoti, peak_memory_mb, time_python

    inputs = torch.load(inputs_path, weights_only=True)
    model = _shipped(artifact, smoke)
    if mode == "eager channels_last":
        model = model.to(memory_format=torch.channels_last)
        inputs = {
            k: v.contiguous(memory_format=torch.channels_last)
            for k, v in inputs.items()
        }
    fn = load_aoti(package, check_inputs=False) if mode == "aoti-python" else model
    report = {}
    for name, images in inputs.items():
        report[name] = time_python(
            fn, (images,), iters=iters, warmup=max(2, iters // 10), threads=threads
        )
    report["peak_memory_mb"] = peak_memory_mb()
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", choices=["smoke", "full"], default="full")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))

    import torch

    from rlbook.data import describe, load_cifar10
    from rlbook.paths import artifacts_dir
    from rlbook.projects.deploy import (
        ComparisonRecord,
        benchmark_meta,
        build_cpp_runner,
        comparison_path,
        export_aoti,
        latency_records,
        run_in_subprocess,
        software_versions,
        time_cpp_batches,
        write_comparison,
    )
    from rlbook.projects.resnet import normalize
    from rlbook.projects.resnet_run import FULL_CONFIG, resnet_config

    smoke = args.budget == "smoke"
    config = resnet_config("smoke") if smoke else FULL_CONFIG
    steps, warmup, iters = (2, 1, 3) if smoke else (args.steps, args.warmup, args.iters)
    batch = 8 if smoke else args.batch
    config_dict = asdict(replace(config, train_images=None))
    threads = args.threads
    versions = software_versions()
    test = load_cifar10("test")
    data = {"train": len(load_cifar10("train")), "test": len(test)}
    records: list[ComparisonRecord] = []
    figures: dict[str, float] = {}

    for mode in TRAIN_MODES:
        result = run_in_subprocess(
            "resnet_modes:train_mode", mode, config_dict, steps, warmup, threads, 0
        )
        figures[f"train {mode} s"] = result["seconds"]
        records.append(
            ComparisonRecord(
                mode=f"train: {mode}",
                time=result["seconds"],
                time_unit=f"s/{steps} steps",
                throughput=result["images"] / result["seconds"],
                peak_memory_mb=result["peak_memory_mb"],
                quality=result["valid_accuracy"],
                quality_name=f"validation accuracy after {warmup + steps} steps",
                device=f"cpu ({result['threads']} thread(s))",
                versions=versions,
                data={**data, "batch": config.batch_size, "width": config.width},
                notes=f"{describe(test)} for testing; budget {args.budget}",
            )
        )

    artifact = str(artifacts_dir() / "resnet18-cifar")
    model = _shipped(artifact, smoke)
    one, many = test.images[:1], test.images[:batch]
    inputs = {"batch 1": normalize(one), f"batch {batch}": normalize(many)}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        inputs_path = folder / "inputs.pt"
        torch.save(inputs, inputs_path)
        # Export with the large batch as the example: traced with a batch of
        # 2, Inductor specialises CPU convolutions to batches below 16 and
        # the package refuses larger ones (torch 2.13; see export_aoti).
        package = export_aoti(
            model,
            (inputs[f"batch {batch}"],),
            folder / "resnet.pt2",
            max_batch=1024,
        )
        runner = build_cpp_runner(folder / "runner")
        latency: dict[str, dict] = {}
        for mode in INFER_MODES:
            latency[mode] = run_in_subprocess(
                "resnet_modes:infer_mode",
                mode,
                artifact,
                smoke,
                str(package),
                str(inputs_path),
                iters,
                threads,
            )
        latency["aoti-cpp"] = time_cpp_batches(
            runner,
            package,
            {name: (x,) for name, x in inputs.items()},
            model,
            iters=iters,
            threads=threads,
            atol=1e-3,
            rtol=1e-3,
        )
    latency_rows, latency_figures = latency_records(
        latency,
        {name: len(x) for name, x in inputs.items()},
        prefix="infer",
        threads=threads,
        versions=versions,
        notes="the shipped model; outputs checked against eager",
    )
    records += latency_rows
    figures.update(latency_figures)
    whole = run_in_subprocess("resnet_modes:classify_test", artifact, smoke, threads)
    figures["classify test set s"] = whole["seconds"]
    records.append(
        ComparisonRecord(
            mode="classify the test images: eager",
            time=whole["seconds"],
            time_unit=f"s/{whole['images']} images",
            throughput=whole["images"] / whole["seconds"],
            peak_memory_mb=whole["peak_memory_mb"],
            quality=whole["accuracy"],
            quality_name="test accuracy",
            device=f"cpu ({threads} thread(s))",
            versions=versions,
            data={"test": whole["images"], "batch": 500},
            notes="the shipped model, float16 weights read into float32",
        )
    )
    eager = figures["train eager fp32 s"]
    ratios = {
        f"train {mode} / eager": figures[f"train {mode} s"] / eager
        for mode in TRAIN_MODES[1:]
    }
    for name in inputs:
        base = figures[f"eager {name} ms"]
        for mode in (*INFER_MODES[1:], "aoti-cpp"):
            ratios[f"{mode} / eager, {name}"] = figures[f"{mode} {name} ms"] / base
    meta = benchmark_meta("python benchmarks/resnet_modes.py", args.budget, threads)
    if not smoke and not args.no_write:
        write_comparison(comparison_path(PROJECT), records, meta)
    print(
        json.dumps({"project": PROJECT, **meta, "figures": figures, "ratios": ratios})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
