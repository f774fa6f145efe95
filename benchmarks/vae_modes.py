"""The VAE project's execution modes, measured in one run: one JSON line.

    RLBOOK_DATA=<data folder> .venv/bin/python benchmarks/vae_modes.py

Training, each mode in a fresh process (so its peak memory is its own), from
the same initial weights over the same batches of the shared MNIST training
images: ``eager fp32``, ``torch.compile`` and ``bf16 autocast``. Each mode
trains ``--warmup`` untimed epochs (compilation happens there), then
``--epochs`` timed ones; its time is seconds per epoch and its quality the
test loss per image after them.

Inference, with the shipped model (``artifacts/vae-mnist``): latency of the
decoder (codes to images, the generator) for one code and for a batch of
``--batch`` codes, for ``eager``, ``aoti-python`` (the AOTInductor package
run from Python) and ``aoti-cpp`` (the same package run by
``deploy/cpp/aoti_infer.cpp``, a process with no Python in it), all on
``--threads`` threads, outputs checked against eager.

Writes ``artifacts/projects/vae/comparison.json`` (one record per mode)
unless ``--no-write``; prints one JSON line with every figure and the ratios
to eager. ``--budget smoke`` checks the script quickly (its numbers mean
nothing and it never writes the artifact).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

PROJECT = "vae"
TRAIN_MODES = ("eager fp32", "torch.compile", "bf16 autocast")
INFER_MODES = ("eager", "aoti-python")


def train_mode(
    mode: str, config_dict: dict, epochs: int, warmup: int, threads: int, seed: int
) -> dict:
    """One training mode, in its own process: seconds per epoch and more."""
    import torch

    from rlbook.chapters.vae_mnist import build_vae, test_losses, train_epoch
    from rlbook.data import load_mnist
    from rlbook.projects.deploy import peak_memory_mb
    from rlbook.projects.vae_run import VAEConfig, split_digits
    from rlbook.seeding import stream_seed, torch_stream

    torch.set_num_threads(threads)
    config = VAEConfig(**{**config_dict, "hidden": tuple(config_dict["hidden"])})
    split = split_digits(
        load_mnist("train").images, load_mnist("test").images, config, seed
    )
    torch.manual_seed(stream_seed(seed, "init"))
    model = build_vae(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    if mode == "torch.compile":
        # Compile the network's modules; train_epoch keeps calling the VAE.
        model.encoder.compile()
        model.decoder.compile()
    dtype = torch.bfloat16 if mode == "bf16 autocast" else None
    generator = torch_stream(seed, "data")
    seconds = []
    for epoch in range(warmup + epochs):
        record = train_epoch(
            model,
            split.train,
            optimizer,
            generator=generator,
            device="cpu",
            batch_size=config.batch_size,
            autocast_dtype=dtype,
        )
        if epoch >= warmup:
            seconds.append(record["seconds"])
    return {
        "seconds_per_epoch": sum(seconds) / len(seconds),
        "images": int(split.train.shape[0]),
        "test_loss": test_losses(model, split.test, seed)["loss"],
        "peak_memory_mb": peak_memory_mb(),
        "threads": torch.get_num_threads(),
    }


def infer_mode(
    mode: str, artifact: str, package: str, inputs_path: str, iters: int, threads: int
) -> dict:
    """Latency of one Python inference mode, in its own process."""
    import torch

    from rlbook.projects.deploy import load_aoti, peak_memory_mb, time_python
    from rlbook.projects.shipping import load_model

    inputs = torch.load(inputs_path, weights_only=True)
    model = load_model(artifact, kind="vae-mnist").model
    if mode == "aoti-python":
        fn = load_aoti(package, check_inputs=False)
    else:

        def fn(z: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(model.decode(z)).unflatten(1, (1, 28, 28))

    report = {}
    for name, codes in inputs.items():
        report[name] = time_python(
            fn, (codes,), iters=iters, warmup=max(2, iters // 10), threads=threads
        )
    report["peak_memory_mb"] = peak_memory_mb()
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", choices=["smoke", "full"], default="full")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))

    import torch

    from rlbook.data import describe, load_mnist
    from rlbook.paths import artifacts_dir
    from rlbook.projects.deploy import (
        ComparisonRecord,
        benchmark_meta,
        build_cpp_runner,
        comparison_path,
        compile_aoti,
        latency_records,
        run_in_subprocess,
        software_versions,
        time_cpp_batches,
        write_comparison,
    )
    from rlbook.projects.shipping import load_model
    from rlbook.projects.vae import export_program
    from rlbook.projects.vae_run import FULL_CONFIG
    from rlbook.seeding import torch_stream

    smoke = args.budget == "smoke"
    epochs, warmup, iters = (
        (1, 1, 3) if smoke else (args.epochs, args.warmup, args.iters)
    )
    config_dict = asdict(replace(FULL_CONFIG, epochs=warmup + epochs))
    threads = args.threads
    versions = software_versions()
    train, test = load_mnist("train"), load_mnist("test")
    data = {"train": len(train), "test": len(test)}
    records: list[ComparisonRecord] = []
    figures: dict[str, float] = {}

    for mode in TRAIN_MODES:
        result = run_in_subprocess(
            "vae_modes:train_mode", mode, config_dict, epochs, warmup, threads, 0
        )
        figures[f"train {mode} s/epoch"] = result["seconds_per_epoch"]
        records.append(
            ComparisonRecord(
                mode=f"train: {mode}",
                time=result["seconds_per_epoch"],
                time_unit="s/epoch",
                throughput=result["images"] / result["seconds_per_epoch"],
                peak_memory_mb=result["peak_memory_mb"],
                quality=result["test_loss"],
                quality_name=f"test loss per image after {warmup + epochs} epochs",
                device=f"cpu ({result['threads']} thread(s))",
                versions=versions,
                data={**data, "trained": result["images"], "batch": 128},
                notes=f"{describe(train)}; budget {args.budget}",
            )
        )

    artifact = artifacts_dir() / "vae-mnist"
    model = load_model(artifact, kind="vae-mnist").model
    codes = torch.randn(args.batch, model.latent, generator=torch_stream(0, "codes"))
    inputs = {"batch 1": codes[:1], f"batch {args.batch}": codes}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        inputs_path = folder / "inputs.pt"
        torch.save(inputs, inputs_path)
        package = compile_aoti(
            export_program(model, "decoder"), folder / "decoder.pt2", model_name="vae"
        )
        runner = build_cpp_runner(folder / "runner")
        latency: dict[str, dict] = {}
        for mode in INFER_MODES:
            latency[mode] = run_in_subprocess(
                "vae_modes:infer_mode",
                mode,
                str(artifact),
                str(package),
                str(inputs_path),
                iters,
                threads,
            )
        latency["aoti-cpp"] = time_cpp_batches(
            runner,
            package,
            {name: (z,) for name, z in inputs.items()},
            lambda z: torch.sigmoid(model.decode(z)).unflatten(1, (1, 28, 28)),
            iters=iters,
            threads=threads,
            atol=1e-5,
            rtol=1e-4,
        )
    latency_rows, latency_figures = latency_records(
        latency,
        {name: len(z) for name, z in inputs.items()},
        prefix="decode",
        threads=threads,
        versions=versions,
        notes="the shipped decoder; outputs checked against eager",
    )
    records += latency_rows
    figures.update(latency_figures)
    eager = figures["train eager fp32 s/epoch"]
    ratios = {
        f"train {mode} / eager": figures[f"train {mode} s/epoch"] / eager
        for mode in TRAIN_MODES[1:]
    }
    for name in inputs:
        base = figures[f"eager {name} ms"]
        for mode in ("aoti-python", "aoti-cpp"):
            ratios[f"{mode} / eager, {name}"] = figures[f"{mode} {name} ms"] / base
    meta = benchmark_meta("python benchmarks/vae_modes.py", args.budget, threads)
    if not smoke and not args.no_write:
        write_comparison(comparison_path(PROJECT), records, meta)
    print(
        json.dumps({"project": PROJECT, **meta, "figures": figures, "ratios": ratios})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
