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

Writes ``artifacts/projects/sentiment/comparison.json`` (one record per mode)
unless ``--no-write``; prints one JSON line with every figure and the ratios
to eager. ``--budget smoke`` checks the script in a minute (tiny model, few
steps; its numbers mean nothing and it never writes the artifact).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "sentiment"


def _split(config_dict: dict, seed: int):
    from rlbook.data import load_imdb
    from rlbook.projects.sentiment_run import SentimentConfig, prepare_reviews

    train, test = load_imdb("train"), load_imdb("test")
    config = SentimentConfig(**config_dict)
    return prepare_reviews(
        train.texts, train.labels, test.texts, test.labels, config, seed
    ), config


def train_mode(
    mode: str, config_dict: dict, steps: int, warmup: int, threads: int, seed: int
) -> dict:
    """One training mode, in its own process: seconds for ``steps`` steps and more."""
    import torch
    import torch.nn.functional as F

    from rlbook.chapters.sentiment_imdb import build_lstm
    from rlbook.projects.deploy import peak_memory_mb
    from rlbook.projects.sentiment import accuracy, length_batches, predict
    from rlbook.seeding import stream_seed, torch_stream

    torch.set_num_threads(threads)
    split, config = _split(config_dict, seed)
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
    valid = accuracy(predict(model, split.valid), split.valid_labels)
    return {
        "seconds": seconds,
        "reviews": reviews,
        "peak_memory_mb": peak_memory_mb(),
        "valid_accuracy": valid,
        "threads": torch.get_num_threads(),
    }


def text_to_labels(artifact: str, n: int, threads: int) -> dict:
    """Classify ``n`` test reviews from their text (tokenize, encode, predict)."""
    import torch

    from rlbook.data import load_imdb
    from rlbook.projects.deploy import peak_memory_mb
    from rlbook.projects.sentiment import encode_texts, predict
    from rlbook.projects.shipping import load_model

    torch.set_num_threads(threads)
    shipped = load_model(artifact, kind="sentiment-lstm")
    texts = load_imdb("test").texts[:n]
    predict(shipped.model, encode_texts(texts[:8], shipped.extras["vocabulary"], 64))
    start = time.perf_counter()
    inputs = encode_texts(
        texts, shipped.extras["vocabulary"], shipped.extras["max_len"]
    )
    predict(shipped.model, inputs, batch_size=64)
    return {
        "seconds": time.perf_counter() - start,
        "reviews": len(texts),
        "peak_memory_mb": peak_memory_mb(),
    }


