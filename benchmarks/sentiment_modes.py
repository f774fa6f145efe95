"""The sentiment project's execution modes, measured in one run: one JSON line.

    RLBOOK_DATA=<data folder> .venv/bin/python benchmarks/sentiment_modes.py

The method is ``benchmarks/projects.md``'s. Training: ``eager fp32``,
``torch.compile`` and ``bf16 autocast`` over the same length-sorted batches
of the shared training reviews, a step ``--steps-per-sample`` Adam steps,
checked on the logits of 64 training reviews. ``torch.compile`` compiles
what Dynamo can trace: ``pack_padded_sequence`` breaks the graph, so the
LSTM itself runs eagerly (the record counts graphs and breaks). Inference,
with the shipped model (``artifacts/sentiment-lstm``): one review and
``--batch`` reviews, ``eager (packed)``, ``eager (padded)`` (the exportable
path), ``aoti-python`` and ``aoti-cpp``; and, in ``--reps`` repetitions,
the time to classify 1,000 test reviews from their text (the original
chapter's row) in eager mode.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, replace

import harness
import torch
import torch.nn.functional as F

from rlbook.chapters.sentiment_imdb import (
    SentimentConfig,
    build_lstm,
    encode_texts,
    export_lstm,
    length_batches,
    load_imdb,
    predict,
    prepare_reviews,
    sentiment_config,
)
from rlbook.data import describe
from rlbook.paths import artifacts_dir
from rlbook.projects.shipping import load_model
from rlbook.seeding import stream_seed, torch_stream

PROJECT = "sentiment"
TRAIN_MODES = ("eager fp32", "torch.compile", "bf16 autocast")
INFER_MODES = ("eager (packed)", "eager (padded)", "aoti-python")
CHECK_BATCH = 64
TOLERANCES = {
    "eager fp32": (0.0, 0.0),
    "torch.compile": (1e-4, 1e-4),
    # bf16 keeps 8 significant bits: a relative error of 2^-8 per rounding,
    # carried through the recurrence over hundreds of tokens.
    "bf16 autocast": (0.1, 0.1),
}
"""(atol, rtol) of each mode's logits against eager fp32's."""


class TrainRunner:
    """One training mode in its process: a step is ``steps`` Adam steps."""

    def __init__(self, mode: str, config_dict: dict, steps: int, seed: int) -> None:
        train, test = load_imdb("train"), load_imdb("test")
        self.config = config = SentimentConfig(**config_dict)
        split = prepare_reviews(
            train.texts, train.labels, test.texts, test.labels, config, seed
        )
        torch.manual_seed(stream_seed(seed, "init"))
        self.model = build_lstm(config, len(split.vocabulary))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.tokens, self.lengths = split.train
        self.labels = split.train_labels
        self.batches = length_batches(
            self.lengths, config.batch_size, torch_stream(seed, "data"), 32
        )
        self.steps, self.done = steps, 0
        check = torch.arange(CHECK_BATCH)
        width = int(self.lengths[check].max())
        self.check = (self.tokens[check, :width], self.lengths[check])
        self.forward, self.compiled = self.model, None
        if mode == "torch.compile":
            # What compiles of the training call: pack_padded_sequence breaks
            # the graph, so fullgraph=True would fail.
            self.compiled = {
                "what": "the whole model (packed sequences), fullgraph=False",
                **harness.explain(self.model.eval(), *self.check),
            }
            self.forward = torch.compile(self.model)
        self.autocast = torch.bfloat16 if mode == "bf16 autocast" else None
        torch.manual_seed(stream_seed(seed, "dropout"))

    def outputs(self) -> torch.Tensor:
        self.model.eval()
        with (
            torch.no_grad(),
            torch.autocast(
                "cpu", dtype=self.autocast, enabled=self.autocast is not None
            ),
        ):
            return self.forward(*self.check).float()

    def step(self) -> None:
        self.model.train()
        for _ in range(self.steps):
            idx = self.batches[self.done % len(self.batches)]
            self.done += 1
            width = int(self.lengths[idx].max())
            with torch.autocast(
                "cpu", dtype=self.autocast, enabled=self.autocast is not None
            ):
                logits = self.forward(self.tokens[idx, :width], self.lengths[idx])
            loss = F.binary_cross_entropy_with_logits(
                logits.float(), self.labels[idx].float()
            )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(
                self.model.parameters(), self.config.grad_clip
            )
            self.optimizer.step()


train_mode = TrainRunner  # interleave builds each mode's runner in its process


class TextRunner:
    """Classify ``n`` test reviews from their text (tokenize, encode,
    predict) per step."""

    def __init__(self, mode: str, artifact: str, n: int) -> None:
        shipped = load_model(artifact, kind="sentiment-lstm")
        self.model = shipped.model
        self.vocabulary, self.max_len = (
            shipped.extras["vocabulary"],
            shipped.extras["max_len"],
        )
        self.texts = load_imdb("test").texts[:n]

    def outputs(self) -> torch.Tensor:
        inputs = encode_texts(self.texts, self.vocabulary, self.max_len)
        return predict(self.model, inputs, batch_size=64)

    def step(self) -> None:
        self.outputs()  # a step returns nothing, or a dict of extra fields


def infer_mode(
    mode: str, artifact: str, package: str, inputs_path: str, name: str, iters: int
) -> harness.CallRunner:
    """One Python inference mode's runner (in its own process)."""
    inputs = torch.load(inputs_path, weights_only=True)[name]
    if mode == "aoti-python":
        fn = harness.load_aoti(package, check_inputs=harness.TIMING_CHECK_INPUTS)
    else:
        model = load_model(artifact, kind="sentiment-lstm").model
        fn = model if mode == "eager (packed)" else model.forward_padded
    return harness.CallRunner(fn, inputs, iters)


