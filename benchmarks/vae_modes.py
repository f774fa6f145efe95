"""The VAE project's execution modes, measured in one run: one JSON line.

    RLBOOK_DATA=<data folder> .venv/bin/python benchmarks/vae_modes.py

The method is ``benchmarks/projects.md``'s. Training: ``eager fp32``,
``torch.compile`` and ``bf16 autocast`` over the same batches of the shared
MNIST training images, a step one epoch, checked on the logits, mu, logvar
and loss of 128 training images (z = mu). Inference, with the shipped model
(``artifacts/vae-mnist``): the decoder (codes to images, the generator) on
one code and on ``--batch`` codes, ``eager``, ``aoti-python`` and
``aoti-cpp``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

import harness
import torch

from rlbook.chapters.vae_mnist import (
    VAEConfig,
    build_vae,
    export_decoder,
    load_mnist,
    split_digits,
    to_input,
    train_epoch,
    vae_config,
    vae_loss,
)
from rlbook.data import describe
from rlbook.paths import artifacts_dir
from rlbook.projects.shipping import load_model
from rlbook.seeding import stream_seed, torch_stream

PROJECT = "vae"
TRAIN_MODES = ("eager fp32", "torch.compile", "bf16 autocast")
INFER_MODES = ("eager", "aoti-python")
CHECK_BATCH = 128
TOLERANCES = {
    "eager fp32": (0.0, 0.0),
    "torch.compile": (1e-4, 1e-4),
    # bf16 keeps 8 significant bits: a relative error of 2^-8 per rounding.
    "bf16 autocast": (5e-2, 5e-2),
}
"""(atol, rtol) of each mode's outputs against eager fp32's."""


class TrainRunner:
    """One training mode in its process: a step is one epoch."""

    def __init__(self, mode: str, config_dict: dict, seed: int) -> None:
        self.config = VAEConfig(
            **{**config_dict, "hidden": tuple(config_dict["hidden"])}
        )
        self.split = split_digits(
            load_mnist("train").images, load_mnist("test").images, self.config, seed
        )
        torch.manual_seed(stream_seed(seed, "init"))
        self.model = build_vae(self.config)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.config.lr)
        self.compiled = None
        if mode == "torch.compile":
            # The encoder and the decoder, each one graph (fullgraph=True);
            # the sampling between them takes a torch.Generator, which breaks
            # a graph of the whole VAE into three. torch.compile(module), not
            # module.compile(): in torch 2.13 that compiles Module._call_impl,
            # which Dynamo skips, so nothing would compile.
            x = to_input(self.split.train[:2]).flatten(1)
            encoder = harness.explain(self.model.encoder, x)
            decoder = harness.explain(
                self.model.decoder, torch.zeros(2, self.config.latent)
            )
            self.compiled = {
                "what": "encoder and decoder, each torch.compile(fullgraph=True)",
                **{
                    key: encoder[key] + decoder[key]
                    for key in ("graphs", "graph_breaks", "ops")
                },
                "break_reasons": encoder["break_reasons"] + decoder["break_reasons"],
            }
            self.model.encoder = torch.compile(self.model.encoder, fullgraph=True)
            self.model.decoder = torch.compile(self.model.decoder, fullgraph=True)
        self.dtype = torch.bfloat16 if mode == "bf16 autocast" else None
        self.generator = torch_stream(seed, "data")

    def outputs(self) -> tuple[torch.Tensor, ...]:
        x = to_input(self.split.train[:CHECK_BATCH])
        with torch.no_grad():
            with torch.autocast(
                "cpu", dtype=self.dtype, enabled=self.dtype is not None
            ):
                logits, mu, logvar = self.model(x)
            loss = vae_loss(logits.float(), x, mu.float(), logvar.float())[0]
        return logits, mu, logvar, loss

    def step(self) -> None:
        train_epoch(
            self.model,
            self.split.train,
            self.optimizer,
            generator=self.generator,
            device="cpu",
            batch_size=self.config.batch_size,
            autocast_dtype=self.dtype,
        )


train_mode = TrainRunner  # interleave builds each mode's runner in its process


def _decode(model: torch.nn.Module):
    """Codes to images: the generator, as the package computes it."""

    def decode(z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(model.decode(z)).unflatten(1, (1, 28, 28))

    return decode


def infer_mode(
    mode: str, artifact: str, package: str, inputs_path: str, name: str, iters: int
) -> harness.CallRunner:
    """One Python inference mode's runner (in its own process)."""
    inputs = torch.load(inputs_path, weights_only=True)[name]
    if mode == "aoti-python":
        fn = harness.load_aoti(package, check_inputs=harness.TIMING_CHECK_INPUTS)
    else:
        fn = _decode(load_model(artifact, kind="vae-mnist").model)
    return harness.CallRunner(fn, inputs, iters)


DEFAULTS = {"reps": 10, "warmup": 2, "batch": 64, "iters": 200}
SMOKE = {"reps": 2, "warmup": 1, "iters": 3}
"""The options (:func:`harness.parse_args`) and their smoke values."""


def train_args(args: argparse.Namespace) -> tuple[dict, int]:
    """:func:`train_mode`'s arguments after the mode, at ``args`` (the full
    recipe at every budget: an epoch of the VAE takes under a second)."""
    return asdict(vae_config("full")), 0


def infer_inputs(args: argparse.Namespace) -> dict[str, tuple[torch.Tensor]]:
    """The timed inputs by name: one code, and ``--batch`` of them (the
    shipped model's code size)."""
    latent = load_model(infer_args(args)[0], kind="vae-mnist").model.latent
    codes = torch.randn(args.batch, latent, generator=torch_stream(0, "codes"))
    return {"batch 1": (codes[:1],), f"batch {args.batch}": (codes,)}


def infer_args(args: argparse.Namespace) -> tuple[str]:
    """:func:`infer_mode`'s arguments after the mode, before the package."""
    return (str(artifacts_dir() / "vae-mnist"),)


def main() -> int:
    args = harness.parse_args(__doc__, DEFAULTS, SMOKE)
    train = load_mnist("train")
    with harness.Bench(PROJECT, __file__, args) as bench:
        config = vae_config("full")
        split_sizes = split_digits(train.images, load_mnist("test").images, config, 0)
        bench.interleaved(
            train_mode,
            TRAIN_MODES,
            *train_args(args),
            prefix="train",
            unit="s/epoch",
            items=len(split_sizes.train),
            tolerances=TOLERANCES,
            data={"train": len(split_sizes.train), "batch": config.batch_size},
            notes=f"{describe(train)}; budget {args.budget}",
        )
        artifact = artifacts_dir() / "vae-mnist"
        model = load_model(artifact, kind="vae-mnist").model
        inputs = infer_inputs(args)
        package = harness.compile_aoti(
            export_decoder(model),
            bench.folder / "decoder.pt2",
            model_name="vae",
        )
        bench.infer_interleaved(
            infer_mode,
            INFER_MODES,
            inputs,
            package,
            *infer_args(args),
            prefix="decode",
            notes="the shipped decoder",
        )
        return bench.finish()


if __name__ == "__main__":
    sys.exit(main())
