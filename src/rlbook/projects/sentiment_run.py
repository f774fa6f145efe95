"""The sentiment project end to end: split, vocabulary, the LSTM's run, the baseline.

What the chapter runs at its budget and what ``scripts/train_sentiment.py``
runs at ``full`` to make the shipped model, so both do the same thing:

* :func:`prepare_reviews`: hold out a validation share of the *training*
  reviews (the test reviews are never looked at before the end), build the
  vocabulary from the rest, and encode all three parts.
* ``train_sentiment_lstm`` (on the chapter's page, generated into
  :mod:`rlbook.chapters.sentiment_imdb`): the BiLSTM's epochs through
  :func:`rlbook.projects.runs.fit_epochs` (resumable; the best epoch by
  validation accuracy, ties to the earlier), then the test accuracy of both
  the best and the final weights, each rounded to the float16 that ships.
* :func:`bag_of_words_baseline`: the logistic regression on the same split.

Random streams (:mod:`rlbook.seeding`), one per purpose: ``split``,
``init``, ``data`` (batch order) and ``dropout``.

Introduced in the chapter *Sentiment analysis: an LSTM on IMDb reviews*.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import torch

from ..seeding import torch_stream
from .sentiment import (
    BagOfWordsLogReg,
    EncodedReviews,
    Vocabulary,
    accuracy,
    add_bigrams,
    bow_inputs,
    encode_batch,
    inverse_document_frequency,
    predict,
    tokenize,
    train_bow,
)

__all__ = [
    "FULL_CONFIG",
    "ReviewSplit",
    "SentimentConfig",
    "bag_of_words_baseline",
    "prepare_reviews",
    "sentiment_config",
    "sentiment_spec",
]


@dataclass(frozen=True)
class SentimentConfig:
    """Every setting of the LSTM's run (and of the data it reads)."""

    validation_share: float = 0.1
    """share of the training reviews held out to pick the epoch"""
    min_freq: int = 2
    """vocabulary: least count of a kept word (see :meth:`Vocabulary.build`)"""
    max_size: int = 20_000
    """vocabulary: most words kept, the most frequent first"""
    max_len: int = 400
    """most tokens read per review, head and tail kept (see ``truncate``)"""
    embed_dim: int = 128
    """size of a word's embedding"""
    hidden_size: int = 128
    """LSTM hidden units per direction"""
    num_layers: int = 2
    """stacked LSTM layers"""
    dropout: float = 0.3
    """dropout probability in the model"""
    pooling: str = "max"
    """how the outputs over a review become one vector: "last" state or "max" over tokens"""
    epochs: int = 8
    """passes over the training reviews"""
    batch_size: int = 32
    """reviews per Adam step"""
    lr: float = 2e-3
    """Adam's learning rate"""
    weight_decay: float = 0.0
    """Adam's weight decay"""
    grad_clip: float = 1.0
    """largest gradient norm; larger gradients are scaled down to it"""


FULL_CONFIG = SentimentConfig(
    max_len=400, embed_dim=64, hidden_size=64, pooling="max", epochs=6
)
"""The shipped model's run (``scripts/train_sentiment.py``)."""

SENTIMENT_CONFIGS: dict[str, SentimentConfig] = {
    # Seconds: proves the code runs; its accuracy means nothing.
    "smoke": SentimentConfig(
        max_size=2_000, max_len=64, embed_dim=16, hidden_size=16, epochs=1
    ),
    # The first two epochs of the full run: what the CI build trains live.
    "ci": replace(FULL_CONFIG, epochs=2),
    "full": FULL_CONFIG,
}


def sentiment_config(budget: str) -> SentimentConfig:
    """The LSTM's settings at ``budget`` (smoke, ci or full)."""
    from ..budget import validate_budget

    return SENTIMENT_CONFIGS[validate_budget(budget)]


class ReviewSplit(NamedTuple):
    """Reviews ready for the models: three encoded parts and their token lists."""

    vocabulary: Vocabulary
    train: EncodedReviews
    valid: EncodedReviews
    test: EncodedReviews
    train_labels: torch.Tensor
    valid_labels: torch.Tensor
    test_labels: torch.Tensor
    train_tokens: list[list[str]]
    test_tokens: list[list[str]]