DEFAULTS = {"reps": 5, "warmup": 2, "steps-per-sample": 5, "batch": 32, "iters": 5}
SMOKE = {"reps": 2, "warmup": 1, "steps_per_sample": 2, "iters": 3}
"""The options (:func:`harness.parse_args`) and their smoke values."""


def train_args(args: argparse.Namespace) -> tuple:
    """:func:`train_mode`'s arguments after the mode, at ``args``."""
    config = sentiment_config("smoke" if args.budget == "smoke" else "full")
    return asdict(replace(config, epochs=1)), args.steps_per_sample, 0


def infer_inputs(args: argparse.Namespace) -> dict[str, tuple[torch.Tensor, ...]]:
    """The timed inputs by name: one test review, and ``--batch`` of them
    (tokens and lengths, encoded with the shipped model's vocabulary)."""
    test = load_imdb("test")
    shipped = load_model(infer_args(args)[0], kind="sentiment-lstm")
    vocabulary, max_len = shipped.extras["vocabulary"], shipped.extras["max_len"]
    return {
        "batch 1": tuple(encode_texts(test.texts[:1], vocabulary, max_len)),
        f"batch {args.batch}": tuple(
            encode_texts(test.texts[: args.batch], vocabulary, max_len)
        ),
    }


def infer_args(args: argparse.Namespace) -> tuple[str]:
    """:func:`infer_mode`'s arguments after the mode, before the package."""
    return (str(artifacts_dir() / "sentiment-lstm"),)


def main() -> int:
    args = harness.parse_args(__doc__, DEFAULTS, SMOKE)
    config = sentiment_config("smoke" if args.budget == "smoke" else "full")
    train, test = load_imdb("train"), load_imdb("test")
    steps = args.steps_per_sample
    with harness.Bench(PROJECT, __file__, args) as bench:
        bench.interleaved(
            train_mode,
            TRAIN_MODES,
            *train_args(args),
            prefix="train",
            unit=f"s/{steps} steps",
            items=steps * config.batch_size,
            tolerances=TOLERANCES,
            data={"batch": config.batch_size, "max_len": config.max_len},
            notes=f"{describe(train)}; budget {args.budget}",
        )
        artifact = artifacts_dir() / "sentiment-lstm"
        shipped = load_model(artifact, kind="sentiment-lstm")
        max_len = shipped.extras["max_len"]
        inputs = infer_inputs(args)
        package = harness.compile_aoti(
            export_lstm(shipped.model, max_batch=max(2, args.batch), max_len=max_len),
            bench.folder / "sentiment.pt2",
        )
        bench.infer_interleaved(
            infer_mode,
            INFER_MODES,
            inputs,
            package,
            *infer_args(args),
            prefix="infer",
            notes="the shipped model; outputs checked against eager (packed), aoti-cpp's "
            "against aoti-python on the inputs it builds",
            atol=1e-4,
            rtol=1e-4,
        )
        n = min(1000, len(test))
        bench.interleaved(
            TextRunner,
            ("eager (packed)",),
            str(artifact),
            n,
            prefix=f"classify {n:,} reviews from text",
            unit=f"s/{n:,} reviews",
            items=n,
            tolerances={"eager (packed)": (0.0, 0.0)},
            data={"reviews": n, "batch": 64},
            notes="tokenizing, encoding and the forward passes",
        )
        return bench.finish()


if __name__ == "__main__":
    sys.exit(main())
