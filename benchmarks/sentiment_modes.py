"""The sentiment project's execution modes, measured in one run: one JSON line.

    RLBOOK_DATA=<data folder> .venv/bin/python benchmarks/sentiment_modes.py

Training, each mode in a fresh process (so its peak memory is its own), from
the same initial weights over the same batches of the shared training
reviews: ``eager fp32``, ``torch.compile`` and ``bf16 autocast``. Each mode
runs ``--warmup`` untimed steps (compilation happens there), then ``--steps``
timed ones; its quality figure is the validation accuracy after them.

Inference, with the shipped model (``artifacts/sentiment-lstm``): latency of
one review and of a batch of ``--batch`` reviews for ``eager (packed)``,
``eager (padded)`` (the exportable path), ``aoti-python`` (the AOTInductor
package run from Python) and ``aoti-cpp`` (the same package run by
``deploy/cpp/aoti_infer.cpp``, a process with no Python in it), all on
``--threads`` threads; and the time to classify 1,000 test reviews from their
text (the original chapter's row) in eager mode.

Its table, ``artifacts/projects/sentiment/comparison.json``, and its JSON line
are :class:`harness.Bench`'s. ``--budget smoke`` checks the script in a minute (tiny model, few
steps).
"""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, replace

import harness
import torch
import torch.nn.functional as F

from rlbook.chapters.sentiment_imdb import (
    SentimentConfig,
    accuracy,
    build_lstm,
    encode_texts,
    export_lstm,
    length_batches,
    predict,
    prepare_reviews,
    sentiment_config,
)
from rlbook.data import load_imdb
from rlbook.paths import artifacts_dir
from rlbook.projects.shipping import load_model
from rlbook.seeding import stream_seed, torch_stream

PROJECT = "sentiment"
TRAIN_MODES = ("eager fp32", "torch.compile", "bf16 autocast")
INFER_MODES = ("eager (packed)", "eager (padded)", "aoti-python")


def train_mode(
    mode: str, config_dict: dict, steps: int, warmup: int, threads: int, seed: int
) -> dict:
    """One training mode, in its own process: seconds for ``steps`` steps and more."""
    torch.set_num_threads(threads)
    train, test = load_imdb("train"), load_imdb("test")
    config = SentimentConfig(**config_dict)
    split = prepare_reviews(
        train.texts, train.labels, test.texts, test.labels, config, seed
    )
    torch.manual_seed(stream_seed(seed, "init"))
    model = build_lstm(config, len(split.vocabulary))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    tokens, lengths = split.train
    batches = length_batches(
        lengths, config.batch_size, torch_stream(seed, "data"), pool_batches=32
    )
    needed = warmup + steps
    if len(batches) < needed:
        batches = batches * (needed // len(batches) + 1)
    forward = torch.compile(model) if mode == "torch.compile" else model
    autocast = (
        torch.autocast("cpu", dtype=torch.bfloat16)
        if mode == "bf16 autocast"
        else nullcontext()
    )
    torch.manual_seed(stream_seed(seed, "dropout"))
    model.train()
    reviews = 0

    def step(idx: torch.Tensor) -> None:
        width = int(lengths[idx].max())
        with autocast:
            logits = forward(tokens[idx, :width], lengths[idx])
        loss = F.binary_cross_entropy_with_logits(
            logits.float(), split.train_labels[idx].float()
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()

    for idx in batches[:warmup]:
        step(idx)
    start = time.perf_counter()
    for idx in batches[warmup:needed]:
        step(idx)
        reviews += len(idx)
    seconds = time.perf_counter() - start
    return harness.measured(
        time=seconds,
        throughput=reviews / seconds,
        quality=accuracy(predict(model, split.valid), split.valid_labels),
    )


def text_to_labels(artifact: str, n: int, threads: int) -> dict:
    """Classify ``n`` test reviews from their text (tokenize, encode, predict)."""
    torch.set_num_threads(threads)
    shipped = load_model(artifact, kind="sentiment-lstm")
    texts = load_imdb("test").texts[:n]
    predict(shipped.model, encode_texts(texts[:8], shipped.extras["vocabulary"], 64))
    start = time.perf_counter()
    inputs = encode_texts(
        texts, shipped.extras["vocabulary"], shipped.extras["max_len"]
    )
    predict(shipped.model, inputs, batch_size=64)
    return harness.measured(seconds=time.perf_counter() - start, reviews=len(texts))


def infer_mode(
    mode: str, artifact: str, package: str, inputs_path: str, iters: int, threads: int
) -> dict:
    """Latency of one Python inference mode, in its own process."""
    inputs = torch.load(inputs_path, weights_only=True)
    model = load_model(artifact, kind="sentiment-lstm").model
    if mode == "eager (packed)":
        fn = model
    elif mode == "eager (padded)":
        fn = model.forward_padded
    else:
        fn = harness.load_aoti(package, check_inputs=False)
    return harness.time_inputs(fn, inputs, iters, threads)


def main() -> int:
    args = harness.parse_args(
        __doc__,
        {"steps": 60, "warmup": 5, "batch": 64, "iters": 30},
        {"steps": 3, "warmup": 1, "iters": 3},
    )
    config = sentiment_config("smoke" if args.budget == "smoke" else "full")
    test = load_imdb("test")
    with harness.Bench(PROJECT, __file__, args) as bench:
        bench.train_steps(
            train_mode,
            TRAIN_MODES,
            asdict(replace(config, epochs=1)),
            len(load_imdb("train")),
            test,
            {"batch": config.batch_size, "max_len": config.max_len},
        )
        artifact = artifacts_dir() / "sentiment-lstm"
        shipped = load_model(artifact, kind="sentiment-lstm")
        vocabulary, max_len = shipped.extras["vocabulary"], shipped.extras["max_len"]
        inputs = {
            "batch 1": tuple(encode_texts(test.texts[:1], vocabulary, max_len)),
            f"batch {args.batch}": tuple(
                encode_texts(test.texts[: args.batch], vocabulary, max_len)
            ),
        }
        package = harness.compile_aoti(
            export_lstm(shipped.model, max_batch=max(2, args.batch), max_len=max_len),
            bench.folder / "sentiment.pt2",
        )
        bench.infer(
            infer_mode,
            INFER_MODES,
            inputs,
            package,
            str(artifact),
            reference=shipped.model,
            atol=1e-4,
            rtol=1e-4,
            prefix="infer",
            notes="the shipped model; outputs checked against eager (packed)",
            data={name: {"tokens": int(x[1].sum())} for name, x in inputs.items()},
        )
        thousand = bench.call(
            text_to_labels, str(artifact), min(1000, len(test)), args.threads
        )
        bench.add(
            "1000 reviews from text s",
            mode="classify 1,000 reviews from text: eager (packed)",
            time=thousand["seconds"],
            time_unit=f"s/{thousand['reviews']} reviews",
            throughput=thousand["reviews"] / thousand["seconds"],
            peak_memory_mb=thousand["peak_memory_mb"],
            data={"reviews": thousand["reviews"], "batch": 64},
            notes="tokenizing, encoding and the forward passes",
        )
        return bench.finish()


if __name__ == "__main__":
    sys.exit(main())
