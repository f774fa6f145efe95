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

Its table, ``artifacts/projects/vae/comparison.json``, and its JSON line
are :class:`harness.Bench`'s. ``--budget smoke`` checks the script quickly.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, replace

import harness
import torch

from rlbook.chapters.vae_mnist import (
    VAEConfig,
    build_vae,
    export_decoder,
    split_digits,
    test_losses,
    train_epoch,
    vae_config,
)
from rlbook.data import describe, load_mnist
from rlbook.paths import artifacts_dir
from rlbook.projects.shipping import load_model
from rlbook.seeding import stream_seed, torch_stream

PROJECT = "vae"
TRAIN_MODES = ("eager fp32", "torch.compile", "bf16 autocast")
INFER_MODES = ("eager", "aoti-python")


def train_mode(
    mode: str, config_dict: dict, epochs: int, warmup: int, threads: int, seed: int
) -> dict:
    """One training mode, in its own process: seconds per epoch and more."""
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
    per_epoch = sum(seconds) / len(seconds)
    return harness.measured(
        time=per_epoch,
        throughput=int(split.train.shape[0]) / per_epoch,
        quality=test_losses(model, split.test, seed)["loss"],
        data={"trained": int(split.train.shape[0])},
    )


def _decode(model: torch.nn.Module):
    """Codes to images: the generator, as the package computes it."""

    def decode(z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(model.decode(z)).unflatten(1, (1, 28, 28))

    return decode


def infer_mode(
    mode: str, artifact: str, package: str, inputs_path: str, iters: int, threads: int
) -> dict:
    """Latency of one Python inference mode, in its own process."""
    inputs = torch.load(inputs_path, weights_only=True)
    if mode == "aoti-python":
        fn = harness.load_aoti(package, check_inputs=False)
    else:
        fn = _decode(load_model(artifact, kind="vae-mnist").model)
    return harness.time_inputs(fn, inputs, iters, threads)


def main() -> int:
    args = harness.parse_args(
        __doc__,
        {"epochs": 10, "warmup": 1, "batch": 64, "iters": 200},
        {"epochs": 1, "warmup": 1, "iters": 3},
    )
    train = load_mnist("train")
    with harness.Bench(PROJECT, __file__, args) as bench:
        bench.train(
            train_mode,
            TRAIN_MODES,
            asdict(replace(vae_config("full"), epochs=args.warmup + args.epochs)),
            args.epochs,
            args.warmup,
            args.threads,
            0,
            figure="s/epoch",
            time_unit="s/epoch",
            quality_name=f"test loss per image after {args.warmup + args.epochs} epochs",
            data={"train": len(train), "test": len(load_mnist("test")), "batch": 128},
            notes=f"{describe(train)}; budget {args.budget}",
        )
        artifact = artifacts_dir() / "vae-mnist"
        model = load_model(artifact, kind="vae-mnist").model
        codes = torch.randn(
            args.batch, model.latent, generator=torch_stream(0, "codes")
        )
        package = harness.compile_aoti(
            export_decoder(model),
            bench.folder / "decoder.pt2",
            model_name="vae",
        )
        bench.infer(
            infer_mode,
            INFER_MODES,
            {"batch 1": (codes[:1],), f"batch {args.batch}": (codes,)},
            package,
            str(artifact),
            reference=_decode(model),
            atol=1e-5,
            rtol=1e-4,
            prefix="decode",
            notes="the shipped decoder; outputs checked against eager",
        )
        return bench.finish()


if __name__ == "__main__":
    sys.exit(main())