def prepare_reviews(
    train_texts: Sequence[str],
    train_labels: torch.Tensor,
    test_texts: Sequence[str],
    test_labels: torch.Tensor,
    config: SentimentConfig,
    seed: int,
) -> ReviewSplit:
    """Split off the validation reviews, build the vocabulary, encode everything.

    The validation reviews are a seeded random share of the training ones
    (stream ``split``); the vocabulary counts only the rest.
    """
    n = len(train_texts)
    if not 0.0 < config.validation_share < 1.0:
        raise ValueError(
            f"validation_share must be in (0, 1), got {config.validation_share!r}"
        )
    n_valid = max(1, round(n * config.validation_share))
    if n_valid >= n:
        raise ValueError(f"{n} training reviews are too few to hold {n_valid} out")
    order = torch.randperm(n, generator=torch_stream(seed, "split")).tolist()
    valid_idx, train_idx = order[:n_valid], order[n_valid:]
    tokens = [tokenize(text) for text in train_texts]
    train_tokens = [tokens[i] for i in train_idx]
    vocabulary = Vocabulary.build(
        train_tokens, min_freq=config.min_freq, max_size=config.max_size
    )
    test_tokens = [tokenize(text) for text in test_texts]

    def encode(token_lists: Sequence[Sequence[str]]) -> EncodedReviews:
        return encode_batch([vocabulary.encode(t) for t in token_lists], config.max_len)

    return ReviewSplit(
        vocabulary=vocabulary,
        train=encode(train_tokens),
        valid=encode([tokens[i] for i in valid_idx]),
        test=encode(test_tokens),
        train_labels=train_labels[train_idx],
        valid_labels=train_labels[valid_idx],
        test_labels=test_labels,
        train_tokens=train_tokens,
        test_tokens=test_tokens,
    )


def sentiment_spec_model(config: SentimentConfig, vocab_size: int) -> dict[str, Any]:
    """The model's constructor arguments, as its shipped spec records them."""
    return {
        "vocab_size": vocab_size,
        "embed_dim": config.embed_dim,
        "hidden_size": config.hidden_size,
        "num_layers": config.num_layers,
        "bidirectional": True,
        "dropout": config.dropout,
        "pooling": config.pooling,
    }


def sentiment_spec(config: SentimentConfig, vocabulary: Vocabulary) -> dict[str, Any]:
    """The ``sentiment-lstm`` spec of a shipped model (see :mod:`~rlbook.projects.shipping`)."""
    return {
        "model": sentiment_spec_model(config, len(vocabulary)),
        "vocabulary": vocabulary.to_dict(),
        "max_len": config.max_len,
        "head": None,
    }


def bag_of_words_baseline(
    split: ReviewSplit, *, bigrams: bool = True, l2: float = 1e-4
) -> dict[str, float]:
    """The logistic regression on the LSTM's training reviews; its test accuracy.

    Its vocabulary counts the same training reviews (with their bigrams if
    ``bigrams``); the validation reviews are not used.
    """
    expand = add_bigrams if bigrams else list
    train_tokens = [expand(t) for t in split.train_tokens]
    test_tokens = [expand(t) for t in split.test_tokens]
    vocabulary = Vocabulary.build(train_tokens, min_freq=2)
    train_ids = [vocabulary.encode(t) for t in train_tokens]
    idf = inverse_document_frequency(train_ids, len(vocabulary))
    model = BagOfWordsLogReg(len(vocabulary))
    start = time.perf_counter()
    fit = train_bow(model, bow_inputs(train_ids, idf), split.train_labels, l2=l2)
    seconds = time.perf_counter() - start
    test = bow_inputs([vocabulary.encode(t) for t in test_tokens], idf)
    return {
        "test_accuracy": accuracy(predict(model, test), split.test_labels),
        "train_accuracy": fit["accuracy"],
        "features": float(len(vocabulary)),
        "seconds": seconds,
    }