def infer_mode(
    mode: str, artifact: str, package: str, inputs_path: str, iters: int, threads: int
) -> dict:
    """Latency of one Python inference mode, in its own process."""
    import torch

    from rlbook.projects.deploy import load_aoti, peak_memory_mb, time_python
    from rlbook.projects.shipping import load_model

    inputs = torch.load(inputs_path, weights_only=True)
    model = load_model(artifact, kind="sentiment-lstm").model
    if mode == "eager (packed)":
        fn = model
    elif mode == "eager (padded)":
        fn = model.forward_padded
    else:
        fn = load_aoti(package, check_inputs=False)
    report = {}
    for name, (tokens, lengths) in inputs.items():
        report[name] = time_python(
            fn,
            (tokens, lengths),
            iters=iters,
            warmup=max(2, iters // 10),
            threads=threads,
        )
    report["peak_memory_mb"] = peak_memory_mb()
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", choices=["smoke", "full"], default="full")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))

    import torch

    from rlbook.data import describe, load_imdb
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
    from rlbook.projects.sentiment import encode_texts, export_lstm
    from rlbook.projects.sentiment_run import FULL_CONFIG, sentiment_config
    from rlbook.projects.shipping import load_model

    smoke = args.budget == "smoke"
    config = sentiment_config("smoke") if smoke else FULL_CONFIG
    steps, warmup, iters = (3, 1, 3) if smoke else (args.steps, args.warmup, args.iters)
    config_dict = asdict(replace(config, epochs=1))
    threads = args.threads
    versions = software_versions()
    test = load_imdb("test")
    data = {"train": len(load_imdb("train")), "test": len(test)}
    records: list[ComparisonRecord] = []
    figures: dict[str, float] = {}

    for mode in ("eager fp32", "torch.compile", "bf16 autocast"):
        result = run_in_subprocess(
            "sentiment_modes:train_mode", mode, config_dict, steps, warmup, threads, 0
        )
        figures[f"train {mode} s"] = result["seconds"]
        records.append(
            ComparisonRecord(
                mode=f"train: {mode}",
                time=result["seconds"],
                time_unit=f"s/{steps} steps",
                throughput=result["reviews"] / result["seconds"],
                peak_memory_mb=result["peak_memory_mb"],
                quality=result["valid_accuracy"],
                quality_name=f"validation accuracy after {warmup + steps} steps",
                device=f"cpu ({result['threads']} thread(s))",
                versions=versions,
                data={**data, "batch": config.batch_size, "max_len": config.max_len},
                notes=f"{describe(test)} for testing; budget {args.budget}",
            )
        )

    artifact = artifacts_dir() / "sentiment-lstm"
    shipped = load_model(artifact, kind="sentiment-lstm")
    vocabulary, max_len = shipped.extras["vocabulary"], shipped.extras["max_len"]
    one = encode_texts(test.texts[:1], vocabulary, max_len)
    many = encode_texts(test.texts[: args.batch], vocabulary, max_len)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        inputs_path = folder / "inputs.pt"
        torch.save(
            {"batch 1": tuple(one), f"batch {args.batch}": tuple(many)}, inputs_path
        )
        package = compile_aoti(
            export_lstm(shipped.model, max_batch=max(2, args.batch), max_len=max_len),
            folder / "sentiment.pt2",
        )
        runner = build_cpp_runner(folder / "runner")
        latency: dict[str, dict] = {}
        for mode in ("eager (packed)", "eager (padded)", "aoti-python"):
            latency[mode] = run_in_subprocess(
                "sentiment_modes:infer_mode",
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
            {"batch 1": tuple(one), f"batch {args.batch}": tuple(many)},
            shipped.model,
            iters=iters,
            threads=threads,
            atol=1e-4,
            rtol=1e-4,
        )
    encoded = {"batch 1": one, f"batch {args.batch}": many}
    latency_rows, latency_figures = latency_records(
        latency,
        {name: len(e.lengths) for name, e in encoded.items()},
        prefix="infer",
        threads=threads,
        versions=versions,
        notes="the shipped model; outputs checked against eager (packed)",
        data={name: {"tokens": int(e.lengths.sum())} for name, e in encoded.items()},
    )
    records += latency_rows
    figures.update(latency_figures)
    thousand = run_in_subprocess(
        "sentiment_modes:text_to_labels", str(artifact), min(1000, len(test)), threads
    )
    figures["1000 reviews from text s"] = thousand["seconds"]
    records.append(
        ComparisonRecord(
            mode="classify 1,000 reviews from text: eager (packed)",
            time=thousand["seconds"],
            time_unit=f"s/{thousand['reviews']} reviews",
            throughput=thousand["reviews"] / thousand["seconds"],
            peak_memory_mb=thousand["peak_memory_mb"],
            device=f"cpu ({threads} thread(s))",
            versions=versions,
            data={"reviews": thousand["reviews"], "batch": 64},
            notes="tokenizing, encoding and the forward passes",
        )
    )
    eager = figures["train eager fp32 s"]
    ratios = {
        "train torch.compile / eager": figures["train torch.compile s"] / eager,
        "train bf16 autocast / eager": figures["train bf16 autocast s"] / eager,
    }
    for name in ("batch 1", f"batch {args.batch}"):
        base = figures[f"eager (packed) {name} ms"]
        for mode in ("eager (padded)", "aoti-python", "aoti-cpp"):
            ratios[f"{mode} / eager (packed), {name}"] = (
                figures[f"{mode} {name} ms"] / base
            )
    meta = benchmark_meta("python benchmarks/sentiment_modes.py", args.budget, threads)
    if not smoke and not args.no_write:
        write_comparison(comparison_path(PROJECT), records, meta)
    print(
        json.dumps({"project": PROJECT, **meta, "figures": figures, "ratios": ratios})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
