"""Generated from chapters/sentiment_imdb.md by scripts/sync_notebooks.py: do not edit.

The page's code cells tagged ``export``, in page order. Edit them on the
page, then run scripts/sync_notebooks.py.
"""

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from rlbook.projects.runs import fit_epochs
from rlbook.projects.sentiment import (
    SentimentLSTM,
    accuracy,
    check_batch,
    check_labels,
    length_batches,
    model_device,
    predict,
)
from rlbook.projects.sentiment_run import (
    ReviewSplit,
    SentimentConfig,
    build_lstm,
)
from rlbook.projects.shipping import round_to_shipped
from rlbook.seeding import stream_seed, torch_stream


def train_lstm_epoch(
    model: SentimentLSTM,
    tokens: torch.Tensor,
    lengths: torch.Tensor,
    labels: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device | str | None = None,
    grad_clip: float | None = 1.0,
    pool_batches: int = 32,
) -> dict[str, float]:
    """One pass over the reviews in minibatches, gradients clipped."""
    n = tokens.shape[0]
    check_batch(tokens, lengths)
    check_labels(labels, n)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(
            f"batch_size must be an int >= 1, got {batch_size!r}"
        )
    if not isinstance(pool_batches, int) or pool_batches < 1:
        raise ValueError(
            f"pool_batches must be an int >= 1, got {pool_batches!r}"
        )
    if grad_clip is not None and not grad_clip > 0:
        raise ValueError(
            f"grad_clip must be > 0 or None, got {grad_clip!r}"
        )
    device = model_device(model, device)
    lengths = lengths.cpu()  # packing reads them on the CPU
    batches = length_batches(lengths, batch_size, generator, pool_batches)
    longest = torch.stack(
        [lengths[idx].max() for idx in batches]
    ).tolist()
    model.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    norm_sum = torch.zeros((), device=device)
    for idx, width in zip(batches, longest, strict=True):
        x = tokens[idx.to(tokens.device), :width]
        x = x.to(device, non_blocking=True)
        y = labels[idx.to(labels.device)]
        y = y.to(device, torch.float32, non_blocking=True)
        logits = model(x, lengths[idx])
        loss = F.binary_cross_entropy_with_logits(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            norm = nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        else:
            norm = nn.utils.get_total_norm(
                [p.grad for p in model.parameters() if p.grad is not None]
            )
        optimizer.step()
        loss_sum += loss.detach() * len(idx)
        correct += ((logits.detach() > 0) == (y > 0.5)).sum()
        norm_sum += norm.detach().to(device)
    return {
        "loss": loss_sum.item() / n,
        "accuracy": correct.item() / n,  # dropout on, as the epoch went
        "grad_norm": norm_sum.item() / len(batches),  # before clipping
        "batches": float(len(batches)),
    }


@dataclass
class LSTMRun:
    """A run's curves, and both sets of weights (rounded to float16, as
    they ship) with their test accuracy."""

    config: SentimentConfig
    history: list[dict[str, float]]
    best_epoch: int
    best: SentimentLSTM
    final: SentimentLSTM
    best_test_accuracy: float
    final_test_accuracy: float
    seconds: float
    resumed_from: int


def train_sentiment_lstm(
    split: ReviewSplit,
    config: SentimentConfig,
    seed: int,
    *,
    device: torch.device | str = "cpu",
    checkpoint: str | Path | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> LSTMRun:
    """Train config.epochs epochs; test the best and final weights."""
    device = torch.device(device)
    torch.manual_seed(stream_seed(seed, "init"))
    model = build_lstm(config, len(split.vocabulary)).to(device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    generator = torch_stream(seed, "data")  # batch order
    torch.manual_seed(stream_seed(seed, "dropout"))

    def train_epoch() -> dict[str, float]:
        return train_lstm_epoch(
            model,
            *split.train,
            split.train_labels,
            optimizer,
            batch_size=config.batch_size,
            generator=generator,
            device=device,
            grad_clip=config.grad_clip,
        )

    def validate() -> float:
        probabilities = predict(model, split.valid, device=device)
        return accuracy(probabilities, split.valid_labels)

    start = time.perf_counter()
    result = fit_epochs(
        model,
        optimizer,
        epochs=config.epochs,
        train_epoch=train_epoch,
        validate=validate,
        generator=generator,
        checkpoint=checkpoint,
        config={**asdict(config), "seed": seed},
        on_epoch=on_epoch,
    )
    seconds = time.perf_counter() - start

    def shipped(state: dict[str, torch.Tensor]) -> SentimentLSTM:
        copy = build_lstm(config, len(split.vocabulary))
        copy.load_state_dict(state)
        return round_to_shipped(copy).eval()

    def test(model: SentimentLSTM) -> float:
        return accuracy(predict(model, split.test), split.test_labels)

    best, final = shipped(result.best_state), shipped(result.final_state)
    return LSTMRun(
        config=config,
        history=result.history,
        best_epoch=result.best_epoch,
        best=best,
        final=final,
        best_test_accuracy=test(best),
        final_test_accuracy=test(final),
        seconds=seconds,
        resumed_from=result.resumed_from,
    )
