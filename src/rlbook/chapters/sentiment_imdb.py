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
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rlbook.chapters import add_to_class
from rlbook.projects.runs import fit_epochs
from rlbook.projects.sentiment import (
    PAD_INDEX,
    POOLINGS,
    accuracy,
    check_batch,
    check_labels,
    length_batches,
    masked_lstm_scan,
    model_device,
    predict,
)
from rlbook.projects.sentiment_run import (
    ReviewSplit,
    SentimentConfig,
    sentiment_spec_model,
)
from rlbook.projects.shipping import round_to_shipped
from rlbook.seeding import stream_seed, torch_stream


class SentimentLSTM(nn.Module):
    """Embedding, a (bidirectional) multi-layer LSTM, a linear layer to
    one logit; pooling "last" (final states) or "max" (over tokens)."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 128,
        hidden_size: int = 128,
        num_layers: int = 2,
        bidirectional: bool = True,
        dropout: float = 0.3,
        pad_index: int = PAD_INDEX,
        pooling: str = "last",
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(
                f"pooling must be one of {', '.join(POOLINGS)}, "
                f"got {pooling!r}"
            )
        self.pooling = pooling
        for name, value in (
            ("vocab_size", vocab_size),
            ("embed_dim", embed_dim),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or value < 1
            ):
                raise ValueError(
                    f"{name} must be a positive int, got {value!r}"
                )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(
                f"dropout must be in [0, 1), got {dropout!r}"
            )
        if not 0 <= pad_index < vocab_size:
            raise ValueError(
                "pad_index must be a valid index into the "
                f"{vocab_size} embeddings, got {pad_index!r}"
            )
        self.embedding = nn.Embedding(
            vocab_size, embed_dim, padding_idx=pad_index
        )
        self.lstm = nn.LSTM(
            embed_dim,
            hidden_size,
            num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.directions = 2 if bidirectional else 1
        self.head = nn.Linear(self.directions * hidden_size, 1)

    def forward(
        self, tokens: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """Logits (B,) of tokens (B, T), lengths (B,) each in [1, T]."""
        check_batch(tokens, lengths)
        embedded = self.dropout(self.embedding(tokens))
        packed = pack_padded_sequence(
            embedded,
            lengths.cpu(),
            batch_first=True,
            enforce_sorted=False,
        )
        # h_n: (layers * directions, B, H), in input order
        output, (h_n, _) = self.lstm(packed)
        if self.pooling == "max":
            # (B, longest, dirs * H); padding can never be the max
            padded, _ = pad_packed_sequence(
                output, batch_first=True, padding_value=float("-inf")
            )
            features = padded.amax(dim=1)
        else:
            # (B, dirs, H): forward, then backward
            last_layer = h_n[-self.directions :].transpose(0, 1)
            features = last_layer.reshape(tokens.shape[0], -1)
        return self.head(self.dropout(features)).squeeze(1)


@add_to_class(SentimentLSTM)
def forward_padded(
    self, tokens: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    """forward's logits, computed on the padded batch (exportable)."""
    check_batch(tokens, lengths)
    x = self.dropout(self.embedding(tokens))  # (B, T, E)
    steps = torch.arange(tokens.shape[1], device=tokens.device)
    lengths = lengths.to(tokens.device)
    inside = (steps[None, :] < lengths[:, None]).T  # (T, B)
    inside = inside.unsqueeze(-1)  # (T, B, 1): broadcasts over the state
    finals: list[torch.Tensor] = []
    for layer in range(self.lstm.num_layers):
        if layer > 0:
            x = F.dropout(x, self.lstm.dropout, self.training)
        outputs, finals = [], []
        for reverse in (False, True)[: self.directions]:
            suffix = f"_l{layer}" + ("_reverse" if reverse else "")
            w_ih = getattr(self.lstm, "weight_ih" + suffix)
            w_hh = getattr(self.lstm, "weight_hh" + suffix)
            bias = getattr(self.lstm, "bias_ih" + suffix) + getattr(
                self.lstm, "bias_hh" + suffix
            )
            # (T, B, 4H): the input's share of the gates, every step
            gates_x = (x @ w_ih.T + bias).transpose(0, 1)
            h_last, h_all = masked_lstm_scan(
                gates_x, inside, w_hh, reverse
            )
            outputs.append(h_all.transpose(0, 1))  # (B, T, H)
            finals.append(h_last)
        x = torch.cat(outputs, dim=2)
    if self.pooling == "max":
        real = inside.transpose(0, 1)  # (B, T, 1)
        features = torch.where(real, x, float("-inf")).amax(dim=1)
    else:
        features = torch.cat(finals, dim=1)  # (B, directions * H)
    return self.head(self.dropout(features)).squeeze(1)


def build_lstm(config: SentimentConfig, vocab_size: int) -> SentimentLSTM:
    """The BiLSTM of config (its weights from torch's global stream)."""
    return SentimentLSTM(**sentiment_spec_model(config, vocab_size))


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
