"""The sentiment project's run: the split, the LSTM's epochs, the baseline."""

from __future__ import annotations

import pytest
import torch

from rlbook.chapters.sentiment_imdb import train_sentiment_lstm
from rlbook.projects.sentiment_run import (
    SentimentConfig,
    bag_of_words_baseline,
    prepare_reviews,
    sentiment_spec,
)
from rlbook.projects.shipping import load_model, save_model

from .test_projects_sentiment import synthetic_reviews

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = SentimentConfig(
    validation_share=0.2,
    min_freq=1,
    max_len=16,
    embed_dim=8,
    hidden_size=8,
    dropout=0.1,
    epochs=3,
    batch_size=16,
    lr=0.02,
)


def texts(n: int, seed: int) -> tuple[list[str], torch.Tensor]:
    reviews, labels = synthetic_reviews(n, seed)
    return [" ".join(words) for words in reviews], labels


@pytest.fixture(scope="module")
def split():
    torch.set_num_threads(1)
    train_texts, train_labels = texts(200, seed=0)
    test_texts, test_labels = texts(60, seed=1)
    return prepare_reviews(
        train_texts, train_labels, test_texts, test_labels, TINY, seed=0
    )


def test_the_validation_share_is_held_out_and_the_vocabulary_never_sees_it():
    train_texts = [f"w{i} word{i}" for i in range(100)]
    labels = torch.arange(100) % 2
    split = prepare_reviews(train_texts, labels, ["w1"], labels[:1], TINY, seed=3)
    assert len(split.valid_labels) == 20 and len(split.train_labels) == 80
    seen = {t for tokens in split.train_tokens for t in tokens}
    held_out = {f"word{i}" for i in range(100)} - seen
    assert len(held_out) == 20  # the 20 held-out reviews' unique words
    assert not held_out & set(split.vocabulary.itos)
    again = prepare_reviews(train_texts, labels, ["w1"], labels[:1], TINY, seed=3)
    assert torch.equal(again.valid.tokens, split.valid.tokens)
    other = prepare_reviews(train_texts, labels, ["w1"], labels[:1], TINY, seed=4)
    assert other.vocabulary != split.vocabulary  # another 20 reviews held out


def test_lstm_run_learns_and_tests_its_best_and_final_weights(split, tmp_path):
    run = train_sentiment_lstm(split, TINY, seed=0)
    assert [r["epoch"] for r in run.history] == [1, 2, 3]
    assert run.final_test_accuracy >= 0.9 and run.best_test_accuracy >= 0.9
    valid = [r["valid"] for r in run.history]
    assert run.best_epoch == valid.index(max(valid)) + 1
    # What it returns is what ships: a saved and reloaded model scores the same.
    folder = save_model(
        tmp_path / "m",
        kind="sentiment-lstm",
        spec=sentiment_spec(TINY, split.vocabulary),
        model=run.best,
        provenance={},
    )
    shipped = load_model(folder).model
    for name, weight in run.best.state_dict().items():
        assert torch.equal(weight, shipped.state_dict()[name]), name


def test_lstm_run_is_reproducible(split):
    first = train_sentiment_lstm(split, TINY, seed=0)
    again = train_sentiment_lstm(split, TINY, seed=0)
    for name, weight in first.final.state_dict().items():
        assert torch.equal(weight, again.final.state_dict()[name]), name


def test_bag_of_words_baseline_learns_the_telling_word(split):
    result = bag_of_words_baseline(split, bigrams=False)
    assert result["test_accuracy"] >= 0.95
    assert result["features"] < bag_of_words_baseline(split)["features"]


def test_a_bad_validation_share_is_a_clear_error():
    bad = SentimentConfig(validation_share=1.0)
    with pytest.raises(ValueError, match="validation_share"):
        prepare_reviews(
            ["a b"] * 4, torch.tensor([0, 1, 0, 1]), ["a"], torch.tensor([0]), bad, 0
        )
